"""STREAM, MirrorGAN's semantic text regeneration and alignment module [Qiao et al., "MirrorGAN:
Learning Text-to-image Generation by Redescription", CVPR 2019, Sec. 3.3]: an image captioner
(:class:`StreamCaptioner`, Show-and-Tell style: CNN feature as the first LSTM input, teacher forcing),
pretrained on real (image, caption) pairs (``t2igan pretrain stream PRESET``: the shared
:class:`t2igan.training.Trainer` on the registered model ``stream``, one phase ``captioner``) and frozen inside a MirrorGAN, whose generator pays the captioning cross-entropy of its images
(:func:`caption_loss`).

Paper -> function: the captioner of Sec. 3.3, :class:`StreamEncoder` + :class:`StreamCaptioner`;
``L_stream`` of Sec. 3.4, :func:`caption_cross_entropy` (real captions) and :func:`caption_loss` (a
generator's images).

The official STREAM is a ResNet-152 (frozen) + linear + BN encoder and a 1-layer LSTM (embedding 256,
hidden 512) trained with the pytorch-tutorial image-captioning code; ResNet-152 weights are not
available here, so the CUB STREAM uses the ImageNet Inception-v3 (frozen, pooled 2048-d feature) that
the DAMSM uses, and Shapes a small trainable CNN (:class:`t2igan.nn.image_encoder.SmallCNN`) so that it
pretrains on a CPU; the Shapes preset also feeds the image feature to every LSTM step
(``inject="every"``; official: the first step only, ``"init"``), which learns colours and shapes much
faster in a CPU budget.

End of caption: the vocabulary's index 0 (``<pad>``) doubles as the end token (the AttnGAN convention
of :mod:`t2igan.data.text`; no vocabulary has a separate ``<end>``). STREAM predicts it after the last
word, so decoding (:meth:`StreamCaptioner.greedy`, :meth:`StreamCaptioner.beam_search`) stops there.
The official code predicts the words only and always decodes 20 steps; the end target adds one term per
caption to ``L_stream``. No start token either: the image feature is the first input.

Captions of real test images are scored by :func:`t2igan.metrics.captions.evaluate_stream`: BLEU-4 and,
on Shapes, the attributes they name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..data.text import PAD_ID
from ..errors import T2IError
from ..fields import Backbone, Betas, Config, Count, Positive, VocabSize
from ..nn.image_encoder import InceptionBackbone, SmallCNN
from ..registry import register_model
from .base import T2IModel

END_ID = PAD_ID  # index 0: padding and end of caption
STREAM_BACKBONES = ("inception", "small_cnn")


@dataclass
class StreamConfig(Config):
    """Architecture of a STREAM captioner (what a run's ``config.json`` stores under ``model_config``)."""

    vocab_size: VocabSize = 5000  # words incl. <pad>/end (0) and <unk>; set from the vocabulary
    backbone: Backbone = "inception"  # inception (frozen ImageNet Inception-v3, 299 px) | small_cnn (trainable)
    image_size: Count = 299  # small_cnn: side of its input (images are resized to it)
    cnn_channels: Count = 32  # small_cnn: channels of its first conv (doubled at each down-sampling)
    embed_dim: Count = 256  # image feature and word embedding size (official CAP.embed_size 256)
    hidden_dim: Count = 512  # LSTM units (official 2 x CAP.hidden_size = 512)
    inject: Literal["init", "every"] = "init"  # image feature as the first LSTM input only (official, Show and Tell) | "every" step too
    max_len: Count = 20  # decoding: at most this many words (official sample(): 20 steps)
    inception_weights: str | None = None  # ImageNet Inception-v3 file the builder loads (inception backbone); never needed to load a run
    # pretraining (the pytorch-tutorial captioning code the official STREAM was trained with: Adam lr 1e-3, batch 128)
    lr: Positive = 0.001  # Adam learning rate (official CAP.learning_rate)
    betas: Betas = (0.9, 0.999)  # Adam betas (PyTorch defaults, as the tutorial)
    grad_clip: float | None = None  # max gradient norm (None: no clipping, as the tutorial)
    eval_images: Count | None = None  # real test images captioned at the end of training (None: all)
    eval_beam: Count = 1  # beam width of that evaluation (1: greedy)


class StreamEncoder(nn.Module):
    """Image -> one ``embed_dim`` feature (the LSTM's first input) [MirrorGAN, Sec. 3.3].

    ``inception``: the frozen ImageNet Inception-v3 of the DAMSM (pooled 2048-d feature), then a
    trainable linear layer and BatchNorm (the official ResNet-152 encoder's head). ``small_cnn``: the
    DAMSM's small trainable CNN down to 4 x 4, flattened (so the feature keeps where things are), then
    the same linear + BatchNorm head.
    """

    def __init__(self, embed_dim: int, backbone: str = "inception", image_size: int = 299,
                 cnn_channels: int = 32):
        super().__init__()
        if backbone not in STREAM_BACKBONES:
            raise T2IError(f"STREAM encoder backbone must be one of {STREAM_BACKBONES}, got {backbone!r}")
        self.backbone_name = backbone
        if backbone == "inception":
            self.backbone = InceptionBackbone()  # frozen, always in eval mode
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


@register_model("stream", StreamConfig, text_to_image=False)
class StreamCaptioner(T2IModel):
    """STREAM: :class:`StreamEncoder` + word embedding + 1-layer LSTM + linear to the vocabulary.

    Step 0 reads the image feature, step ``t >= 1`` the embedding of word ``t - 1``; the output of step
    ``t`` predicts word ``t``, and the output after the last word predicts the end token (0)
    [MirrorGAN, Sec. 3.3; Show and Tell]. With ``inject="every"`` every step's input also carries the
    image feature (concatenated): not the official form, but on Shapes it learns which colour and shape
    to name several times faster (the image no longer has to be carried by the LSTM's memory alone).
    """

    phases = ("captioner",)
    training_only_modules = ()

    def __init__(self, config: StreamConfig):
        super().__init__(config)
        c = config
        self.encoder = StreamEncoder(c.embed_dim, c.backbone, c.image_size, c.cnn_channels)
        self.embedding = nn.Embedding(c.vocab_size, c.embed_dim)
        self.lstm = nn.LSTM(c.embed_dim * (2 if c.inject == "every" else 1), c.hidden_dim, batch_first=True)
        self.out = nn.Linear(c.hidden_dim, c.vocab_size)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # -- the trainer's hooks ---------------------------------------------------------------------
    def captioner_loss(self, batch: dict, state: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The one phase: :func:`caption_cross_entropy` of teacher-forced real captions."""
        tokens, lengths = batch["tokens"], batch["lengths"]
        logits = self(batch["image"], tokens, lengths)
        loss = caption_cross_entropy(logits, tokens, lengths)
        return loss, {"loss": loss.item(), "word_acc": word_accuracy(logits, tokens, lengths)}

    def optimizer_groups(self, train) -> dict[str, list[dict]]:
        """One Adam over the trainable parameters (all but a frozen Inception) at ``lr``, ``betas``."""
        c = self.config
        return {"captioner": [{"params": self.trainable_parameters(), "lr": c.lr, "betas": tuple(c.betas)}]}

    def clipped_parameters(self, phase: str):
        return (self.trainable_parameters(), self.config.grad_clip) if self.config.grad_clip else None

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
