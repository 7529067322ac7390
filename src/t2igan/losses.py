"""Loss functions, pure: tensors (and the networks that score them) in, scalar tensor out. Names
read like the equations.

* adversarial terms: hinge [DF-GAN, Eq. 3-4], MA-GP, BCE with logits, KL of conditioning
  augmentation, contrastive [XMC-GAN];
* DF-GAN's discriminator objective (:func:`one_way_discriminator_loss`, also SSA-GAN's) and its
  generator objective (:func:`one_way_generator_loss`);
* AttnGAN's per-stage objectives (:func:`stage_discriminator_loss`, :func:`stage_generator_loss`,
  also MirrorGAN's and DR-GAN's) and their sums over the stages;
* the DAMSM matching losses [AttnGAN, Eq. 7-14] (:func:`damsm_word_loss`,
  :func:`damsm_sentence_loss`, :func:`damsm_loss`).

Discriminators everywhere return *logits*; no sigmoid + BCELoss (SPEC pitfall: it breaks under
autocast).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .errors import T2IError
from .nn.multistage import image_pyramid
from .nn.text_encoder import TextFeatures

DAMSM_PAPER_FORM = False  # the default form of Eq. 10 everywhere: False = the official code's (no 1/gamma2)


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


# ---------------------------------------------------------------------------------------------------
# DF-GAN's objectives (DF-GAN, SSA-GAN): D with features(x) and logits(features, e)
# ---------------------------------------------------------------------------------------------------


def one_way_discriminator_loss(D: nn.Module, images: torch.Tensor, sent_emb: torch.Tensor, fake: torch.Tensor,
                               ma_gp_weight: float = 2.0, ma_gp_power: float = 6.0, mismatch: str = "shift",
                               with_gp: bool = True, contrastive_weight: float = 0.0,
                               contrastive_temperature: float = 0.1) -> tuple[torch.Tensor, dict]:
    """DF-GAN's D objective [DF-GAN, Eq. 3] (SSA-GAN keeps it): hinge on (real, e), (fake, e),
    (real, e_mismatched) (pairs: :func:`mismatched_pairs`) + MA-GP on (real, e) unless ``with_gp``
    is False, + ``contrastive_weight`` times the image-sentence :func:`contrastive_loss` of D's
    embeddings of the real pairs (optional, not in the paper). ``images`` and ``sent_emb`` must
    require grad for MA-GP."""
    real_feats = D.features(images)
    real_logits = D.logits(real_feats, sent_emb)
    mis_logits = D.logits(*mismatched_pairs(real_feats, sent_emb, mismatch))
    fake_logits = D.logits(D.features(fake.detach()), sent_emb)
    adv = d_hinge_loss(real_logits, fake_logits, mis_logits)
    logs = {"d_adv": adv.item(), "d_real": real_logits.mean().item(), "d_fake": fake_logits.mean().item(),
            "d_mismatch": mis_logits.mean().item()}
    loss = adv
    if with_gp:
        gp = matching_aware_gradient_penalty(real_logits, images, sent_emb, ma_gp_weight, ma_gp_power)
        loss = adv + gp
        logs["ma_gp"] = gp.item()
    if contrastive_weight:  # D learns to pair real images with their captions
        con = contrastive_loss(*D.embeddings(real_feats, sent_emb), contrastive_temperature)
        loss = loss + contrastive_weight * con
        logs["d_contrastive"] = con.item()
    logs["d_loss"] = loss.item()
    return loss, logs


def ma_gp_loss(D: nn.Module, images: torch.Tensor, sent_emb: torch.Tensor, ma_gp_weight: float = 2.0,
               ma_gp_power: float = 6.0) -> tuple[torch.Tensor, dict]:
    """MA-GP alone [DF-GAN, Eq. 3] on D's current logits of the real matched pairs (the official
    SSA-GAN code's second D step). ``images`` and ``sent_emb`` must require grad."""
    real_logits = D.logits(D.features(images), sent_emb)
    gp = matching_aware_gradient_penalty(real_logits, images, sent_emb, ma_gp_weight, ma_gp_power)
    return gp, {"ma_gp": gp.item()}


def one_way_generator_loss(D: nn.Module, fake: torch.Tensor, sent_emb: torch.Tensor, contrastive_weight: float = 0.0,
                           contrastive_temperature: float = 0.1) -> tuple[torch.Tensor, dict]:
    """DF-GAN's G objective ``-E[D(G(z, e), e)]`` [DF-GAN, Eq. 4], + ``contrastive_weight`` times
    the :func:`contrastive_loss` that makes each image pick out its own caption in D's embedding
    space (optional)."""
    fake_feats = D.features(fake)
    loss = g_hinge_loss(D.logits(fake_feats, sent_emb))
    logs = {"g_adv": loss.item()}
    if contrastive_weight:
        con = contrastive_loss(*D.embeddings(fake_feats, sent_emb), contrastive_temperature)
        loss = loss + contrastive_weight * con
        logs["g_contrastive"] = con.item()
    return loss, logs


# ---------------------------------------------------------------------------------------------------
# AttnGAN's per-stage objectives (AttnGAN, MirrorGAN, DR-GAN): D_i with features(x),
# cond_logits(features, e), uncond_logits(features) and uncond_out (None without that logit)
# ---------------------------------------------------------------------------------------------------


def stage_discriminator_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                             sent_emb: torch.Tensor, mismatch: str = "shift") -> tuple[torch.Tensor, dict]:
    """[AttnGAN, Eq. 5] as the official code weights it:
    ``(L(x, 1) + L(x, e, 1)) / 2 + (L(x_hat, 0) + L(x_hat, e, 0) + L(x, e_wrong, 0)) / 3``
    with ``L`` = BCE with logits; without the unconditional logit, ``L(x, e, 1) + (L(x_hat, e, 0)
    + L(x, e_wrong, 0)) / 2``. ``mismatch`` chooses the ``(x, e_wrong)`` pairs (:func:`mismatched_pairs`)."""
    return discriminator_loss_from_features(D, D.features(real), D.features(fake.detach()), sent_emb, mismatch)


def discriminator_loss_from_features(D: nn.Module, real_feats: torch.Tensor, fake_feats: torch.Tensor,
                                     sent_emb: torch.Tensor, mismatch: str = "shift") -> tuple[torch.Tensor, dict]:
    """:func:`stage_discriminator_loss` from D's features of the real and the (detached) fake images,
    for models that read the same features again (DR-GAN's DNM)."""
    cond_real = D.cond_logits(real_feats, sent_emb)
    cond_fake = D.cond_logits(fake_feats, sent_emb)
    cond_wrong = D.cond_logits(*mismatched_pairs(real_feats, sent_emb, mismatch))
    real_terms = [bce_logits_loss(cond_real, True)]
    fake_terms = [bce_logits_loss(cond_fake, False), bce_logits_loss(cond_wrong, False)]
    logs = {"cond_real": cond_real.mean().item(), "cond_fake": cond_fake.mean().item(),
            "cond_wrong": cond_wrong.mean().item()}
    if D.uncond_out is not None:
        uncond_real, uncond_fake = D.uncond_logits(real_feats), D.uncond_logits(fake_feats)
        real_terms.append(bce_logits_loss(uncond_real, True))
        fake_terms.append(bce_logits_loss(uncond_fake, False))
        logs.update(uncond_real=uncond_real.mean().item(), uncond_fake=uncond_fake.mean().item())
    loss = sum(real_terms) / len(real_terms) + sum(fake_terms) / len(fake_terms)
    return loss, logs


def stage_generator_loss(D: nn.Module, fake: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
    """[AttnGAN, Eq. 3] as the official code weights it: ``L(x_hat, 1) + L(x_hat, e, 1)``."""
    return generator_loss_from_features(D, D.features(fake), sent_emb)


def generator_loss_from_features(D: nn.Module, fake_feats: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
    """:func:`stage_generator_loss` from D's features of the fake images."""
    loss = bce_logits_loss(D.cond_logits(fake_feats, sent_emb), True)
    if D.uncond_out is not None:
        loss = loss + bce_logits_loss(D.uncond_logits(fake_feats), True)
    return loss


def multistage_discriminator_loss(discriminators, real: torch.Tensor, fakes: list, sent_emb: torch.Tensor,
                                  mismatch: str = "shift") -> tuple[torch.Tensor, dict]:
    """``sum_i`` :func:`stage_discriminator_loss` of D_i on stage ``i``'s fake images and the real
    images down-sampled to their side (:func:`t2igan.nn.multistage.image_pyramid`), with each
    stage's loss and logits in the logs (``d_loss{i}``, ``d{i}_*``)."""
    reals = image_pyramid(real, [fake.shape[-1] for fake in fakes])
    loss, logs = 0.0, {}
    for i, (D, real_i, fake_i) in enumerate(zip(discriminators, reals, fakes)):
        loss_i, logs_i = stage_discriminator_loss(D, real_i, fake_i, sent_emb, mismatch)
        loss = loss + loss_i
        logs[f"d_loss{i}"] = loss_i.item()
        logs.update({f"d{i}_{k}": v for k, v in logs_i.items()})
    logs["d_loss"] = loss.item()
    return loss, logs


def multistage_generator_loss(discriminators, fakes: list, sent_emb: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """``sum_i`` :func:`stage_generator_loss` [AttnGAN, Eq. 3], each stage's term logged as ``g_adv{i}``."""
    loss, logs = 0.0, {}
    for i, (D, fake_i) in enumerate(zip(discriminators, fakes)):
        adv = stage_generator_loss(D, fake_i, sent_emb)
        loss = loss + adv
        logs[f"g_adv{i}"] = adv.item()
    return loss, logs


# ---------------------------------------------------------------------------------------------------
# DAMSM [AttnGAN, Sec. 3.3]
# ---------------------------------------------------------------------------------------------------


def _keep_one_word(mask: torch.Tensor) -> torch.Tensor:
    """A caption with no word at all (every position padding) keeps its first position, as the text
    encoder does (it reads at least one token), so softmaxes over words stay finite."""
    empty = mask.all(dim=-1, keepdim=True)  # (..., 1)
    first = torch.zeros_like(mask)
    first[..., 0] = True
    return mask & ~(empty & first)


def word_region_attention(query: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None = None,
                          gamma1: float = 4.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention of each query vector (a word) over the context vectors (image regions) [AttnGAN, Eq. 7-9].

    ``s = e^T v`` (Eq. 7); ``s_bar`` normalises ``s`` over the query positions (words) for each region
    (Eq. 8); ``alpha = softmax(gamma1 * s_bar)`` over the regions for each word (Eq. 9); the result is
    ``c_i = sum_j alpha_ij v_j``.

    query: (..., D, T) words (or any query vectors); context: (..., D, h, w) or (..., D, L) regions;
    leading dimensions broadcast, so ``query[:, None]`` against ``context[None]`` scores every pair.
    mask: (..., T) True at padding of the query; padded positions take no part in the Eq. 8 softmax and
    get an all-zero attention row (and a zero context vector).
    Returns (weighted context (..., D, T), attention (..., T, h, w) or (..., T, L)); each non-padding
    attention row sums to 1 over the regions.
    """
    spatial = context.dim() == query.dim() + 1
    regions = context.flatten(-2) if spatial else context  # (..., D, L)
    scores = query.transpose(-1, -2) @ regions  # (..., T, L) Eq. 7
    if mask is not None:
        mask = _keep_one_word(mask.bool())
        scores = scores.masked_fill(mask[..., :, None], float("-inf"))
    word_norm = scores.softmax(dim=-2)  # (..., T, L) Eq. 8: over words
    attn = (gamma1 * word_norm).softmax(dim=-1)  # (..., T, L) Eq. 9: over regions
    if mask is not None:
        attn = attn.masked_fill(mask[..., :, None], 0.0)
    weighted = regions @ attn.transpose(-1, -2)  # (..., D, T)
    if spatial:
        attn = attn.unflatten(-1, context.shape[-2:])  # (..., T, h, w)
    return weighted, attn


def same_class_mask(class_ids: torch.Tensor | None, batch_size: int, device) -> torch.Tensor | None:
    """(B, B) True where pair (j, i) has the same known class and j != i (not a negative on CUB);
    None when there are no class ids. Class id -1 means "no class" and never masks."""
    if class_ids is None:
        return None
    class_ids = torch.as_tensor(class_ids, device=device).reshape(-1)
    if class_ids.numel() != batch_size:
        raise T2IError(f"class_ids has {class_ids.numel()} entries for a batch of {batch_size}")
    same = (class_ids[:, None] == class_ids[None, :]) & (class_ids[:, None] >= 0)
    same.fill_diagonal_(False)
    return same if same.any() else None


def _both_directions(scores: torch.Tensor, same_class: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """scores (B images, B captions) -> (CE over captions per image, CE over images per caption)."""
    if same_class is not None:
        scores = scores.masked_fill(same_class, float("-inf"))
    labels = torch.arange(scores.shape[0], device=scores.device)
    return F.cross_entropy(scores, labels), F.cross_entropy(scores.t(), labels)


def word_relevance(region_feats: torch.Tensor, word_embs: torch.Tensor, mask: torch.Tensor,
                   gamma1: float = 4.0, gamma2: float = 5.0,
                   paper_form: bool = DAMSM_PAPER_FORM) -> tuple[torch.Tensor, torch.Tensor]:
    """Region-word relevance ``R(Q_j, D_i)`` of every image j with every caption i [AttnGAN, Eq. 10].

    region_feats (B, D, h, w); word_embs (B, D, T); mask (B, T) True at padding.
    Returns (R (B images, B captions), attention (B, T, h, w) of each caption over its own image).
    """
    B = word_embs.shape[0]
    if region_feats.shape[0] != B or region_feats.shape[1] != word_embs.shape[1]:
        raise T2IError(f"DAMSM: region features {tuple(region_feats.shape)} do not fit word features "
                       f"{tuple(word_embs.shape)} (same batch and feature size needed)")
    mask = _keep_one_word(mask.bool())
    regions = region_feats.flatten(2)  # (B_j, D, L)
    # Eq. 7-9 for every pair (caption i, image j), as word_region_attention(word_embs[:, None],
    # region_feats[None], mask[:, None]) computes it, with einsums that never materialise a
    # (B, B, D, L) broadcast (nor its gradient)
    scores = torch.einsum("idt,jdl->ijtl", word_embs, regions)  # (B_i, B_j, T, L) Eq. 7
    pad = mask[:, None, :, None]
    attn = (gamma1 * scores.masked_fill(pad, float("-inf")).softmax(dim=2)).softmax(dim=3)  # Eq. 8, 9
    attn = attn.masked_fill(pad, 0.0)  # (B_i, B_j, T, L)
    D, L = regions.shape[1:]
    if 2 * L <= D:
        # few regions (small CNN, 8 x 8): skip the (B, B, D, T) context vectors c; their dot products
        # with the words and their norms come from the scores and the region Gram matrices:
        #   e . c = sum_l alpha_l (e . v_l),   |c|^2 = alpha^T (V^T V) alpha
        dot = (attn * scores).sum(dim=3)  # (B_i, B_j, T)
        gram = regions.transpose(1, 2) @ regions  # (B_j, L, L)
        context_sq = (torch.einsum("ijtl,jlm->ijtm", attn, gram) * attn).sum(dim=3)  # (B_i, B_j, T)
        context_norm = context_sq.clamp_min(1e-16).sqrt()
    else:
        context = torch.einsum("ijtl,jdl->ijdt", attn, regions)  # (B_i, B_j, D, T) c = sum_l alpha_l v_l
        dot = torch.einsum("ijdt,idt->ijt", context, word_embs)  # (B_i, B_j, T)
        context_norm = context.norm(dim=2)
    norms = context_norm * word_embs.norm(dim=1)[:, None]  # (B_i, B_j, T)
    cos = dot / norms.clamp_min(1e-8)  # Eq. 10's cos(c_i, e_i)
    cos = cos.masked_fill(mask[:, None], float("-inf"))  # padding words are not summed over
    relevance = torch.logsumexp(gamma2 * cos, dim=-1)  # (B_i, B_j) log sum_t exp(gamma2 cos)
    if paper_form:
        relevance = relevance / gamma2
    own = torch.arange(B, device=word_embs.device)
    own_attn = attn[own, own].unflatten(-1, region_feats.shape[-2:])  # (B, T, h, w)
    return relevance.t(), own_attn


def damsm_word_loss(region_feats: torch.Tensor, word_embs: torch.Tensor, mask: torch.Tensor,
                    class_ids: torch.Tensor | None = None, gamma1: float = 4.0, gamma2: float = 5.0,
                    gamma3: float = 10.0, paper_form: bool = DAMSM_PAPER_FORM) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Word-level DAMSM loss [AttnGAN, Eq. 10-13], vectorised over all (image, caption) pairs.

    ``P(D_i | Q_i) = softmax_j(gamma3 R(Q_i, D_j))`` (Eq. 11) and its converse ``P(Q_i | D_i)``;
    ``L_1^w = -mean log P(D_i | Q_i)``, ``L_2^w = -mean log P(Q_i | D_i)`` (Eq. 12-13, batch mean as the
    official code). ``R`` is Eq. 10 (``paper_form``) or the official code's form without ``1/gamma2``.

    region_feats (B, D, h, w) image local features; word_embs (B, D, T); mask (B, T) True at padding;
    class_ids (B,) or None: other pairs of the same class (id >= 0) are dropped from the softmaxes.
    Returns (loss image->text L_1^w, loss text->image L_2^w, attn (B, T, h, w) of each caption's words
    over its own image, zero for padding words).
    """
    relevance, attn = word_relevance(region_feats, word_embs, mask, gamma1, gamma2, paper_form)
    same = same_class_mask(class_ids, word_embs.shape[0], word_embs.device)
    loss_i2t, loss_t2i = _both_directions(gamma3 * relevance, same)
    return loss_i2t, loss_t2i, attn


def cosine_matrix(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(N, D), (M, D) -> (N, M) cosine similarities."""
    norms = a.norm(dim=1, keepdim=True) * b.norm(dim=1, keepdim=True).t()  # (N, M)
    return (a @ b.t()) / norms.clamp_min(eps)


def damsm_sentence_loss(image_emb: torch.Tensor, sent_emb: torch.Tensor, class_ids: torch.Tensor | None = None,
                        gamma3: float = 10.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Sentence-level DAMSM loss [AttnGAN, Sec. 3.3]: Eq. 11-13 with ``R(Q, D) = cos(v_bar, e_bar)``.

    image_emb (B, D) global image features; sent_emb (B, D). Returns (loss image->text L_1^s,
    loss text->image L_2^s); ``class_ids`` masks same-class pairs as in :func:`damsm_word_loss`.
    """
    if image_emb.shape != sent_emb.shape:
        raise T2IError(f"DAMSM: image features {tuple(image_emb.shape)} do not fit sentence features "
                       f"{tuple(sent_emb.shape)}")
    scores = gamma3 * cosine_matrix(image_emb, sent_emb)  # (B images, B captions)
    same = same_class_mask(class_ids, image_emb.shape[0], image_emb.device)
    return _both_directions(scores, same)


def damsm_loss(image_encoder: nn.Module, images: torch.Tensor, text: TextFeatures,
               class_ids: torch.Tensor | None = None, gamma1: float = 4.0, gamma2: float = 5.0,
               gamma3: float = 10.0, paper_form: bool = DAMSM_PAPER_FORM) -> tuple[torch.Tensor, dict[str, float]]:
    """``L_DAMSM = L_1^w + L_2^w + L_1^s + L_2^s`` [AttnGAN, Eq. 14] of ``images`` against their own
    captions (``text``), for a generator: the (frozen) image encoder scores the images, gradients reach
    whatever produced ``images`` and ``text``. Returns (loss, logs with each term as a float)."""
    region_feats, image_emb = image_encoder(images)  # (B, D, h, w), (B, D)
    w0, w1, _ = damsm_word_loss(region_feats, text.word_embs, text.mask, class_ids,
                                gamma1=gamma1, gamma2=gamma2, gamma3=gamma3, paper_form=paper_form)
    s0, s1 = damsm_sentence_loss(image_emb, text.sent_emb, class_ids, gamma3=gamma3)
    loss = w0 + w1 + s0 + s1
    return loss, {"damsm_w": (w0 + w1).item(), "damsm_s": (s0 + s1).item()}
