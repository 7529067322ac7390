"""DR-GAN [Tan, Liu, Yin, Li, "DR-GAN: Distribution Regularization for Text-to-Image Generation",
IEEE TNNLS 2022, arXiv 2204.07945]: AttnGAN's generator with a Semantic Disentangling Module (SDM)
in every attention stage, and discriminators with a Distribution Normalization Module (DNM).

Paper -> function (the paper's modules; its equation numbers are not cited, see below):

* SDM: SSAM masks :class:`KeyMask`, the key / non-key split :func:`split_key`, the stage :class:`SDMStage`
  in AttnGAN's :class:`t2igan.models.attngan.MultiStageGenerator`;
* SDL: :func:`feature_statistics`, :func:`softplus_contrast`, :func:`semantic_disentangling_loss`,
  ``H*`` from :class:`RealFeatureEncoder` (:meth:`DRGAN.sdl_loss`);
* DNM: :class:`FeatureVAE` on the features of :class:`DNMStageDiscriminator`, :func:`dnm_vae_loss`;
* DAL: :func:`distribution_alignment_loss`; the totals: :meth:`DRGAN.d_loss`, :meth:`DRGAN.g_loss`.

The equations below are written in the paper's notation (SP(x) = ln(1 + e^x), mu(.) and sigma(.)
the mean and variance of a feature, ``H*`` the feature map of the real image).

Every equation below was checked line by line against the authors'
code (github.com/Tan-H-C/DR-GAN-Distribution-Regularization-for-Text-to-Image-Generation, commit
eb1fad0): SSAM and the key / non-key split against ``model.py`` ``NEXT_STAGE_G.forward`` (``x11 =
c_code1 * sigmoid(reduct(c_code1) / B)``, ``r11 = c_code1 - x11``, the same for ``h_code``; only
``x12, x11`` go on), SDL against ``NEXT_STAGE_G`` (the ``loss1``/``loss2`` softplus terms of the
means and "variances" and their extra ``exp`` terms), the G total against ``G_NET.forward``
(``10.1 ** (loss1 / 64^2 + loss2 / 128^2) + 1e-5 * (H* reconstructions)``), DNM against ``D_NET64/128/
256`` (the CA layer on the pooled D features, ``muD, logvarD``) and DAL / the D terms against
``trainer.py``. Each difference is listed at the end of this docstring with its reason. The
paper's numbered equations (arXiv 2204.07945, Sec. III) were not at hand to check against, so no
equation numbers are cited and the forms marked "paper" below follow the paper's description of SDL
(softplus of key-minus-non-key distances of means and variances) and DNM (a VAE on D's image
features, KL to N(0, I)).

Generator (stages 0 .. m-1, as AttnGAN [AttnGAN, Eq. 1])::

    H_0 = F_0(z, F_ca(s))                          SDM_0: FC + up-blocks only
    Q'_i = F_attn(W, H_{i-1})                      word-context features (AttnGAN's word attention)
    Q_i  = ResBlock(Q'_i)                          refined (``num_refine`` residual blocks)
    M^Q_i = SSAM(Q_i),  M^H_i = SSAM(H_{i-1})      masks in [0, 1]: conv3x3, BN, lReLU, conv1x1, sigmoid
    Q+_i = Q_i * M^Q_i,   Q-_i = Q_i - Q+_i         key / non-key parts (and the same for H)
    H_i  = Up(ResBlocks([H+_{i-1}, Q+_i]))         only the key parts go on to the next stage
    x_i  = G_i(H_i)                                 conv3x3 + tanh

Semantic disentangling loss, per SDM stage and for each of ``F in {Q, H}``, against the real
image's features ``H*`` (:func:`semantic_disentangling_loss`)::

    L_SDL = sum_F sum_{s in {mu, sigma}} SP(d(s(F+), s(H*)) - d(s(F-), s(H*)))

with ``d`` the mean squared difference over channels: the key part's statistics are pulled to
the real ones, the non-key part's pushed away. The statistics are those of the spatially averaged
feature vectors over the batch (per channel), as the official code takes them.

``H*`` comes from a small real-image encoder per SDM stage (:class:`RealFeatureEncoder`, trained
by G's optimizer) that reads the real image at stage ``i-1``'s side; it is anchored in the
generator's feature space by a reconstruction loss: stage ``i-1``'s image head (its weights held
fixed for this term) must render ``H*`` back into the real image.

DNM, per discriminator (:class:`DNMStageDiscriminator`, :class:`FeatureVAE`)::

    v = avgpool(D_features(x));  (mu, log sigma^2) = Enc(v);  z = mu + sigma * eps
    x_rec = Dec([z, s])                              decoder conditioned on the sentence s
    L_DNM = ||x_rec - x||^2 + KL(N(mu, sigma^2) || N(0, I))   for real and fake x (D's step)
    L_DAL = ||Dec(z_fake, s) - x_real||^2           G's step: the normalised fake, decoded, is
                                                    aligned with the (paired) real image

Reconstructions are at the first stage's side (official: 64 px at every stage). D keeps AttnGAN's
layout, logits (BCE with logits) and loss weighting, with every batch norm removed and its convs
spectrally normalised (the official D).

Total losses::

    D: sum_i [L_adv(D_i) + dnm_recon_weight * recon_i + dnm_kl_weight * KL_i]
    G: sum_i [L_adv(G_i) + dal_weight * L_DAL_i] + sdl_weight * sum_SDM L_SDL
       + sdl_recon_weight * (H* reconstruction) + kl_weight * KL(CA) + lambda * L_DAMSM(x_{m-1})

Where the paper / official code (github.com/Tan-H-C/DR-GAN-Distribution-Regularization-for-Text-to-Image-Generation)
and this implementation differ:

* ``sdl_form``: the paper's ``SP(d+ - d-)`` never reaches 0 (it is ``ln 2`` when every statistic
  matches and goes on falling as the non-key part moves away). The default ``"shifted"`` subtracts
  its value at ``d+ = 0``, ``SP(-d-)``: ``L = SP(d+ - d-) - SP(-d-) = ln((e^{d-} + e^{d+}) / (e^{d-} + 1))``,
  which is exactly 0 when the key statistics equal the real ones and > 0 otherwise. The pull on
  the key part is the paper's (``sigmoid(d+ - d-)``); the push on the non-key part becomes
  ``sigmoid(d+ - d-) - sigmoid(-d-)``: it still pushes while the key part is off, and stops once
  it matches. ``"paper"`` is the paper's term unchanged; ``"official"`` adds the official code's
  extra ``exp(d+)``.
* ``sdl_variance``: the official code's "variance" is ``(sum_b (v_b - mu))^2 / B``: the square of a
  sum of deviations from the mean, 0 up to rounding, so its variance terms carry no signal.
  ``"paper"`` (the default, every preset) is the batch variance ``mean_b (v_b - mu)^2``;
  ``"official"`` reproduces the official statistic.
* The official code passes the pooled features through a shared 1x1 conv + batch norm + ReLU
  before taking statistics; that batch norm normalises each input's batch separately, which sets
  every batch mean to its shift, so the mean terms nearly vanish too. The statistics here are
  those of the pooled features themselves (a learnable projection could also collapse every
  statistic to one point, where the shifted loss is 0).
* ``H*``: the official reconstruction of the real image from ``H*`` by the previous stage's image
  head is weighted ``1e-5`` (summed squared error / side^2); here ``sdl_recon_weight`` on a mean
  squared error. Here the real-image encoder learns only from its reconstruction term (``H*`` is detached
  in the SDL, and the image head is held fixed in the reconstruction); the official code lets SDL
  and the reconstruction train both the encoder and the image head.
* SSAM: the official code's masks have one value per channel and pixel, ``sigmoid(BN(conv(f)) / B)``
  (divided by the batch size, so they are close to 0.5 and change with the batch size). The paper
  describes spatial masks: ``mask_form="spatial"`` (the default) predicts one ``(B, 1, h, w)`` mask;
  ``"channel"`` one value per channel, without the division (``extras["masks"]`` shows its
  channel mean).
* DNM: the official encoder is AttnGAN's CA layer on the pooled features (after a 1x1 conv + BN +
  ReLU to 256); its decoder is the generator's first stage (ngf 32) conditioned on a CA code of
  the sentence and ends in a 1x1 conv + leaky ReLU. Here: CA's layer on the pooled features, the
  first-stage architecture conditioned on the sentence embedding itself, conv3x3 + tanh.
* Loss forms and weights: the official code uses L2 norms (not squared) summed over the batch,
  D: ``0.001 (||rec(x) - x|| + ||rec(x_hat) - x_hat||) + 0.02 KL(real only)``, G's DAL weighted
  1e-6, 1e-4, 1e-2 for stages 0, 1, 2, and SDL entering as ``10.1^(L_1 / 64^2 + L_2 / 128^2)``
  (about ``1 + 5.6e-4 L_1 + 1.4e-4 L_2``). Here: mean squared errors, KL of real and fake
  posteriors, one ``dal_weight`` for every stage and a plain ``sdl_weight`` (defaults in
  :class:`DRGANConfig`; the paper's weights were not checked).
* The official G's image heads are three convs (ngf -> ngf/2 -> ngf/4 -> 3, BN, tanh); AttnGAN's
  single conv + tanh is used. Official D outputs go through a sigmoid + BCELoss; logits here.

Networks: :mod:`t2igan.models.attngan`'s generator with SDM stages and stage discriminators with a DNM;
frozen parts (text encoder, the DAMSM critic) as AttnGAN's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from ..fields import Count
from ..losses import kl_normal_loss
from ..nn.attention import WordAttention
from ..nn.blocks import ConditioningAugmentation, ResidualBlock, UpBlock, conv3x3, init_weights, rgb_head
from ..registry import register_model
from .attngan import (InitialStage, MultiStageConfig, MultiStageGenerator, StageDiscriminator, StageDiscriminators,
                      add_kl_and_damsm, discriminator_loss_from_features, generate_for_step,
                      generator_loss_from_features, image_pyramid)
from .base import SampleOutput, T2IModel
from .damsm import build_damsm_critic

@dataclass
class DRGANConfig(MultiStageConfig):
    ngf: Count = 64  # generator width (official DR-GAN GF_DIM 64 on CUB and COCO; AttnGAN 32)
    ndf: Count = 32  # discriminator width (official DF_DIM 32)
    num_refine: int = 2  # residual blocks refining Q' into Q (official: R_NUM, as num_residual)
    mask_form: Literal["spatial", "channel"] = "spatial"  # spatial: one (B, 1, h, w) mask (paper) | channel: (B, C, h, w)
    sdl_weight: float = 1.0  # weight of L_SDL (summed over SDM stages); 0 disables SDL
    sdl_form: Literal["shifted", "paper", "official"] = "shifted"  # shifted: 0 at matching statistics | paper: SP(d+ - d-) | official: + exp(d+)
    sdl_variance: Literal["paper", "official"] = "paper"  # paper: batch variance | official: (sum of deviations)^2 / B, ~0
    sdl_recon_weight: float = 1.0  # H* encoder's reconstruction loss (trains only that encoder)
    spectral_norm: bool = True  # D: spectral norm on its convs, no batch norm (official); False: AttnGAN's D
    dnm_z_dim: Count = 100  # DNM latent size (official 100, CA's layer)
    dnm_ngf: Count = 32  # DNM decoder width (official 32: 16 x 32 channels at 4x4)
    dnm_recon_weight: float = 1.0  # D: mean squared reconstruction error of real and fake images
    dnm_kl_weight: float = 0.05  # D: KL of the DNM posteriors (official/recon ratio about 0.02/0.6)
    dal_weight: float = 1.0  # G: L_DAL per stage (mean squared error, real image at base_size)


# ---------------------------------------------------------------------------------------------
# losses (pure functions)


def split_key(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Key and non-key parts [DR-GAN, SDM]: ``F+ = F * M``, ``F- = F - F+`` (so ``F+ + F- = F``)."""
    key = features * mask
    return key, features - key


def feature_statistics(features: torch.Tensor, variance: str = "paper") -> tuple[torch.Tensor, torch.Tensor]:
    """``mu(F)`` and ``sigma(F)`` [DR-GAN, SDL]: per channel, over the batch, of the spatially averaged
    feature vectors ``v_b`` (B, C). ``variance="paper"``: ``mean_b (v_b - mu)^2``; ``"official"``:
    the official code's ``(sum_b (v_b - mu))^2 / B`` (0 up to rounding)."""
    v = features.float().mean(dim=(2, 3))  # (B, C)
    mean = v.mean(dim=0)  # (C,)
    if variance == "paper":
        var = (v - mean).pow(2).mean(dim=0)
    else:
        var = (v - mean).sum(dim=0).pow(2) / v.shape[0]
    return mean, var


def softplus_contrast(d_key: torch.Tensor, d_nonkey: torch.Tensor, form: str = "shifted") -> torch.Tensor:
    """One SDL term from the key part's and the non-key part's distance to the real statistic.

    ``"paper"``: ``SP(d+ - d-)``; ``"shifted"``: ``SP(d+ - d-) - SP(-d-)``, 0 exactly when ``d+ = 0``
    and increasing in ``d+``; ``"official"``: ``SP(d+ - d-) + exp(d+)``."""
    term = F.softplus(d_key - d_nonkey)
    if form == "paper":
        return term
    if form == "official":
        return term + d_key.exp()
    return term - F.softplus(-d_nonkey)


def semantic_disentangling_loss(key: torch.Tensor, nonkey: torch.Tensor, real: torch.Tensor,
                                form: str = "shifted", variance: str = "paper") -> torch.Tensor:
    """L_SDL of one feature (Q or H) [DR-GAN, SDL]: ``sum_{s in (mu, sigma)} SP(d(s(F+), s(H*)) -
    d(s(F-), s(H*)))`` with ``d`` the mean squared difference over channels (``form`` as in
    :func:`softplus_contrast`). ``key``, ``nonkey``: (B, C, h, w); ``real``: ``H*`` (B', C, h', w')."""
    real_stats = feature_statistics(real, variance)
    key_stats = feature_statistics(key, variance)
    nonkey_stats = feature_statistics(nonkey, variance)
    loss = 0.0
    for k, n, r in zip(key_stats, nonkey_stats, real_stats):
        loss = loss + softplus_contrast((k - r).pow(2).mean(), (n - r).pow(2).mean(), form)
    return loss


def dnm_vae_loss(recon: torch.Tensor, target: torch.Tensor, mu: torch.Tensor,
                 logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The DNM's VAE terms [DR-GAN, DNM; the variational lower bound]: ``(mean ||x_rec - x||^2,
    KL(N(mu, sigma^2) || N(0, I)))``, both averaged (the KL over batch and latent dimensions)."""
    return F.mse_loss(recon, target), kl_normal_loss(mu, logvar)


def distribution_alignment_loss(fake_recon: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """L_DAL [DR-GAN, DAL]: the fake image's DNM-normalised reconstruction against the paired real
    image, mean squared error (the official code: an L2 norm over the batch)."""
    return F.mse_loss(fake_recon, real)


# ---------------------------------------------------------------------------------------------
# generator: SDM


class KeyMask(nn.Module):
    """SSAM: a mask in [0, 1] computed from the feature itself: conv3x3, BN, leaky ReLU, conv1x1,
    sigmoid. ``out_channels`` 1: a spatial mask (B, 1, h, w); C: one value per channel and pixel."""

    def __init__(self, channels: int, out_channels: int = 1):
        super().__init__()
        self.net = nn.Sequential(conv3x3(channels, channels), nn.BatchNorm2d(channels), nn.LeakyReLU(0.2),
                                 nn.Conv2d(channels, out_channels, 1))

    def forward(self, features):
        return torch.sigmoid(self.net(features))


class SDMParts(NamedTuple):
    """What one SDM stage splits: the refined word-context ``q`` (Q_i), the incoming image feature
    ``h`` (H_{i-1}), their masks and key / non-key parts, all (B, C, h, w) (masks (B, 1|C, h, w))."""
    q: torch.Tensor
    h: torch.Tensor
    mask_q: torch.Tensor
    mask_h: torch.Tensor
    key_q: torch.Tensor
    nonkey_q: torch.Tensor
    key_h: torch.Tensor
    nonkey_h: torch.Tensor


class SDMStage(nn.Module):
    """SDM_i: word attention -> refine -> masks -> key parts of Q and H fused, up x2:
    ``ngf x s x s -> ngf x 2s x 2s``."""

    def __init__(self, ngf: int, word_dim: int, num_residual: int, num_refine: int, mask_channels: int = 1):
        super().__init__()
        self.attention = WordAttention(ngf, word_dim)
        self.refine = nn.Sequential(*(ResidualBlock(ngf) for _ in range(num_refine)))
        self.mask_q = KeyMask(ngf, mask_channels)
        self.mask_h = KeyMask(ngf, mask_channels)
        self.residual = nn.Sequential(*(ResidualBlock(2 * ngf) for _ in range(num_residual)))
        self.up = UpBlock(2 * ngf, ngf)

    def forward(self, h, c_code, word_embs, mask):
        context, attn = self.attention(h, word_embs, mask)  # Q'_i (B, C, s, s), beta (B, T, s, s)
        q = self.refine(context)  # Q_i
        mask_q, mask_h = self.mask_q(q), self.mask_h(h)
        key_q, nonkey_q = split_key(q, mask_q)
        key_h, nonkey_h = split_key(h, mask_h)
        h_next = self.up(self.residual(torch.cat([key_h, key_q], dim=1)))  # (B, C, 2s, 2s)
        return h_next, attn, SDMParts(q, h, mask_q, mask_h, key_q, nonkey_q, key_h, nonkey_h)


class RealFeatureEncoder(nn.Module):
    """``H*``: a real image at an SDM stage's input side -> ``ngf`` features (same side): conv3x3,
    BN, leaky ReLU, conv3x3 (official: two small convs with BN)."""

    def __init__(self, ngf: int):
        super().__init__()
        self.net = nn.Sequential(conv3x3(3, ngf), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2), conv3x3(ngf, ngf))

    def forward(self, images):
        return self.net(images)


def rendered_with_fixed_weights(head: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """``head(features)`` with the head's parameters detached: gradients reach ``features`` only."""
    params = {name: p.detach() for name, p in head.named_parameters()}
    return torch.func.functional_call(head, params, (features,))


# ---------------------------------------------------------------------------------------------
# discriminators: DNM


class FeatureVAE(nn.Module):
    """DNM's VAE: pooled D features -> (mu, logvar) -> ``z`` (AttnGAN's CA layer: FC, GLU, split,
    reparameterise; ``z = mu`` in eval mode), decoder ``[s, z]`` -> FC -> 4x4 -> up-blocks ->
    conv3x3 + tanh: an image of side ``out_size``."""

    def __init__(self, feat_dim: int, sent_dim: int, z_dim: int, ngf: int, out_size: int):
        super().__init__()
        self.encoder = ConditioningAugmentation(feat_dim, z_dim)
        self.decoder = InitialStage(ngf, z_dim + sent_dim, out_size)
        self.to_rgb = rgb_head(ngf)

    def forward(self, features: torch.Tensor, sent_emb: torch.Tensor):
        z, mu, logvar = self.encoder(features.mean(dim=(2, 3)))  # (B, z)
        recon = self.to_rgb(self.decoder(z, sent_emb))  # (B, 3, out, out)
        return recon, mu, logvar


def add_spectral_norm(module: nn.Module) -> None:
    """In place: spectral normalisation [Miyato et al. 2018] of every conv's weight."""
    from torch.nn.utils.parametrizations import spectral_norm

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            spectral_norm(m)


class DNMStageDiscriminator(StageDiscriminator):
    """The shared stage discriminator D_i (:class:`t2igan.models.attngan.StageDiscriminator`: features,
    unconditional and sentence-conditional logits) plus the DNM VAE on
    its features. With ``spectral_norm`` the feature and joint convs lose their batch norms and get
    biases (call :meth:`add_spectral_norm` after initialising the weights)."""

    def __init__(self, ndf: int, cond_dim: int, image_size: int, uncond_logits: bool, z_dim: int, dec_ngf: int,
                 recon_size: int, spectral_norm: bool = True, batch_norm: bool = True):
        super().__init__(ndf, cond_dim, image_size, uncond_logits, batch_norm and not spectral_norm)
        self.spectral = spectral_norm
        self.vae = FeatureVAE(self.out_ch, cond_dim, z_dim, dec_ngf, recon_size)

    def add_spectral_norm(self) -> None:
        if self.spectral:
            add_spectral_norm(self.features)
            add_spectral_norm(self.joint)


# ---------------------------------------------------------------------------------------------
# the model


@register_model("drgan", DRGANConfig)
class DRGAN(T2IModel):
    """Networks: ``text_encoder`` (frozen DAMSM), ``generator`` (a
    :class:`~t2igan.models.attngan.MultiStageGenerator` of :class:`SDMStage`), ``sdl_heads`` (one
    :class:`RealFeatureEncoder` per SDM stage, trained in the G phase, unused at inference),
    ``discriminator`` (one :class:`DNMStageDiscriminator` per stage) and the unsaved ``damsm_critic``."""

    eval_modules = ("text_encoder",)
    unsaved_modules = ("damsm_critic",)

    def __init__(self, config: DRGANConfig):
        super().__init__(config)
        c = config
        self.text_encoder = self.build_text_encoder().requires_grad_(False)
        self.damsm_critic = build_damsm_critic("drgan", c)
        mask_channels = 1 if c.mask_form == "spatial" else c.ngf
        self.generator = MultiStageGenerator(
            c.ngf, c.z_dim, c.c_dim, c.cond_dim, c.base_size, c.num_stages,
            lambda: SDMStage(c.ngf, c.cond_dim, c.num_residual, c.num_refine, mask_channels))
        self.sdl_heads = nn.ModuleList(RealFeatureEncoder(c.ngf) for _ in range(c.num_stages - 1))
        self.discriminator = StageDiscriminators([
            DNMStageDiscriminator(c.ndf, c.cond_dim, s, c.uncond_logits, c.dnm_z_dim, c.dnm_ngf, c.stage_sizes[0],
                                  c.spectral_norm, c.d_batch_norm) for s in c.stage_sizes])
        init_weights(self.generator)
        init_weights(self.sdl_heads)
        init_weights(self.discriminator)
        for D in self.discriminator:
            D.add_spectral_norm()  # after the initialisation: it wraps the initialised weights
        self.train()

    def optimizer_groups(self, train) -> dict[str, list[dict]]:
        """The default groups (G, D), with the ``H*`` encoders trained by the G phase."""
        groups = super().optimizer_groups(train)
        heads = list(self.sdl_heads.parameters())
        if heads:
            groups["g"].append({"params": heads, "lr": train.lr_g, "betas": tuple(train.betas_g)})
        return groups

    # -- inference -------------------------------------------------------------------------------
    def generate_from_text(self, text, noise, generator_module=None) -> SampleOutput:
        """``extras``: ``attention`` per SDM stage (B, T, h, w); ``masks``: per SDM stage the mask
        of Q then of H, (B, 1, h, w) in [0, 1] (a channel-form mask: its channel mean);
        ``stage_images``."""
        G = generator_module or self.generator
        out = G(noise, text.sent_emb, text.word_embs, text.mask)
        masks = []
        for p in out.parts:
            masks += [p.mask_q.mean(dim=1, keepdim=True), p.mask_h.mean(dim=1, keepdim=True)]
        return SampleOutput(out.images[-1], {"attention": out.attention, "masks": masks, "stage_images": out.images})

    # -- training --------------------------------------------------------------------------------
    def d_loss(self, batch, state):
        """Generate once (reused by the G phase); per stage: adversarial terms + the DNM's VAE
        terms on the real and the fake image."""
        c = self.config
        out = generate_for_step(self, batch, state)
        text = state["text"]
        reals = image_pyramid(batch["image"], c.stage_sizes)
        loss, logs = 0.0, {}
        for i, (D, real_i, fake_i) in enumerate(zip(self.discriminator, reals, out.images)):
            fake_i = fake_i.detach()
            real_feats, fake_feats = D.features(real_i), D.features(fake_i)
            adv, adv_logs = discriminator_loss_from_features(D, real_feats, fake_feats, text.sent_emb, c.mismatch_pairs)
            rec_real, mu_r, logvar_r = D.vae(real_feats, text.sent_emb)
            rec_fake, mu_f, logvar_f = D.vae(fake_feats, text.sent_emb)
            recon_r, kl_r = dnm_vae_loss(rec_real, reals[0], mu_r, logvar_r)
            recon_f, kl_f = dnm_vae_loss(rec_fake, image_pyramid(fake_i, [c.base_size])[0], mu_f, logvar_f)
            recon, kl = (recon_r + recon_f) / 2, (kl_r + kl_f) / 2
            loss_i = adv + c.dnm_recon_weight * recon + c.dnm_kl_weight * kl
            loss = loss + loss_i
            logs.update({f"d_loss{i}": loss_i.item(), f"dnm_recon{i}": recon.item(), f"dnm_kl{i}": kl.item()})
            logs.update({f"d{i}_{k}": v for k, v in adv_logs.items()})
        logs["d_loss"] = loss.item()
        return loss, logs

    def sdl_loss(self, parts: list, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(sum of L_SDL over SDM stages, sum of the H* reconstruction losses)`` for the generator's
        ``parts`` against the real images ``real`` (B, 3, S, S)."""
        c = self.config
        reals = image_pyramid(real, c.stage_sizes)
        sdl, recon = 0.0, 0.0
        for i, (p, encoder) in enumerate(zip(parts, self.sdl_heads)):
            real_feats = encoder(reals[i])  # H*, at stage i's side (the input side of SDM_{i+1})
            rendered = rendered_with_fixed_weights(self.generator.to_rgb[i], real_feats)
            recon = recon + F.mse_loss(rendered, reals[i])
            star = real_feats.detach()
            sdl = sdl + semantic_disentangling_loss(p.key_q, p.nonkey_q, star, c.sdl_form, c.sdl_variance)
            sdl = sdl + semantic_disentangling_loss(p.key_h, p.nonkey_h, star, c.sdl_form, c.sdl_variance)
        return sdl, recon

    def g_loss(self, batch, state):
        """``sum_i [L_G_i + dal L_DAL_i] + sdl L_SDL + L_rec(H*) + KL + lambda L_DAMSM``."""
        c = self.config
        out, text = state["gen"], state["text"]
        real_small = image_pyramid(batch["image"], [c.base_size])[0]
        loss, logs = 0.0, {}
        for i, (D, fake_i) in enumerate(zip(self.discriminator, out.images)):
            feats = D.features(fake_i)
            adv = generator_loss_from_features(D, feats, text.sent_emb)
            loss = loss + adv
            logs[f"g_adv{i}"] = adv.item()
            if c.dal_weight > 0:
                recon, _, _ = D.vae(feats, text.sent_emb)
                dal = distribution_alignment_loss(recon, real_small)
                loss = loss + c.dal_weight * dal
                logs[f"dal{i}"] = dal.item()
        if out.parts and c.sdl_weight > 0:
            sdl, recon = self.sdl_loss(out.parts, batch["image"])
            loss = loss + c.sdl_weight * sdl + c.sdl_recon_weight * recon
            logs.update(sdl=sdl.item(), sdl_recon=recon.item())
        loss = add_kl_and_damsm(loss, logs, self.damsm_critic, c, out.mu, out.logvar, out.images[-1], text, batch)
        logs["g_loss"] = loss.item()
        return loss, logs
