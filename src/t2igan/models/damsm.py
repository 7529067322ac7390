"""DAMSM: the Deep Attentional Multimodal Similarity Model of AttnGAN [Xu et al., CVPR 2018, Sec. 3.3].

Two encoders map a caption and an image into one 256-d space:

* the text encoder (:class:`t2igan.nn.text_encoder.RNNTextEncoder`, SPEC "Text encoder") gives word
  features ``e`` (D x T) and a sentence feature ``e_bar`` (D);
* the image encoder (:class:`ImageEncoder`, SPEC "Image encoder (DAMSM)") gives region features ``v``
  (D x h x w) and a global feature ``v_bar`` (D). With ``backbone="inception"`` it is AttnGAN's:
  ImageNet Inception-v3 (frozen) on 299 x 299 input, ``Mixed_6e`` (768 x 17 x 17) projected by a 1x1
  conv, the pooled 2048-d feature projected by a linear layer. ``backbone="small_cnn"`` is a small
  trainable CNN for 16-64 px images (8 x 8 regions), so a DAMSM for the built-in Shapes data trains on
  a CPU in minutes.

The matching losses are pure functions:

* :func:`word_region_attention` -- Eq. 7-9: word-region dot products, normalised over words, then a
  softmax over regions sharpened by ``gamma1``, giving a region-context vector per word;
* :func:`damsm_word_loss` -- Eq. 10-13 on words: region-word relevance ``R(Q, D)`` for every
  (image, caption) pair of the batch at once (the official ``words_loss`` loops over the batch in
  Python; here one batched computation), cross-entropy in both directions;
* :func:`damsm_sentence_loss` -- the same with ``R = cos(v_bar, e_bar)`` (Sec. 3.3, last paragraph);
* :func:`damsm_loss` -- the sum of the four terms for a generator's images (``L_DAMSM``, Eq. 14).

Paper vs. official code (SPEC "DAMSM loss"): Eq. 10 is ``R = log(sum_i exp(gamma2 cos))^(1/gamma2)``
(``paper_form=True``); the official code drops the ``1/gamma2`` (``paper_form=False``).
:data:`DAMSM_PAPER_FORM` (``False``, the official form) is the one default of every function, config
and ``-cub``/``-coco`` preset here and of the GANs' ``damsm_paper_form``; the ``-shapes`` presets
choose the paper's form (its word term is scaled like the sentence term). The official
YAMLs use ``gamma1 = 4`` (code default 5), ``gamma2 = 5``, ``gamma3 = 10``. On CUB, captions of other
images of the same class are not negatives: their scores are set to ``-inf`` (``class_ids``).

Pretraining (:func:`pretrain`, ``t2igan pretrain damsm PRESET``) follows the official schedule: Adam
(lr 0.002, betas (0.5, 0.999)), lr x 0.98 per epoch down to lr / 10, gradient norm clipped at 0.25,
batch 48. A run folder holds ``config.json``, ``vocab.json``, ``model.safetensors`` (keys
``text_encoder.*`` and ``image_encoder.*``) and ``log.jsonl``; :func:`load_damsm` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError
from ..nn.text_encoder import RNNTextEncoder, TextFeatures

DAMSM_PAPER_FORM = False  # the default form of Eq. 10 everywhere: False = the official code's (no 1/gamma2)

BACKBONES = ("inception", "small_cnn")


# ---------------------------------------------------------------------------------------------------
# Losses (pure functions)
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
# Image encoder
# ---------------------------------------------------------------------------------------------------


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, channels), channels)


class SmallCNN(nn.Module):
    """A small trainable backbone for 16-256 px images: stride-2 4x4 convs (channels doubling) down to
    8 x 8, one 3x3 conv there (the local features), one more stride-2 conv to 4 x 4 and a spatial mean
    (the global feature). Cheap enough to train on a CPU at 64 px.

    GroupNorm, not BatchNorm: an image's features never depend on the rest of its batch, and eval mode
    behaves as training did (with BatchNorm the contrastive DAMSM loss learns to lean on batch
    statistics that the running averages, trailing lr-0.002 updates, do not match: measured on Shapes,
    R-precision 29% in eval mode against 87% with batch statistics)."""

    def __init__(self, image_size: int, channels: int = 32, max_channels: int = 256):
        super().__init__()
        if image_size < 16 or image_size & (image_size - 1):
            raise T2IError(f"small_cnn backbone needs a power-of-two image_size >= 16, got {image_size}")
        layers: list[nn.Module] = []
        ch_in, ch, size = 3, channels, image_size
        while size > 8:
            layers += [nn.Conv2d(ch_in, ch, 4, stride=2, padding=1), group_norm(ch), nn.LeakyReLU(0.2)]
            ch_in, ch, size = ch, min(ch * 2, max_channels), size // 2
        ch = ch_in
        layers += [nn.Conv2d(ch, ch, 3, padding=1), group_norm(ch), nn.LeakyReLU(0.2)]
        self.local = nn.Sequential(*layers)
        out = min(ch * 2, max_channels * 2)
        self.glob = nn.Sequential(nn.Conv2d(ch, out, 4, stride=2, padding=1), group_norm(out), nn.LeakyReLU(0.2))
        self.image_size = image_size
        self.local_dim, self.global_dim = ch, out

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if images.shape[-1] != self.image_size or images.shape[-2] != self.image_size:
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False)
        local = self.local(images)  # (B, C, 8, 8)
        return local, self.glob(local).mean(dim=(2, 3))  # (B, C, 8, 8), (B, C')


class InceptionBackbone(nn.Module):
    """ImageNet Inception-v3 (:class:`t2igan.metrics.inception.ImageNetInceptionV3`), frozen and always
    in eval mode: ``Mixed_6e`` output (B, 768, 17, 17) as local features, the pooled ``Mixed_7c``
    output (B, 2048) as the global feature. Images in [-1, 1] are resized to 299 bilinearly and fed
    as they are (the official DAMSM does the same)."""

    local_dim, global_dim = 768, 2048

    def __init__(self, weights: str | None = None):
        super().__init__()
        from ..metrics.inception import ImageNetInceptionV3, load_inception_weights

        self.net = ImageNetInceptionV3()
        if weights is not None:
            self.net.load_official_state_dict(load_inception_weights("imagenet", weights), source=str(weights))
        self.net.fc = nn.Identity()  # the classifier is not used
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "InceptionBackbone":
        return super().train(False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.net
        x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False)
        x = n.maxpool1(n.Conv2d_2b_3x3(n.Conv2d_2a_3x3(n.Conv2d_1a_3x3(x))))  # (B, 64, 73, 73)
        x = n.maxpool2(n.Conv2d_4a_3x3(n.Conv2d_3b_1x1(x)))  # (B, 192, 35, 35)
        x = n.Mixed_6a(n.Mixed_5d(n.Mixed_5c(n.Mixed_5b(x))))  # (B, 768, 17, 17)
        local = n.Mixed_6e(n.Mixed_6d(n.Mixed_6c(n.Mixed_6b(x))))  # (B, 768, 17, 17)
        x = n.Mixed_7c(n.Mixed_7b(n.Mixed_7a(local)))  # (B, 2048, 8, 8)
        return local, x.mean(dim=(2, 3))  # (B, 768, 17, 17), (B, 2048)


class ImageEncoder(nn.Module):
    """DAMSM image encoder: backbone -> 1x1 conv on local features (regions ``v``), linear on the
    global feature (``v_bar``) [AttnGAN, Sec. 3.3, Eq. 5-6]."""

    def __init__(
        self,
        embed_dim: int = 256,  # D, the joint text-image feature size
        backbone: str = "inception",  # inception (frozen ImageNet Inception-v3) | small_cnn (trainable)
        image_size: int = 299,  # small_cnn: side of its input (images are resized to it); inception: 299 always
        inception_weights: str | None = None,  # inception_v3_google-*.pth; None: random (tests; a run loads its own)
        cnn_channels: int = 32,  # small_cnn: channels of its first conv (doubled at each down-sampling)
    ):
        super().__init__()
        if backbone not in BACKBONES:
            raise T2IError(f"DAMSM image encoder backbone must be one of {BACKBONES}, got {backbone!r}")
        self.backbone_name = backbone
        if backbone == "inception":
            self.backbone = InceptionBackbone(inception_weights)
        else:
            self.backbone = SmallCNN(image_size, cnn_channels)
        self.emb_features = nn.Conv2d(self.backbone.local_dim, embed_dim, 1, bias=False)  # Eq. 5: v = W f
        self.emb_code = nn.Linear(self.backbone.global_dim, embed_dim)  # Eq. 6: v_bar = W_bar f_bar
        nn.init.uniform_(self.emb_features.weight, -0.1, 0.1)
        nn.init.uniform_(self.emb_code.weight, -0.1, 0.1)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (B, 3, H, W) RGB in [-1, 1] -> (region_feats (B, D, h, w), image_emb (B, D))."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise T2IError(f"DAMSM image encoder expects images (B, 3, H, W), got {tuple(images.shape)}")
        local, glob = self.backbone(images)
        return self.emb_features(local), self.emb_code(glob)


# ---------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------


@dataclass
class DAMSMConfig:
    """Architecture and loss of a DAMSM (what a run's ``config.json`` stores under ``model_config``)."""

    vocab_size: int = 0  # words incl. padding; set from the vocabulary by pretraining
    embed_dim: int = 256  # D, joint feature size (= 2 * text_hidden_dim)
    text_emb_dim: int = 300  # word embedding size
    text_hidden_dim: int = 128  # LSTM units per direction
    text_dropout: float = 0.5  # dropout on the word embeddings
    backbone: str = "inception"  # image encoder backbone: inception (frozen, 299 px) | small_cnn (trainable)
    image_size: int = 299  # side of the training images (small_cnn input size)
    cnn_channels: int = 32  # small_cnn: channels of its first conv (doubled at each down-sampling)
    inception_weights: str | None = None  # ImageNet Inception-v3 file (inception backbone); never needed to load a run
    gamma1: float = 4.0  # word-region attention sharpness (official YAMLs 4, code default 5)
    gamma2: float = 5.0  # region-word relevance sharpness
    gamma3: float = 10.0  # image-text matching sharpness
    paper_form: bool = DAMSM_PAPER_FORM  # True: Eq. 10's log(sum exp)^(1/gamma2); False: the official code's (no 1/gamma2)


@dataclass
class DAMSMTrainConfig:
    """Pretraining schedule (official AttnGAN DAMSM defaults)."""

    batch_size: int = 48
    lr: float = 0.002  # Adam learning rate (both encoders)
    betas: tuple = (0.5, 0.999)  # Adam betas
    lr_decay: float = 0.98  # lr multiplied by this after every epoch ...
    lr_min_factor: float = 0.1  # ... but never below lr * lr_min_factor
    grad_clip: float = 0.25  # max gradient norm of the text encoder (the official code clips the RNN only)
    epochs: int = 600  # passes over the training split
    max_steps: int | None = None  # stop after this many steps (overrides epochs)
    time_limit_min: float | None = None  # stop after this many minutes
    time_limit_clock: str = "wall"  # wall | cpu (this process's CPU time: fair budgets on a shared machine)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 50  # steps between log.jsonl lines
    rprec_captions: int = 100  # R-precision at the end: true caption + (this - 1) mismatched
    rprec_splits: int = 10  # ... mean and std over this many splits


class DAMSM(nn.Module):
    """Text encoder + image encoder of AttnGAN's DAMSM (state-dict prefixes ``text_encoder.`` and
    ``image_encoder.``, so a generator can load either part from a DAMSM run)."""

    def __init__(self, config: DAMSMConfig):
        super().__init__()
        c = self.config = config
        if c.vocab_size < 2:
            raise T2IError(f"DAMSM needs vocab_size >= 2, got {c.vocab_size}")
        if c.embed_dim != 2 * c.text_hidden_dim:
            raise T2IError(f"DAMSM: embed_dim ({c.embed_dim}) must be 2 * text_hidden_dim ({c.text_hidden_dim}), "
                           "the bidirectional LSTM's feature size")
        self.text_encoder = RNNTextEncoder(c.vocab_size, c.text_emb_dim, c.text_hidden_dim, c.text_dropout)
        self.image_encoder = ImageEncoder(c.embed_dim, c.backbone, c.image_size, c.inception_weights, c.cnn_channels)

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

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


def save_damsm(run_dir: str | Path, model: DAMSM, vocab, experiment: dict | None = None) -> None:
    """Write ``config.json`` (model_name "damsm"), ``vocab.json`` and ``model.safetensors``."""
    from ..hub import CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME, atomic_write_bytes, save_safetensors

    run_dir = Path(run_dir)
    config = {"experiment": experiment or {}, "model_name": "damsm", "model_config": model.config_dict()}
    atomic_write_bytes(run_dir / CONFIG_NAME, json.dumps(config, indent=2).encode())
    atomic_write_bytes(run_dir / VOCAB_NAME, json.dumps(vocab.to_dict(), ensure_ascii=False).encode())
    save_safetensors(model.state_dict(), run_dir / WEIGHTS_NAME, {"format": "pt"})


def damsm_run_dir(path_or_run_dir: str | Path) -> Path:
    """A DAMSM run folder from the folder itself or any file in it (``model.safetensors``)."""
    path = Path(path_or_run_dir).expanduser()
    run_dir = path.parent if path.is_file() else path
    if not run_dir.is_dir():
        raise T2IError(f"DAMSM run folder not found: {path}")
    return run_dir


def load_damsm(path_or_run_dir: str | Path, device: str | torch.device = "cpu"):
    """``(DAMSM in eval mode, Vocabulary)`` from a pretraining run folder (or its ``model.safetensors``)."""
    from ..data.text import Vocabulary
    from ..hub import VOCAB_NAME, WEIGHTS_NAME, load_safetensors_into, read_run_config

    run_dir = damsm_run_dir(path_or_run_dir)
    config = read_run_config(run_dir)
    if config.get("model_name") != "damsm":
        raise T2IError(f"{run_dir} is not a DAMSM run (its config.json names model {config.get('model_name')!r})")
    values = dict(config.get("model_config", {}))
    values["inception_weights"] = None  # the run's own weights hold the backbone
    try:
        model = DAMSM(build_config(DAMSMConfig, values, f"{run_dir}/config.json model_config"))
    except TypeError as err:
        raise T2IError(f"{run_dir}/config.json: bad DAMSM config ({err})") from None
    load_safetensors_into(model, run_dir / WEIGHTS_NAME)
    vocab = Vocabulary.load(run_dir / VOCAB_NAME)
    if len(vocab) != model.config.vocab_size:
        raise T2IError(f"{run_dir}: vocab.json has {len(vocab)} words but the DAMSM was built for "
                       f"{model.config.vocab_size}")
    return model.to(device).eval(), vocab


def build_config(cls, values: dict, what: str):
    """``cls(**values)`` with a one-line error for unknown keys."""
    from ..config import build_dataclass

    return build_dataclass(cls, values, what)


# ---------------------------------------------------------------------------------------------------
# Pretraining
# ---------------------------------------------------------------------------------------------------


@dataclass
class DAMSMExperiment:
    """A DAMSM pretraining preset: ``model: damsm``, ``model_args`` (:class:`DAMSMConfig`), ``data``
    (:class:`t2igan.config.DataConfig`) and ``train`` (:class:`DAMSMTrainConfig`)."""

    model: str = "damsm"
    model_args: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    name: str = "damsm"
    runs_dir: str = "runs"

    def data_config(self):
        from ..config import DataConfig

        return build_config(DataConfig, self.data, "data")

    def train_config(self) -> DAMSMTrainConfig:
        return build_config(DAMSMTrainConfig, self.train, "train")

    def model_config(self, vocab_size: int = 0) -> DAMSMConfig:
        values = dict(self.model_args, vocab_size=vocab_size)
        values.setdefault("image_size", self.data_config().image_size)
        return build_config(DAMSMConfig, values, "model_args")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_damsm_config(preset: str, overrides: list[str] | None = None) -> DAMSMExperiment:
    """A DAMSM preset (``damsm-shapes``) or YAML file plus ``section.key=value`` overrides, validated."""
    from ..config import apply_overrides, load_preset

    d = apply_overrides(load_preset(preset), overrides or [])
    unknown = set(d) - {f.name for f in dataclasses.fields(DAMSMExperiment)}
    if unknown:
        raise T2IError(f"unknown top-level keys in DAMSM preset {preset!r}: {sorted(unknown)}")
    if d.get("model", "damsm") != "damsm":
        raise T2IError(f"preset {preset!r} is for model {d['model']!r}, not damsm (use `t2igan train`)")
    exp = DAMSMExperiment(**d)
    exp.data_config(), exp.train_config(), exp.model_config()  # unknown keys fail here, in one line
    return exp


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def epoch_lr(train: DAMSMTrainConfig, epoch: int) -> float:
    """Official schedule: lr x ``lr_decay`` after each epoch while above lr * ``lr_min_factor``."""
    lr = train.lr
    for _ in range(epoch):
        if lr > train.lr * train.lr_min_factor:
            lr *= train.lr_decay
    return lr


def pretrain_damsm(exp: DAMSMExperiment, run_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Pretrain a DAMSM on real (image, caption) pairs; returns the run folder.

    Adam over the text encoder and the trainable part of the image encoder, lr decayed per epoch
    (:func:`epoch_lr`), the text encoder's gradient norm clipped at ``grad_clip`` (the official code
    clips the RNN only). Same-class pairs are masked on data sets with class ids (CUB). At the end the
    run folder gets the weights and R-precision of the real test images is printed and logged.
    """
    import random
    from types import SimpleNamespace

    from tqdm import tqdm

    from ..data.text import CaptionCollator
    from ..metrics.r_precision import dataset_r_precision
    from ..trainer import build_datasets, build_vocab, elapsed_seconds, new_run_dir

    data, train = exp.data_config(), exp.train_config()
    torch.manual_seed(train.seed)
    random.seed(train.seed)
    device = resolve_device(train.device)
    inception_weights = exp.model_config().inception_weights
    if exp.model_config().backbone == "inception":
        from ..metrics.inception import resolve_weights_path

        # ImageNet weights are required (a random frozen backbone learns nothing): fail before loading data
        inception_weights = str(resolve_weights_path("imagenet", inception_weights))
    data_only = SimpleNamespace(data=data)  # what the trainer's data helpers read
    train_set, test_set = build_datasets(data_only)
    vocab = build_vocab(data_only, train_set)
    config = dataclasses.replace(exp.model_config(len(vocab)), inception_weights=inception_weights)
    model = DAMSM(config).to(device)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=train.batch_size, shuffle=True, drop_last=len(train_set) >= train.batch_size,
        num_workers=data.num_workers, collate_fn=CaptionCollator(vocab, data.max_words, data.shorten, train=True),
        generator=torch.Generator().manual_seed(train.seed),
    )
    params = model.trainable_parameters()
    optimizer = torch.optim.Adam(params, lr=train.lr, betas=tuple(train.betas))
    steps_per_epoch = len(loader)
    total = train.max_steps if train.max_steps is not None else train.epochs * steps_per_epoch
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(exp.runs_dir, exp.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "log.jsonl"
    start, cpu_start, step, epoch, running, lr = time.time(), time.process_time(), 0, 0, [], train.lr
    bar = tqdm(total=total, desc=f"damsm {exp.name}", unit="step", disable=not progress)
    model.train()
    done = False
    try:
        while not done:
            lr = epoch_lr(train, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            for batch in loader:
                images = batch["image"].to(device)
                class_ids = batch.get("class_id")
                loss, logs = model.losses(images, batch["tokens"].to(device), batch["lengths"].to(device),
                                          None if class_ids is None else class_ids.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.text_encoder.parameters(), train.grad_clip)
                optimizer.step()
                step += 1
                running.append(logs)
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{lr:.2g}")
                if step % train.log_every == 0 or step == total:
                    mean = {k: sum(r[k] for r in running) / len(running) for k in running[0]}
                    _append_jsonl(log_path, {"step": step, "epoch": epoch, "lr": lr,
                                             "time_s": round(time.time() - start, 1), **mean})
                    running = []
                out_of_time = (train.time_limit_min is not None
                               and elapsed_seconds(train.time_limit_clock, start, cpu_start) > 60 * train.time_limit_min)
                if step >= total or out_of_time:
                    done = True
                    break
            else:
                epoch += 1
    except KeyboardInterrupt:
        print("interrupted: saving the DAMSM as it is", flush=True)
    finally:
        bar.close()
    if running:
        mean = {k: sum(r[k] for r in running) / len(running) for k in running[0]}
        _append_jsonl(log_path, {"step": step, "epoch": epoch, "lr": lr,
                                 "time_s": round(time.time() - start, 1), **mean})
    model.eval()
    save_damsm(run_dir, model, vocab, exp.to_dict())
    splits = min(train.rprec_splits, len(test_set))
    try:
        result = dataset_r_precision(model, vocab, test_set, max_words=data.max_words,
                                     num_captions=train.rprec_captions, splits=splits, seed=train.seed,
                                     device=device, damsm_name=str(run_dir), progress=progress)
    except T2IError as e:  # e.g. a test split too small for 99 mismatched captions: the weights are saved
        print(f"R-precision of real test images not computed: {e}", flush=True)
        return run_dir
    _append_jsonl(log_path, {"step": step, "epoch": epoch, "test_r_precision": result["mean"],
                             "test_r_precision_std": result["std"]})
    _append_jsonl(run_dir / "metrics.jsonl", {"metric": "r_precision", "split": "test", "images": "real", **result})
    print(f"R-precision of real test images: {100 * result['mean']:.2f} +- {100 * result['std']:.2f} % "
          f"(chance {100 / train.rprec_captions:.0f}%, {result['num_images']} images, {splits} splits, "
          f"DAMSM {run_dir})")
    return run_dir


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
