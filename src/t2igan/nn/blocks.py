"""Blocks that several model families share: AttnGAN's GLU blocks, down-sampling blocks and
conditioning augmentation (also MirrorGAN's and DR-GAN's), and the official AttnGAN / DCGAN
initialisations (GAN-INT-CLS uses the latter)."""

from __future__ import annotations

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


class ConditioningAugmentation(nn.Module):
    """``e_bar -> (c, mu, logvar)``: FC to ``4 c_dim``, GLU, split into mu and log sigma^2;
    ``c = mu + sigma * eps`` in training, ``c = mu`` in eval mode [StackGAN, Sec. 3.1; AttnGAN]
    unless ``eps`` is given (then ``c = mu + sigma * eps`` in eval mode too, as the official AttnGAN
    code samples) (also DR-GAN's DNM encoder)."""

    def __init__(self, sent_dim: int, c_dim: int):
        super().__init__()
        self.c_dim = c_dim
        self.fc = nn.Linear(sent_dim, 4 * c_dim)

    def forward(self, sent_emb: torch.Tensor, eps: torch.Tensor | None = None):
        mu, logvar = glu(self.fc(sent_emb)).split(self.c_dim, dim=1)  # (B, c), (B, c)
        if self.training and eps is None:
            eps = torch.randn_like(mu)
        if eps is None:
            return mu, mu, logvar
        return mu + eps * (0.5 * logvar).exp(), mu, logvar
