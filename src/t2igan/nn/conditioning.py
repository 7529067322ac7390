"""Text conditioning layers: conditioning augmentation (StackGAN / AttnGAN, also DR-GAN's DNM
encoder), DF-GAN's text-conditioned affine and SSA-GAN's semantic-spatial condition batch norm."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import glu


class ConditioningAugmentation(nn.Module):
    """``e_bar -> (c, mu, logvar)``: FC to ``4 c_dim``, GLU, split into mu and log sigma^2;
    ``c = mu + sigma * eps`` in training, ``c = mu`` in eval mode [StackGAN, Sec. 3.1; AttnGAN]."""

    def __init__(self, sent_dim: int, c_dim: int):
        super().__init__()
        self.c_dim = c_dim
        self.fc = nn.Linear(sent_dim, 4 * c_dim)

    def forward(self, sent_emb: torch.Tensor):
        mu, logvar = glu(self.fc(sent_emb)).split(self.c_dim, dim=1)  # (B, c), (B, c)
        if not self.training:
            return mu, mu, logvar
        return mu + torch.randn_like(mu) * (0.5 * logvar).exp(), mu, logvar


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


class SSCBN(nn.Module):
    """Semantic-spatial condition batch norm [SSA-GAN, Sec. 3.2]:
    ``(gamma(e) m + 1) BN(x) + beta(e) m``, BN without affine.

    The text affine is DF-GAN's :class:`Affine` (``a(h) = g(e) h + beta(e)`` with ``g`` starting
    at 1), so with ``gamma = g - 1`` the formula is ``BN(x) + m (a(BN(x)) - BN(x))``: plain BN where
    ``m = 0``, DF-GAN's affine of ``BN(x)`` where ``m = 1``. The MLPs' hidden width is the sentence
    size, as in the official code.
    """

    def __init__(self, cond_dim: int, num_features: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(num_features, affine=False)
        self.affine = Affine(cond_dim, num_features, hidden_dim=cond_dim)

    def forward(self, x: torch.Tensor, sent_emb: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)  # (B, C, H, W)
        return h + mask * (self.affine(h, sent_emb) - h)  # mask (B, 1, H, W)
