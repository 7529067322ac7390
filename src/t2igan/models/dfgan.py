"""DF-GAN [Tao et al., "DF-GAN: A Simple and Effective Baseline for Text-to-Image Synthesis", CVPR 2022]:
a one-stage generator of deep text-image fusion blocks and a one-way discriminator, and the pieces
SSA-GAN (:mod:`.ssagan`) reuses: the affine, the one-way D, its losses, the family's options.

Paper equation -> function:

* Eq. 1-2, the text-conditioned affine ``gamma(e) h + beta(e)``: :class:`Affine`;
* Sec. 3.2, deep fusion block and up-block: :class:`FusionBlock`, :class:`GBlock`, :class:`Generator`;
* Sec. 3.3, one-way discriminator: :class:`DBlock`, :class:`OneWayDiscriminator`;
* Eq. 3, D's hinge loss + MA-GP: :func:`d_hinge_loss`, :func:`matching_aware_gradient_penalty`,
  summed in :func:`one_way_discriminator_loss` (MA-GP alone: :func:`ma_gp_loss`);
* Eq. 4, G's loss ``-E[D(G(z, e), e)]``: :func:`g_hinge_loss`, :func:`one_way_generator_loss`;
* beyond the paper: the image-sentence contrastive term [XMC-GAN, Eq. 1-2] :func:`contrastive_loss`,
  DiffAugment's translation and cutout [Zhao et al. 2020, Sec. 3] :func:`random_translate`,
  :func:`random_cutout`, and a D that reads a frozen pretrained network through fixed random projections
  [Projected GAN, Sauer et al. 2021, Sec. 3, Eq. 2] :class:`ProjectedDiscriminator` (``d_backbone``).

Shapes follow the official 2022 code: G maps z (100) through an FC to ``8nf x 4 x 4``, then up-blocks
double the resolution up to ``image_size``; each up-block is two deep-fusion blocks (two stacked
text-conditioned affines, each followed by leaky ReLU) around 3x3 convs with a learned shortcut.
The affine's condition is ``[z, sent_emb]``. D down-samples to ``8nf x 4 x 4``; the conditional head
concatenates the sentence, replicated spatially, and applies two convs.

Where t2igan offers more than the official code (github.com/tobran/DF-GAN), the official behaviour
is the default, the presets' ``-cub``/``-coco`` setting and that of a converted checkpoint:

* ``truncation_form``: the official sampler draws ``trunc_rate * TN(-2, 2)`` (``"scaled"``, std
  0.77 at 0.88); ``"clip"`` cuts ``N(0, 1)`` to ``[-0.88, 0.88]`` (std 0.48: less varied, often
  cleaner images; used by ``dfgan-shapes``). FIDs of the two differ.
* The official code keeps no moving average of G, so ``dfgan-cub``/``dfgan-coco`` set
  ``train.ema_decay: 0``; the trainer's 0.999 average is the option.
* :class:`DFGANFamilyOptions` (shared with SSA-GAN, all off by default): the image-sentence
  contrastive term, D's residual gates starting open (``d_gamma_init``), DiffAugment translation in
  D (``d_translate``), the sentence in G's first FC (``sentence_in_fc``), a projected D
  (``d_backbone``, ``d_augment``), SSA-GAN's DAMSM term in G
  (``damsm_weight``; its image encoder comes from ``damsm_weights``). The ``dfgan-shapes`` preset's
  choice among them is measured in ``benchmarks/RESULTS.md``.
* Options that make G use its noise (DF-GAN's config, all off by default), measured in
  ``benchmarks/RESULTS.md`` ("Does each caption give a distribution?"): MSGAN's mode-seeking term
  [Mao et al., CVPR 2019, Eq. 3] (``mode_seeking_weight``, :func:`mode_seeking_loss`); DSGAN's
  diversity-sensitive term [Yang et al., ICLR 2019, Eq. 2-3] (``diversity_sensitive_weight``,
  ``diversity_sensitive_tau``, :func:`diversity_sensitive_loss`); ProGAN's minibatch standard
  deviation in D [Karras et al., ICLR 2018, Sec. 3] (``d_minibatch_std``, :func:`minibatch_std`);
  StyleGAN's per-pixel noise after every conv of G [Karras et al., CVPR 2019, Sec. 2]
  (``g_noise_injection``, :class:`NoiseInjection`); flooding [Ishida et al., ICML 2020] of G's
  contrastive term (``contrastive_floor``: ``|L - b| + b``, so once an image picks out its own
  caption well enough G is no longer pulled towards the one image that matches it best). The first
  two draw a second image of every caption from fresh noise in G's step (:func:`noise_use_loss`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..fields import Backbone, Config, Count, Fraction, Positive, PowerOfTwo, Rule
from ..losses import mismatched_pairs
from ..nn.image_encoder import InceptionBackbone, SmallCNN
from ..registry import register_model
from .base import SampleOutput, T2IModel
from .damsm import build_damsm_critic

DAugment = Annotated[str, Rule(lambda v: augment_policy(v) is not None, "translation, cutout (comma-separated) or none")]


@dataclass
class DFGANFamilyOptions(Config):
    """Fields shared by the configs of the DF-GAN family (DF-GAN, SSA-GAN), beyond the papers (each off
    by default, the papers' setting):

    * an image-sentence contrastive term in D and G [XMC-GAN, Zhang et al. 2021, Eq. 1-2]
      (``contrastive_*``): D gains two projections into a shared space (:class:`OneWayDiscriminator`),
      :func:`contrastive_loss` scores them;
    * ``d_gamma_init``: where the gates of D's residual branches start (official 0: D starts as its
      linear shortcut, a linear function of the pixels down to 4x4, which sees colour and place but
      no shape);
    * ``d_translate``: DiffAugment's translation of every image D sees, real or generated
      (:func:`random_translate`);
    * ``sentence_in_fc``: G's first layer (the FC to the 4x4 map) reads ``[z, sent_emb]`` instead of
      ``z`` alone, so the coarse layout can follow the caption from the start;
    * ``d_backbone``: D reads the maps of a frozen pretrained image network, the backbone of the
      ``damsm_weights`` run's image encoder, through fixed random projections [Projected GAN, Sauer et
      al. 2021] (:class:`ProjectedDiscriminator`), after the DiffAugment transforms ``d_augment``
      names; ``damsm_random``: the same architecture with random weights (an ablation). The builder
      writes the DAMSM's architecture into ``damsm_backbone``, ``damsm_image_size`` and
      ``damsm_cnn_channels``, so a run folder rebuilds a D of the same shapes without the DAMSM.

    and the DAMSM term of G (``damsm_*``; in SSA-GAN's paper, with weight 0.05, not in DF-GAN's): the
    frozen image encoder of the ``damsm_weights`` run scores G's images against their captions
    [AttnGAN, Eq. 14] (:class:`t2igan.models.damsm.DAMSMCritic`).
    """

    contrastive_weight: float = 0.0  # lambda of the image-sentence contrastive term in D and G (0 = off; not in the papers)
    contrastive_dim: int = 128  # size of D's shared image/sentence embedding space for that term
    contrastive_temperature: float = 0.1
    contrastive_pool: Literal["flatten", "sum"] = "flatten"  # D's image side of that term: flatten (keeps positions) | sum
    d_gamma_init: float = 0.0  # start of the gates on D's residual branches (official 0)
    d_translate: float = 0.0  # DiffAugment translation of D's inputs, a fraction of the side (0 = off)
    sentence_in_fc: bool = False  # G's first FC also reads the sentence
    d_backbone: Literal["none", "damsm", "damsm_random"] = "none"  # none (the paper's D) | damsm (D reads the frozen DAMSM image encoder, Projected GAN) | damsm_random (the same, random weights)
    d_augment: DAugment = "translation,cutout"  # DiffAugment before that backbone: translation, cutout (comma-separated) or none
    damsm_image_size: Count | None = None  # input side of the small-CNN DAMSM D reads (the builder writes the run's)
    damsm_cnn_channels: Count | None = None  # its first width (the builder writes the run's)
    damsm_weights: str | None = None  # DAMSM run folder (or name): its text encoder starts ours, its image encoder scores the DAMSM loss
    damsm_backbone: Backbone = "inception"  # image encoder built when damsm_weights is None: inception | small_cnn (random: tests only)
    damsm_weight: float | None = None  # DAMSM loss weight in G (None: the family's default, see damsm_loss_weight)
    damsm_gamma1: float | None = None  # word-region attention sharpness (None: the DAMSM run's, else 4)
    damsm_gamma2: float | None = None  # region-word relevance sharpness (None: the DAMSM run's, else 5)
    damsm_gamma3: float | None = None  # image-text matching sharpness (None: the DAMSM run's, else 10)
    damsm_paper_form: bool | None = None  # True: the paper's log(sum exp)^(1/gamma2); False: official code's (None: the run's)

    def problem(self) -> str | None:
        side = self.damsm_image_size if self.damsm_backbone == "small_cnn" else 299
        if self.d_backbone != "none" and side and side < self.image_size:
            return (f"model.d_backbone={self.d_backbone} reads images at the DAMSM's {side} px, smaller than G's "
                    f"{self.image_size} px, so D could not see G's detail; use a DAMSM pretrained at "
                    f"data.image_size={self.image_size} or larger")
        return None

    @property
    def damsm_loss_weight(self) -> float:
        """The weight of G's DAMSM term: ``damsm_weight``, or 0 (DF-GAN's paper has no such term)."""
        return self.damsm_weight or 0.0

    def discriminator_args(self) -> dict:
        """:class:`OneWayDiscriminator` arguments: no contrastive heads while the term is off."""
        on = bool(self.contrastive_weight)
        return {"contrastive_dim": self.contrastive_dim if on else 0, "contrastive_pool": self.contrastive_pool,
                "gamma_init": self.d_gamma_init}

    def contrastive_terms(self) -> dict:
        """Arguments of the one-way D and G losses for the contrastive term."""
        return {"contrastive_weight": self.contrastive_weight, "contrastive_temperature": self.contrastive_temperature}

    def d_view(self, images: torch.Tensor) -> torch.Tensor:
        """What D is shown of ``images`` (real or generated): translated when ``d_translate`` > 0."""
        return random_translate(images, self.d_translate)


@dataclass
class DFGANConfig(DFGANFamilyOptions):
    vocab_size: int = 5000  # words in the vocabulary (set from the data)
    image_size: PowerOfTwo = 256  # output side, a power of two >= 16
    nf: Count = 32  # base channel width of G and D (official 32)
    z_dim: Count = 100  # noise size
    text_emb_dim: Count = 300  # text encoder word embedding
    text_hidden_dim: Count = 128  # per LSTM direction; sentence feature is 2x this (256)
    text_dropout: Fraction = 0.5
    text_encoder_mode: Literal["frozen", "joint_d"] = "frozen"  # frozen (official: a pretrained DAMSM) | joint_d (trained with D's loss)
    text_encoder_lr: Positive | None = None  # learning rate of a trainable text encoder (default: G's)
    ma_gp_weight: float = 2.0  # k in MA-GP
    ma_gp_power: float = 6.0  # p in MA-GP
    truncation: float = 0.88  # noise truncation at sampling (0 = none); DF-GAN's trunc_rate
    truncation_form: Literal["scaled", "clip"] = "scaled"  # scaled: official, 0.88 * N(0,1) cut to [-2, 2] | clip: N(0,1) cut to [-0.88, 0.88]
    mode_seeking_weight: float = 0.0  # MSGAN's mode-seeking term in G (0 = off; not in the paper)
    diversity_sensitive_weight: float = 0.0  # DSGAN's diversity-sensitive term in G (0 = off)
    diversity_sensitive_tau: Positive = 1.0  # its bound on image distance per noise distance
    d_minibatch_std: int = 0  # ProGAN's minibatch standard deviation in D's head: group size (0 = off)
    g_noise_injection: bool = False  # StyleGAN's learned-scale per-pixel noise after every conv of G
    contrastive_floor: float = 0.0  # flooding level b of G's contrastive term (0 = off)

    @property
    def cond_dim(self) -> int:
        return 2 * self.text_hidden_dim

    def problem(self) -> str | None:
        if self.d_backbone != "none" and self.d_minibatch_std:
            return "model.d_minibatch_std is an option of DF-GAN's own D, not of the projected D (model.d_backbone)"
        return super().problem()


# ---------------------------------------------------------------------------------------------
# generator


class Affine(nn.Module):
    """Text-conditioned channel-wise affine ``gamma(c) * h + beta(c)`` [DF-GAN, Eq. 1-2]; the MLPs'
    last layers start at gamma = 1, beta = 0 so a fresh block is the identity."""

    def __init__(self, cond_dim: int, num_features: int, hidden_dim: int | None = None):
        super().__init__()
        hidden = hidden_dim or num_features  # width of the MLPs' hidden layer (SSA-GAN: cond_dim)
        self.gamma = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_features))
        self.beta = nn.Sequential(nn.Linear(cond_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, num_features))
        nn.init.zeros_(self.gamma[2].weight)
        nn.init.ones_(self.gamma[2].bias)
        nn.init.zeros_(self.beta[2].weight)
        nn.init.zeros_(self.beta[2].bias)

    def forward(self, h: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.gamma(cond)[:, :, None, None] * h + self.beta(cond)[:, :, None, None]


class FusionBlock(nn.Module):
    """Deep fusion block: affine, leaky ReLU, affine, leaky ReLU."""

    def __init__(self, cond_dim: int, channels: int):
        super().__init__()
        self.affine0 = Affine(cond_dim, channels)
        self.affine1 = Affine(cond_dim, channels)

    def forward(self, h, cond):
        h = F.leaky_relu(self.affine0(h, cond), 0.2)
        return F.leaky_relu(self.affine1(h, cond), 0.2)


class GBlock(nn.Module):
    """Up-block: x2 nearest up-sampling, then ``shortcut(h) + conv(fuse(conv(fuse(h))))``."""

    def __init__(self, cond_dim: int, in_ch: int, out_ch: int, upsample: bool = True, noise_injection: bool = False):
        super().__init__()
        self.upsample = upsample
        self.fuse0 = FusionBlock(cond_dim, in_ch)
        self.conv0 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.fuse1 = FusionBlock(cond_dim, out_ch)
        self.conv1 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.noise0 = NoiseInjection(out_ch) if noise_injection else nn.Identity()
        self.noise1 = NoiseInjection(out_ch) if noise_injection else nn.Identity()

    def forward(self, h, cond):
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        res = self.noise1(self.conv1(self.fuse1(self.noise0(self.conv0(self.fuse0(h, cond))), cond)))
        return self.shortcut(h) + res


class NoiseInjection(nn.Module):
    """``h + w * n`` with ``n ~ N(0, 1)`` per pixel (one map per image, shared by the channels) and
    ``w`` one learned weight per channel, starting at 0 [StyleGAN, Karras et al. 2019, Sec. 2]."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        n = torch.randn(h.shape[0], 1, h.shape[2], h.shape[3], device=h.device, dtype=h.dtype)
        return h + self.weight[None, :, None, None] * n


def channel_plan(nf: int, image_size: int, max_mult: int = 8) -> list[int]:
    """Channel counts from 4x4 up to ``image_size``: ``nf * min(2^k, max_mult)``, widest at 4x4
    (``max_mult`` 16 gives the wider 2021 DF-GAN / SSA-GAN discriminator)."""
    n = int(math.log2(image_size)) - 1
    if 2 ** (n + 1) != image_size or image_size < 16:
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
    return [nf * min(2**k, max_mult) for k in range(n)][::-1]  # e.g. 64 px: [8nf, 8nf, 4nf, 2nf, nf]


class Generator(nn.Module):
    def __init__(self, nf: int, z_dim: int, cond_dim: int, image_size: int, sentence_in_fc: bool = False,
                 noise_injection: bool = False):
        super().__init__()
        chs = channel_plan(nf, image_size)
        self.sentence_in_fc = sentence_in_fc
        self.fc = nn.Linear(z_dim + (cond_dim if sentence_in_fc else 0), chs[0] * 4 * 4)
        self.blocks = nn.ModuleList(GBlock(z_dim + cond_dim, i, o, noise_injection=noise_injection)
                                    for i, o in zip(chs[:-1], chs[1:]))
        self.to_rgb = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(chs[-1], 3, 3, 1, 1), nn.Tanh())

    def forward(self, noise: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([noise, sent_emb], dim=1)  # (B, z + D)
        h = self.fc(cond if self.sentence_in_fc else noise).view(noise.shape[0], -1, 4, 4)  # (B, 8nf, 4, 4)
        for block in self.blocks:
            h = block(h, cond)
        return self.to_rgb(h)  # (B, 3, S, S)


# ---------------------------------------------------------------------------------------------
# one-way discriminator


class DBlock(nn.Module):
    """DF-GAN's down-block: ``shortcut(avgpool(x)) + gamma * res(x)`` with ``gamma`` learned, from
    ``gamma_init`` (official 0: the block starts as its linear shortcut)."""

    def __init__(self, in_ch: int, out_ch: int, gamma_init: float = 0.0):
        super().__init__()
        self.res = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.gamma = nn.Parameter(torch.full((1,), float(gamma_init)))

    def forward(self, x):
        return self.shortcut(F.avg_pool2d(x, 2)) + self.gamma * self.res(x)


class OneWayDiscriminator(nn.Module):
    """DF-GAN's one-way discriminator [DF-GAN, Sec. 3.3] (also SSA-GAN's): ``features(x)`` down to
    ``4 x 4``, then ``logits(features, sent_emb)`` from the sentence replicated spatially and two
    convs. With ``contrastive_dim`` it also projects image features and sentences into a shared
    space (``image_proj``, ``text_proj``) for :func:`contrastive_loss`; the image side reads the
    ``4 x 4`` features flattened (``contrastive_pool="flatten"``, keeps where things are: positions
    and relations are half of what a Shapes caption says) or summed (``"sum"``)."""

    def __init__(self, nf: int, cond_dim: int, image_size: int, max_mult: int = 8, contrastive_dim: int = 0,
                 contrastive_pool: str = "flatten", gamma_init: float = 0.0, minibatch_std_group: int = 0):
        super().__init__()
        chs = channel_plan(nf, image_size, max_mult)[::-1]  # nf ... max_mult * nf
        self.from_rgb = nn.Conv2d(3, chs[0], 3, 1, 1)
        self.blocks = nn.Sequential(*(DBlock(i, o, gamma_init) for i, o in zip(chs[:-1], chs[1:])))
        self.minibatch_std_group = minibatch_std_group  # > 0: the joint head also reads minibatch_std()
        self.joint = nn.Sequential(
            nn.Conv2d(chs[-1] + (1 if minibatch_std_group else 0) + cond_dim, 2 * nf, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * nf, 1, 4, 1, 0, bias=False),
        )
        self.contrastive_pool = contrastive_pool
        if contrastive_dim:  # projections into a shared space for the contrastive term
            self.image_proj = nn.Linear(chs[-1] * (16 if contrastive_pool == "flatten" else 1), contrastive_dim)
            self.text_proj = nn.Linear(cond_dim, contrastive_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.from_rgb(images))  # (B, max_mult * nf, 4, 4)

    def logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = sent_emb[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        if self.minibatch_std_group:
            features = minibatch_std(features, self.minibatch_std_group)
        return self.joint(torch.cat([features, cond], dim=1)).flatten()  # (B,)

    def embeddings(self, features: torch.Tensor, sent_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and sentence embeddings for the contrastive term: 4x4 features flattened (or summed), projected."""
        pooled = features.flatten(1) if self.contrastive_pool == "flatten" else features.sum(dim=(2, 3))
        return self.image_proj(pooled), self.text_proj(sent_emb)


def minibatch_std(features: torch.Tensor, group: int) -> torch.Tensor:
    """ProGAN's minibatch standard deviation [Karras et al. 2018, Sec. 3]: for groups of ``group``
    images, the standard deviation of each feature over the group, averaged over features and pixels,
    appended as one more channel (B, C + 1, H, W). A batch that does not divide by ``group`` uses the
    largest group size that divides it."""
    B, _, H, W = features.shape
    g = min(group, B)
    while B % g:
        g -= 1
    grouped = features.reshape(g, B // g, *features.shape[1:])  # (g, B/g, C, H, W): image i in group i % (B/g)
    std = (grouped.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (B/g,)
    return torch.cat([features, std.repeat(g)[:, None, None, None].expand(B, 1, H, W)], dim=1)


def random_translate(images: torch.Tensor, ratio: float) -> torch.Tensor:
    """DiffAugment's translation [Zhao et al. 2020, Sec. 3]: each image shifted by a random whole number
    of pixels, at most ``ratio`` of its side in each direction, edges repeated (the background stays
    the background; colours untouched). Differentiable in ``images``, so G learns through it; ``ratio``
    0 returns ``images``."""
    if ratio <= 0:
        return images
    b, _, h, w = images.shape
    max_shift = torch.tensor([w, h], device=images.device) * ratio
    shift = torch.round((torch.rand(b, 2, device=images.device) * 2 - 1) * max_shift)  # (B, 2): pixels in x, y
    theta = torch.zeros(b, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, :, 2] = (-2 * shift / torch.tensor([w, h], device=images.device)).to(images.dtype)  # normalised units
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="nearest", padding_mode="border", align_corners=False)


# ---------------------------------------------------------------------------------------------
# projected discriminator (model.d_backbone)
#
# Projected GAN [Sauer, Chitta, Mueller, Geiger, "Projected GANs Converge Faster", NeurIPS 2021, Sec. 3,
# Eq. 2] trains one small discriminator D_l per feature map of a fixed projector P_l and sums their
# losses: min_G max_{D_l} sum_l E_x[log D_l(P_l(x))] + E_z[log(1 - D_l(P_l(G(z))))]. P_l is a frozen
# pretrained network followed by fixed random projections [Sec. 3.2]: cross-channel mixing (CCM, a random
# 1x1 conv of each map) and cross-scale mixing (CSM, each map also receives the deeper, coarser ones).
# Every image, real or generated, is augmented before P_l [DiffAugment, Zhao et al. 2020].
#
# Here the frozen network is the backbone of the DAMSM image encoder the GAN already uses, and each D_l
# is DF-GAN's down-blocks to 4 x 4 and conditional head, so DF-GAN's hinge loss and MA-GP [Eq. 3-4]
# apply as they are (the hinge terms average over the scales' logits, as the official Projected GAN code
# averages over its discriminators'). Deviations, each for a reason:
#
# * DF-GAN's loss (hinge + MA-GP, mismatched captions as negatives), not Projected GAN's plain hinge:
#   the family's text-conditioned objective is kept; no batch or spectral norm in the heads (DF-GAN's D
#   has neither; MA-GP regularises);
# * CSM adds the coarser mixed map, resized and randomly projected, to each map
#   (m_l = CCM_l(f_l) + W_l resize(m_{l+1})); the official fusion blocks also double every map's side,
#   which would quadruple the heads' cost on a CPU for no new information;
# * augmentation (d_augment) is DiffAugment's translation (1/8 of the side, edges repeated so a
#   background stays a background) and cutout (a square of half the side set to 0), not its colour
#   transforms: captions name colours and D must see them as they are;
# * D also reads the image itself average-pooled to 8 x 8 through one more head: the small CNN's group
#   norms make its maps nearly blind to overall brightness and colour (on Shapes, turning the grey
#   background white changes them by 6-8 %, another image by 78-115 %), and a D that read only them let G
#   paint white backgrounds (benchmarks/RESULTS.md);
# * the random projections are buffers of D, saved with it, so a resumed run keeps them.

D_AUGMENTS = ("translation", "cutout")  # the DiffAugment transforms d_augment may name
TRANSLATE_RATIO = 0.125  # DiffAugment's translation: up to 1/8 of the side
CUTOUT_RATIO = 0.5  # DiffAugment's cutout: a square of half the side
PIXEL_SIDE = 8  # side of the pooled image the projected D also reads
RANDOM_BACKBONE_SEED = 0  # a d_backbone is first drawn from this seed (damsm_random keeps it), so a run rebuilds it


def augment_policy(text: str) -> set[str] | None:
    """The transforms a ``d_augment`` value names (comma-separated :data:`D_AUGMENTS`, or ``none``);
    None when it names another."""
    names = {p.strip() for p in str(text).split(",") if p.strip()} - {"none"}
    return names if names <= set(D_AUGMENTS) else None


def random_cutout(images: torch.Tensor, ratio: float) -> torch.Tensor:
    """DiffAugment's cutout [Zhao et al. 2020, Sec. 3]: in each image a square of side ``ratio`` times
    the image side, centred anywhere in the image (so the border may cut it), set to 0 (mid-grey for
    images in [-1, 1]). A product with a 0/1 mask, so differentiable in ``images``."""
    if ratio <= 0:
        return images
    b, _, h, w = images.shape
    ch, cw = max(1, round(h * ratio)), max(1, round(w * ratio))
    y0 = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=images.device) - ch // 2  # top row (may be < 0)
    x0 = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=images.device) - cw // 2
    ys = torch.arange(h, device=images.device).view(1, h, 1)
    xs = torch.arange(w, device=images.device).view(1, 1, w)
    hole = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)  # (B, H, W)
    return images * (~hole).unsqueeze(1).to(images.dtype)


class FixedProjection(nn.Module):
    """A 1x1 convolution with random weights that never train [Projected GAN, Sec. 3.2]: drawn as a fresh
    ``nn.Conv2d`` is and kept as buffers, in no optimizer but saved and loaded with D."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        conv = nn.Conv2d(in_ch, out_ch, 1)
        self.register_buffer("weight", conv.weight.detach().clone())
        self.register_buffer("bias", conv.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias)


def head_channels(nf: int, image_size: int, side: int, max_mult: int) -> int:
    """Width of a head at a map of side ``side``: DF-GAN's D's at the image side nearest above,
    ``nf * min(2^floor(log2(image_size / side)), max_mult)`` (at least ``nf``)."""
    return nf * min(2 ** max(0, math.floor(math.log2(image_size / side))), max_mult)


class ProjectedDiscriminator(nn.Module):
    """:class:`OneWayDiscriminator`'s interface (``features``, ``logits``, ``embeddings``) on the maps
    of a frozen ``backbone`` (an image encoder backbone with ``feature_maps``):

    ``features(x)``: augmented (training only), the backbone's maps ``f_l``, CCM + CSM (fixed), each
    mixed map down to 4 x 4 by its head's :class:`DBlock` s, and the image pooled to 8 x 8 through one
    more head (``pixel_head``); the 4 x 4 features concatenated over channels, so mismatched pairs are
    formed from them as from DF-GAN's. ``logits(features, sent_emb)``: each head's conditional logit,
    ``(B, L + 1)``.

    ``backbone`` is held by reference (not a submodule): the model registers it, keeps it frozen and out
    of the state dict. ``translate``, ``cutout``: DiffAugment ratios, applied while training."""

    def __init__(self, backbone: nn.Module, nf: int, cond_dim: int, image_size: int, max_mult: int = 8,
                 contrastive_dim: int = 0, contrastive_pool: str = "flatten", gamma_init: float = 0.0,
                 translate: float = TRANSLATE_RATIO, cutout: float = CUTOUT_RATIO):
        super().__init__()
        object.__setattr__(self, "backbone", backbone)  # by reference: not in parameters() or state_dict()
        self.translate, self.cutout = translate, cutout
        with torch.no_grad():
            probe = backbone.feature_maps(torch.zeros(1, 3, image_size, image_size,
                                                      device=next(backbone.parameters()).device))
        self.sides = [m.shape[-1] for m in probe]
        chs = [head_channels(nf, image_size, s, max_mult) for s in self.sides]
        self.ccm = nn.ModuleList(FixedProjection(m.shape[1], c) for m, c in zip(probe, chs))
        self.csm = nn.ModuleList(FixedProjection(chs[k + 1], chs[k]) for k in range(len(chs) - 1))
        self.heads, self.out_chs = nn.ModuleList(), []
        for s, c in zip(self.sides, chs):
            blocks = []
            while s > 4:
                out = min(2 * c, max_mult * nf)
                blocks.append(DBlock(c, out, gamma_init))
                c, s = out, s // 2  # a DBlock halves the side (odd sides floored)
            self.heads.append(nn.Sequential(*blocks))
            self.out_chs.append(c)
        c = head_channels(nf, image_size, PIXEL_SIDE, max_mult)
        self.pixel_head = DBlock(3, c, gamma_init)  # the image pooled to PIXEL_SIDE: 8 -> 4
        self.out_chs.append(c)
        self.joint = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c + cond_dim, 2 * nf, 3, 1, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                          nn.Conv2d(2 * nf, 1, 4, 1, 0, bias=False))
            for c in self.out_chs)
        self.contrastive_pool = contrastive_pool
        if contrastive_dim:
            total = sum(self.out_chs) * (16 if contrastive_pool == "flatten" else 1)
            self.image_proj = nn.Linear(total, contrastive_dim)
            self.text_proj = nn.Linear(cond_dim, contrastive_dim)

    def augment(self, images: torch.Tensor) -> torch.Tensor:
        """DiffAugment's translation and cutout while training; the images as they are otherwise."""
        if not self.training:
            return images
        return random_cutout(random_translate(images, self.translate), self.cutout)

    def projected(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``P_l(x)``: the backbone's maps mixed across channels (CCM) and scales (CSM), finest first."""
        maps = [ccm(f) for ccm, f in zip(self.ccm, self.backbone.feature_maps(images))]
        mixed = [maps[-1]]
        for k in range(len(maps) - 2, -1, -1):  # coarse to fine: each map gets the coarser mixed one
            coarser = F.interpolate(mixed[0], size=maps[k].shape[-2:], mode="bilinear", align_corners=False)
            mixed.insert(0, maps[k] + self.csm[k](coarser))
        return mixed

    def features(self, images: torch.Tensor) -> torch.Tensor:
        images = self.augment(images)
        feats = [head(m) for head, m in zip(self.heads, self.projected(images))]
        feats.append(self.pixel_head(F.adaptive_avg_pool2d(images, PIXEL_SIDE)))
        return torch.cat(feats, dim=1)  # (B, sum_l C_l, 4, 4)

    def logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = sent_emb[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        parts = torch.split(features, self.out_chs, dim=1)
        return torch.cat([joint(torch.cat([f, cond], dim=1)).flatten(1) for joint, f in zip(self.joint, parts)],
                         dim=1)  # (B, L + 1): one logit per scale

    def embeddings(self, features: torch.Tensor, sent_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = features.flatten(1) if self.contrastive_pool == "flatten" else features.sum(dim=(2, 3))
        return self.image_proj(pooled), self.text_proj(sent_emb)


def build_d_backbone(config) -> nn.Module | None:
    """The frozen network a DF-GAN-family D reads (``config.d_backbone``; None for ``"none"``): a DAMSM
    image encoder backbone of the architecture ``damsm_backbone``, ``damsm_image_size``,
    ``damsm_cnn_channels`` name, drawn from :data:`RANDOM_BACKBONE_SEED` (the global random state is left
    as it was). With ``damsm``, :func:`t2igan.training.build.build_model` loads the ``damsm_weights``
    run's backbone into it; ``damsm_random`` keeps the random weights (an ablation: what the DAMSM's
    training adds)."""
    if config.d_backbone == "none":
        return None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_BACKBONE_SEED)
        if config.damsm_backbone == "inception":
            backbone = InceptionBackbone()
        else:
            backbone = SmallCNN(config.damsm_image_size or config.image_size, config.damsm_cnn_channels or 32)
    return backbone.requires_grad_(False).eval()


def one_way_discriminator(config, backbone: nn.Module | None, max_mult: int = 8, **pixel_d_args) -> nn.Module:
    """DF-GAN's :class:`OneWayDiscriminator` (with ``pixel_d_args``), or with a ``backbone``
    (:func:`build_d_backbone`) a :class:`ProjectedDiscriminator` reading it, augmented as
    ``config.d_augment`` says."""
    if backbone is None:
        return OneWayDiscriminator(config.nf, config.cond_dim, config.image_size, max_mult,
                                   **config.discriminator_args(), **pixel_d_args)
    policy = augment_policy(config.d_augment)
    return ProjectedDiscriminator(backbone, config.nf, config.cond_dim, config.image_size, max_mult,
                                  translate=TRANSLATE_RATIO if "translation" in policy else 0.0,
                                  cutout=CUTOUT_RATIO if "cutout" in policy else 0.0, **config.discriminator_args())


# ---------------------------------------------------------------------------------------------
# losses (D with features(x) and logits(features, e))


def d_hinge_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, mismatch_logits: torch.Tensor | None = None):
    """DF-GAN's discriminator hinge loss [DF-GAN, Eq. 3]:

    ``E[max(0, 1 - D(x, e))] + 1/2 E[max(0, 1 + D(G(z), e))] + 1/2 E[max(0, 1 + D(x, e_mis))]``;
    without mismatched pairs the fake term has weight 1.
    """
    real = F.relu(1.0 - real_logits).mean()
    fake = F.relu(1.0 + fake_logits).mean()
    if mismatch_logits is None:
        return real + fake
    return real + 0.5 * (fake + F.relu(1.0 + mismatch_logits).mean())


def g_hinge_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator hinge loss ``-E[D(G(z), e)]`` [DF-GAN, Eq. 4]."""
    return -fake_logits.mean()


def matching_aware_gradient_penalty(
    real_logits: torch.Tensor, real_images: torch.Tensor, sent_emb: torch.Tensor, k: float = 2.0, p: float = 6.0
) -> torch.Tensor:
    """MA-GP [DF-GAN, Eq. 3]: ``k * E[(||grad_x D(x, e)|| + ||grad_e D(x, e)||)^p]`` on real matched pairs.

    As in the official code the norm is that of the concatenated gradient ``(grad_x, grad_e)``.
    ``real_images`` and ``sent_emb`` must require grad.
    """
    grad_x, grad_e = torch.autograd.grad(
        real_logits.sum(), (real_images, sent_emb), create_graph=True, retain_graph=True
    )
    grad = torch.cat([grad_x.flatten(1), grad_e.flatten(1)], dim=1)
    return k * grad.norm(2, dim=1).pow(p).mean()


def contrastive_loss(image_embs: torch.Tensor, text_embs: torch.Tensor, temperature: float = 0.1,
                     symmetric: bool = True) -> torch.Tensor:
    """Image-sentence contrastive loss [XMC-GAN, Zhang et al. 2021, Eq. 1-2] (InfoNCE over the batch).

    ``sim(i, j) = cos(image_i, text_j) / temperature``; the loss is the cross-entropy of picking
    caption ``i`` for image ``i`` among the batch's captions, averaged with the text-to-image direction
    when ``symmetric``. Duplicate captions in a batch count as negatives, as in the paper.
    """
    image_embs = F.normalize(image_embs, dim=1)
    text_embs = F.normalize(text_embs, dim=1)
    logits = image_embs @ text_embs.t() / temperature  # (B, B)
    target = torch.arange(logits.shape[0], device=logits.device)
    loss = F.cross_entropy(logits, target)
    if symmetric:
        loss = 0.5 * (loss + F.cross_entropy(logits.t(), target))
    return loss


def one_way_discriminator_loss(D: nn.Module, images: torch.Tensor, sent_emb: torch.Tensor, fake: torch.Tensor,
                               ma_gp_weight: float = 2.0, ma_gp_power: float = 6.0, mismatch: str = "shift",
                               with_gp: bool = True, contrastive_weight: float = 0.0,
                               contrastive_temperature: float = 0.1) -> tuple[torch.Tensor, dict]:
    """DF-GAN's D objective [DF-GAN, Eq. 3] (SSA-GAN keeps it): hinge on (real, e), (fake, e),
    (real, e_mismatched) (pairs: :func:`t2igan.losses.mismatched_pairs`) + MA-GP on (real, e) unless
    ``with_gp`` is False, + ``contrastive_weight`` times the image-sentence :func:`contrastive_loss` of
    D's embeddings of the real pairs (optional, not in the paper). ``images`` and ``sent_emb`` must
    require grad for MA-GP."""
    real_feats = D.features(images)
    real_logits = D.logits(real_feats, sent_emb)
    mis_logits = D.logits(*mismatched_pairs(real_feats, sent_emb, mismatch))
    fake_logits = D.logits(D.features(fake.detach()), sent_emb)
    adv = d_hinge_loss(real_logits, fake_logits, mis_logits)
    logs = {"d_adv": adv.item(), "d_real": real_logits.mean().item(), "d_fake": fake_logits.mean().item(),
            "d_mismatch": mis_logits.mean().item()}
    loss = adv
    if with_gp:
        gp = matching_aware_gradient_penalty(real_logits, images, sent_emb, ma_gp_weight, ma_gp_power)
        loss = adv + gp
        logs["ma_gp"] = gp.item()
    if contrastive_weight:  # D learns to pair real images with their captions
        con = contrastive_loss(*D.embeddings(real_feats, sent_emb), contrastive_temperature)
        loss = loss + contrastive_weight * con
        logs["d_contrastive"] = con.item()
    logs["d_loss"] = loss.item()
    return loss, logs


def ma_gp_loss(D: nn.Module, images: torch.Tensor, sent_emb: torch.Tensor, ma_gp_weight: float = 2.0,
               ma_gp_power: float = 6.0) -> tuple[torch.Tensor, dict]:
    """MA-GP alone [DF-GAN, Eq. 3] on D's current logits of the real matched pairs (the official
    SSA-GAN code's second D step). ``images`` and ``sent_emb`` must require grad."""
    real_logits = D.logits(D.features(images), sent_emb)
    gp = matching_aware_gradient_penalty(real_logits, images, sent_emb, ma_gp_weight, ma_gp_power)
    return gp, {"ma_gp": gp.item()}


def one_way_generator_loss(D: nn.Module, fake: torch.Tensor, sent_emb: torch.Tensor, contrastive_weight: float = 0.0,
                           contrastive_temperature: float = 0.1,
                           contrastive_floor: float = 0.0) -> tuple[torch.Tensor, dict]:
    """DF-GAN's G objective ``-E[D(G(z, e), e)]`` [DF-GAN, Eq. 4], + ``contrastive_weight`` times
    the :func:`contrastive_loss` that makes each image pick out its own caption in D's embedding
    space (optional), flooded at ``contrastive_floor`` b > 0 [Ishida et al., ICML 2020]:
    ``|L - b| + b``."""
    fake_feats = D.features(fake)
    loss = g_hinge_loss(D.logits(fake_feats, sent_emb))
    logs = {"g_adv": loss.item()}
    if contrastive_weight:
        con = contrastive_loss(*D.embeddings(fake_feats, sent_emb), contrastive_temperature)
        if contrastive_floor:
            con = (con - contrastive_floor).abs() + contrastive_floor
        loss = loss + contrastive_weight * con
        logs["g_contrastive"] = con.item()
    return loss, logs


def _noise_ratio(fake_a: torch.Tensor, fake_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                 per_sample: bool) -> torch.Tensor:
    """``mean |fake_a - fake_b| / mean |z_a - z_b|``: how far the images move per unit of noise, over
    the batch or (``per_sample``) per pair (B,)."""
    if per_sample:
        return (fake_a - fake_b).abs().flatten(1).mean(1) / (z_a - z_b).abs().flatten(1).mean(1).clamp_min(1e-8)
    return (fake_a - fake_b).abs().mean() / (z_a - z_b).abs().mean().clamp_min(1e-8)


def mode_seeking_loss(fake_a: torch.Tensor, fake_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                      eps: float = 1e-5) -> torch.Tensor:
    """Mode-seeking term of G [MSGAN, Mao et al., CVPR 2019, Eq. 3]: ``1 / (d_I / d_z + eps)`` with
    ``d_I = mean |G(c, z_a) - G(c, z_b)|`` and ``d_z = mean |z_a - z_b|`` over the batch (pixel L1,
    as the authors' code measures it); minimising it makes two noises of one condition give two
    images. ``fake_a[i]`` and ``fake_b[i]`` share a condition."""
    return 1.0 / (_noise_ratio(fake_a, fake_b, z_a, z_b, per_sample=False) + eps)


def diversity_sensitive_loss(fake_a: torch.Tensor, fake_b: torch.Tensor, z_a: torch.Tensor, z_b: torch.Tensor,
                             tau: float = 1.0) -> torch.Tensor:
    """Diversity-sensitive term of G [DSGAN, Yang et al., ICLR 2019, Eq. 2-3]:
    ``-E[min(||G(c, z_a) - G(c, z_b)||_1 / ||z_a - z_b||_1, tau)]``, per pair (mean absolute
    differences), bounded by ``tau`` so G is not paid for moving further once images differ enough."""
    return -_noise_ratio(fake_a, fake_b, z_a, z_b, per_sample=True).clamp(max=tau).mean()


def noise_use_loss(c: DFGANConfig, generate, fake: torch.Tensor, noise: torch.Tensor) -> tuple:
    """G's noise-use terms of config ``c``: ``generate(noise_b)`` draws a second image of each caption
    from fresh noise, compared with ``fake = generate(noise)`` (:func:`mode_seeking_loss`,
    :func:`diversity_sensitive_loss`). Returns ``(weighted sum, logs)``; ``(0.0, {})`` when both are off."""
    if not (c.mode_seeking_weight or c.diversity_sensitive_weight):
        return 0.0, {}
    noise_b = torch.randn_like(noise)
    fake_b = generate(noise_b)
    total, logs = 0.0, {}
    if c.mode_seeking_weight:
        term = mode_seeking_loss(fake, fake_b, noise, noise_b)
        total = total + c.mode_seeking_weight * term
        logs["g_mode_seeking"] = term.item()
    if c.diversity_sensitive_weight:
        term = diversity_sensitive_loss(fake, fake_b, noise, noise_b, c.diversity_sensitive_tau)
        total = total + c.diversity_sensitive_weight * term
        logs["g_diversity_sensitive"] = term.item()
    return total, logs


# ---------------------------------------------------------------------------------------------
# the model


@register_model("dfgan", DFGANConfig)
class DFGAN(T2IModel):
    unsaved_modules = ("damsm_critic", "feature_network")

    def __init__(self, config: DFGANConfig):
        super().__init__(config)
        c = config
        self.text_encoder = self.build_text_encoder()
        self.damsm_critic = build_damsm_critic("dfgan", c)
        self.text_encoder.requires_grad_(self.text_encoder_trainable)
        self.generator = Generator(c.nf, c.z_dim, c.cond_dim, c.image_size, c.sentence_in_fc, c.g_noise_injection)
        self.feature_network = build_d_backbone(c)  # the frozen network a projected D reads (None: D reads pixels)
        self.discriminator = one_way_discriminator(c, self.feature_network, minibatch_std_group=c.d_minibatch_std)

    def generate_from_text(self, text, noise, generator_module=None) -> SampleOutput:
        G = generator_module or self.generator
        return SampleOutput(G(noise, text.sent_emb))

    def d_loss(self, batch, state):
        """[DF-GAN, Eq. 3]: hinge on (real, e), (fake, e), (real, e_mis) + MA-GP on (real, e)
        (:func:`one_way_discriminator_loss`, mismatched pairs rolled as the official code), + the
        optional contrastive term."""
        c = self.config
        images = c.d_view(batch["image"]).detach().requires_grad_(True)
        text = self.encode_text(batch["tokens"], batch["lengths"])
        sent_emb = text.sent_emb
        if not sent_emb.requires_grad:
            sent_emb = sent_emb.detach().requires_grad_(True)
        g_sent = sent_emb.detach()  # G never back-propagates into the text encoder
        noise = self.draw_noise(batch)
        fake = self.generator(noise, g_sent)
        state.update(fake=fake, noise=noise, sent_emb=g_sent, text=text.detach())
        return one_way_discriminator_loss(self.discriminator, images, sent_emb, c.d_view(fake), c.ma_gp_weight,
                                          c.ma_gp_power, "roll", **c.contrastive_terms())

    def g_loss(self, batch, state):
        """[DF-GAN, Eq. 4]: ``-E[D(G(z, e), e)]`` (+ the optional contrastive and DAMSM terms, the
        latter ``lambda * L_DAMSM`` [AttnGAN, Eq. 14] SSA-GAN's, not DF-GAN's; + the optional noise-use
        terms, :func:`noise_use_loss`)."""
        c = self.config
        loss, logs = one_way_generator_loss(self.discriminator, c.d_view(state["fake"]), state["sent_emb"],
                                            **c.contrastive_terms(), contrastive_floor=c.contrastive_floor)
        loss = self.damsm_critic.add_to(loss, logs, c.damsm_loss_weight, state["fake"], state["text"], batch)
        variety, variety_logs = noise_use_loss(c, lambda z: self.generator(z, state["sent_emb"]), state["fake"],
                                               state["noise"])
        loss = loss + variety
        return loss, logs | variety_logs | {"g_loss": loss.item()}
