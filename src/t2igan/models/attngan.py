"""AttnGAN [Xu et al., "AttnGAN: Fine-Grained Text to Image Generation with Attentional Generative
Adversarial Networks", CVPR 2018]: a multi-stage generator that attends to words, per-stage
discriminators, and the DAMSM image-text matching loss.

Generator [AttnGAN, Eq. 1]::

    h_0 = F_0(z, F_ca(e_bar))          c = F_ca(e_bar): conditioning augmentation (CA)
    h_i = F_i(h_{i-1}, F_attn_i(e, h_{i-1}))   for i = 1 .. m-1
    x_i = G_i(h_i)                      a 3x3 conv + tanh per stage

* CA: ``FC(e_bar) -> 4 c_dim``, GLU -> ``2 c_dim`` split into ``mu`` and ``log sigma^2``,
  ``c = mu + sigma * eps`` (as the official code; the KL term keeps it near N(0, I)). At inference
  (eval mode) ``c = mu``, so a seed alone fixes an image.
* F_0: ``FC([c, z]) -> 2 * (2^k ngf) x 4 x 4``, BN, GLU, then ``k`` up-blocks (nearest x2, conv3x3,
  BN, GLU), each halving the channels, to ``ngf x base_size x base_size`` (official: 16 ngf at 4x4,
  four up-blocks, 64 px).
* F_i: word attention (:class:`WordAttention`) gives a word-context feature per pixel; it is
  concatenated with ``h``, passed through ``num_residual`` GLU residual blocks and one up-block
  (``2 ngf -> ngf``): each extra stage doubles the resolution (64 -> 128 -> 256).

Discriminators: one per stage (:class:`StageDiscriminator`), down-sampling the stage's image to
``4 x 4``; an unconditional logit and a sentence-conditional logit (the sentence replicated
spatially, concatenated, conv3x3 + BN + leaky ReLU, then a 4x4 conv). Logits, never sigmoids.

Losses, per stage ``i`` [AttnGAN, Eq. 3-5, in the official code's weighting]:

* D_i: ``(BCE(D(x), 1) + BCE(D(x, e), 1)) / 2 + (BCE(D(x_hat), 0) + BCE(D(x_hat, e), 0)
  + BCE(D(x, e_wrong), 0)) / 3``: the official code also shows D real images with another
  caption of the batch (``e_wrong``, :func:`t2igan.losses.mismatched_pairs`);
* G: ``sum_i [BCE(D_i(x_hat_i), 1) + BCE(D_i(x_hat_i, e), 1)] + lambda L_DAMSM(x_hat_{m-1})
  + KL(N(mu, sigma^2) || N(0, I))`` [AttnGAN, Eq. 2; StackGAN's CA term]. The DAMSM loss
  (``L_1^w + L_2^w + L_1^s + L_2^s``, [AttnGAN, Eq. 10-13]) scores the last stage only, with a
  frozen, pretrained DAMSM (:mod:`t2igan.models.damsm`); lambda = 5 on CUB, 50 on COCO.

Where the official code (github.com/taoxugit/AttnGAN) and the paper differ:

* ``damsm_paper_form``: the paper's region-word relevance is ``log(sum exp(gamma2 R))^(1/gamma2)``
  (Eq. 10); the official code drops the ``1/gamma2`` (``False``, the default and the presets).
* The official attention mask is laid out batch-major against query-major scores (``mask.repeat``),
  so in a batch of captions of different lengths some pixels mask the wrong words. Here each
  caption's own padding is masked, so a padded word never receives attention.
* ``mismatch_pairs``: the official code pairs image ``i`` with caption ``i + 1`` (``B - 1`` pairs,
  ``"shift"``, the default and the ``-cub``/``-coco`` presets); ``"roll"`` uses all ``B`` images,
  image ``j`` with caption ``j - 1`` (DF-GAN's pairing, the ``-shapes`` presets).
* The official G loss has no 1/2 on the uncond + cond terms (Eq. 3 has); the code's form is used.

Frozen parts: the text encoder (in the module tree: the generator needs it at inference) is always
frozen and kept in eval mode; the DAMSM image encoder is held outside the module tree (in no
optimizer, never in train mode, not written to checkpoints; it comes from ``damsm_weights``).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError
from ..losses import MISMATCH_FORMS, bce_logits_loss, kl_normal_loss, mismatched_pairs
from ..registry import register_model
from .base import SampleOutput, T2IModel
from .damsm import DAMSM_PAPER_FORM


@dataclass
class AttnGANConfig:
    vocab_size: int = 5000  # words in the vocabulary (set from the data)
    image_size: int = 256  # output side of the last stage = base_size * 2^(num_stages - 1)
    base_size: int = 64  # output side of the first stage (official 64; 16 or 32 for CPU presets)
    num_stages: int = 3  # generator stages / discriminators (official 3: 64, 128, 256 px)
    ngf: int = 32  # generator width (official CUB 32, COCO 48); F_0 starts at 2^k ngf channels
    ndf: int = 64  # discriminator width (official CUB 64, COCO 96)
    num_residual: int = 2  # GLU residual blocks per attention stage (official CUB 2, COCO 3)
    z_dim: int = 100  # noise size
    c_dim: int = 100  # conditioning-augmentation code size
    text_emb_dim: int = 300  # text encoder word embedding
    text_hidden_dim: int = 128  # per LSTM direction; word and sentence features are 2x this (256)
    text_dropout: float = 0.5
    uncond_logits: bool = True  # D's unconditional (real/fake) logit besides the conditional one
    damsm_weights: str | None = None  # DAMSM run folder (or its model.safetensors): text + image encoders
    damsm_backbone: str = "inception"  # image encoder built when damsm_weights is None: inception | small_cnn
    damsm_lambda: float = 5.0  # weight of L_DAMSM in G's loss (official CUB 5, COCO 50); 0 disables it
    damsm_gamma1: float = 4.0  # word-region attention sharpness (official YAMLs 4)
    damsm_gamma2: float = 5.0  # region-word relevance sharpness
    damsm_gamma3: float = 10.0  # image-text matching sharpness
    damsm_paper_form: bool = DAMSM_PAPER_FORM  # True: Eq. 10's ^(1/gamma2); False: the official code's form
    mismatch_pairs: str = "shift"  # D's (real, wrong caption) pairs: shift (official: B-1, i with i+1) | roll (B, j with j-1)
    kl_weight: float = 1.0  # weight of CA's KL term
    truncation: float = 0.0  # noise truncation at sampling (0 = none; AttnGAN samples plain N(0, I))

    @property
    def cond_dim(self) -> int:
        return 2 * self.text_hidden_dim

    @property
    def stage_sizes(self) -> list[int]:
        return [self.base_size * 2**i for i in range(self.num_stages)]


def check_config(c: AttnGANConfig) -> None:
    if c.base_size < 16 or c.base_size & (c.base_size - 1):
        raise T2IError(f"attngan: base_size must be a power of two >= 16, got {c.base_size}")
    if c.num_stages < 1:
        raise T2IError(f"attngan: num_stages must be at least 1, got {c.num_stages}")
    if c.image_size != c.stage_sizes[-1]:
        raise T2IError(f"attngan: image_size {c.image_size} must equal base_size * 2^(num_stages - 1) = "
                       f"{c.stage_sizes[-1]} (base_size={c.base_size}, num_stages={c.num_stages})")
    if c.mismatch_pairs not in MISMATCH_FORMS:
        raise T2IError(f"attngan: mismatch_pairs must be one of {', '.join(MISMATCH_FORMS)}, got {c.mismatch_pairs!r}")
    if c.damsm_backbone not in ("inception", "small_cnn"):
        raise T2IError(f"attngan: damsm_backbone must be inception or small_cnn, got {c.damsm_backbone!r}")


def init_weights(module: nn.Module) -> None:
    """The official initialisation: orthogonal conv / linear weights, zero linear biases, BN scales
    drawn from N(1, 0.02) and zero BN shifts."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.orthogonal_(m.weight)
        elif isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


# ---------------------------------------------------------------------------------------------
# generator


def glu(x: torch.Tensor) -> torch.Tensor:
    """Gated linear unit over channels: ``a * sigmoid(b)`` for ``x = [a, b]``."""
    return F.glu(x, dim=1)


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)


class UpBlock(nn.Module):
    """Nearest x2, conv3x3, BN, GLU: ``in_ch x s x s -> out_ch x 2s x 2s``."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv = conv3x3(in_ch, 2 * out_ch)
        self.norm = nn.BatchNorm2d(2 * out_ch)

    def forward(self, h):
        return glu(self.norm(self.conv(F.interpolate(h, scale_factor=2, mode="nearest"))))


class ResidualBlock(nn.Module):
    """``h + BN(conv(GLU(BN(conv(h)))))`` with the first conv doubling the channels for the GLU."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv0 = conv3x3(channels, 2 * channels)
        self.norm0 = nn.BatchNorm2d(2 * channels)
        self.conv1 = conv3x3(channels, channels)
        self.norm1 = nn.BatchNorm2d(channels)

    def forward(self, h):
        return h + self.norm1(self.conv1(glu(self.norm0(self.conv0(h)))))


class ConditioningAugmentation(nn.Module):
    """``e_bar -> (c, mu, logvar)``: FC to ``4 c_dim``, GLU, split into mu and log sigma^2;
    ``c = mu + sigma * eps`` in training, ``c = mu`` in eval mode."""

    def __init__(self, sent_dim: int, c_dim: int):
        super().__init__()
        self.c_dim = c_dim
        self.fc = nn.Linear(sent_dim, 4 * c_dim)

    def forward(self, sent_emb: torch.Tensor):
        mu, logvar = glu(self.fc(sent_emb)).split(self.c_dim, dim=1)  # (B, c), (B, c)
        if not self.training:
            return mu, mu, logvar
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp(), mu, logvar


class InitialStage(nn.Module):
    """F_0: ``[c, z] -> ngf x base_size x base_size``."""

    def __init__(self, ngf: int, in_dim: int, base_size: int):
        super().__init__()
        num_up = int(math.log2(base_size // 4))
        self.ch0 = ngf * 2**num_up  # official: 16 ngf for 64 px
        self.fc = nn.Linear(in_dim, 2 * self.ch0 * 4 * 4, bias=False)
        self.norm = nn.BatchNorm1d(2 * self.ch0 * 4 * 4)
        self.ups = nn.Sequential(*(UpBlock(self.ch0 // 2**k, self.ch0 // 2 ** (k + 1)) for k in range(num_up)))

    def forward(self, noise, c_code):
        h = glu(self.norm(self.fc(torch.cat([c_code, noise], dim=1))))  # (B, ch0 * 16)
        return self.ups(h.view(h.shape[0], self.ch0, 4, 4))  # (B, ngf, base, base)


class WordAttention(nn.Module):
    """F_attn [AttnGAN, Eq. 2]: ``e' = U e`` (a 1x1 conv on the words), ``s_ji = h_j^T e'_i``,
    ``beta_ji = softmax_i(s_ji)`` over the caption's words only (padding gets -inf), and the
    word-context feature of pixel ``j`` is ``c_j = sum_i beta_ji e'_i``."""

    def __init__(self, feat_dim: int, word_dim: int):
        super().__init__()
        self.project = nn.Conv1d(word_dim, feat_dim, 1, bias=False)  # U

    def forward(self, h: torch.Tensor, word_embs: torch.Tensor, mask: torch.Tensor):
        B, C, H, W = h.shape
        T = word_embs.shape[2]
        words = self.project(word_embs)  # (B, C, T)
        scores = torch.bmm(h.flatten(2).transpose(1, 2), words)  # (B, HW, T)
        mask = mask & ~mask.all(dim=1, keepdim=True)  # a caption of only padding: attend to all
        scores = scores.float().masked_fill(mask[:, None, :], float("-inf"))
        beta = scores.softmax(dim=2).to(words.dtype)  # (B, HW, T), rows sum to 1
        context = torch.bmm(words, beta.transpose(1, 2))  # (B, C, HW)
        return context.view(B, C, H, W), beta.transpose(1, 2).reshape(B, T, H, W)


class AttentionStage(nn.Module):
    """F_i: ``[h, F_attn(e, h)]`` -> residual blocks -> up x2: ``ngf x s x s -> ngf x 2s x 2s``."""

    def __init__(self, ngf: int, word_dim: int, num_residual: int):
        super().__init__()
        self.attention = WordAttention(ngf, word_dim)
        self.residual = nn.Sequential(*(ResidualBlock(2 * ngf) for _ in range(num_residual)))
        self.up = UpBlock(2 * ngf, ngf)

    def forward(self, h, word_embs, mask):
        context, attn = self.attention(h, word_embs, mask)
        return self.up(self.residual(torch.cat([h, context], dim=1))), attn


class Generator(nn.Module):
    """All stages; ``forward`` returns the image of every stage, the attention map of every
    attention stage ``[(B, T, h, w)]`` and CA's ``mu, logvar``."""

    def __init__(self, ngf: int, z_dim: int, c_dim: int, sent_dim: int, base_size: int, num_stages: int,
                 num_residual: int):
        super().__init__()
        self.ca = ConditioningAugmentation(sent_dim, c_dim)
        self.initial = InitialStage(ngf, z_dim + c_dim, base_size)
        self.stages = nn.ModuleList(AttentionStage(ngf, sent_dim, num_residual) for _ in range(num_stages - 1))
        self.to_rgb = nn.ModuleList(nn.Sequential(conv3x3(ngf, 3), nn.Tanh()) for _ in range(num_stages))

    def forward(self, noise, sent_emb, word_embs, mask):
        c_code, mu, logvar = self.ca(sent_emb)
        h = self.initial(noise, c_code)
        images, attention = [self.to_rgb[0](h)], []
        for stage, to_rgb in zip(self.stages, self.to_rgb[1:]):
            h, attn = stage(h, word_embs, mask)
            images.append(to_rgb(h))
            attention.append(attn)
        return images, attention, mu, logvar


# ---------------------------------------------------------------------------------------------
# discriminators


def down_block(in_ch: int, out_ch: int, norm: bool = True) -> nn.Sequential:
    """Conv 4x4 stride 2 (+ BN) + leaky ReLU: halves the side."""
    layers = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, inplace=True))


def same_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Conv 3x3 + BN + leaky ReLU: keeps the side."""
    return nn.Sequential(conv3x3(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2, inplace=True))


class StageDiscriminator(nn.Module):
    """D_i for ``image_size`` images: features ``(B, out_ch, 4, 4)``, then an unconditional and a
    sentence-conditional logit.

    Official layout, generalised to any power-of-two side >= 8: up to four stride-2 convs
    ``3 -> ndf -> 2ndf -> 4ndf -> 8ndf`` (a 64 px image reaches 4x4 there); each further halving
    doubles the channels (128 px: ``16 ndf``, 256 px: ``32 ndf``) and 3x3 blocks then halve them
    back to ``8 ndf``. Images under 64 px stop earlier, at ``2^(n-1) ndf`` channels.
    """

    def __init__(self, ndf: int, cond_dim: int, image_size: int, uncond_logits: bool = True):
        super().__init__()
        n_down = int(math.log2(image_size // 4))
        if n_down < 1 or 4 * 2**n_down != image_size:
            raise T2IError(f"attngan: discriminator image size must be a power of two >= 8, got {image_size}")
        chs = [ndf * 2**k for k in range(n_down)]  # after each halving
        layers = [down_block(3, chs[0], norm=False)]
        layers += [down_block(i, o) for i, o in zip(chs[:-1], chs[1:])]
        ch = chs[-1]
        while ch > 8 * ndf:  # >= 128 px: back down to 8 ndf
            layers.append(same_block(ch, ch // 2))
            ch //= 2
        self.features = nn.Sequential(*layers)
        self.out_ch = ch
        self.joint = same_block(ch + cond_dim, ch)
        self.cond_out = nn.Conv2d(ch, 1, 4, 4)
        self.uncond_out = nn.Conv2d(ch, 1, 4, 4) if uncond_logits else None

    def cond_logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = sent_emb[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.cond_out(self.joint(torch.cat([features, cond], dim=1))).flatten()  # (B,)

    def uncond_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        return None if self.uncond_out is None else self.uncond_out(features).flatten()  # (B,)


class Discriminators(nn.Module):
    """The per-stage discriminators, one module so that one optimizer trains them all (they share
    no parameters, so this equals the official one Adam per D)."""

    def __init__(self, ndf: int, cond_dim: int, stage_sizes: list[int], uncond_logits: bool = True):
        super().__init__()
        self.stages = nn.ModuleList(StageDiscriminator(ndf, cond_dim, s, uncond_logits) for s in stage_sizes)

    def __getitem__(self, i: int) -> StageDiscriminator:
        return self.stages[i]

    def __iter__(self):
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)


def stage_discriminator_loss(D: StageDiscriminator, real: torch.Tensor, fake: torch.Tensor,
                             sent_emb: torch.Tensor, mismatch: str = "shift") -> tuple[torch.Tensor, dict]:
    """[AttnGAN, Eq. 5] as the official code weights it:
    ``(L(x, 1) + L(x, e, 1)) / 2 + (L(x_hat, 0) + L(x_hat, e, 0) + L(x, e_wrong, 0)) / 3``
    with ``L`` = BCE with logits; without the unconditional logit, ``L(x, e, 1) + (L(x_hat, e, 0)
    + L(x, e_wrong, 0)) / 2``. ``mismatch`` chooses the ``(x, e_wrong)`` pairs
    (:func:`t2igan.losses.mismatched_pairs`)."""
    return discriminator_loss_from_features(D, D.features(real), D.features(fake.detach()), sent_emb, mismatch)


def discriminator_loss_from_features(D: StageDiscriminator, real_feats: torch.Tensor, fake_feats: torch.Tensor,
                                     sent_emb: torch.Tensor, mismatch: str = "shift") -> tuple[torch.Tensor, dict]:
    """:func:`stage_discriminator_loss` from D's features of the real and the (detached) fake images,
    for models that read the same features again (DR-GAN's DNM)."""
    cond_real = D.cond_logits(real_feats, sent_emb)
    cond_fake = D.cond_logits(fake_feats, sent_emb)
    cond_wrong = D.cond_logits(*mismatched_pairs(real_feats, sent_emb, mismatch))
    real_terms = [bce_logits_loss(cond_real, True)]
    fake_terms = [bce_logits_loss(cond_fake, False), bce_logits_loss(cond_wrong, False)]
    logs = {"cond_real": cond_real.mean().item(), "cond_fake": cond_fake.mean().item(),
            "cond_wrong": cond_wrong.mean().item()}
    if D.uncond_out is not None:
        uncond_real, uncond_fake = D.uncond_logits(real_feats), D.uncond_logits(fake_feats)
        real_terms.append(bce_logits_loss(uncond_real, True))
        fake_terms.append(bce_logits_loss(uncond_fake, False))
        logs.update(uncond_real=uncond_real.mean().item(), uncond_fake=uncond_fake.mean().item())
    loss = sum(real_terms) / len(real_terms) + sum(fake_terms) / len(fake_terms)
    return loss, logs


def stage_generator_loss(D: StageDiscriminator, fake: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
    """[AttnGAN, Eq. 3] as the official code weights it: ``L(x_hat, 1) + L(x_hat, e, 1)``."""
    return generator_loss_from_features(D, D.features(fake), sent_emb)


def generator_loss_from_features(D: StageDiscriminator, fake_feats: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
    """:func:`stage_generator_loss` from D's features of the fake images."""
    loss = bce_logits_loss(D.cond_logits(fake_feats, sent_emb), True)
    if D.uncond_out is not None:
        loss = loss + bce_logits_loss(D.uncond_logits(fake_feats), True)
    return loss


def image_pyramid(images: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Real images at each stage's side (antialiased bilinear down-sampling, like PIL's resize
    in the official loader)."""
    out = []
    for s in sizes:
        if images.shape[-1] == s:
            out.append(images)
        else:
            out.append(F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False, antialias=True))
    return out


def batch_class_ids(batch: dict) -> torch.Tensor | None:
    """Class labels for DAMSM's same-class masking, or None when the data has none (-1)."""
    ids = batch.get("class_id")
    if not torch.is_tensor(ids) or (ids < 0).any():
        return None
    return ids


# ---------------------------------------------------------------------------------------------
# the model


@register_model("attngan", AttnGANConfig)
class AttnGAN(T2IModel):
    def __init__(self, config: AttnGANConfig):
        super().__init__(config)
        c = config
        check_config(c)
        self.build_frozen_text_encoder()
        self.generator = Generator(c.ngf, c.z_dim, c.c_dim, c.cond_dim, c.base_size, c.num_stages, c.num_residual)
        self.discriminator = Discriminators(c.ndf, c.cond_dim, c.stage_sizes, c.uncond_logits)
        init_weights(self.generator)
        init_weights(self.discriminator)

    def train(self, mode: bool = True):
        """Train G and D; the frozen text encoder stays in eval mode (no dropout)."""
        super().train(mode)
        self.text_encoder.eval()
        return self

    # -- DAMSM -----------------------------------------------------------------------------------
    def build_frozen_text_encoder(self) -> None:
        """The text encoder (from ``damsm_weights`` when given), frozen, and the frozen DAMSM image
        encoder as an attribute outside the module tree (see the module docstring)."""
        self.text_encoder = self.build_text_encoder()
        object.__setattr__(self, "image_encoder", None)
        if self.config.damsm_weights:
            self._load_damsm(self.config.damsm_weights)
        self.text_encoder.requires_grad_(False).eval()

    def _load_damsm(self, path: str) -> None:
        """Take the text encoder and the image encoder of a pretrained DAMSM, both frozen."""
        from .damsm import load_damsm

        damsm, vocab = load_damsm(path)
        if len(vocab) != self.config.vocab_size:
            raise T2IError(f"the DAMSM in {path} has a {len(vocab)}-word vocabulary but the data's has "
                           f"{self.config.vocab_size}; train with data.vocab=<DAMSM run>/vocab.json")
        try:
            self.text_encoder.load_state_dict(damsm.text_encoder.state_dict())
        except RuntimeError:
            raise T2IError(f"the text encoder in {path} does not fit model.text_emb_dim={self.config.text_emb_dim}, "
                           f"model.text_hidden_dim={self.config.text_hidden_dim}") from None
        object.__setattr__(self, "image_encoder", damsm.image_encoder.eval().requires_grad_(False))

    def frozen_image_encoder(self, device: torch.device) -> nn.Module:
        """The DAMSM image encoder on ``device``, in eval mode; without ``damsm_weights`` a randomly
        initialised one (meaningful only in tests), built on first use."""
        if self.image_encoder is None:
            from .damsm import ImageEncoder

            c = self.config
            warnings.warn("attngan: no damsm_weights given, so the DAMSM loss uses a randomly initialised "
                          "image encoder (and the text encoder is random too); pretrain one with "
                          "`t2igan pretrain damsm ...` or set model.damsm_lambda=0")
            encoder = ImageEncoder(embed_dim=c.cond_dim, backbone=c.damsm_backbone, image_size=c.image_size)
            object.__setattr__(self, "image_encoder", encoder.eval().requires_grad_(False))
        enc = self.image_encoder
        if next(enc.parameters()).device != device:
            enc.to(device)
        return enc.eval()

    def damsm_loss(self, images: torch.Tensor, text, class_ids: torch.Tensor | None = None):
        """``L_DAMSM = L_1^w + L_2^w + L_1^s + L_2^s`` [AttnGAN, Eq. 10-14] of ``images`` against
        their captions, scored by the frozen DAMSM encoders; gradients reach only ``images``."""
        from .damsm import damsm_loss

        c = self.config
        return damsm_loss(self.frozen_image_encoder(images.device), images, text, class_ids,
                          gamma1=c.damsm_gamma1, gamma2=c.damsm_gamma2, gamma3=c.damsm_gamma3,
                          paper_form=c.damsm_paper_form)

    # -- inference -------------------------------------------------------------------------------
    def generate_from_text(self, text, noise, generator_module=None) -> SampleOutput:
        G = generator_module or self.generator
        images, attention, _, _ = G(noise, text.sent_emb, text.word_embs, text.mask)
        return SampleOutput(images[-1], {"attention": attention, "stage_images": images})

    # -- training --------------------------------------------------------------------------------
    def compute_loss(self, phase, batch, state):
        if phase == "d":
            return self.d_loss(batch, state)
        return self.g_loss(batch, state)

    def d_loss(self, batch, state):
        """Generate every stage's image once (reused by the G phase), then sum the stage losses
        of :func:`stage_discriminator_loss`."""
        c = self.config
        text = self.encode_text(batch["tokens"], batch["lengths"]).detach()
        real = batch["image"]
        noise = torch.randn(real.shape[0], c.z_dim, device=real.device)
        fakes, _, mu, logvar = self.generator(noise, text.sent_emb, text.word_embs, text.mask)
        state.update(fakes=fakes, mu=mu, logvar=logvar, text=text)
        loss, logs = 0.0, {}
        for i, (D, real_i, fake_i) in enumerate(zip(self.discriminator, image_pyramid(real, c.stage_sizes), fakes)):
            loss_i, logs_i = stage_discriminator_loss(D, real_i, fake_i, text.sent_emb, c.mismatch_pairs)
            loss = loss + loss_i
            logs[f"d_loss{i}"] = loss_i.item()
            logs.update({f"d{i}_{k}": v for k, v in logs_i.items()})
        logs["d_loss"] = loss.item()
        return loss, logs

    def g_loss(self, batch, state):
        """``sum_i L_G_i + lambda L_DAMSM(last stage) + KL`` [AttnGAN, Eq. 2; StackGAN CA]."""
        c = self.config
        fakes, text = state["fakes"], state["text"]
        loss, logs = 0.0, {}
        for i, (D, fake_i) in enumerate(zip(self.discriminator, fakes)):
            adv = stage_generator_loss(D, fake_i, text.sent_emb)
            loss = loss + adv
            logs[f"g_adv{i}"] = adv.item()
        kl = kl_normal_loss(state["mu"], state["logvar"])
        loss = loss + c.kl_weight * kl
        logs["kl"] = kl.item()
        if c.damsm_lambda > 0:
            damsm, damsm_logs = self.damsm_loss(fakes[-1], text, batch_class_ids(batch))
            loss = loss + c.damsm_lambda * damsm
            logs.update(damsm_logs, damsm=damsm.item())
        logs["g_loss"] = loss.item()
        return loss, logs
