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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError
from ..losses import contrastive_loss, d_hinge_loss, g_hinge_loss, matching_aware_gradient_penalty, mismatched
from ..registry import register_model
from .base import TRUNCATION_FORMS, SampleOutput, T2IModel


@dataclass
class DFGANConfig:
    vocab_size: int = 5000  # words in the vocabulary (set from the data)
    image_size: int = 256  # output side, a power of two >= 16
    nf: int = 32  # base channel width of G and D (official 32)
    z_dim: int = 100  # noise size
    text_emb_dim: int = 300  # text encoder word embedding
    text_hidden_dim: int = 128  # per LSTM direction; sentence feature is 2x this (256)
    text_dropout: float = 0.5
    text_encoder_mode: str = "frozen"  # frozen (official: a pretrained DAMSM) | joint_d (trained with D's loss)
    text_encoder_lr: float | None = None  # learning rate of a trainable text encoder (default: G's)
    text_encoder_weights: str | None = None  # safetensors of a pretrained text encoder (DAMSM)
    ma_gp_weight: float = 2.0  # k in MA-GP
    ma_gp_power: float = 6.0  # p in MA-GP
    truncation: float = 0.88  # noise truncation at sampling (0 = none); DF-GAN's trunc_rate
    truncation_form: str = "scaled"  # scaled: official, 0.88 * N(0,1) cut to [-2, 2] | clip: N(0,1) cut to [-0.88, 0.88]
    contrastive_weight: float = 0.0  # lambda of the image-sentence contrastive term in D and G (0 = off; not in the paper)
    contrastive_dim: int = 128  # size of D's shared image/sentence embedding space for that term
    contrastive_temperature: float = 0.1

    @property
    def cond_dim(self) -> int:
        return 2 * self.text_hidden_dim


def channel_plan(nf: int, image_size: int, max_mult: int = 8) -> list[int]:
    """Channel counts from 4x4 up to ``image_size``: ``nf * min(2^k, max_mult)``, widest at 4x4
    (``max_mult`` 16 gives the wider 2021 DF-GAN / SSA-GAN discriminator)."""
    n = int(math.log2(image_size)) - 1
    if 2 ** (n + 1) != image_size or image_size < 16:
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
    return [nf * min(2**k, max_mult) for k in range(n)][::-1]  # e.g. 64 px: [8nf, 8nf, 4nf, 2nf, nf]


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
    def __init__(self, nf: int, z_dim: int, cond_dim: int, image_size: int):
        super().__init__()
        chs = channel_plan(nf, image_size)
        self.fc = nn.Linear(z_dim, chs[0] * 4 * 4)
        self.blocks = nn.ModuleList(GBlock(z_dim + cond_dim, i, o) for i, o in zip(chs[:-1], chs[1:]))
        self.to_rgb = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(chs[-1], 3, 3, 1, 1), nn.Tanh())

    def forward(self, noise: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = torch.cat([noise, sent_emb], dim=1)  # (B, z + D)
        h = self.fc(noise).view(noise.shape[0], -1, 4, 4)  # (B, 8nf, 4, 4)
        for block in self.blocks:
            h = block(h, cond)
        return self.to_rgb(h)  # (B, 3, S, S)


class DBlock(nn.Module):
    """Down-block: ``shortcut(avgpool(x)) + gamma * res(x)`` with ``gamma`` learned from 0."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.res = nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.shortcut = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return self.shortcut(F.avg_pool2d(x, 2)) + self.gamma * self.res(x)


class Discriminator(nn.Module):
    """One-way discriminator: ``features(x)`` then ``logits(features, sent_emb)``."""

    def __init__(self, nf: int, cond_dim: int, image_size: int, max_mult: int = 8, contrastive_dim: int = 0):
        super().__init__()
        chs = channel_plan(nf, image_size, max_mult)[::-1]  # nf ... max_mult * nf
        self.from_rgb = nn.Conv2d(3, chs[0], 3, 1, 1)
        self.blocks = nn.Sequential(*(DBlock(i, o) for i, o in zip(chs[:-1], chs[1:])))
        self.joint = nn.Sequential(
            nn.Conv2d(chs[-1] + cond_dim, 2 * nf, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * nf, 1, 4, 1, 0, bias=False),
        )
        if contrastive_dim:  # projections into a shared space for the contrastive term
            self.image_proj = nn.Linear(chs[-1], contrastive_dim)
            self.text_proj = nn.Linear(cond_dim, contrastive_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.from_rgb(images))  # (B, max_mult * nf, 4, 4)

    def logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = sent_emb[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.joint(torch.cat([features, cond], dim=1)).flatten()  # (B,)

    def embeddings(self, features: torch.Tensor, sent_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and sentence embeddings for the contrastive term: summed 4x4 features, projected."""
        return self.image_proj(features.sum(dim=(2, 3))), self.text_proj(sent_emb)


def load_text_encoder_weights(text_encoder: nn.Module, path: str | None) -> None:
    """Load a pretrained (DAMSM) text encoder from safetensors; errors name the file."""
    if not path:
        return
    from ..hub import load_safetensors_into

    load_safetensors_into(text_encoder, path, prefix="text_encoder.")


@register_model("dfgan", DFGANConfig)
class DFGAN(T2IModel):
    def __init__(self, config: DFGANConfig):
        super().__init__(config)
        c = config
        if c.truncation_form not in TRUNCATION_FORMS:
            raise T2IError(f"truncation_form must be one of {', '.join(TRUNCATION_FORMS)}, got {c.truncation_form!r}")
        self.text_encoder = self.build_text_encoder()
        load_text_encoder_weights(self.text_encoder, c.text_encoder_weights)
        self.text_encoder.requires_grad_(self.text_encoder_trainable)
        self.generator = Generator(c.nf, c.z_dim, c.cond_dim, c.image_size)
        self.discriminator = Discriminator(c.nf, c.cond_dim, c.image_size,
                                           contrastive_dim=c.contrastive_dim if c.contrastive_weight else 0)

    def generate_from_text(self, text, noise, generator_module=None) -> SampleOutput:
        G = generator_module or self.generator
        return SampleOutput(G(noise, text.sent_emb))

    def compute_loss(self, phase, batch, state):
        if phase == "d":
            return self.d_loss(batch, state)
        return self.g_loss(batch, state)

    def d_loss(self, batch, state):
        """[DF-GAN, Eq. 3]: hinge on (real, e), (fake, e), (real, e_mis) + MA-GP on (real, e)."""
        c = self.config
        images = batch["image"].requires_grad_(True)
        text = self.encode_text(batch["tokens"], batch["lengths"])
        sent_emb = text.sent_emb
        if not sent_emb.requires_grad:
            sent_emb = sent_emb.detach().requires_grad_(True)
        g_sent = sent_emb.detach()  # G never back-propagates into the text encoder
        noise = torch.randn(images.shape[0], c.z_dim, device=images.device)
        fake = self.generator(noise, g_sent)
        state.update(fake=fake, sent_emb=g_sent)
        D = self.discriminator
        real_feats = D.features(images)
        real_logits = D.logits(real_feats, sent_emb)
        mis_logits = D.logits(real_feats, mismatched(sent_emb))
        fake_logits = D.logits(D.features(fake.detach()), sent_emb)
        adv = d_hinge_loss(real_logits, fake_logits, mis_logits)
        gp = matching_aware_gradient_penalty(real_logits, images, sent_emb, c.ma_gp_weight, c.ma_gp_power)
        loss = adv + gp
        logs = {}
        if c.contrastive_weight:  # D learns to pair real images with their captions
            con = contrastive_loss(*D.embeddings(real_feats, sent_emb), c.contrastive_temperature)
            loss = loss + c.contrastive_weight * con
            logs["d_contrastive"] = con.item()
        return loss, logs | {
            "d_loss": loss.item(),
            "d_adv": adv.item(),
            "ma_gp": gp.item(),
            "d_real": real_logits.mean().item(),
            "d_fake": fake_logits.mean().item(),
            "d_mismatch": mis_logits.mean().item(),
        }

    def g_loss(self, batch, state):
        """[DF-GAN, Eq. 4]: ``-E[D(G(z, e), e)]``."""
        c, D = self.config, self.discriminator
        fake_feats = D.features(state["fake"])
        loss = g_hinge_loss(D.logits(fake_feats, state["sent_emb"]))
        logs = {"g_adv": loss.item()}
        if c.contrastive_weight:  # G makes its image pick out its own caption in D's embedding space
            con = contrastive_loss(*D.embeddings(fake_feats, state["sent_emb"]), c.contrastive_temperature)
            loss = loss + c.contrastive_weight * con
            logs["g_contrastive"] = con.item()
        return loss, logs | {"g_loss": loss.item()}
