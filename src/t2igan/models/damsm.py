"""DAMSM: the Deep Attentional Multimodal Similarity Model of AttnGAN [Xu et al., CVPR 2018, Sec. 3.2],
and the frozen DAMSM critic that the GANs share.

Paper equation -> function:

* the text encoder (word features ``e``, D x T; sentence feature ``e_bar``, D):
  :class:`t2igan.nn.text_encoder.RNNTextEncoder`;
* Eq. 6, the image encoder ``v = W f``, ``v_bar = W_bar f_bar`` (regions ``v``, D x h x w; global
  ``v_bar``): :class:`t2igan.nn.image_encoder.ImageEncoder`;
* Eq. 7-9, word-region attention: :func:`word_region_attention`;
* Eq. 10, region-word relevance ``R(Q, D)``: :func:`word_relevance`;
* Eq. 11-13, the word losses ``L_1^w``, ``L_2^w``: :func:`damsm_word_loss`; their sentence versions
  ``L_1^s``, ``L_2^s``: :func:`damsm_sentence_loss`;
* Eq. 14, ``L_DAMSM = L_1^w + L_2^w + L_1^s + L_2^s``: :func:`damsm_loss` (a GAN's images),
  :meth:`DAMSM.losses` (pretraining on real pairs).

Paper vs. official code (github.com/taoxugit/AttnGAN, ``code/miscc/losses.py``): Eq. 10 is
``R = log(sum_i exp(gamma2 cos))^(1/gamma2)`` (``paper_form=True``); the official code drops the
``1/gamma2`` (``paper_form=False``). :data:`DAMSM_PAPER_FORM` (``False``, the official form) is the
one default of every function, config and ``-cub``/``-coco`` preset here and of the GANs'
``damsm_paper_form``; the ``-shapes`` presets choose the paper's form (its word term is scaled like
the sentence term). The official YAMLs use ``gamma1 = 4`` (code default 5), ``gamma2 = 5``,
``gamma3 = 10``. On CUB, captions of other images of the same class are not negatives: their scores
are set to ``-inf`` (``class_ids``).

GANs (AttnGAN, MirrorGAN, DR-GAN, SSA-GAN) score their images with a :class:`DAMSMCritic`: the frozen
image encoder of a DAMSM run, a submodule (moved by ``.to()``, cast by ``.half()``) whose weights
are left out of the GAN's state dict (:attr:`t2igan.models.base.T2IModel.unsaved_modules`).

Pretraining (``t2igan pretrain damsm PRESET``, or ``t2igan train`` on a DAMSM preset) runs the shared
trainer (resume, torchrun, AMP, non-finite stop) on :class:`DAMSM`, a registered model with one phase
(``encoders``) and the official schedule in its config: Adam (lr 0.002, betas (0.5, 0.999)), lr x 0.98
per epoch down to lr / 10 (:meth:`DAMSM.lr_factor`), the text encoder's gradient norm clipped at
0.25, batch 48; at the end the R-precision of the real test images goes to ``metrics.jsonl``. A run
folder holds ``config.json``, ``vocab.json``, ``model.safetensors`` (keys ``text_encoder.*`` and
``image_encoder.*``), checkpoints and ``log.jsonl``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError
from ..fields import Backbone, Betas, Config, Count, Fraction, Positive, VocabSize
from ..nn.image_encoder import ImageEncoder
from ..nn.text_encoder import RNNTextEncoder, TextFeatures
from ..registry import register_model
from .base import T2IModel

DAMSM_PAPER_FORM = False  # the default form of Eq. 10 everywhere: False = the official code's (no 1/gamma2)


# ---------------------------------------------------------------------------------------------------
# The losses [AttnGAN, Sec. 3.2, Eq. 7-14]
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


# ---------------------------------------------------------------------------------------------------
# The critic the GANs share
# ---------------------------------------------------------------------------------------------------


def batch_class_ids(batch: dict) -> torch.Tensor | None:
    """Class labels for DAMSM's same-class masking, or None when the data has none (-1)."""
    ids = batch.get("class_id")
    if not torch.is_tensor(ids) or (ids < 0).any():
        return None
    return ids


class DAMSMCritic(nn.Module):
    """``L_DAMSM`` [AttnGAN, Eq. 14] of a generator's images against their captions, scored by a frozen
    DAMSM image encoder (``encoder``); gradients reach only the images (and whatever made them).

    The encoder comes from a DAMSM run (:meth:`adopt`, which also starts the GAN's text encoder from
    the run's); without one, a randomly initialised encoder is built on first use, with a warning
    (meaningful in tests only). It is in no optimizer and always in eval mode; the GAN lists the
    critic in ``unsaved_modules``, so it never enters checkpoints or ``model.safetensors``.
    """

    def __init__(self, owner: str, embed_dim: int, backbone: str = "inception", image_size: int = 299,
                 gamma1: float = 4.0, gamma2: float = 5.0, gamma3: float = 10.0,
                 paper_form: bool = DAMSM_PAPER_FORM, weight_field: str = "damsm_weight"):
        super().__init__()
        self.owner, self.weight_field = owner, weight_field  # for messages
        self.embed_dim, self.backbone, self.image_size = embed_dim, backbone, image_size
        self.gammas, self.paper_form = (gamma1, gamma2, gamma3), paper_form
        self.register_module("encoder", None)

    def train(self, mode: bool = True) -> "DAMSMCritic":
        return super().train(False)

    def adopt(self, damsm: "DAMSM", vocab, path: str, text_encoder: nn.Module, vocab_size: int) -> None:
        """Take the image encoder of ``damsm`` (the run at ``path``, frozen) and load its text encoder
        into ``text_encoder``; the run's vocabulary must be the data's."""
        if len(vocab) != vocab_size:
            raise T2IError(f"the DAMSM in {path} has a {len(vocab)}-word vocabulary but the data's has "
                           f"{vocab_size}; train with data.vocab=<DAMSM run>/vocab.json")
        try:
            text_encoder.load_state_dict(damsm.text_encoder.state_dict())
        except RuntimeError:
            raise T2IError(f"the text encoder in {path} does not fit model.text_emb_dim="
                           f"{text_encoder.embedding.embedding_dim}, model.text_hidden_dim="
                           f"{text_encoder.rnn.hidden_size}") from None
        self.encoder = damsm.image_encoder.requires_grad_(False).eval()

    def frozen_encoder(self, device: torch.device) -> nn.Module:
        """The image encoder on ``device`` (built on first use when no DAMSM run was loaded)."""
        if self.encoder is None:
            warnings.warn(f"{self.owner}: no damsm_weights given, so the DAMSM loss uses a randomly initialised "
                          "image encoder; pretrain one with `t2igan pretrain damsm ...` or set "
                          f"model.{self.weight_field}=0")
            self.encoder = ImageEncoder(self.embed_dim, self.backbone, self.image_size).requires_grad_(False)
        param = next(self.encoder.parameters(), None)
        if param is not None and param.device != device:
            self.encoder.to(device)
        return self.encoder.eval()

    def forward(self, images: torch.Tensor, text: TextFeatures,
                class_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        g1, g2, g3 = self.gammas
        return damsm_loss(self.frozen_encoder(images.device), images, text, class_ids,
                          gamma1=g1, gamma2=g2, gamma3=g3, paper_form=self.paper_form)

    def add_to(self, loss, logs: dict, weight: float, images: torch.Tensor, text: TextFeatures, batch: dict):
        """``loss + weight * L_DAMSM(images)`` (``loss`` unchanged when ``weight`` is 0), the terms logged."""
        if weight <= 0:
            return loss
        damsm, damsm_logs = self(images, text, batch_class_ids(batch))
        logs.update(damsm_logs, damsm=damsm.item())  # damsm_w, damsm_s: word and sentence terms
        return loss + weight * damsm


DAMSM_LOSS_SETTINGS = ("gamma1", "gamma2", "gamma3", "paper_form")  # a GAN config's damsm_<name> fields


def build_damsm_critic(owner: str, config, weight_field: str = "damsm_weight") -> DAMSMCritic:
    """The :class:`DAMSMCritic` of a GAN config's ``damsm_*`` fields, without an encoder yet: the model
    builder (:func:`t2igan.training.build.build_model`) gives it the ``damsm_weights`` run's
    (:meth:`DAMSMCritic.adopt`), having first set the loss settings (``damsm_gamma1/2/3``,
    ``damsm_paper_form``) the config leaves ``None`` to the run's own. Settings still ``None`` take
    :class:`DAMSMConfig`'s defaults. A value set in the config wins (the official SSA-GAN code, for one,
    trains G with gamma1 = 5 against a DAMSM pretrained with 4)."""
    def setting(name: str):
        value = getattr(config, f"damsm_{name}")
        return getattr(DAMSMConfig, name) if value is None else value

    return DAMSMCritic(owner, config.cond_dim, config.damsm_backbone, config.image_size, setting("gamma1"),
                       setting("gamma2"), setting("gamma3"), setting("paper_form"), weight_field)


# ---------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------


@dataclass
class DAMSMConfig(Config):
    """Architecture and loss of a DAMSM (what a run's ``config.json`` stores under ``model_config``)."""

    vocab_size: VocabSize = 5000  # words incl. padding; set from the vocabulary by pretraining
    embed_dim: Count = 256  # D, joint feature size (= 2 * text_hidden_dim)
    text_emb_dim: Count = 300  # word embedding size
    text_hidden_dim: Count = 128  # LSTM units per direction
    text_dropout: Fraction = 0.5  # dropout on the word embeddings
    backbone: Backbone = "inception"  # image encoder backbone: inception (frozen, 299 px) | small_cnn (trainable)
    image_size: Count = 299  # side of the training images (small_cnn input size)
    cnn_channels: Count = 32  # small_cnn: channels of its first conv (doubled at each down-sampling)
    inception_weights: str | None = None  # ImageNet Inception-v3 file the builder loads (inception backbone); never needed to load a run
    gamma1: float = 4.0  # word-region attention sharpness (official YAMLs 4, code default 5)
    gamma2: float = 5.0  # region-word relevance sharpness
    gamma3: float = 10.0  # image-text matching sharpness
    paper_form: bool = DAMSM_PAPER_FORM  # True: Eq. 10's log(sum exp)^(1/gamma2); False: the official code's (no 1/gamma2)
    # pretraining (official AttnGAN DAMSM defaults; the batch size is train.batch_size, official 48)
    lr: Positive = 0.002  # Adam learning rate (both encoders)
    betas: Betas = (0.5, 0.999)  # Adam betas
    lr_decay: float = 0.98  # lr multiplied by this after every epoch ...
    lr_min_factor: float = 0.1  # ... but never below lr * lr_min_factor
    grad_clip: float | None = 0.25  # max gradient norm of the text encoder (the official code clips the RNN only)
    rprec_captions: Count = 100  # R-precision at the end: true caption + (this - 1) mismatched
    rprec_splits: Count = 10  # ... mean and std over this many splits

    def problem(self) -> str | None:
        if self.embed_dim != 2 * self.text_hidden_dim:
            return (f"embed_dim ({self.embed_dim}) must be 2 * text_hidden_dim ({self.text_hidden_dim}), the "
                    "bidirectional LSTM's feature size")
        return None


@register_model("damsm", DAMSMConfig, text_to_image=False)
class DAMSM(T2IModel):
    """Text encoder + image encoder of AttnGAN's DAMSM (state-dict prefixes ``text_encoder.`` and
    ``image_encoder.``, so a generator can load either part from a DAMSM run), trained by the shared
    trainer in one phase, ``encoders``."""

    phases = ("encoders",)
    training_only_modules = ()

    def __init__(self, config: DAMSMConfig):
        super().__init__(config)
        c = config
        self.text_encoder = RNNTextEncoder(c.vocab_size, c.text_emb_dim, c.text_hidden_dim, c.text_dropout)
        self.image_encoder = ImageEncoder(c.embed_dim, c.backbone, c.image_size, c.cnn_channels)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # -- the trainer's hooks ---------------------------------------------------------------------
    def encoders_loss(self, batch: dict, state: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The one phase: :meth:`losses` of the batch's real pairs (same-class pairs masked on CUB)."""
        return self.losses(batch["image"], batch["tokens"], batch["lengths"], batch.get("class_id"))

    def optimizer_groups(self, train) -> dict[str, list[dict]]:
        """One Adam over both encoders' trainable parameters at ``lr``, ``betas`` of the config."""
        c = self.config
        return {"encoders": [{"params": self.trainable_parameters(), "lr": c.lr, "betas": tuple(c.betas)}]}

    def lr_factor(self, epoch: int) -> float:
        return epoch_lr(self.config, epoch) / self.config.lr

    def clipped_parameters(self, phase: str):
        """The text encoder's gradient norm at ``grad_clip`` (the official code clips the RNN only)."""
        return (list(self.text_encoder.parameters()), self.config.grad_clip) if self.config.grad_clip else None

    def losses(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
               class_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Pretraining loss ``L_1^w + L_2^w + L_1^s + L_2^s`` of real (image, caption) pairs."""
        c = self.config
        text = self.text_encoder(tokens, lengths)
        region_feats, image_emb = self.image_encoder(images)
        w0, w1, _ = damsm_word_loss(region_feats, text.word_embs, text.mask, class_ids,
                                    c.gamma1, c.gamma2, c.gamma3, c.paper_form)
        s0, s1 = damsm_sentence_loss(image_emb, text.sent_emb, class_ids, c.gamma3)
        loss = w0 + w1 + s0 + s1
        return loss, {"loss": loss.item(), "w0": w0.item(), "w1": w1.item(), "s0": s0.item(), "s1": s1.item()}


def epoch_lr(config: DAMSMConfig, epoch: int) -> float:
    """Official schedule: lr x ``lr_decay`` after each epoch while above lr * ``lr_min_factor``."""
    lr = config.lr
    for _ in range(epoch):
        if lr > config.lr * config.lr_min_factor:
            lr *= config.lr_decay
    return lr
