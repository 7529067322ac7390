"""The multi-stage generator and the per-stage discriminators of AttnGAN [Xu et al., CVPR 2018],
which MirrorGAN and DR-GAN configure with their own attention stages (and DR-GAN with its own
discriminator stages).

Generator [AttnGAN, Eq. 1]::

    h_0 = F_0(z, F_ca(e_bar))                       c = F_ca(e_bar): conditioning augmentation
    h_i, attn_i = F_i(h_{i-1}, c, e)                for i = 1 .. m-1 (a family's attention stage)
    x_i = G_i(h_i)                                  a 3x3 conv + tanh per stage

* F_0 (:class:`InitialStage`): ``FC([c, z]) -> 2 * (2^k ngf) x 4 x 4``, BN, GLU, then ``k``
  up-blocks, each halving the channels, to ``ngf x base_size x base_size`` (official: 16 ngf at
  4x4, four up-blocks, 64 px).
* F_i: any module ``stage(h, c_code, word_embs, mask) -> (h', attn, parts)`` doubling the side;
  AttnGAN's :class:`AttentionStage`, MirrorGAN's :class:`GLAMStage`, DR-GAN's SDM stage
  (``parts``: what a family's losses need from inside the stage, else None).

Discriminators: one per stage (:class:`StageDiscriminator`), down-sampling the stage's image to
``4 x 4``; an unconditional logit and a sentence-conditional logit. Logits, never sigmoids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError
from .attention import SentenceAttention, WordAttention
from .blocks import ResidualBlock, UpBlock, down_block, glu, rgb_head, same_block, strip_batch_norm
from .conditioning import ConditioningAugmentation


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


class AttentionStage(nn.Module):
    """AttnGAN's F_i: ``[h, F_attn(e, h)]`` -> residual blocks -> up x2: ``ngf x s x s -> ngf x 2s x 2s``."""

    def __init__(self, ngf: int, word_dim: int, num_residual: int):
        super().__init__()
        self.attention = WordAttention(ngf, word_dim)
        self.residual = nn.Sequential(*(ResidualBlock(2 * ngf) for _ in range(num_residual)))
        self.up = UpBlock(2 * ngf, ngf)

    def forward(self, h, c_code, word_embs, mask):
        context, attn = self.attention(h, word_embs, mask)
        return self.up(self.residual(torch.cat([h, context], dim=1))), attn, None


class GLAMStage(nn.Module):
    """MirrorGAN's F_i with global-local attention [MirrorGAN, Sec. 3.2]: ``[f, att_w, att_s]``
    (3 ngf) -> 1x1 conv to 2 ngf -> residual blocks -> up x2: ``ngf x s x s -> ngf x 2s x 2s``."""

    def __init__(self, ngf: int, word_dim: int, c_dim: int, num_residual: int, sentence_conv: bool = True):
        super().__init__()
        self.word_attention = WordAttention(ngf, word_dim)
        self.sentence_attention = SentenceAttention(ngf, c_dim, sentence_conv)
        self.fuse = nn.Conv2d(3 * ngf, 2 * ngf, 1, bias=False)
        self.residual = nn.Sequential(*(ResidualBlock(2 * ngf) for _ in range(num_residual)))
        self.up = UpBlock(2 * ngf, ngf)

    def forward(self, h, c_code, word_embs, mask):
        word_context, word_attn = self.word_attention(h, word_embs, mask)  # (B, ngf, s, s), (B, T, s, s)
        sent_context, _ = self.sentence_attention(h, c_code)  # (B, ngf, s, s)
        h = self.fuse(torch.cat([h, word_context, sent_context], dim=1))  # (B, 2 ngf, s, s)
        return self.up(self.residual(h)), word_attn, None


@dataclass
class GeneratorOutput:
    """What :class:`MultiStageGenerator` returns; unpacks as ``images, attention, mu, logvar``."""

    images: list  # per stage (B, 3, s, s)
    attention: list  # per attention stage (B, T, s, s)
    mu: torch.Tensor  # CA (B, c_dim)
    logvar: torch.Tensor
    parts: list  # per attention stage: what the stage exposes for the losses (DR-GAN's SDM parts), or None

    def __iter__(self):
        return iter((self.images, self.attention, self.mu, self.logvar))


class MultiStageGenerator(nn.Module):
    """CA, F_0, ``num_stages - 1`` attention stages made by ``make_stage()`` and an image head per stage."""

    def __init__(self, ngf: int, z_dim: int, c_dim: int, sent_dim: int, base_size: int, num_stages: int,
                 make_stage: Callable[[], nn.Module]):
        super().__init__()
        self.ca = ConditioningAugmentation(sent_dim, c_dim)
        self.initial = InitialStage(ngf, z_dim + c_dim, base_size)
        self.stages = nn.ModuleList(make_stage() for _ in range(num_stages - 1))
        self.to_rgb = nn.ModuleList(rgb_head(ngf) for _ in range(num_stages))

    def forward(self, noise, sent_emb, word_embs, mask) -> GeneratorOutput:
        c_code, mu, logvar = self.ca(sent_emb)
        h = self.initial(noise, c_code)
        images, attention, parts = [self.to_rgb[0](h)], [], []
        for stage, to_rgb in zip(self.stages, self.to_rgb[1:]):
            h, attn, part = stage(h, c_code, word_embs, mask)
            images.append(to_rgb(h))
            attention.append(attn)
            parts.append(part)
        return GeneratorOutput(images, attention, mu, logvar, parts)


class StageDiscriminator(nn.Module):
    """D_i for ``image_size`` images: features ``(B, out_ch, 4, 4)``, then an unconditional and a
    sentence-conditional logit.

    Official layout, generalised to any power-of-two side >= 8: up to four stride-2 convs
    ``3 -> ndf -> 2ndf -> 4ndf -> 8ndf`` (a 64 px image reaches 4x4 there); each further halving
    doubles the channels (128 px: ``16 ndf``, 256 px: ``32 ndf``) and 3x3 blocks then halve them
    back to ``8 ndf``. Images under 64 px stop earlier, at ``2^(n-1) ndf`` channels.

    ``batch_norm=False`` drops the batch norms (the convs get biases). D sees the real and the fake
    images in separate batches, so with batch norm it normalises away a colour shift that every fake
    shares: on Shapes (one flat background colour) the multi-stage Gs drift to a white background.
    """

    def __init__(self, ndf: int, cond_dim: int, image_size: int, uncond_logits: bool = True,
                 batch_norm: bool = True):
        super().__init__()
        n_down = int(math.log2(image_size // 4))
        if n_down < 1 or 4 * 2**n_down != image_size:
            raise T2IError(f"discriminator image size must be a power of two >= 8, got {image_size}")
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
        if not batch_norm:
            strip_batch_norm(self.features)
            strip_batch_norm(self.joint)

    def cond_logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = sent_emb[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.cond_out(self.joint(torch.cat([features, cond], dim=1))).flatten()  # (B,)

    def uncond_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        return None if self.uncond_out is None else self.uncond_out(features).flatten()  # (B,)


class StageDiscriminators(nn.Module):
    """The per-stage discriminators, one module so that one optimizer trains them all (they share
    no parameters, so this equals the official one Adam per D)."""

    def __init__(self, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def __getitem__(self, i: int) -> StageDiscriminator:
        return self.stages[i]

    def __iter__(self):
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)


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
