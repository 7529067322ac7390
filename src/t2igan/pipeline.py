"""Inference: captions in, seeded PIL images out. The CLI, evaluation, the web app (``t2igan serve``),
the report and the trainer's sample grids use this. It reads like a diffusers pipeline:

    pipe = Text2ImagePipeline.from_pretrained("shapes-dfgan").to("cpu")   # a run folder, checkpoint or bundled name
    images = pipe("a red circle on the left")                       # a caption or a list: list of PIL images
    images = pipe(["a red circle", "a blue star"], num_images_per_prompt=4, seed=1)   # or n=4
    images = pipe("a red circle", generator=torch.Generator().manual_seed(1))         # the same images as seed=1
    out = pipe(["a red circle"], n=4, return_output=True)           # PipelineOutput: images, captions, attention, masks
    for batch in pipe.generate_batches(captions, seed=0):          # many captions, lenient: evaluation
        ...
    pipe.attention_figures(out), pipe.mask_figures(out)            # one figure per image, or None
    pipe.redescribe(out.images)                                    # MirrorGAN's STREAM captions, or None

The same seed gives the same images whatever the device batch: noise is drawn on the CPU from a
``torch.Generator`` seeded once per call (or from the generator given; a list of generators gives one
per image, as in diffusers). Images with a non-finite pixel are an error, never a PNG.
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
    """What one call made (``return_output=True``): the images and what the model showed drawing them."""

    images: list[Image.Image]  # n images per caption, caption-major
    captions: list[str]  # the caption of each image, as given
    attention: list[torch.Tensor] | None = None  # word attention, per attention stage (N, T, h, w); None: the model has none
    masks: list[torch.Tensor] | None = None  # spatial masks in [0, 1], per generator block (N, 1, h, w); None: no masks
    extras: dict = field(default_factory=dict)  # every model-specific tensor (the two above, stage images, ...), CPU


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
        self.source: str | None = None  # what from_pretrained read: a run folder, a checkpoint or a bundled name
        self._shows: dict[str, bool] | None = None

    @classmethod
    def from_pretrained(cls, run: str | Path, device: str | torch.device | None = None) -> "Text2ImagePipeline":
        """The pipeline of a run folder, a file in it (``model.safetensors``, or a training checkpoint
        ``checkpoints/step-N.safetensors``: its moving-average generator), or a bundled model's name."""
        device = parse_device(device or "auto")
        model, vocab, config = load_run(run, device, file_ok=True)
        pipe = cls(model, vocab, config, device)
        pipe.source = str(run)
        return pipe

    def to(self, device: str | torch.device) -> "Text2ImagePipeline":
        """Move the model to ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``mps``, ``auto``); returns the
        pipeline. Images do not change with the device beyond float rounding: the noise stays on the CPU."""
        self.device = parse_device(device)
        self.model.to(self.device)
        if self.generator_module is not None:
            self.generator_module.to(self.device)
        return self

    def __repr__(self) -> str:
        config = self.model.config
        fields = [f"model={self.model_name!r}", f"source={self.source!r}" if self.source else None,
                  f"image_size={getattr(config, 'image_size', '?')}", f"vocab={len(self.vocab)} words",
                  f"max_words={self.max_words}", f"truncation={self.default_truncation(None)}",
                  f"device={str(self.device)!r}"]
        return f"{type(self).__name__}({', '.join(f for f in fields if f)})"

    @property
    def model_name(self) -> str:
        return self.model.model_name

    def shows(self, what: str) -> bool:
        """Whether the model gives ``what`` besides images: ``"attention"`` (word attention maps),
        ``"masks"`` (spatial masks) or ``"stream"`` (its own STREAM captioner, MirrorGAN). Attention
        and masks are found by drawing one image, once."""
        if what == "stream":
            return getattr(self.model, "stream", None) is not None
        if what not in ("attention", "masks"):
            raise T2IError(f"shows() knows attention, masks and stream, not {what!r}")
        if self._shows is None:
            word = next(w for w in self.vocab.words[1:] if w != self.vocab.unk_token)
            out = self([word], n=1, return_output=True)
            self._shows = {"attention": out.attention is not None, "masks": out.masks is not None}
        return self._shows[what]

    @staticmethod
    def as_list(captions: str | list[str]) -> list[str]:
        """A caption or a list of captions as a list (a single string is one caption)."""
        return [captions] if isinstance(captions, str) else list(captions)

    def check_captions(self, captions: str | list[str]) -> None:
        """Raise :class:`T2IError` for an empty caption or one with only unknown words."""
        captions = self.as_list(captions)
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
        """The words the model reads of each caption (known words, an unknown one as ``<unk>`` when the
        vocabulary has that token, shortened to ``max_words``)."""
        tokens, lengths = self.encode(captions)
        return [[self.vocab.words[t] for t in tokens[i, : int(lengths[i])].tolist()] for i in range(len(captions))]

    def read_caption(self, caption: str) -> str:
        """``caption`` as the model reads it: the caption itself when the model reads all of it, else its
        words as read (:meth:`words`)."""
        return caption if not self.caption_notices(caption) else " ".join(self.words([caption])[0])

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

    def noise(self, count: int, seed: int | None, truncation: float | None = None,
              generator: torch.Generator | list[torch.Generator] | None = None) -> torch.Tensor:
        """``(count, z)`` noise on the CPU (the model's truncation by default) from ``generator``: one
        CPU ``torch.Generator`` for all rows, or a list of ``count``, row ``i`` drawn from the ``i``-th;
        without one, from a generator seeded ``seed`` (None: unseeded)."""
        if seed is not None and not (isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**63):
            raise T2IError(f"seed must be an integer in [0, 2^63), got {seed!r}")
        if truncation is not None and not (isinstance(truncation, (int, float)) and math.isfinite(truncation)
                                           and truncation >= 0):
            raise T2IError(f"truncation must be a finite number >= 0 (0: none), got {truncation!r}")
        truncation = self.default_truncation(truncation)
        if generator is None:
            generator = torch.Generator().manual_seed(seed) if seed is not None else None
        gens = generator if isinstance(generator, (list, tuple)) else [generator]
        for g in gens:
            if g is not None and not (isinstance(g, torch.Generator) and g.device.type == "cpu"):
                raise T2IError(f"generator must be a CPU torch.Generator (the noise is drawn on the CPU, so a seed "
                               f"gives the same images on every device), got {g!r}")
        if not isinstance(generator, (list, tuple)):
            return self.model.noise(count, truncation, generator)
        if len(generator) != count:
            raise T2IError(f"{len(generator)} generators for {count} images: give one generator, or one per image")
        return torch.cat([self.model.noise(1, truncation, g) for g in generator])

    def seeded_noise(self, seeds: list[int], truncation: float | None = None) -> torch.Tensor:
        """Row ``i`` is the first noise vector of a generator seeded ``seeds[i]``: the noise of image 0 of
        ``pipe(caption, seed=seeds[i])``, so each row can be drawn again alone."""
        for s in seeds:
            self.noise(0, s)  # checks the seed
        return self.noise(len(seeds), None, truncation, [torch.Generator().manual_seed(s) for s in seeds])

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
        captions = self.as_list(captions)
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

    def __call__(self, prompt: str | list[str], n: int | None = None, seed: int | None = 0,
                 truncation: float | None = None, batch_size: int = 32, return_output: bool = False, *,
                 num_images_per_prompt: int | None = None,
                 generator: torch.Generator | list[torch.Generator] | None = None):
        """``n`` (alias ``num_images_per_prompt``, default 1) images for each caption of ``prompt`` (a
        caption or a list), caption-major. The noise comes from ``generator`` when given (one CPU
        generator, or a list with one per image), else from a generator seeded ``seed``:
        ``generator=torch.Generator().manual_seed(3)`` draws the same images as ``seed=3``.
        ``truncation`` defaults to the model's own (DF-GAN 0.88; 0: none). Returns the PIL images, or with
        ``return_output`` a :class:`PipelineOutput` (images, captions, attention, masks)."""
        if n is not None and num_images_per_prompt is not None and n != num_images_per_prompt:
            raise T2IError(f"n={n} and num_images_per_prompt={num_images_per_prompt} disagree: give one")
        n = next((v for v in (n, num_images_per_prompt) if v is not None), 1)
        if isinstance(n, bool) or not isinstance(n, int):
            raise T2IError(f"n must be a whole number, got {n!r}")
        captions = self.as_list(prompt)
        self.check_captions(captions)
        self.check_count(len(captions) * n, n)
        expanded = [c for c in captions for _ in range(n)]
        images, extras = self.generate(expanded, self.noise(len(expanded), seed, truncation, generator), batch_size)
        pil = to_pil(images)
        if return_output:
            attention, masks = (extras.get(k) for k in ("attention", "masks"))
            return PipelineOutput(pil, expanded, attention if attention else None, masks if masks else None, extras)
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
        attention = out.attention
        if not attention:
            return None
        maps = attention[-1]  # (N, T, h, w)
        return [attention_figure(image, words, maps[i, : len(words)], title=caption)
                for i, (image, caption, words) in enumerate(zip(out.images, out.captions, self.words(out.captions)))]

    def mask_figures(self, out: PipelineOutput) -> list[Image.Image] | None:
        """For each image of ``out``, a row of the image then each block's mask; None without masks."""
        masks = out.masks
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
