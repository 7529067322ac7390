"""Convolution blocks shared by the model families: AttnGAN's GLU blocks (also MirrorGAN's and
DR-GAN's), the discriminator down-sampling blocks, the official AttnGAN initialisation, and
DF-GAN's residual down-block and channel plan (also SSA-GAN's)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def glu(x: torch.Tensor) -> torch.Tensor:
    """Gated linear unit over channels: ``a * sigmoid(b)`` for ``x = [a, b]``."""
    return F.glu(x, dim=1)


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False)


def rgb_head(channels: int) -> nn.Sequential:
    """A stage's image: conv3x3 to 3 channels + tanh."""
    return nn.Sequential(conv3x3(channels, 3), nn.Tanh())


def init_weights(module: nn.Module, form: str = "attngan") -> None:
    """The official initialisation of AttnGAN (``"attngan"``: orthogonal conv and linear weights,
    zero linear biases) or of DCGAN / GAN-INT-CLS (``"dcgan"``: conv and transposed-conv weights
    N(0, 0.02), zero conv biases, linear layers left as PyTorch makes them); both draw BN scales
    from N(1, 0.02) and zero the BN shifts."""
    if form == "attngan":
        layers, zero_bias = (nn.Conv1d, nn.Conv2d, nn.Linear), (nn.Linear,)
        init = nn.init.orthogonal_
    else:
        layers = zero_bias = (nn.Conv2d, nn.ConvTranspose2d)
        init = lambda w: nn.init.normal_(w, 0.0, 0.02)  # noqa: E731
    for m in module.modules():
        if isinstance(m, layers):
            init(m.weight)
            if isinstance(m, zero_bias) and m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


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


def down_block(in_ch: int, out_ch: int, norm: bool = True) -> nn.Sequential:
    """Conv 4x4 stride 2 (+ BN) + leaky ReLU: halves the side."""
    layers = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(out_ch))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2, inplace=True))


def same_block(in_ch: int, out_ch: int) -> nn.Sequential:
    """Conv 3x3 + BN + leaky ReLU: keeps the side."""
    return nn.Sequential(conv3x3(in_ch, out_ch), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2, inplace=True))


def strip_batch_norm(module: nn.Module) -> None:
    """In place: every BatchNorm2d becomes an identity and every bias-free conv gets a bias."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, nn.Identity())
        elif isinstance(child, nn.Conv2d) and child.bias is None:
            setattr(module, name, nn.Conv2d(child.in_channels, child.out_channels, child.kernel_size,
                                            child.stride, child.padding, bias=True))
        else:
            strip_batch_norm(child)


def add_spectral_norm(module: nn.Module) -> None:
    """In place: spectral normalisation [Miyato et al. 2018] of every conv's weight."""
    from torch.nn.utils.parametrizations import spectral_norm

    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            spectral_norm(m)


# ---------------------------------------------------------------------------------------------
# DF-GAN's backbone pieces (DF-GAN, SSA-GAN)


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


def channel_plan(nf: int, image_size: int, max_mult: int = 8) -> list[int]:
    """Channel counts from 4x4 up to ``image_size``: ``nf * min(2^k, max_mult)``, widest at 4x4
    (``max_mult`` 16 gives the wider 2021 DF-GAN / SSA-GAN discriminator)."""
    n = int(math.log2(image_size)) - 1
    if 2 ** (n + 1) != image_size or image_size < 16:
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size}")
    return [nf * min(2**k, max_mult) for k in range(n)][::-1]  # e.g. 64 px: [8nf, 8nf, 4nf, 2nf, nf]


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
    space (``image_proj``, ``text_proj``) for :func:`t2igan.losses.contrastive_loss`; the image side
    reads the ``4 x 4`` features flattened (``contrastive_pool="flatten"``, keeps where things are:
    positions and relations are half of what a Shapes caption says) or summed (``"sum"``)."""

    def __init__(self, nf: int, cond_dim: int, image_size: int, max_mult: int = 8, contrastive_dim: int = 0,
                 contrastive_pool: str = "flatten", gamma_init: float = 0.0):
        super().__init__()
        chs = channel_plan(nf, image_size, max_mult)[::-1]  # nf ... max_mult * nf
        self.from_rgb = nn.Conv2d(3, chs[0], 3, 1, 1)
        self.blocks = nn.Sequential(*(DBlock(i, o, gamma_init) for i, o in zip(chs[:-1], chs[1:])))
        self.joint = nn.Sequential(
            nn.Conv2d(chs[-1] + cond_dim, 2 * nf, 3, 1, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(2 * nf, 1, 4, 1, 0, bias=False),
        )
        if contrastive_pool not in ("flatten", "sum"):
            raise ValueError(f"contrastive_pool must be flatten or sum, got {contrastive_pool!r}")
        self.contrastive_pool = contrastive_pool
        if contrastive_dim:  # projections into a shared space for the contrastive term
            self.image_proj = nn.Linear(chs[-1] * (16 if contrastive_pool == "flatten" else 1), contrastive_dim)
            self.text_proj = nn.Linear(cond_dim, contrastive_dim)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.from_rgb(images))  # (B, max_mult * nf, 4, 4)

    def logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = sent_emb[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.joint(torch.cat([features, cond], dim=1)).flatten()  # (B,)

    def embeddings(self, features: torch.Tensor, sent_emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and sentence embeddings for the contrastive term: 4x4 features flattened (or summed), projected."""
        pooled = features.flatten(1) if self.contrastive_pool == "flatten" else features.sum(dim=(2, 3))
        return self.image_proj(pooled), self.text_proj(sent_emb)
