"""MirrorGAN [Qiao et al., "MirrorGAN: Learning Text-to-image Generation by Redescription", CVPR 2019]:
text -> image -> text.

Paper -> function:

* Sec. 3.1, STEM (text embedding, conditioning augmentation): :class:`t2igan.nn.text_encoder.RNNTextEncoder`,
  :class:`t2igan.nn.blocks.ConditioningAugmentation`;
* Sec. 3.2, GLAM (global-local attention): :class:`SentenceAttention`, :class:`GLAMStage` in AttnGAN's
  :class:`t2igan.models.attngan.MultiStageGenerator`;
* Sec. 3.3, STREAM (the captioner): :class:`t2igan.models.stream.StreamCaptioner`;
* Sec. 3.4, the objective ``L_G = sum_i L_G_i + lambda L_stream + KL``: :meth:`MirrorGAN.g_loss`
  (:func:`t2igan.models.stream.caption_loss`; the D losses are AttnGAN's).

Three modules:

* **STEM** (semantic text embedding): AttnGAN's text encoder (word features ``w``, sentence feature
  ``s``; frozen, from a pretrained DAMSM run) and conditioning augmentation ``s_ca = F_ca(s)``
  (:class:`t2igan.nn.blocks.ConditioningAugmentation`).
* **GLAM** (global-local collaborative attention): AttnGAN's cascaded generator whose attention stages
  see, besides AttnGAN's word-context feature (:class:`t2igan.nn.attention.WordAttention`), a
  sentence-context feature (:class:`SentenceAttention`) [MirrorGAN, Sec. 3.2]::

      f_0 = F_0(z, s_ca)
      f_i = F_i([f_{i-1}, att_w(f_{i-1}, w), att_s(f_{i-1}, s_ca)])      i = 1 .. m-1
      att_s = (V s_ca) * softmax(f_{i-1} * (V s_ca))                    (elementwise products)

  As the official code (github.com/qiaott/MirrorGAN, ``GLAttention.py``, ``model.py``): the softmax
  runs over the channels at each pixel, the three features (``3 ngf`` channels) are fused by a 1x1
  conv to ``2 ngf`` before the residual blocks, and a 1x1 conv acts on ``f * (V s_ca)`` before the
  softmax (``sentence_attention_conv``; ``False`` is the paper's form without it).
* **STREAM** (semantic text regeneration and alignment): an image captioner
  (:class:`t2igan.models.stream.StreamCaptioner`, Show-and-Tell style), pretrained on real
  (image, caption) pairs (``t2igan pretrain stream PRESET``) and frozen. The
  generator pays ``lambda`` times the captioning cross-entropy of its last-stage image against the
  caption it was given [MirrorGAN, Sec. 3.3-3.4]::

      L_stream = -sum_t log p_t(T_t)                 (:func:`t2igan.models.stream.caption_loss`, mean over words)
      L_G = sum_i L_G_i + lambda L_stream + KL       (+ AttnGAN's lambda_DAMSM L_DAMSM, 0 by default)

Paper vs. official code (github.com/qiaott/MirrorGAN): lambda = 20 in the paper, ``LAMBDA1 = 10`` in the
official ``cfg/train_bird.yml``; ``stream_lambda`` defaults to the official 10 (as ``mirrorgan-cub`` and a
converted checkpoint), the paper's value is ``model.stream_lambda=20`` (``mirrorgan-shapes`` uses it).
Neither uses the DAMSM loss (``damsm_weight = 0``; the official config's ``LAMBDA: 0``). STREAM's architecture, its
pretraining and how it differs from the official one: :mod:`t2igan.models.stream`.

The networks are :mod:`t2igan.models.attngan`'s, configured with GLAM stages (:class:`GLAMStage`),
and AttnGAN's stage discriminators and losses.

Frozen parts: the text encoder and the STREAM are in the module tree, in no optimizer and always in
eval mode (the DAMSM critic as AttnGAN's); the STREAM is saved with the run, so ``t2igan caption RUN image.png`` and
``t2igan sample RUN ... --mirror`` work from a MirrorGAN run folder alone.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from ..fields import Backbone, Count
from ..nn.attention import WordAttention
from ..nn.blocks import ResidualBlock, UpBlock, init_weights
from ..registry import register_model
from .attngan import (MultiStageConfig, MultiStageGenerator, StageDiscriminator, StageDiscriminators, add_kl_and_damsm,
                      generate_for_step, multistage_discriminator_loss, multistage_generator_loss)
from .base import SampleOutput, T2IModel
from .damsm import build_damsm_critic
from .stream import StreamCaptioner, StreamConfig, caption_loss


@dataclass
class MirrorGANConfig(MultiStageConfig):
    """The multi-stage GANs' fields (sizes, D, DAMSM) plus GLAM's and STREAM's.

    The ``stream_*`` architecture fields describe the frozen STREAM. With ``stream_weights`` the model
    builder reads them from that run (so a saved run rebuilds it): leave them ``None``, or give the run's
    values; a value that disagrees with the run is refused. Without ``stream_weights`` a random STREAM
    is built from them, ``None`` meaning the default in :data:`STREAM_DEFAULTS`."""

    damsm_weight: float = 0.0  # MirrorGAN uses no DAMSM term (paper; official LAMBDA 0); >0 adds AttnGAN's
    sentence_attention_conv: bool = True  # official 1x1 conv before GLAM's sentence softmax; False: the paper's form
    stream_weights: str | None = None  # STREAM run folder (`t2igan pretrain stream`); same vocabulary as the data
    stream_lambda: float = 10.0  # weight of L_stream in G's loss (official train_bird.yml LAMBDA1 10; paper 20); 0 disables it
    stream_backbone: Backbone | None = None  # STREAM encoder: inception | small_cnn (None: the run's, else inception)
    stream_image_size: Count | None = None  # small_cnn STREAM: its input side (None: the run's, else 299)
    stream_cnn_channels: Count | None = None  # small_cnn STREAM: first conv's channels (None: the run's, else 32)
    stream_embed_dim: Count | None = None  # STREAM image feature / word embedding size (None: the run's, else 256)
    stream_hidden_dim: Count | None = None  # STREAM LSTM units (None: the run's, else 512)
    stream_inject: Literal["init", "every"] | None = None  # STREAM image feature: init (first LSTM input only, official) | every step


# MirrorGAN config field -> (StreamConfig field, default when neither the user nor a STREAM run sets it)
STREAM_DEFAULTS = {"stream_backbone": ("backbone", "inception"), "stream_image_size": ("image_size", 299),
                   "stream_cnn_channels": ("cnn_channels", 32), "stream_embed_dim": ("embed_dim", 256),
                   "stream_hidden_dim": ("hidden_dim", 512), "stream_inject": ("inject", "init")}


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
    """MirrorGAN's F_i with global-local attention [MirrorGAN, Sec. 3.2]: ``[f, att_w, att_s]``
    (3 ngf) -> 1x1 conv to 2 ngf -> residual blocks -> up x2: ``ngf x s x s -> ngf x 2s x 2s``."""

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
        return self.up(self.residual(h)), word_attn, None


@register_model("mirrorgan", MirrorGANConfig)
class MirrorGAN(T2IModel):
    """GLAM stages in the multi-stage generator, AttnGAN's stage discriminators, and the STREAM
    redescription loss (see the module docstring)."""

    eval_modules = ("text_encoder", "stream")
    unsaved_modules = ("damsm_critic",)

    def __init__(self, config: MirrorGANConfig):
        super().__init__(config)
        c = config
        self.text_encoder = self.build_text_encoder().requires_grad_(False)  # STEM
        self.damsm_critic = build_damsm_critic("mirrorgan", c)
        self.generator = MultiStageGenerator(
            c.ngf, c.z_dim, c.c_dim, c.cond_dim, c.base_size, c.num_stages,
            lambda: GLAMStage(c.ngf, c.cond_dim, c.c_dim, c.num_residual, c.sentence_attention_conv))
        self.discriminator = StageDiscriminators(
            [StageDiscriminator(c.ndf, c.cond_dim, s, c.uncond_logits, c.d_batch_norm) for s in c.stage_sizes])
        init_weights(self.generator)
        init_weights(self.discriminator)
        self.stream = self._build_stream()
        self._stream_warned = bool(c.stream_weights)
        self.train()

    def _build_stream(self) -> StreamCaptioner:
        """The frozen STREAM of the ``stream_*`` fields (``None``: :data:`STREAM_DEFAULTS`); the model
        builder fills the fields from the ``stream_weights`` run and loads its weights."""
        c = self.config
        arch = {theirs: default if getattr(c, ours) is None else getattr(c, ours)
                for ours, (theirs, default) in STREAM_DEFAULTS.items()}
        return StreamCaptioner(StreamConfig(vocab_size=c.vocab_size, **arch)).requires_grad_(False).eval()

    # -- inference -------------------------------------------------------------------------------
    def generate_from_text(self, text, noise, generator_module=None) -> SampleOutput:
        G = generator_module or self.generator
        out = G(noise, text.sent_emb, text.word_embs, text.mask)
        return SampleOutput(out.images[-1], {"attention": out.attention, "stage_images": out.images})

    # -- training --------------------------------------------------------------------------------
    def d_loss(self, batch, state):
        """AttnGAN's D phase: generate every stage's image once (reused by the G phase), then the
        sum of :func:`t2igan.models.attngan.stage_discriminator_loss` over the stages."""
        out = generate_for_step(self, batch, state)
        return multistage_discriminator_loss(self.discriminator, batch["image"], out.images, state["text"].sent_emb,
                                             self.config.mismatch_pairs)

    def g_loss(self, batch, state):
        """``sum_i L_G_i + KL (+ lambda_DAMSM L_DAMSM) + stream_lambda * L_stream`` of the last stage's
        images [MirrorGAN, Sec. 3.4]."""
        c = self.config
        fakes, text = state["fakes"], state["text"]
        loss, logs = multistage_generator_loss(self.discriminator, fakes, text.sent_emb)
        loss = add_kl_and_damsm(loss, logs, self.damsm_critic, c, state["mu"], state["logvar"], fakes[-1], text, batch)
        if c.stream_lambda > 0:
            if not self._stream_warned:
                warnings.warn("mirrorgan: no stream_weights given, so L_stream uses a randomly initialised "
                              "STREAM; pretrain one with `t2igan pretrain stream ...` or set model.stream_lambda=0")
                self._stream_warned = True
            stream_loss, stream_logs = caption_loss(self.stream, fakes[-1], batch["tokens"], batch["lengths"])
            loss = loss + c.stream_lambda * stream_loss
            logs.update(stream_logs, stream=stream_loss.item())
        logs["g_loss"] = loss.item()
        return loss, logs
