"""MirrorGAN [Qiao et al., "MirrorGAN: Learning Text-to-image Generation by Redescription", CVPR 2019]:
text -> image -> text. Three modules:

* **STEM** (semantic text embedding): AttnGAN's text encoder (word features ``w``, sentence feature
  ``s``; frozen, from a pretrained DAMSM run) and conditioning augmentation ``s_ca = F_ca(s)``
  (:class:`t2igan.models.attngan.ConditioningAugmentation`).
* **GLAM** (global-local collaborative attention): AttnGAN's cascaded generator whose attention stages
  see, besides AttnGAN's word-context feature (:class:`t2igan.models.attngan.WordAttention`), a
  sentence-context feature (:class:`SentenceAttention`) [MirrorGAN, Sec. 3.2]::

      f_0 = F_0(z, s_ca)
      f_i = F_i([f_{i-1}, att_w(f_{i-1}, w), att_s(f_{i-1}, s_ca)])      i = 1 .. m-1
      att_s = (V s_ca) * softmax(f_{i-1} * (V s_ca))                    (elementwise products)

  As the official code (github.com/qiaott/MirrorGAN, ``GLAttention.py``, ``model.py``): the softmax
  runs over the channels at each pixel, the three features (``3 ngf`` channels) are fused by a 1x1
  conv to ``2 ngf`` before the residual blocks, and a 1x1 conv acts on ``f * (V s_ca)`` before the
  softmax (``sentence_attention_conv``; ``False`` is the paper's form without it).
* **STREAM** (semantic text regeneration and alignment): an image captioner (:class:`StreamCaptioner`,
  Show-and-Tell style: CNN feature as the first LSTM input, teacher forcing), pretrained on real
  (image, caption) pairs (``t2igan pretrain stream PRESET``, :func:`pretrain_stream`) and frozen. The
  generator pays ``lambda`` times the captioning cross-entropy of its last-stage image against the
  caption it was given [MirrorGAN, Sec. 3.3-3.4]::

      L_stream = -sum_t log p_t(T_t)                 (:func:`caption_loss`, mean over words)
      L_G = sum_i L_G_i + lambda L_stream + KL       (+ AttnGAN's lambda_DAMSM L_DAMSM, 0 by default)

Paper vs. official code (SPEC "MirrorGAN"): lambda = 20 in the paper (``stream_lambda`` default),
``LAMBDA1 = 10`` in the official ``train_bird.yml`` (``model.stream_lambda=10``); neither uses the
DAMSM loss (``damsm_lambda = 0``; the official config's ``LAMBDA: 0``). The official STREAM is a
ResNet-152 (frozen) + linear + BN encoder and a 1-layer LSTM (embedding 256, hidden 512) trained with
the pytorch-tutorial image-captioning code; ResNet-152 weights are not available here, so the CUB
STREAM uses the ImageNet Inception-v3 (frozen, pooled 2048-d feature) that the DAMSM uses, and Shapes
a small trainable CNN (:class:`t2igan.models.damsm.SmallCNN`) so that it pretrains on a CPU; the
Shapes preset also feeds the image feature to every LSTM step (``inject="every"``; official: the first
step only, ``"init"``), which learns colours and shapes much faster in a CPU budget.

End of caption: the vocabulary's index 0 (``<pad>``) doubles as the end token (the AttnGAN convention
of :mod:`t2igan.data.text`; no vocabulary has a separate ``<end>``). STREAM predicts it after the last
word, so decoding (:meth:`StreamCaptioner.greedy`, :meth:`StreamCaptioner.beam_search`) stops there.
The official code predicts the words only and always decodes 20 steps; the end target adds one term per
caption to ``L_stream``. No start token either: the image feature is the first input.

Frozen parts: the text encoder (as AttnGAN) and the STREAM are in the module tree, in no optimizer and
always in eval mode; the STREAM is saved with the run, so ``t2igan caption RUN image.png`` and
``t2igan sample RUN ... --mirror`` work from a MirrorGAN run folder alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.text import PAD_ID, tokenize
from ..errors import T2IError
from ..registry import register_model
from .attngan import (AttnGAN, AttnGANConfig, ConditioningAugmentation, InitialStage, ResidualBlock, UpBlock,
                      WordAttention, conv3x3, init_weights)

END_ID = PAD_ID  # index 0: padding and end of caption
STREAM_BACKBONES = ("inception", "small_cnn")


# ---------------------------------------------------------------------------------------------------
# GLAM: the generator
# ---------------------------------------------------------------------------------------------------


class SentenceAttention(nn.Module):
    """GLAM's sentence-level attention [MirrorGAN, Sec. 3.2]: ``s' = V s_ca`` (a linear "perception
    layer" to the image feature's channels), ``alpha = softmax_channels(f * s')`` at each pixel (the
    official code applies a 1x1 conv to ``f * s'`` first: ``conv=True``), and the sentence-context
    feature ``alpha * s'``."""

    def __init__(self, feat_dim: int, c_dim: int, conv: bool = True):
        super().__init__()
        self.project = nn.Linear(c_dim, feat_dim)  # V
        self.conv = nn.Conv2d(feat_dim, feat_dim, 1, bias=False) if conv else None

    def forward(self, h: torch.Tensor, c_code: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """h (B, C, H, W), c_code (B, c_dim) -> (context (B, C, H, W), alpha (B, C, H, W))."""
        sent = self.project(c_code)[:, :, None, None]  # (B, C, 1, 1)
        scores = h * sent  # (B, C, H, W)
        if self.conv is not None:
            scores = self.conv(scores)
        alpha = scores.float().softmax(dim=1).to(h.dtype)  # (B, C, H, W), sums to 1 over C at each pixel
        return alpha * sent, alpha


class GLAMStage(nn.Module):
    """F_i with global-local attention: ``[f, att_w, att_s]`` (3 ngf) -> 1x1 conv to 2 ngf -> residual
    blocks -> up x2: ``ngf x s x s -> ngf x 2s x 2s``."""

    def __init__(self, ngf: int, word_dim: int, c_dim: int, num_residual: int, sentence_conv: bool = True):
        super().__init__()
        self.word_attention = WordAttention(ngf, word_dim)
        self.sentence_attention = SentenceAttention(ngf, c_dim, sentence_conv)
        self.fuse = nn.Conv2d(3 * ngf, 2 * ngf, 1, bias=False)
        self.residual = nn.Sequential(*(ResidualBlock(2 * ngf) for _ in range(num_residual)))
        self.up = UpBlock(2 * ngf, ngf)

    def forward(self, h, c_code, word_embs, mask):
        word_context, word_attn = self.word_attention(h, word_embs, mask)  # (B, ngf, s, s), (B, T, s, s)
        sent_context, _ = self.sentence_attention(h, c_code)  # (B, ngf, s, s)
        h = self.fuse(torch.cat([h, word_context, sent_context], dim=1))  # (B, 2 ngf, s, s)
        return self.up(self.residual(h)), word_attn


class GLAMGenerator(nn.Module):
    """AttnGAN's generator (CA, F_0, per-stage 3x3 conv + tanh) with :class:`GLAMStage` attention
    stages; ``forward`` returns what :class:`t2igan.models.attngan.Generator` returns: every stage's
    image, every attention stage's word attention ``[(B, T, h, w)]``, and CA's ``mu, logvar``."""

    def __init__(self, ngf: int, z_dim: int, c_dim: int, sent_dim: int, base_size: int, num_stages: int,
                 num_residual: int, sentence_conv: bool = True):
        super().__init__()
        self.ca = ConditioningAugmentation(sent_dim, c_dim)
        self.initial = InitialStage(ngf, z_dim + c_dim, base_size)
        self.stages = nn.ModuleList(GLAMStage(ngf, sent_dim, c_dim, num_residual, sentence_conv)
                                    for _ in range(num_stages - 1))
        self.to_rgb = nn.ModuleList(nn.Sequential(conv3x3(ngf, 3), nn.Tanh()) for _ in range(num_stages))

    def forward(self, noise, sent_emb, word_embs, mask):
        c_code, mu, logvar = self.ca(sent_emb)  # s_ca
        h = self.initial(noise, c_code)
        images, attention = [self.to_rgb[0](h)], []
        for stage, to_rgb in zip(self.stages, self.to_rgb[1:]):
            h, attn = stage(h, c_code, word_embs, mask)
            images.append(to_rgb(h))
            attention.append(attn)
        return images, attention, mu, logvar


# ---------------------------------------------------------------------------------------------------
# STREAM: the captioner
# ---------------------------------------------------------------------------------------------------


@dataclass
class StreamConfig:
    """Architecture of a STREAM captioner (what a run's ``config.json`` stores under ``model_config``)."""

    vocab_size: int = 0  # words incl. <pad>/end (0) and <unk>; set from the vocabulary
    backbone: str = "inception"  # inception (frozen ImageNet Inception-v3, 299 px) | small_cnn (trainable)
    image_size: int = 299  # small_cnn: side of its input (images are resized to it)
    cnn_channels: int = 32  # small_cnn: channels of its first conv (doubled at each down-sampling)
    embed_dim: int = 256  # image feature and word embedding size (official CAP.embed_size 256)
    hidden_dim: int = 512  # LSTM units (official 2 x CAP.hidden_size = 512)
    inject: str = "init"  # image feature as the first LSTM input only (official, Show and Tell) | "every" step too
    max_len: int = 20  # decoding: at most this many words (official sample(): 20 steps)
    inception_weights: str | None = None  # ImageNet Inception-v3 file (inception backbone); never needed to load a run


class StreamEncoder(nn.Module):
    """Image -> one ``embed_dim`` feature (the LSTM's first input) [MirrorGAN, Sec. 3.3].

    ``inception``: the frozen ImageNet Inception-v3 of the DAMSM (pooled 2048-d feature), then a
    trainable linear layer and BatchNorm (the official ResNet-152 encoder's head). ``small_cnn``: the
    DAMSM's small trainable CNN down to 4 x 4, flattened (so the feature keeps where things are), then
    the same linear + BatchNorm head.
    """

    def __init__(self, embed_dim: int, backbone: str = "inception", image_size: int = 299,
                 cnn_channels: int = 32, inception_weights: str | None = None):
        super().__init__()
        from .damsm import InceptionBackbone, SmallCNN

        if backbone not in STREAM_BACKBONES:
            raise T2IError(f"STREAM encoder backbone must be one of {STREAM_BACKBONES}, got {backbone!r}")
        self.backbone_name = backbone
        if backbone == "inception":
            self.backbone = InceptionBackbone(inception_weights)  # frozen, always in eval mode
            feat_dim = InceptionBackbone.global_dim
            self.input_size = 299
        else:
            self.backbone = SmallCNN(image_size, cnn_channels)
            feat_dim = self.backbone.global_dim * 4 * 4
            self.input_size = image_size
        self.linear = nn.Linear(feat_dim, embed_dim)
        self.norm = nn.BatchNorm1d(embed_dim, momentum=0.01)  # official momentum

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) RGB in [-1, 1] -> features (B, embed_dim)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise T2IError(f"STREAM expects images (B, 3, H, W), got {tuple(images.shape)}")
        if self.backbone_name == "inception":
            feats = self.backbone(images)[1]  # (B, 2048)
        else:
            size = self.input_size
            if images.shape[-2:] != (size, size):
                images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                                       antialias=images.shape[-1] > size)
            cnn = self.backbone  # its local (8 x 8) and global (4 x 4) conv stacks, without the spatial mean
            feats = cnn.glob(cnn.local(images)).flatten(1)  # (B, C * 16)
        return self.norm(self.linear(feats))


class StreamCaptioner(nn.Module):
    """STREAM: :class:`StreamEncoder` + word embedding + 1-layer LSTM + linear to the vocabulary.

    Step 0 reads the image feature, step ``t >= 1`` the embedding of word ``t - 1``; the output of step
    ``t`` predicts word ``t``, and the output after the last word predicts the end token (0)
    [MirrorGAN, Sec. 3.3; Show and Tell]. With ``inject="every"`` every step's input also carries the
    image feature (concatenated): not the official form, but on Shapes it learns which colour and shape
    to name several times faster (the image no longer has to be carried by the LSTM's memory alone).
    """

    model_name = "stream"

    def __init__(self, config: StreamConfig):
        super().__init__()
        c = self.config = config
        if c.vocab_size < 2:
            raise T2IError(f"STREAM needs vocab_size >= 2, got {c.vocab_size}")
        if c.inject not in ("init", "every"):
            raise T2IError(f"STREAM inject must be init or every, got {c.inject!r}")
        self.encoder = StreamEncoder(c.embed_dim, c.backbone, c.image_size, c.cnn_channels, c.inception_weights)
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.lstm = nn.LSTM(c.embed_dim * (2 if c.inject == "every" else 1), c.hidden_dim, batch_first=True)
        self.out = nn.Linear(c.hidden_dim, c.vocab_size)

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def _run_lstm(self, inputs: torch.Tensor, state=None):
        if inputs.is_cuda and torch.is_grad_enabled() and not self.lstm.training:
            # cuDNN's RNN backward runs in training mode only; a frozen STREAM (eval mode) still passes
            # gradients back to the generator's images, so use the native kernel then
            with torch.backends.cudnn.flags(enabled=False):
                return self.lstm(inputs, state)
        return self.lstm(inputs, state)

    def _with_feature(self, inputs: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        """inputs (B, L, E), feats (B, E) -> the LSTM's inputs (B, L, E), or (B, L, 2E) with the image
        feature appended at every step (``inject="every"``)."""
        if self.config.inject == "every":
            inputs = torch.cat([inputs, feats[:, None].expand(-1, inputs.shape[1], -1)], dim=2)
        return inputs

    def forward(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: images (B, 3, H, W), tokens (B, T) padded with 0, lengths (B,) ->
        logits (B, L + 1, V) with ``L = max(lengths)``: position ``t`` scores word ``t``, position
        ``lengths[b]`` the end token; later positions are padding."""
        if tokens.shape[0] != images.shape[0] or lengths.shape != tokens.shape[:1]:
            raise T2IError(f"STREAM: {images.shape[0]} images, tokens {tuple(tokens.shape)} and lengths "
                           f"{tuple(lengths.shape)} do not match")
        steps = int(lengths.max())
        feats = self.encoder(images)  # (B, E)
        words = self.embedding(tokens[:, :steps])  # (B, L, E)
        inputs = self._with_feature(torch.cat([feats[:, None], words], dim=1), feats)  # (B, L + 1, E or 2E)
        hidden, _ = self._run_lstm(inputs)  # (B, L + 1, H)
        return self.out(hidden)  # (B, L + 1, V)

    def _check_max_len(self, max_len: int | None) -> int:
        max_len = self.config.max_len if max_len is None else int(max_len)
        if max_len < 1:
            raise T2IError(f"STREAM decoding needs max_len >= 1, got {max_len}")
        return max_len

    @torch.no_grad()
    def greedy(self, images: torch.Tensor, max_len: int | None = None) -> list[list[int]]:
        """Greedy decoding: the most likely word at each step until the end token (not included in
        the result) or ``max_len`` words."""
        max_len = self._check_max_len(max_len)
        feats = self.encoder(images)  # (B, E)
        inputs = self._with_feature(feats[:, None], feats)  # (B, 1, E or 2E)
        B = inputs.shape[0]
        words: list[list[int]] = [[] for _ in range(B)]
        alive = torch.ones(B, dtype=torch.bool, device=inputs.device)
        state = None
        for _ in range(max_len):
            hidden, state = self._run_lstm(inputs, state)
            best = self.out(hidden[:, 0]).argmax(dim=1)  # (B,)
            alive &= best != END_ID
            if not alive.any():
                break
            for b in alive.nonzero().flatten().tolist():
                words[b].append(int(best[b]))
            inputs = self._with_feature(self.embedding(best)[:, None], feats)  # finished rows run on, unread
        return words

    @torch.no_grad()
    def beam_search(self, images: torch.Tensor, beam: int = 3, max_len: int | None = None) -> list[list[int]]:
        """Beam search per image: the caption with the highest total log-probability among the
        hypotheses kept (no length penalty). The beam shrinks by one each time a kept candidate is the
        end token; a hypothesis that reaches ``max_len`` words ends there. ``beam=1`` is greedy."""
        if beam < 1:
            raise T2IError(f"beam width must be at least 1, got {beam}")
        max_len = self._check_max_len(max_len)
        feats = self.encoder(images)  # (B, E)
        return [self._beam_one(feats[b:b + 1], beam, max_len) for b in range(feats.shape[0])]

    def _beam_one(self, feat: torch.Tensor, width: int, max_len: int) -> list[int]:
        hidden, state = self._run_lstm(self._with_feature(feat[:, None], feat))  # (1, 1, H)
        seqs: list[list[int]] = [[]]
        scores = feat.new_zeros(1)  # (k,) total log-probability of each alive hypothesis
        finished: list[tuple[float, list[int]]] = []
        for step in range(max_len):
            logp = self.out(hidden[:, 0]).float().log_softmax(dim=1)  # (k, V)
            V = logp.shape[1]
            cand = (scores[:, None] + logp).flatten()  # (k * V,)
            top_scores, top = cand.topk(min(width, cand.numel()))
            keep, keep_rows, keep_words = [], [], []
            for k, (s, idx) in enumerate(zip(top_scores.tolist(), top.tolist())):
                row, word = divmod(idx, V)
                if word == END_ID:
                    finished.append((s, seqs[row]))
                    width -= 1
                else:
                    keep.append(k)
                    keep_rows.append(row)
                    keep_words.append(word)
            if not keep:
                break
            rows = torch.tensor(keep_rows, device=feat.device)
            words = torch.tensor(keep_words, device=feat.device)
            seqs = [seqs[r] + [w] for r, w in zip(keep_rows, keep_words)]
            scores = top_scores[torch.tensor(keep, device=feat.device)]  # (k',)
            if step == max_len - 1:  # out of length: the alive hypotheses end here
                finished += list(zip(scores.tolist(), seqs))
                break
            if finished and max(s for s, _ in finished) >= float(scores.max()):
                break  # log-probabilities only fall: no alive hypothesis can overtake the best finished one
            state = (state[0][:, rows], state[1][:, rows])
            inputs = self._with_feature(self.embedding(words)[:, None], feat.expand(len(keep), -1))
            hidden, state = self._run_lstm(inputs, state)
        return max(finished, key=lambda f: f[0])[1]


def caption_targets(tokens: torch.Tensor, lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """What each of ``steps`` teacher-forced positions must predict: word ``t`` for ``t < length``, the
    end token (0) at ``t == length``, -100 (ignored) after. tokens (B, T), lengths (B,) -> (B, steps)."""
    if steps < int(lengths.max()) + 1:
        raise T2IError(f"caption logits cover {steps} positions but the longest caption needs {int(lengths.max()) + 1}")
    t = torch.arange(steps, device=tokens.device)[None]  # (1, steps)
    targets = F.pad(tokens, (0, max(0, steps - tokens.shape[1])))[:, :steps]
    targets = targets.masked_fill(t == lengths[:, None], END_ID)  # the end token after the last word
    return targets.masked_fill(t > lengths[:, None], -100)  # padding


def caption_cross_entropy(logits: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``L_stream = -mean_t log p_t(T_t)`` [MirrorGAN, Sec. 3.4] over the words of every caption and its
    end token (mean over all those targets in the batch, as the official ``CrossEntropyLoss`` over the
    packed words); padding is ignored.

    logits (B, L + 1, V) from :meth:`StreamCaptioner.forward`; tokens (B, T) padded; lengths (B,).
    """
    targets = caption_targets(tokens, lengths, logits.shape[1])  # (B, L + 1)
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


def caption_loss(stream: StreamCaptioner, images: torch.Tensor, tokens: torch.Tensor,
                 lengths: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
    """The STREAM loss of a generator's ``images`` against the captions they were generated from
    [MirrorGAN, Sec. 3.4]: :func:`caption_cross_entropy` of the (frozen) captioner's teacher-forced
    logits. Gradients reach ``images`` (and whatever made them), never a frozen STREAM's weights.
    Returns (loss, logs with the word accuracy of the teacher-forced predictions)."""
    logits = stream(images, tokens, lengths)  # (B, L + 1, V)
    loss = caption_cross_entropy(logits, tokens, lengths)
    return loss, {"stream_word_acc": word_accuracy(logits, tokens, lengths)}


@torch.no_grad()
def word_accuracy(logits: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> float:
    """Fraction of teacher-forced positions (words and end token) whose argmax is the target."""
    targets = caption_targets(tokens, lengths, logits.shape[1])
    valid = targets != -100
    return float((logits.argmax(dim=2) == targets)[valid].float().mean())


def caption_images(stream: StreamCaptioner, vocab, images: torch.Tensor, beam: int = 1,
                   max_len: int | None = None, batch_size: int = 100) -> list[str]:
    """STREAM captions (strings) of images (N, 3, H, W) in [-1, 1]: greedy (``beam=1``) or beam search."""
    stream = stream.eval()
    device = next(stream.parameters()).device
    out = []
    for s in range(0, len(images), batch_size):
        batch = images[s:s + batch_size].to(device)
        ids = stream.greedy(batch, max_len) if beam == 1 else stream.beam_search(batch, beam, max_len)
        out += [vocab.decode(x) for x in ids]
    return out


# ---------------------------------------------------------------------------------------------------
# Caption metrics: BLEU-4, and the attributes a Shapes caption names
# ---------------------------------------------------------------------------------------------------


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(hypotheses: list[list[str]], references: list[list[list[str]]], max_n: int = 4) -> float:
    """Corpus BLEU [Papineni et al., ACL 2002]: n-gram precisions (n = 1..max_n) clipped by the most
    counts in any reference, pooled over the corpus, geometric mean with uniform weights, times the
    brevity penalty ``exp(1 - r / c)`` when the total hypothesis length ``c`` is below ``r`` (the sum of
    each hypothesis's closest reference length, the shorter on ties). No smoothing: 0 when some
    order has no match."""
    if len(hypotheses) != len(references):
        raise T2IError(f"BLEU: {len(hypotheses)} hypotheses but {len(references)} reference sets")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references):
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            most: Counter = Counter()
            for r in refs:
                most |= _ngrams(r, n)  # elementwise max of the counts
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    return brevity * math.exp(log_precision)


_SHAPE_TOKENS = {"circle": "circle", "disc": "circle", "round": "circle", "square": "square", "box": "square",
                 "block": "square", "triangle": "triangle", "triangular": "triangle", "star": "star",
                 "diamond": "diamond", "rhombus": "diamond"}
_SIZE_TOKENS = {"small": "small", "little": "small", "tiny": "small", "large": "large", "big": "large"}
_POSITION_TOKENS = {"left": "left", "right": "right", "top": "top", "upper": "top", "bottom": "bottom",
                    "lower": "bottom", "centre": "centre", "center": "centre", "middle": "centre"}
_RELATION_TOKENS = {"above": "above", "over": "above", "below": "below", "under": "below", "beneath": "below"}


def parse_shapes_caption(caption: str) -> dict:
    """The scene a Shapes caption (:mod:`t2igan.data.shapes` templates) describes, read from its words:
    ``{"objects": [{"shape", "colour", "size", "position"}, ...], "relation"}`` with ``None`` for
    whatever the caption does not say (a generated caption may be incomplete or garbled).

    Each object is one shape mention ("circle", "round shape", ...); in a two-object caption each noun
    phrase starts at its article, and the relation's subject is the first phrase unless the relation
    comes first ("above X there is Y") or ends in "it" ("X with Y above it")."""
    words = tokenize(caption)
    mentions = [(i, _SHAPE_TOKENS[w]) for i, w in enumerate(words)
                if w in _SHAPE_TOKENS and not (w == "star" and i > 0 and words[i - 1] in ("round", "triangular"))]
    relation, rel_at, rel_end = None, None, None
    for i, w in enumerate(words):
        if w in ("left", "right") and i + 1 < len(words) and words[i + 1] == "of":
            relation, rel_at, rel_end = f"{w} of", i, i + 1
        elif w in _RELATION_TOKENS:
            relation, rel_at, rel_end = _RELATION_TOKENS[w], i, i
        if relation:
            break

    def first(span, table, skip=()):
        return next((table[words[i]] for i in span if words[i] in table and i not in skip), None)

    colours = {"red", "green", "blue", "yellow", "purple", "orange", "cyan", "pink"}
    colour_of = {c: c for c in colours}
    if len(mentions) <= 1:
        span = range(len(words))
        rel_words = set() if rel_at is None else set(range(rel_at, rel_end + 1))
        obj = {"shape": mentions[0][1] if mentions else None, "colour": first(span, colour_of),
               "size": first(span, _SIZE_TOKENS), "position": first(span, _POSITION_TOKENS, rel_words)}
        return {"objects": [obj], "relation": None}
    (i0, shape0), (i1, shape1) = mentions[:2]
    articles = [i for i in range(i0 + 1, i1) if words[i] in ("a", "an")]
    split = articles[-1] if articles else i0 + 1
    phrases = []
    for span, shape in ((range(0, split), shape0), (range(split, len(words)), shape1)):
        phrases.append({"shape": shape, "colour": first(span, colour_of), "size": first(span, _SIZE_TOKENS)})
    subject_second = rel_at is not None and (rel_at < i0 or (rel_end + 1 < len(words) and words[rel_end + 1] == "it"))
    objects = phrases[::-1] if subject_second else phrases
    from ..data.shapes import RELATION_POSITIONS

    positions = RELATION_POSITIONS.get(relation, (None, None))
    for obj, pos in zip(objects, positions):
        obj["position"] = pos
    return {"objects": objects, "relation": relation}


def scene_labels(scene: dict) -> list[int]:
    """Labels of a (possibly incomplete) scene in :data:`t2igan.metrics.shapes_probe.PROBE_KEYS` order,
    read in the probe's canonical object order (left or top object first); -1 where unknown."""
    from ..data.shapes import INVERSE_RELATION, LABEL_CLASSES
    from ..metrics.shapes_probe import PROBE_KEYS

    objects, relation = list(scene["objects"]), scene.get("relation")
    if relation in ("right of", "below") and len(objects) == 2:
        objects, relation = objects[::-1], INVERSE_RELATION[relation]
    labels = {"count": LABEL_CLASSES["count"].index(len(objects)) if len(objects) in (1, 2) else -1,
              "relation": LABEL_CLASSES["relation"].index(relation) if relation else -1}
    for k in range(2):
        for key in ("shape", "colour", "size", "position"):
            value = objects[k].get(key) if k < len(objects) else None
            names = LABEL_CLASSES[f"{key}{k}"]
            labels[f"{key}{k}"] = names.index(value) if value in names else -1
    return [labels[k] for k in PROBE_KEYS]


def shapes_caption_accuracy(captions: list[str], attributes: list[dict]) -> dict:
    """How well captions name their Shapes scenes: :func:`t2igan.metrics.shapes_probe.attribute_accuracy`
    of the attributes read from each caption (:func:`parse_shapes_caption`) against the true ones
    (``mean``: fraction of a scene's attributes named correctly, averaged; ``exact``: fraction of
    captions naming every attribute right)."""
    from ..metrics.shapes_probe import attribute_accuracy, labels_tensor

    preds = torch.tensor([scene_labels(parse_shapes_caption(c)) for c in captions], dtype=torch.long)
    return attribute_accuracy(preds, labels_tensor(attributes))


def _derangement(n: int, seed: int) -> list[int]:
    """``other[i] != i`` for n > 1: each image paired with another, randomly."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    other = [0] * n
    for k in range(n):
        other[perm[k]] = perm[(k + 1) % n]
    return other


@torch.no_grad()
def evaluate_stream(stream: StreamCaptioner, vocab, dataset, beam: int = 1, max_images: int | None = None,
                    batch_size: int = 100, seed: int = 0) -> dict:
    """Caption real images of ``dataset`` (each image's first-caption item) and score the captions.

    * ``bleu4``: :func:`corpus_bleu` against all of each image's captions; ``bleu4_chance``: the same for
      a real caption of another image (what a fluent captioner that ignores the image scores);
    * on Shapes (datasets with ``attributes(i)``), ``attribute_accuracy`` / ``exact`` from
      :func:`shapes_caption_accuracy`, with the same ``*_chance`` baseline.
    """
    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    if n < 2:
        raise T2IError(f"STREAM evaluation needs at least 2 test images, got {n}")
    hyps = []
    for s in range(0, n, batch_size):
        images = torch.stack([dataset.get_item(i, 0)["image"] for i in range(s, min(s + batch_size, n))])
        hyps += caption_images(stream, vocab, images, beam=beam, batch_size=batch_size)
    refs = [dataset.captions(i) for i in range(n)]
    other = [refs[j][0] for j in _derangement(n, seed)]
    ref_words = [[tokenize(r) for r in rs] for rs in refs]
    result = {"num_images": n, "beam": beam, "bleu4": corpus_bleu([tokenize(h) for h in hyps], ref_words),
              "bleu4_chance": corpus_bleu([tokenize(h) for h in other], ref_words),
              "examples": [{"caption": hyps[i], "reference": refs[i][0]} for i in range(min(5, n))]}
    if hasattr(dataset, "attributes"):
        attributes = [dataset.attributes(i) for i in range(n)]
        acc, chance = shapes_caption_accuracy(hyps, attributes), shapes_caption_accuracy(other, attributes)
        result.update(attribute_accuracy=acc["mean"], exact=acc["exact"], per_attribute=acc["per_attribute"],
                      attribute_accuracy_chance=chance["mean"], exact_chance=chance["exact"])
    return result


# ---------------------------------------------------------------------------------------------------
# STREAM runs: save, load, pretrain
# ---------------------------------------------------------------------------------------------------


def load_stream(path_or_run_dir: str | Path, device: str | torch.device = "cpu"):
    """``(StreamCaptioner in eval mode, Vocabulary)`` from a ``t2igan pretrain stream`` run folder (or a
    file in it), or the STREAM inside a MirrorGAN run folder."""
    from ..data.text import Vocabulary
    from ..hub import VOCAB_NAME, WEIGHTS_NAME, load_run, load_safetensors_into, read_run_config

    path = Path(path_or_run_dir).expanduser()
    run_dir = path.parent if path.is_file() else path
    if not run_dir.is_dir():
        raise T2IError(f"STREAM run folder not found: {path}")
    config = read_run_config(run_dir)
    name = config.get("model_name")
    if name == "mirrorgan":
        model, vocab, _ = load_run(run_dir, device)
        return model.stream, vocab
    if name != "stream":
        raise T2IError(f"{run_dir} is a {name!r} run, not a STREAM (`t2igan pretrain stream`) or MirrorGAN run")
    values = dict(config.get("model_config", {}))
    values["inception_weights"] = None  # the run's own weights hold the backbone
    from ..config import build_dataclass

    model = StreamCaptioner(build_dataclass(StreamConfig, values, f"{run_dir}/config.json model_config"))
    load_safetensors_into(model, run_dir / WEIGHTS_NAME)
    vocab = Vocabulary.load(run_dir / VOCAB_NAME)
    if len(vocab) != model.config.vocab_size:
        raise T2IError(f"{run_dir}: vocab.json has {len(vocab)} words but the STREAM was built for "
                       f"{model.config.vocab_size}")
    return model.to(device).eval(), vocab


@dataclass
class StreamTrainConfig:
    """Pretraining schedule (the pytorch-tutorial captioning code the official STREAM was trained with:
    Adam lr 1e-3, batch 128)."""

    batch_size: int = 128
    lr: float = 0.001  # Adam learning rate (official CAP.learning_rate)
    betas: tuple = (0.9, 0.999)  # Adam betas (PyTorch defaults, as the tutorial)
    grad_clip: float | None = None  # max gradient norm (None: no clipping, as the tutorial)
    epochs: int = 100  # passes over the training split (one random caption per image per pass)
    max_steps: int | None = None  # stop after this many steps (overrides epochs)
    time_limit_min: float | None = None  # stop after this many minutes
    time_limit_clock: str = "wall"  # wall | cpu (this process's CPU time: fair budgets on a shared machine)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 50  # steps between log.jsonl lines
    eval_images: int | None = None  # real test images captioned at the end (None: all)
    eval_beam: int = 1  # beam width of that evaluation (1: greedy)


@dataclass
class StreamExperiment:
    """A STREAM pretraining preset: ``model: stream``, ``model_args`` (:class:`StreamConfig`), ``data``
    (:class:`t2igan.config.DataConfig`) and ``train`` (:class:`StreamTrainConfig`)."""

    model: str = "stream"
    model_args: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    name: str = "stream"
    runs_dir: str = "runs"

    def data_config(self):
        from ..config import DataConfig, build_dataclass

        return build_dataclass(DataConfig, self.data, "data")

    def train_config(self) -> StreamTrainConfig:
        from ..config import build_dataclass

        return build_dataclass(StreamTrainConfig, self.train, "train")

    def model_config(self, vocab_size: int = 0) -> StreamConfig:
        from ..config import build_dataclass

        values = dict(self.model_args, vocab_size=vocab_size)
        values.setdefault("image_size", self.data_config().image_size)
        return build_dataclass(StreamConfig, values, "model_args")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def resolve_stream_config(preset: str, overrides: list[str] | None = None) -> StreamExperiment:
    """A STREAM preset (``stream-shapes``) or YAML file plus ``section.key=value`` overrides, validated."""
    from ..config import apply_overrides, load_preset

    d = apply_overrides(load_preset(preset), overrides or [])
    unknown = set(d) - {f.name for f in dataclasses.fields(StreamExperiment)}
    if unknown:
        raise T2IError(f"unknown top-level keys in STREAM preset {preset!r}: {sorted(unknown)}")
    if d.get("model", "stream") != "stream":
        raise T2IError(f"preset {preset!r} is for model {d['model']!r}, not stream")
    exp = StreamExperiment(**d)
    exp.data_config(), exp.model_config()  # unknown keys fail here, in one line
    train = exp.train_config()
    if train.time_limit_clock not in ("wall", "cpu"):
        raise T2IError(f"train.time_limit_clock must be wall or cpu, got {train.time_limit_clock!r}")
    return exp


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def pretrain_stream(exp: StreamExperiment, run_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Pretrain a STREAM captioner on real (image, caption) pairs; returns the run folder.

    Adam on the trainable parameters (all but a frozen Inception) minimising
    :func:`caption_cross_entropy` with teacher forcing, for ``epochs`` / ``max_steps`` /
    ``time_limit_min``. ``data.vocab`` makes it use a DAMSM run's vocabulary (a MirrorGAN needs its
    STREAM and its text encoder to share one). The run folder gets ``config.json``, ``vocab.json``,
    ``model.safetensors`` (:func:`t2igan.hub.save_run`), ``log.jsonl`` and ``metrics.jsonl`` with the
    :func:`evaluate_stream` scores of real test images, which are also printed.
    """
    from types import SimpleNamespace

    from tqdm import tqdm

    from ..data.text import CaptionCollator
    from ..hub import save_run
    from ..trainer import build_datasets, build_vocab, elapsed_seconds, new_run_dir
    from .damsm import resolve_device

    data, train = exp.data_config(), exp.train_config()
    torch.manual_seed(train.seed)
    random.seed(train.seed)
    device = resolve_device(train.device)
    inception_weights = exp.model_config().inception_weights
    if exp.model_config().backbone == "inception":
        from ..metrics.inception import resolve_weights_path

        # ImageNet weights are required (a random frozen backbone captions nothing): fail before loading data
        inception_weights = str(resolve_weights_path("imagenet", inception_weights))
    data_only = SimpleNamespace(data=data)  # what the trainer's data helpers read
    train_set, test_set = build_datasets(data_only)
    vocab = build_vocab(data_only, train_set)
    config = dataclasses.replace(exp.model_config(len(vocab)), inception_weights=inception_weights)
    model = StreamCaptioner(config).to(device)
    loader = torch.utils.data.DataLoader(
        train_set, batch_size=train.batch_size, shuffle=True, drop_last=len(train_set) >= train.batch_size,
        num_workers=data.num_workers, collate_fn=CaptionCollator(vocab, data.max_words, data.shorten, train=True),
        generator=torch.Generator().manual_seed(train.seed),
    )
    params = model.trainable_parameters()
    optimizer = torch.optim.Adam(params, lr=train.lr, betas=tuple(train.betas))
    total = train.max_steps if train.max_steps is not None else train.epochs * len(loader)
    run_dir = Path(run_dir) if run_dir is not None else new_run_dir(exp.runs_dir, exp.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "log.jsonl"
    start, cpu_start, step, epoch, running = time.time(), time.process_time(), 0, 0, []
    bar = tqdm(total=total, desc=f"stream {exp.name}", unit="step", disable=not progress)
    model.train()
    done = step >= total

    def flush():
        mean = {k: sum(r[k] for r in running) / len(running) for k in running[0]}
        _append_jsonl(log_path, {"step": step, "epoch": epoch, "time_s": round(time.time() - start, 1),
                                 "cpu_s": round(time.process_time() - cpu_start, 1), **mean})
        running.clear()

    try:
        while not done:
            for batch in loader:
                tokens, lengths = batch["tokens"].to(device), batch["lengths"].to(device)
                logits = model(batch["image"].to(device), tokens, lengths)
                loss = caption_cross_entropy(logits, tokens, lengths)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if train.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, train.grad_clip)
                optimizer.step()
                step += 1
                running.append({"loss": loss.item(), "word_acc": word_accuracy(logits, tokens, lengths)})
                bar.update(1)
                bar.set_postfix(loss=f"{running[-1]['loss']:.3f}")
                if step % train.log_every == 0:
                    flush()
                elapsed = elapsed_seconds(train.time_limit_clock, start, cpu_start)
                out_of_time = train.time_limit_min is not None and elapsed > 60 * train.time_limit_min
                if step >= total or out_of_time:
                    done = True
                    break
            else:
                epoch += 1
    except KeyboardInterrupt:
        print("interrupted: saving the STREAM as it is", flush=True)
    finally:
        bar.close()
    if running:
        flush()
    model.eval()
    save_run(run_dir, exp.to_dict(), model, vocab)
    try:
        result = evaluate_stream(model, vocab, test_set, beam=train.eval_beam, max_images=train.eval_images,
                                 seed=train.seed)
    except T2IError as e:  # e.g. a one-image test split: the weights are saved
        print(f"captions of real test images not scored: {e}", flush=True)
        return run_dir
    _append_jsonl(log_path, {"step": step, "epoch": epoch, **{f"test_{k}": v for k, v in result.items()
                                                              if isinstance(v, float)}})
    _append_jsonl(run_dir / "metrics.jsonl", {"metric": "stream_captions", "split": "test", "images": "real",
                                              "steps": step, **result})
    decoding = "greedy" if train.eval_beam == 1 else f"beam {train.eval_beam}"
    print(f"STREAM captions of {result['num_images']} real test images ({decoding}): "
          f"BLEU-4 {100 * result['bleu4']:.1f} (chance {100 * result['bleu4_chance']:.1f})", flush=True)
    if "attribute_accuracy" in result:
        print(f"  attributes named correctly: {100 * result['attribute_accuracy']:.1f}% "
              f"(chance {100 * result['attribute_accuracy_chance']:.1f}%), every attribute right: "
              f"{100 * result['exact']:.1f}% (chance {100 * result['exact_chance']:.1f}%)", flush=True)
    for ex in result["examples"][:3]:
        print(f"  {ex['caption']!r}  (a reference: {ex['reference']!r})", flush=True)
    return run_dir


# ---------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------


@dataclass
class MirrorGANConfig(AttnGANConfig):
    """AttnGAN's fields (sizes, D, DAMSM) plus GLAM's and STREAM's. The ``stream_*`` architecture
    fields are taken from the ``stream_weights`` run when one is given (so a saved run rebuilds it)."""

    damsm_lambda: float = 0.0  # MirrorGAN uses no DAMSM term (paper; official LAMBDA 0); >0 adds AttnGAN's
    sentence_attention_conv: bool = True  # official 1x1 conv before GLAM's sentence softmax; False: the paper's form
    stream_weights: str | None = None  # STREAM run folder (`t2igan pretrain stream`); same vocabulary as the data
    stream_lambda: float = 20.0  # weight of L_stream in G's loss (paper 20; official train_bird.yml 10); 0 disables it
    stream_backbone: str = "inception"  # STREAM encoder built when stream_weights is None: inception | small_cnn
    stream_image_size: int = 299  # small_cnn STREAM: its input side
    stream_cnn_channels: int = 32  # small_cnn STREAM: first conv's channels
    stream_embed_dim: int = 256  # STREAM image feature / word embedding size
    stream_hidden_dim: int = 512  # STREAM LSTM units
    stream_inject: str = "init"  # STREAM image feature: first LSTM input only (official) | every step


_STREAM_FIELDS = {"stream_backbone": "backbone", "stream_image_size": "image_size",
                  "stream_cnn_channels": "cnn_channels", "stream_embed_dim": "embed_dim",
                  "stream_hidden_dim": "hidden_dim", "stream_inject": "inject"}


@register_model("mirrorgan", MirrorGANConfig)
class MirrorGAN(AttnGAN):
    """AttnGAN with GLAM stages and the STREAM redescription loss (see the module docstring)."""

    def __init__(self, config: MirrorGANConfig):
        if config.stream_backbone not in STREAM_BACKBONES:
            raise T2IError(f"mirrorgan: stream_backbone must be one of {STREAM_BACKBONES}, "
                           f"got {config.stream_backbone!r}")
        super().__init__(config)  # STEM (text encoder, DAMSM), AttnGAN's discriminators
        c = config
        self.generator = GLAMGenerator(c.ngf, c.z_dim, c.c_dim, c.cond_dim, c.base_size, c.num_stages,
                                       c.num_residual, c.sentence_attention_conv)
        init_weights(self.generator)
        self.stream = self._build_stream()
        self._stream_warned = bool(c.stream_weights)

    def _build_stream(self) -> StreamCaptioner:
        """The frozen STREAM: from ``stream_weights`` (its vocabulary must be the data's), else random."""
        c = self.config
        if c.stream_weights:
            stream, vocab = load_stream(c.stream_weights)
            if len(vocab) != c.vocab_size:
                raise T2IError(f"the STREAM in {c.stream_weights} has a {len(vocab)}-word vocabulary but the data's "
                               f"has {c.vocab_size}; pretrain it with data.vocab=<DAMSM run>/vocab.json and train "
                               "with the same data.vocab")
            for ours, theirs in _STREAM_FIELDS.items():  # recorded, so that load_run rebuilds this STREAM
                setattr(c, ours, getattr(stream.config, theirs))
        else:
            stream = StreamCaptioner(StreamConfig(vocab_size=c.vocab_size, backbone=c.stream_backbone,
                                                  image_size=c.stream_image_size, cnn_channels=c.stream_cnn_channels,
                                                  embed_dim=c.stream_embed_dim, hidden_dim=c.stream_hidden_dim,
                                                  inject=c.stream_inject))
        return stream.requires_grad_(False).eval()

    def train(self, mode: bool = True):
        """Train G and D; the frozen text encoder and STREAM stay in eval mode."""
        super().train(mode)
        self.stream.eval()
        return self

    def caption(self, images: torch.Tensor, vocab, beam: int = 1, max_len: int | None = None) -> list[str]:
        """The STREAM's captions of ``images`` (the redescription of generated images)."""
        return caption_images(self.stream, vocab, images, beam=beam, max_len=max_len)

    def g_loss(self, batch, state):
        """AttnGAN's ``sum_i L_G_i + KL (+ lambda_DAMSM L_DAMSM)`` plus ``stream_lambda * L_stream`` of
        the last stage's images [MirrorGAN, Sec. 3.4]."""
        loss, logs = super().g_loss(batch, state)
        c = self.config
        if c.stream_lambda > 0:
            if not self._stream_warned:
                warnings.warn("mirrorgan: no stream_weights given, so L_stream uses a randomly initialised "
                              "STREAM; pretrain one with `t2igan pretrain stream ...` or set model.stream_lambda=0")
                self._stream_warned = True
            stream_loss, stream_logs = caption_loss(self.stream, state["fakes"][-1], batch["tokens"], batch["lengths"])
            loss = loss + c.stream_lambda * stream_loss
            logs.update(stream_logs, stream=stream_loss.item(), g_loss=loss.item())
        return loss, logs

