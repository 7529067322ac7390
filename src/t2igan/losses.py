"""Loss functions, pure: tensors in, scalar tensor out. Names read like the equations.

Discriminators everywhere return *logits*; no sigmoid + BCELoss (SPEC pitfall: it breaks under
autocast).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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
