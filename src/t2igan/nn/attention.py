"""AttnGAN's word attention, which AttnGAN, MirrorGAN (GLAM) and DR-GAN (SDM) stages share."""

from __future__ import annotations

import torch
from torch import nn


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
