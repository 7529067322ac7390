"""Inference: captions in, seeded PIL images out. The CLI, evaluation, the web app (``t2igan serve``) and
the report use this.

    pipe = Text2ImagePipeline.from_pretrained("runs/00000-dfgan-shapes")
    images = pipe(["a red circle on the left"], seed=0)            # list of PIL images
    result = pipe(["a red circle"], n=4, seed=1, return_output=True)  # images + attention/masks
    for batch in pipe.generate_batches(captions, seed=0):            # many captions, lenient: evaluation
        ...
    pipe.attention_figures(result), pipe.mask_figures(result)     # one figure per image, or None
    pipe.redescribe(result.images)                                 # MirrorGAN's STREAM captions, or None

The same seed gives the same images whatever the device batch: noise is drawn on the CPU from a
``torch.Generator`` seeded once per call. Images with a non-finite pixel are an error, never a PNG.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import math

import torch
from PIL import Image

from .data.text import encode_captions
from .errors import T2IError
from .hub import parse_device
from .runs import load_run
from .visualize import attention_figure, from_pil, mask_images, masks_figure, to_pil


# captions to offer as examples (the web page, the report); those the vocabulary fully knows are used
CANDIDATE_EXAMPLES = [
    "a red circle", "a large blue square on the left", "a small green triangle at the top",
    "a yellow star on the right", "a purple circle at the bottom", "an orange square",
    "this bird has a red crown and a short pointed beak", "a small yellow bird with black wings",
    "this bird is white with grey wings and a long orange beak",
    "this flower has large pink petals and a yellow center", "a flower with white petals",
    "a man riding a wave on top of a surfboard", "a giraffe standing next to a tree",
]


@dataclass
class PipelineOutput:
    images: list[Image.Image]  # n images per caption, caption-major
    captions: list[str]  # the caption of each image
    extras: dict = field(default_factory=dict)  # model-specific tensors (attention maps, masks), CPU


@dataclass
class GeneratedBatch:
    start: int  # index of this batch's first caption in the list given to generate_batches
    images: torch.Tensor  # (B, 3, H, W) in [-1, 1], float32, on the pipeline's device
    extras: dict  # model-specific tensors (attention maps, masks), on the pipeline's device
    bad: list[int] = field(default_factory=list)  # indices (into the whole list) of captions without a known word


class Text2ImagePipeline:
    def __init__(self, model, vocab, config: dict | None = None, device: str | torch.device = "cpu",
                 generator_module: torch.nn.Module | None = None):
        """``config``: the run's ``config.json`` (its ``experiment.data.max_words``); ``generator_module``:
        the generator to draw with instead of ``model.generator`` (the trainer's moving average)."""
        if not hasattr(model, "generator"):  # a DAMSM or STREAM run: an encoder or a captioner
            raise T2IError(f"a {getattr(model, 'model_name', type(model).__name__)} run makes no images: it has no "
                           "generator (give a DAMSM to a GAN as model.damsm_weights=RUN)")
        self.model = model.eval()
        self.vocab = vocab
        self.config = config or {}
        self.device = torch.device(device)
        self.generator_module = generator_module
        exp = self.config.get("experiment", {})
        self.max_words = (exp.get("data") if isinstance(exp.get("data"), dict) else {}).get("max_words", 18)
        if isinstance(self.max_words, bool) or not isinstance(self.max_words, int) or self.max_words < 1:
            raise T2IError(f"config.json: invalid data.max_words={self.max_words!r}: expected an integer >= 1")
        self.max_images = 256  # per call, a guard against requests that would exhaust memory

    @classmethod
    def from_pretrained(cls, run_dir: str | Path, device: str | torch.device | None = None) -> "Text2ImagePipeline":
        device = parse_device(device or "auto")
        model, vocab, config = load_run(run_dir, device)
        return cls(model, vocab, config, device)

    @property
    def model_name(self) -> str:
        return self.model.model_name

    def check_captions(self, captions: list[str]) -> None:
        """Raise :class:`T2IError` for an empty caption or one with only unknown words."""
        if isinstance(captions, str):
            raise T2IError("pass a list of captions, not a single string")
        if not captions:
            raise T2IError("no captions given")
        for c in captions:
            self.vocab.encode(c, strict=True)

    def bad_captions(self, captions: list[str]) -> list[int]:
        """Indices of the captions :meth:`check_captions` would refuse (empty, or only unknown words)."""
        bad = []
        for i, c in enumerate(captions):
            try:
                self.vocab.encode(c, strict=True)
            except T2IError:
                bad.append(i)
        return bad

    def check_count(self, images: int, n: int = 1) -> None:
        """Refuse ``n < 1`` images per caption or more than ``max_images`` images in one call."""
        if n < 1:
            raise T2IError(f"n must be at least 1, got {n}")
        if images > self.max_images:
            raise T2IError(f"{images} images requested; at most {self.max_images} per call")

    def default_truncation(self, truncation: float | None) -> float | None:
        """``truncation``, or the model's own when None (DF-GAN 0.88; none for most)."""
        return getattr(self.model.config, "truncation", None) if truncation is None else truncation

    def encode(self, captions: list[str]):
        self.check_captions(captions)
        tokens, lengths = encode_captions(self.vocab, captions, self.max_words, strict=True)
        return tokens.to(self.device), lengths.to(self.device)

    def words(self, captions: list[str]) -> list[list[str]]:
        """The words the model reads of each caption (known words, shortened to ``max_words``)."""
        tokens, lengths = self.encode(captions)
        return [[self.vocab.words[t] for t in tokens[i, : int(lengths[i])].tolist()] for i in range(len(captions))]

    def example_captions(self, most: int = 6) -> list[str]:
        """Up to ``most`` example captions whose words the model's vocabulary all knows."""
        return [c for c in CANDIDATE_EXAMPLES if not self.vocab.unknown_words(c)][:most]

    def caption_notices(self, caption: str) -> list[str]:
        """What the model will not read of ``caption``: unknown words, words past ``max_words``."""
        notices = []
        unknown = self.vocab.unknown_words(caption)
        if unknown:
            notices.append(f"unknown words ignored: {', '.join(unknown)}")
        n_words = len(self.vocab.encode(caption))
        if n_words > self.max_words:
            notices.append(f"shortened: {n_words} words, the model reads the first {self.max_words}")
        return notices

    def noise(self, count: int, seed: int | None, truncation: float | None = None) -> torch.Tensor:
        """``(count, z)`` noise on the CPU from a generator seeded ``seed`` (the model's truncation by default)."""
        if seed is not None and not (isinstance(seed, int) and 0 <= seed < 2**63):
            raise T2IError(f"seed must be an integer in [0, 2^63), got {seed!r}")
        if truncation is not None and not (isinstance(truncation, (int, float)) and math.isfinite(truncation)
                                           and truncation >= 0):
            raise T2IError(f"truncation must be a finite number >= 0 (0: none), got {truncation!r}")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.model.noise(count, self.default_truncation(truncation), gen)

    @torch.no_grad()
    def generate_batches(self, captions: list[str], noise: torch.Tensor | None = None, seed: int | None = 0,
                         truncation: float | None = None, batch_size: int = 32,
                         strict: bool = False) -> Iterator[GeneratedBatch]:
        """Images for ``captions``, ``batch_size`` at a time and in order (none dropped or reordered),
        without holding them all: what evaluation (tens of thousands of captions) and style transfer
        (one noise row shared by several captions) need.

        ``noise``: ``(len(captions), z)``, row ``i`` for caption ``i``; None draws it batch by batch from
        one CPU generator seeded ``seed`` (so the images then depend on ``batch_size`` too).
        Captions are encoded as for inference: unknown words become ``<unk>``, long captions are
        truncated. ``strict=False``: a caption that is empty or has only unknown words is still
        generated (from ``<unk>`` / padding), listed in the batch's ``bad`` and warned about once;
        ``strict=True`` refuses it with :class:`T2IError` before anything is generated."""
        if isinstance(captions, str):
            raise T2IError("pass a list of captions, not a single string")
        if batch_size < 1:
            raise T2IError(f"batch_size must be at least 1, got {batch_size}")
        if noise is not None and noise.shape[0] != len(captions):
            raise T2IError(f"{noise.shape[0]} noise vectors for {len(captions)} captions")
        if strict:
            self.check_captions(captions)
            bad = []
        else:
            bad = self.bad_captions(captions)
            if bad:
                shown = ", ".join(repr(captions[i]) for i in bad[:3]) + (", ..." if len(bad) > 3 else "")
                warnings.warn(f"{len(bad)} of {len(captions)} captions are empty or have only words the "
                              f"{self.model_name} model does not know ({shown}); generated from <unk> / padding",
                              stacklevel=2)
        truncation = self.default_truncation(truncation)
        gen = torch.Generator().manual_seed(seed) if seed is not None and noise is None else None
        for s in range(0, len(captions), batch_size):
            chunk = captions[s:s + batch_size]
            tokens, lengths = encode_captions(self.vocab, chunk, self.max_words, strict=False)
            z = noise[s:s + batch_size] if noise is not None else self.model.noise(len(chunk), truncation, gen)
            out = self.model.generate(tokens.to(self.device), lengths.to(self.device), z.to(self.device),
                                      self.generator_module)
            yield GeneratedBatch(s, out.images.float().clamp(-1, 1), out.extras,
                                 [i for i in bad if s <= i < s + len(chunk)])

    def generate(self, captions: list[str], noise: torch.Tensor, batch_size: int = 32):
        """Images for ``captions[i]`` with ``noise[i]``, refusing bad captions; returns
        ``(images (N, 3, H, W) on the CPU, extras)``."""
        images, extras = [], {}
        for batch in self.generate_batches(captions, noise, batch_size=batch_size, strict=True):
            images.append(batch.images.cpu())
            for k, v in batch.extras.items():
                extras.setdefault(k, []).append(v)
        images = torch.cat(images)
        check_finite_images(images)
        return images, {k: _cat_extras(v) for k, v in extras.items()}

    def __call__(self, captions: list[str], n: int = 1, seed: int | None = 0, truncation: float | None = None,
                 batch_size: int = 32, return_output: bool = False):
        """``n`` images for each caption. ``truncation`` defaults to the model's own (DF-GAN 0.88)."""
        self.check_count(len(captions) * n, n)
        expanded = [c for c in captions for _ in range(n)]
        images, extras = self.generate(expanded, self.noise(len(expanded), seed, truncation), batch_size)
        pil = to_pil(images)
        if return_output:
            return PipelineOutput(pil, expanded, extras)
        return pil

    @torch.no_grad()
    def interpolate(self, caption_a: str, caption_b: str, steps: int = 8, seed: int = 0,
                    truncation: float | None = None) -> list[Image.Image]:
        """A row of images walking from caption A to caption B with one fixed noise vector.

        The sentence embedding is interpolated linearly, ``(1 - t) e_a + t e_b`` [Reed et al. 2016,
        Eq. 5]; models that also attend to words use the words of the nearer end.
        """
        if not 2 <= steps <= self.max_images:
            raise T2IError(f"interpolation needs 2 to {self.max_images} steps, got {steps}")
        tokens, lengths = self.encode([caption_a, caption_b])
        text = self.model.encode_text(tokens, lengths)
        ts = torch.linspace(0, 1, steps, device=self.device)
        near_b = (ts >= 0.5).long()
        from .nn.text_encoder import TextFeatures

        feats = TextFeatures(
            word_embs=text.word_embs[near_b],
            sent_emb=torch.lerp(text.sent_emb[0:1], text.sent_emb[1:2], ts[:, None]),
            mask=text.mask[near_b],
        )
        noise = self.noise(1, seed, truncation).expand(steps, -1).to(self.device)
        out = self.model.generate_from_text(feats, noise, self.generator_module)
        check_finite_images(out.images)
        return to_pil(out.images)


    def attention_figures(self, out: PipelineOutput) -> list[Image.Image] | None:
        """For each image of ``out``, its :func:`~t2igan.visualize.attention_figure` row from the last
        (finest) attention stage; None when the model returned no word attention."""
        attention = out.extras.get("attention")
        if not attention:
            return None
        maps = attention[-1]  # (N, T, h, w)
        return [attention_figure(image, words, maps[i, : len(words)], title=caption)
                for i, (image, caption, words) in enumerate(zip(out.images, out.captions, self.words(out.captions)))]

    def mask_figures(self, out: PipelineOutput) -> list[Image.Image] | None:
        """For each image of ``out``, a row of the image then each block's mask; None without masks."""
        masks = out.extras.get("masks")
        if not masks:
            return None
        sizes = [(m.shape[2], m.shape[3]) for m in masks]
        rows = mask_images(masks, out.images[0].width)
        return [masks_figure(image, row, sizes, title=caption)
                for image, caption, row in zip(out.images, out.captions, rows)]

    @torch.no_grad()
    def redescribe(self, images: list[Image.Image]) -> list[str] | None:
        """The model's own STREAM caption of each image (MirrorGAN); None for models without one."""
        stream = getattr(self.model, "stream", None)
        if stream is None:
            return None
        from .models.stream import caption_images

        return caption_images(stream, self.vocab, torch.stack([from_pil(im) for im in images]))


def check_finite_images(images: torch.Tensor) -> None:
    """A T2IError when a generated image holds NaN or inf (they would be written as garbage)."""
    bad = (~torch.isfinite(images.float())).flatten(1).any(1)
    if bad.any():
        raise T2IError(f"the model generated {int(bad.sum())} of {len(images)} images with non-finite pixels "
                       f"(image {int(bad.nonzero()[0])}); its weights or the noise are broken, nothing written")


def _cat_extras(values: list):
    if torch.is_tensor(values[0]):
        return torch.cat([v.float().cpu() for v in values])
    if isinstance(values[0], (list, tuple)):
        return [_cat_extras([v[i] for v in values]) for i in range(len(values[0]))]
    return values
