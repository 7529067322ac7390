"""SSA-GAN [Hu, Liao, Yang, Rosenhahn, "Text to Image Generation with Semantic-Spatial Aware GAN",
CVPR 2022, arXiv 2104.00567]: DF-GAN's one-stage backbone whose text fusion is spatial.

Paper -> function:

* Sec. 3.2, the weakly supervised mask predictor: :class:`MaskPredictor`;
* Sec. 3.2, semantic-spatial condition batch norm ``SSCBN(x, e, m)``: :class:`SSCBN`;
* Fig. 3, the semantic-spatial aware block and the generator: :class:`SSACNBlock`, :class:`Generator`;
* D and its losses, DF-GAN's [DF-GAN, Eq. 3-4]: :class:`t2igan.models.dfgan.OneWayDiscriminator`,
  :func:`t2igan.models.dfgan.one_way_discriminator_loss`, :func:`~t2igan.models.dfgan.ma_gp_loss`,
  :func:`~t2igan.models.dfgan.one_way_generator_loss`;
* G's DAMSM term ``lambda L_DAMSM`` [AttnGAN, Eq. 14]: :class:`t2igan.models.damsm.DAMSMCritic`.

Generator. An FC maps z (100) to ``8nf x 4 x 4``; SSACN blocks then follow, the first at 4x4
without up-sampling, each later one doubling the resolution (7 blocks for 256 px, 5 for 64 px).
One SSACN block (:class:`SSACNBlock`):

1. a *weakly supervised mask predictor* reads the previous block's output (the FC output for the
   first block): conv3x3 -> 100, BN, ReLU, conv1x1 -> 1 mask logit per position. It has no mask
   labels and no loss of its own; only the adversarial (and DAMSM) losses train it;
2. the features are up-sampled x2, and so are the mask *logits* (bilinear), then ``m = sigmoid``;
3. ``shortcut(h) + alpha * conv(ReLU(SSCBN(conv(ReLU(SSCBN(h, e, m))), e, m)))`` with the scalar
   gate ``alpha`` learned from 0;

where SSCBN [SSA-GAN, semantic-spatial condition batch normalisation] is

    SSCBN(x, e, m) = (gamma(e) * m + 1) * BN(x) + beta(e) * m,

BN without its own affine, gamma and beta two-layer MLPs of the sentence feature ``e`` whose last
layers start at zero (a fresh block is plain BN). ``m`` decides *where* and *how much* the text
changes the features; ``m = 1`` everywhere is DF-GAN's channel-wise text affine of ``BN(x)``.

Discriminator and losses are DF-GAN's (:class:`t2igan.models.dfgan.OneWayDiscriminator`,
:func:`t2igan.models.dfgan.one_way_discriminator_loss`): hinge on (real, e),
(fake, e), (real, e_mismatched), MA-GP on real matched pairs, plus the DAMSM loss of the generated
image (weight 0.05; 0.1 when the text encoder is fine-tuned, ``text_encoder_mode="joint"``).

Where the official code (github.com/wtliao/text2image) and the paper differ, both are options:

* ``upsample_mode``: features are up-sampled ``"nearest"`` in the official code (the default and
  the presets), ``"bilinear"`` in the paper's text. Mask logits are always bilinear
  (``align_corners=True``, as in the official code).
* ``d_max_mult``: the official discriminator widens to ``16 nf`` (the 2021 DF-GAN one); DF-GAN's
  2022 code stops at ``8 nf``.
* DAMSM: the official code uses gamma1 = 5 (AttnGAN's code default) and drops the ``1/gamma2`` of
  the paper's region-word relevance (``damsm_paper_form=False``).
* ``mismatch_pairs``: the official ``main.py`` pairs real image ``i`` with caption ``i + 1`` (``B - 1``
  pairs, ``"shift"``, the default); ``"roll"`` pairs all ``B`` (DF-GAN's code; ``ssagan-shapes``).
* ``d_update``: the official ``main.py`` steps D's Adam on the hinge loss, then recomputes D on the
  real pairs and steps it again on MA-GP alone (``"two_steps"``, the default: phases ``d``, ``d_gp``,
  ``g``, the second D phase using D's optimizer); ``"one_step"`` takes one step on their sum, as
  DF-GAN's 2022 code (``ssagan-shapes``).
* Text-encoder fine-tuning: ``"joint"`` trains the text encoder end to end by the generator's
  losses (DAMSM on the generated image + the adversarial loss through ``e``) at lr 4e-5, the
  paper's "end-to-end" training. The official ``main_finetune.py`` instead updates it (and the
  DAMSM image projections) with a DAMSM loss on *real* images in a separate optimizer; that form
  is not implemented.

The frozen DAMSM image encoder is the :class:`~t2igan.models.damsm.DAMSMCritic` submodule
``damsm_critic``: in no optimizer, never in train mode, and not written to checkpoints or
``model.safetensors`` (it comes from ``damsm_weights``, like the FID Inception comes from its file).

Beyond the paper (off by default): DF-GAN's options (:class:`~t2igan.models.dfgan.DFGANFamilyOptions`:
the image-sentence contrastive term, whose D heads ``image_proj`` / ``text_proj`` exist only when it is
on, ``d_gamma_init``, ``d_translate``, ``sentence_in_fc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..fields import Count, Fraction, Positive, PowerOfTwo
from ..registry import register_model
from .base import SampleOutput, T2IModel
from .damsm import build_damsm_critic
from .dfgan import (Affine, DFGANFamilyOptions, build_d_backbone, channel_plan, ma_gp_loss,
                    one_way_discriminator, one_way_discriminator_loss, one_way_generator_loss)

@dataclass
class SSAGANConfig(DFGANFamilyOptions):
    vocab_size: int = 5000  # words in the vocabulary (set from the data)
    image_size: PowerOfTwo = 256  # output side, a power of two >= 16 (7 SSACN blocks at 256)
    nf: Count = 64  # base channel width of G and D (official 64)
    z_dim: Count = 100  # noise size
    text_emb_dim: Count = 300  # text encoder word embedding
    text_hidden_dim: Count = 128  # per LSTM direction; the sentence feature e is 2x this (256)
    text_dropout: Fraction = 0.5
    text_encoder_mode: Literal["frozen", "joint", "joint_d"] = "frozen"  # frozen (pretrained DAMSM) | joint (fine-tuned by G's losses) | joint_d (trained by D's loss, as dfgan-shapes)
    text_encoder_lr: Positive | None = 4e-5  # learning rate of a trainable text encoder (official fine-tuning 4e-5)
    mask_hidden: Count = 100  # channels of the mask predictor's hidden conv (official 100)
    upsample_mode: Literal["nearest", "bilinear"] = "nearest"  # feature up-sampling: nearest (official code) | bilinear (paper)
    d_max_mult: Count = 16  # D's widest layer is d_max_mult * nf (official SSA-GAN 16, DF-GAN 2022: 8)
    ma_gp_weight: float = 2.0  # k in MA-GP
    ma_gp_power: float = 6.0  # p in MA-GP
    mismatch_pairs: Literal["shift", "roll"] = "shift"  # D's (real, wrong caption) pairs: shift (official: B-1, i with i+1) | roll (B, j with j-1)
    d_update: Literal["two_steps", "one_step"] = "two_steps"  # two_steps (official: an Adam step on the hinge loss, then one on MA-GP) | one_step (their sum)
    truncation: float = 0.0  # noise truncation at sampling (official SSA-GAN samples plain N(0, I): 0)
    truncation_form: Literal["scaled", "clip"] = "scaled"  # how a truncation > 0 applies: scaled (DF-GAN's) | clip (see models.dfgan)

    @property
    def cond_dim(self) -> int:
        return 2 * self.text_hidden_dim

    @property
    def damsm_loss_weight(self) -> float:
        """SSA-GAN's DAMSM weight: ``damsm_weight``, else 0.05 (frozen text encoder), 0.1 (joint); official
        SSA-GAN code trains G with ``damsm_gamma1`` 5 (the ``-cub`` preset sets it)."""
        if self.damsm_weight is not None:
            return self.damsm_weight
        return 0.1 if self.text_encoder_mode == "joint" else 0.05


class SSCBN(nn.Module):
    """Semantic-spatial condition batch norm [SSA-GAN, Sec. 3.2]:
    ``(gamma(e) m + 1) BN(x) + beta(e) m``, BN without affine.

    The text affine is DF-GAN's :class:`~t2igan.models.dfgan.Affine` (``a(h) = g(e) h + beta(e)`` with
    ``g`` starting at 1), so with ``gamma = g - 1`` the formula is ``BN(x) + m (a(BN(x)) - BN(x))``:
    plain BN where ``m = 0``, DF-GAN's affine of ``BN(x)`` where ``m = 1``. The MLPs' hidden width is
    the sentence size, as in the official code.
    """

    def __init__(self, cond_dim: int, num_features: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)
        self.affine = Affine(cond_dim, num_features, hidden_dim=cond_dim)

    def forward(self, x: torch.Tensor, sent_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)  # (B, C, H, W)
        return h + mask * (self.affine(h, sent_emb) - h)  # mask (B, 1, H, W)


class MaskPredictor(nn.Module):
    """Weakly supervised mask predictor [SSA-GAN, Sec. 3.2]: conv3x3 -> hidden, BN, ReLU,
    conv1x1 -> 1. Returns mask *logits*; the block up-samples them and applies the sigmoid."""

    def __init__(self, in_ch: int, hidden: int = 100):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_ch, hidden, 3, 1, 1),
            nn.BatchNorm2d(hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 1),
        )

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)  # (B, 1, h, w)


class SSACNBlock(nn.Module):
    """Semantic-spatial aware convolution block [SSA-GAN, Fig. 3]; returns ``(features, mask)``."""

    def __init__(self, cond_dim: int, in_ch: int, out_ch: int, upsample: bool = True, mask_hidden: int = 100,
                 upsample_mode: str = "nearest"):
        super().__init__()
        self.upsample = upsample
        self.upsample_mode = upsample_mode
        self.mask_predictor = MaskPredictor(in_ch, mask_hidden)
        self.norm0 = SSCBN(cond_dim, in_ch)
        self.conv0 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.norm1 = SSCBN(cond_dim, out_ch)
        self.conv1 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.gate = nn.Parameter(torch.zeros(1))  # residual weight, learned from 0

    def forward(self, h: torch.Tensor, sent_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mask_logits = self.mask_predictor(h)  # (B, 1, h, w) from the previous block's output
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode=self.upsample_mode)
            mask_logits = F.interpolate(mask_logits, size=h.shape[2:], mode="bilinear", align_corners=True)
        mask = torch.sigmoid(mask_logits)  # (B, 1, H, W) in [0, 1]
        res = self.conv0(F.relu(self.norm0(h, sent_emb, mask)))
        res = self.conv1(F.relu(self.norm1(res, sent_emb, mask)))
        return self.shortcut(h) + self.gate * res, mask


class Generator(nn.Module):
    """FC(z) -> ``8nf x 4 x 4`` -> SSACN blocks (the first without up-sampling) -> BN, leaky ReLU,
    conv, tanh. ``forward`` returns ``(images, masks)``, one mask per block."""

    def __init__(self, nf: int, z_dim: int, cond_dim: int, image_size: int, mask_hidden: int = 100,
                 upsample_mode: str = "nearest", sentence_in_fc: bool = False):
        super().__init__()
        chs = channel_plan(nf, image_size)  # output width per resolution, 4x4 ... image_size
        ins = [chs[0]] + chs[:-1]
        self.sentence_in_fc = sentence_in_fc
        self.fc = nn.Linear(z_dim + (cond_dim if sentence_in_fc else 0), chs[0] * 4 * 4)
        self.blocks = nn.ModuleList(
            SSACNBlock(cond_dim, i, o, upsample=k > 0, mask_hidden=mask_hidden, upsample_mode=upsample_mode)
            for k, (i, o) in enumerate(zip(ins, chs))
        )
        self.to_rgb = nn.Sequential(
            nn.BatchNorm2d(chs[-1]), nn.LeakyReLU(0.2), nn.Conv2d(chs[-1], 3, 3, 1, 1), nn.Tanh()
        )

    def forward(self, noise: torch.Tensor, sent_emb: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        first = torch.cat([noise, sent_emb], dim=1) if self.sentence_in_fc else noise
        h = self.fc(first).view(noise.shape[0], -1, 4, 4)  # (B, 8nf, 4, 4)
        masks = []
        for block in self.blocks:
            h, mask = block(h, sent_emb)
            masks.append(mask)
        return self.to_rgb(h), masks  # (B, 3, S, S), [(B, 1, 4, 4), (B, 1, 8, 8), ..., (B, 1, S, S)]


@register_model("ssagan", SSAGANConfig)
class SSAGAN(T2IModel):
    unsaved_modules = ("damsm_critic", "feature_network")

    def __init__(self, config: SSAGANConfig):
        super().__init__(config)
        c = config
        self.phases = ("d", "d_gp", "g") if c.d_update == "two_steps" else ("d", "g")
        self.text_encoder = self.build_text_encoder()
        self.damsm_critic = build_damsm_critic("ssagan", c)
        self.text_encoder.requires_grad_(self.text_encoder_trainable)
        self.generator = Generator(c.nf, c.z_dim, c.cond_dim, c.image_size, c.mask_hidden, c.upsample_mode,
                                   c.sentence_in_fc)
        self.feature_network = build_d_backbone(c)  # the frozen network a projected D reads (None: D reads pixels)
        self.discriminator = one_way_discriminator(c, self.feature_network, c.d_max_mult)

    # -- inference -------------------------------------------------------------------------------
    def generate_from_text(self, text, noise, generator_module=None) -> SampleOutput:
        G = generator_module or self.generator
        images, masks = G(noise, text.sent_emb)
        return SampleOutput(images, {"masks": masks})

    # -- training --------------------------------------------------------------------------------
    def optimizer_groups(self, train) -> dict[str, list[dict]]:
        """Adam groups; in ``joint`` mode the text encoder joins G's optimizer at ``text_encoder_lr``."""
        groups = super().optimizer_groups(train)
        if self.config.text_encoder_mode == "joint":
            groups["d"] = groups["d"][:1]  # the base class put the trainable text encoder with D
            lr = self.config.text_encoder_lr or train.lr_g
            groups["g"].append({"params": list(self.text_encoder.parameters()), "lr": lr, "betas": tuple(train.betas_g)})
        return groups

    def optimizer_name(self, phase: str) -> str:
        return "d" if phase == "d_gp" else phase

    def d_loss(self, batch, state):
        """[DF-GAN, Eq. 3] on SSA-GAN's generator. Only in ``joint_d`` mode does this loss reach the
        text encoder; otherwise D sees a detached sentence feature."""
        c = self.config
        images = c.d_view(batch["image"]).detach().requires_grad_(True)
        text = self.encode_text(batch["tokens"], batch["lengths"])
        if c.text_encoder_mode == "joint_d":
            sent_emb = text.sent_emb  # (B, D), with a graph into the text encoder
        else:
            text = text.detach()
            sent_emb = text.sent_emb.requires_grad_(True)  # a leaf, for MA-GP's gradient
        noise = self.draw_noise(batch)
        fake, _ = self.generator(noise, sent_emb.detach())
        state.update(fake=fake, noise=noise, text=text.detach(), sent_emb=sent_emb)
        return one_way_discriminator_loss(self.discriminator, images, sent_emb, c.d_view(fake), c.ma_gp_weight,
                                          c.ma_gp_power, c.mismatch_pairs, with_gp=c.d_update == "one_step",
                                          **c.contrastive_terms())

    def d_gp_loss(self, batch, state):
        """The official second D step: MA-GP alone on the updated D's real matched pairs."""
        c = self.config
        images = batch["image"].detach().requires_grad_(True)
        if c.text_encoder_mode == "joint_d":  # a graph into the text encoder, as in the D phase
            sent_emb = self.encode_text(batch["tokens"], batch["lengths"]).sent_emb
        else:
            sent_emb = state["sent_emb"].detach().requires_grad_(True)
        return ma_gp_loss(self.discriminator, images, sent_emb, c.ma_gp_weight, c.ma_gp_power)

    def g_loss(self, batch, state):
        """``-E[D(G(z, e), e)]`` [DF-GAN, Eq. 4] ``+ lambda * L_DAMSM(G(z, e), text)`` [AttnGAN, Eq. 14]
        (+ the optional contrastive term).

        In ``joint`` mode the text features are computed afresh (the D phase used detached ones) and
        the images regenerated from them with the D phase's noise, so both terms train the text
        encoder; otherwise the D phase's images are reused.
        """
        c = self.config
        if c.text_encoder_mode == "joint":
            text = self.encode_text(batch["tokens"], batch["lengths"])
            fake, _ = self.generator(state["noise"], text.sent_emb)
        else:
            text, fake = state["text"], state["fake"]
        loss, logs = one_way_generator_loss(self.discriminator, c.d_view(fake), text.sent_emb, **c.contrastive_terms())
        loss = self.damsm_critic.add_to(loss, logs, c.damsm_loss_weight, fake, text, batch)
        logs["g_loss"] = loss.item()
        return loss, logs
