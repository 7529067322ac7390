"""Loss terms that several model families share; pure functions, tensors in, scalar tensor out.

A family's own objectives live in its module, next to its networks: DF-GAN's hinge and MA-GP in
:mod:`t2igan.models.dfgan`, AttnGAN's stage losses in :mod:`t2igan.models.attngan`, the DAMSM
losses in :mod:`t2igan.models.damsm`, DR-GAN's SDL/DNM terms in :mod:`t2igan.models.drgan`.

Discriminators everywhere return *logits*, scored with BCE-with-logits or a hinge; never a sigmoid
followed by ``BCELoss``, which loses precision and is unsafe under autocast.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bce_logits_loss(logits: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """``BCEWithLogits`` against all-ones or all-zeros (AttnGAN / GAN-INT-CLS adversarial terms)."""
    target = torch.ones_like(logits) if target_is_real else torch.zeros_like(logits)
    return F.binary_cross_entropy_with_logits(logits, target)


def kl_normal_loss(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, sigma^2) || N(0, I))`` averaged over batch and dimensions (conditioning augmentation,
    StackGAN/AttnGAN: ``-1/2 mean(1 + logvar - mu^2 - exp(logvar))``)."""
    return -0.5 * torch.mean(1 + logvar - mu.pow(2) - logvar.exp())


def mismatched(x: torch.Tensor, shift: int = 1) -> torch.Tensor:
    """Pair each sample with another one's condition by rolling the batch (DF-GAN's mismatched pairs)."""
    return torch.roll(x, shifts=shift, dims=0)


MISMATCH_FORMS = ("shift", "roll")


def mismatched_pairs(features: torch.Tensor, cond: torch.Tensor, form: str = "shift") -> tuple[torch.Tensor, torch.Tensor]:
    """``(features, conditions)`` of mismatched pairs for a discriminator's ``(real, e_wrong)`` term.

    * ``"shift"`` (official AttnGAN, MirrorGAN, DR-GAN and SSA-GAN code): ``B - 1`` pairs, sample
      ``i`` with condition ``i + 1``;
    * ``"roll"`` (official DF-GAN code, :func:`mismatched`): ``B`` pairs, sample ``j`` with
      condition ``j - 1``; every sample is used.
    """
    if form not in MISMATCH_FORMS:
        raise ValueError(f"mismatch form must be one of {', '.join(MISMATCH_FORMS)}, got {form!r}")
    if features.shape[0] < 2:
        raise ValueError("mismatched pairs need a batch of at least 2 samples")
    if form == "shift":
        return features[:-1], cond[1:]
    return features, mismatched(cond)
