"""DF-GAN [Tao et al., CVPR 2022]: one-stage generator of deep text-image fusion blocks, one-way
discriminator with hinge loss on (real, matched), (fake, matched), (real, mismatched) pairs and the
matching-aware gradient penalty (MA-GP).

Shapes follow the official 2022 code: G maps z (100) through an FC to ``8nf x 4 x 4``, then up-blocks
double the resolution up to ``image_size``; each up-block is two deep-fusion blocks (two stacked
text-conditioned affines, each followed by leaky ReLU) around 3x3 convs with a learned shortcut.
The affine's condition is ``[z, sent_emb]``. D down-samples to ``8nf x 4 x 4``; the conditional head
concatenates the sentence, replicated spatially, and applies two convs.

Where t2igan offers more than the official code (github.com/tobran/DF-GAN), the official behaviour
is the default, the presets' ``-cub``/``-coco`` setting and that of a converted checkpoint:

* ``truncation_form``: the official sampler draws ``trunc_rate * TN(-2, 2)`` (``"scaled"``, std
  0.77 at 0.88); ``"clip"`` cuts ``N(0, 1)`` to ``[-0.88, 0.88]`` (std 0.48: less varied, often
  cleaner images; used by ``dfgan-shapes``). FIDs of the two differ. Run folders saved before the
  option existed load with ``"clip"``, the form they were sampled with (``hub.LEGACY_MODEL_FIELDS``).
* The official code keeps no moving average of G, so ``dfgan-cub``/``dfgan-coco`` set
  ``train.ema_decay: 0``; the trainer's 0.999 average is the option.
* :class:`~t2igan.models.base.DFGANFamilyOptions` (shared with SSA-GAN, all off by default): the
  image-sentence contrastive term, D's residual gates starting open (``d_gamma_init``), DiffAugment
  translation in D (``d_translate``), the sentence in G's first FC (``sentence_in_fc``), SSA-GAN's
  DAMSM term in G (``damsm_weight``; its image encoder comes from ``damsm_weights``). The
  ``dfgan-shapes`` preset's choice among them is measured in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError
from ..losses import one_way_discriminator_loss, one_way_generator_loss
from ..nn.blocks import OneWayDiscriminator, channel_plan
from ..nn.conditioning import Affine
from ..registry import register_model
from .base import DFGANFamilyOptions, TRUNCATION_FORMS, SampleOutput, T2IModel
from .damsm import build_damsm_critic


@dataclass
class DFGANConfig(DFGANFamilyOptions):
    vocab_size: int = 5000  # words in the vocabulary (set from the data)
    image_size: int = 256  # output side, a power of two >= 16
    nf: int = 32  # base channel width of G and D (official 32)
    z_dim: int = 100  # noise size
    text_emb_dim: int = 300  # text encoder word embedding
    text_hidden_dim: int = 128  # per LSTM direction; sentence feature is 2x this (256)
    text_dropout: float = 0.5
    text_encoder_mode: str = "frozen"  # frozen (official: a pretrained DAMSM) | joint_d (trained with D's loss)
    text_encoder_lr: float | None = None  # learning rate of a trainable text encoder (default: G's)
    ma_gp_weight: float = 2.0  # k in MA-GP
    ma_gp_power: float = 6.0  # p in MA-GP
    truncation: float = 0.88  # noise truncation at sampling (0 = none); DF-GAN's trunc_rate
    truncation_form: str = "scaled"  # scaled: official, 0.88 * N(0,1) cut to [-2, 2] | clip: N(0,1) cut to [-0.88, 0.88]

    @property
    def cond_dim(self) -> int:
        return 2 * self.text_hidden_dim


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

    def __init__(self, cond_dim: int, in_ch: int, out_ch: int, upsample: bool = True):
        super().__init__()
        self.upsample = upsample
        self.fuse0 = FusionBlock(cond_dim, in_ch)
        self.conv0 = nn.Conv2d(in_ch, out_ch, 3, 1, 1)
        self.fuse1 = FusionBlock(cond_dim, out_ch)
        self.conv1 = nn.Conv2d(out_ch, out_ch, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, h, cond):
        if self.upsample:
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        res = self.conv1(self.fuse1(self.conv0(self.fuse0(h, cond)), cond))
        return self.shortcut(h) + res


class Generator(nn.Module):
    def __init__(self, nf: int, z_dim: int, cond_dim: int, image_size: int, sentence_in_fc: bool = False):
        super().__init__()
        chs = channel_plan(nf, image_size)
        self.sentence_in_fc = sentence_in_fc
        self.fc = nn.Linear(z_dim + (cond_dim if sentence_in_fc else 0), chs[0] * 4 * 4)
        self.blocks = nn.ModuleList(GBlock(z_dim + cond_dim, i, o) for i, o in zip(chs[:-1], chs[1:]))
        self.to_rgb = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(chs[-1], 3, 3, 1, 1), nn.Tanh())

    def forward(self, noise: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([noise, sent_emb], dim=1)  # (B, z + D)
        h = self.fc(cond if self.sentence_in_fc else noise).view(noise.shape[0], -1, 4, 4)  # (B, 8nf, 4, 4)
        for block in self.blocks:
            h = block(h, cond)
        return self.to_rgb(h)  # (B, 3, S, S)


@register_model("dfgan", DFGANConfig)
class DFGAN(T2IModel):
    unsaved_modules = ("damsm_critic",)

    def __init__(self, config: DFGANConfig):
        super().__init__(config)
        c = config
        if c.truncation_form not in TRUNCATION_FORMS:
            raise T2IError(f"truncation_form must be one of {', '.join(TRUNCATION_FORMS)}, got {c.truncation_form!r}")
        self.text_encoder = self.build_text_encoder()
        self.damsm_critic = build_damsm_critic("dfgan", c, self.text_encoder)
        self.text_encoder.requires_grad_(self.text_encoder_trainable)
        self.generator = Generator(c.nf, c.z_dim, c.cond_dim, c.image_size, c.sentence_in_fc)
        self.discriminator = OneWayDiscriminator(c.nf, c.cond_dim, c.image_size,
                                                 **c.discriminator_args())

    def generate_from_text(self, text, noise, generator_module=None) -> SampleOutput:
        G = generator_module or self.generator
        return SampleOutput(G(noise, text.sent_emb))

    def d_loss(self, batch, state):
        """[DF-GAN, Eq. 3]: hinge on (real, e), (fake, e), (real, e_mis) + MA-GP on (real, e)
        (:func:`t2igan.losses.one_way_discriminator_loss`, mismatched pairs rolled as the official
        code), + the optional contrastive term."""
        c = self.config
        images = c.d_view(batch["image"]).detach().requires_grad_(True)
        text = self.encode_text(batch["tokens"], batch["lengths"])
        sent_emb = text.sent_emb
        if not sent_emb.requires_grad:
            sent_emb = sent_emb.detach().requires_grad_(True)
        g_sent = sent_emb.detach()  # G never back-propagates into the text encoder
        fake = self.generator(self.draw_noise(batch), g_sent)
        state.update(fake=fake, sent_emb=g_sent, text=text.detach())
        return one_way_discriminator_loss(self.discriminator, images, sent_emb, c.d_view(fake), c.ma_gp_weight,
                                          c.ma_gp_power, "roll", **c.contrastive_terms())

    def g_loss(self, batch, state):
        """[DF-GAN, Eq. 4]: ``-E[D(G(z, e), e)]`` (+ the optional contrastive and DAMSM terms; the
        latter ``lambda * L_DAMSM`` [AttnGAN, Eq. 8] is SSA-GAN's, not DF-GAN's)."""
        c = self.config
        loss, logs = one_way_generator_loss(self.discriminator, c.d_view(state["fake"]), state["sent_emb"],
                                            **c.contrastive_terms())
        loss = self.damsm_critic.add_to(loss, logs, c.damsm_loss_weight, state["fake"], state["text"], batch)
        return loss, logs | {"g_loss": loss.item()}
