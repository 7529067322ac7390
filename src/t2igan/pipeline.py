"""Inference: captions in, seeded PIL images out. The CLI and the web demo both use this.

    pipe = Text2ImagePipeline.from_pretrained("runs/00000-dfgan-shapes")
    images = pipe(["a red circle on the left"], seed=0)            # list of PIL images
    result = pipe(["a red circle"], n=4, seed=1, return_output=True)  # images + attention/masks

The same seed gives the same images whatever the device batch: noise is drawn on the CPU from a
``torch.Generator`` seeded once per call. Images with a non-finite pixel are an error, never a PNG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import math

import torch
from PIL import Image

from .data.text import encode_captions
from .errors import T2IError
from .hub import load_run, parse_device
from .visualize import to_pil


@dataclass
class PipelineOutput:
    images: list[Image.Image]  # n images per caption, caption-major
    captions: list[str]  # the caption of each image
    extras: dict = field(default_factory=dict)  # model-specific tensors (attention maps, masks), CPU


class Text2ImagePipeline:
    def __init__(self, model, vocab, config: dict | None = None, device: str | torch.device = "cpu"):
        self.model = model.eval()
        self.vocab = vocab
        self.config = config or {}
        self.device = torch.device(device)
        exp = self.config.get("experiment", {})
        self.max_words = exp.get("data", {}).get("max_words", 18)
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

    def encode(self, captions: list[str]):
        self.check_captions(captions)
        tokens, lengths = encode_captions(self.vocab, captions, self.max_words, strict=True)
        return tokens.to(self.device), lengths.to(self.device)

    def noise(self, count: int, seed: int | None, truncation: float | None) -> torch.Tensor:
        if seed is not None and not (isinstance(seed, int) and 0 <= seed < 2**63):
            raise T2IError(f"seed must be an integer in [0, 2^63), got {seed!r}")
        if truncation is not None and not (isinstance(truncation, (int, float)) and math.isfinite(truncation)
                                           and truncation >= 0):
            raise T2IError(f"truncation must be a finite number >= 0 (0: none), got {truncation!r}")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        return self.model.noise(count, truncation, gen)

    @torch.no_grad()
    def generate(self, captions: list[str], noise: torch.Tensor, batch_size: int = 32):
        """Images for ``captions[i]`` with ``noise[i]``; returns (images tensor, extras)."""
        tokens, lengths = self.encode(captions)
        images, extras = [], {}
        for s in range(0, len(captions), batch_size):
            out = self.model.generate(tokens[s:s + batch_size], lengths[s:s + batch_size],
                                      noise[s:s + batch_size].to(self.device))
            images.append(out.images.float().cpu())
            for k, v in out.extras.items():
                extras.setdefault(k, []).append(v)
        images = torch.cat(images)
        check_finite_images(images)
        return images, {k: _cat_extras(v) for k, v in extras.items()}

    def __call__(self, captions: list[str], n: int = 1, seed: int | None = 0, truncation: float | None = None,
                 batch_size: int = 32, return_output: bool = False):
        """``n`` images for each caption. ``truncation`` defaults to the model's own (DF-GAN 0.88)."""
        if n < 1:
            raise T2IError(f"n must be at least 1, got {n}")
        if len(captions) * n > self.max_images:
            raise T2IError(f"{len(captions) * n} images requested; at most {self.max_images} per call")
        if truncation is None:
            truncation = getattr(self.model.config, "truncation", None)
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
        if truncation is None:
            truncation = getattr(self.model.config, "truncation", None)
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
        out = self.model.generate_from_text(feats, noise)
        check_finite_images(out.images)
        return to_pil(out.images)


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
