"""Scores of a STREAM captioner's captions of real images (MirrorGAN's STREAM, :mod:`t2igan.models.stream`):
BLEU-4 (:func:`t2igan.metrics.bleu.corpus_bleu`) and, on Shapes, the attributes the captions name
(:func:`t2igan.metrics.shapes_probe.shapes_caption_accuracy`), each beside a chance baseline."""

from __future__ import annotations

import torch

from ..data.text import tokenize
from ..errors import T2IError
from ..models.stream import caption_images
from .bleu import corpus_bleu


def _derangement(n: int, seed: int) -> list[int]:
    """``other[i] != i`` for n > 1: each image paired with another, randomly."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    other = [0] * n
    for k in range(n):
        other[perm[k]] = perm[(k + 1) % n]
    return other


@torch.no_grad()
def evaluate_stream(stream, vocab, dataset, beam: int = 1, max_images: int | None = None,
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
        from .shapes_probe import shapes_caption_accuracy

        attributes = [dataset.attributes(i) for i in range(n)]
        acc, chance = shapes_caption_accuracy(hyps, attributes), shapes_caption_accuracy(other, attributes)
        result.update(attribute_accuracy=acc["mean"], exact=acc["exact"], per_attribute=acc["per_attribute"],
                      attribute_accuracy_chance=chance["mean"], exact_chance=chance["exact"])
    return result
