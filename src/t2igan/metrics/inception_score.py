"""Inception score [Salimans et al., NeurIPS 2016, "Improved Techniques for Training GANs", Sec. 4]:

    IS = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x)

computed per split and reported as mean and (population) std over splits, matching the original code
(``openai/improved-gan``, ``inception_score/model.py``; StackGAN/AttnGAN use the same split rule:
split k covers rows ``k*N//splits`` to ``(k+1)*N//splits``).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import T2IError


def inception_score(probs: np.ndarray | torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """Class probabilities (N, C) (rows are softmax outputs) -> (mean, std) of the IS over ``splits``."""
    if isinstance(probs, torch.Tensor):
        probs = probs.detach().cpu().numpy()
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise T2IError(f"inception_score needs (N, C) probabilities, got shape {probs.shape}")
    n = probs.shape[0]
    if not 1 <= splits <= n:
        raise T2IError(f"inception_score needs 1 <= splits <= N, got splits={splits}, N={n}")
    if probs.min() < 0 or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise T2IError("inception_score needs probabilities (non-negative rows summing to 1), not logits")
    scores = []
    for k in range(splits):
        part = probs[k * n // splits:(k + 1) * n // splits]  # (n_k, C)
        marginal = part.mean(axis=0, keepdims=True)  # p(y), (1, C)
        # KL(p(y|x) || p(y)) per row; 0 log 0 = 0 (p(y) > 0 wherever p(y|x) > 0)
        ratio = np.where(part > 0, part / np.where(marginal > 0, marginal, 1.0), 1.0)
        kl = (part * np.log(ratio)).sum(axis=1)  # (n_k,)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
