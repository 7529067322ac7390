"""Training randomness of data items that does not depend on where they are loaded.

Random crops, flips, the caption drawn for an image and the sub-sampling of long captions use the
global ``random`` (and ``torch``) generators. In ``DataLoader`` worker processes those are seeded
per worker, so with ``data.num_workers > 0`` a resumed run (whose new workers start mid-epoch)
would see different crops than an uninterrupted one. Here every item is drawn under its own seed,
a function of (seed, epoch, process rank, position in the epoch) only: the same in the main process
and in any worker, so a resumed run is bit-identical with or without workers. The generators'
states outside an item are left as they were.
"""

from __future__ import annotations

import random
from contextlib import contextmanager

import torch
from torch.utils.data import Dataset


def sample_seeds(seed: int, epoch: int, rank: int, count: int) -> list[int]:
    """One seed per position of an epoch's sample order."""
    base = ((seed * 1_000_003 + epoch) * 1_009 + rank) * 10_000_019
    return [(base + pos) % 2**63 for pos in range(count)]


@contextmanager
def seeded_random(seed: int):
    """Run a block with Python's ``random`` and torch's CPU generator seeded by ``seed``; both are
    restored afterwards (CUDA generators are not touched)."""
    state = random.getstate()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        torch.random.default_generator.manual_seed(seed)
        try:
            yield
        finally:
            random.setstate(state)


class SeededItems(Dataset):
    """``dataset[index]`` drawn under ``seed``; indexed with ``(index, seed)`` pairs (the sampler's)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> tuple[dict, int]:
        index, seed = key
        with seeded_random(seed):
            return self.dataset[index], seed


class SeededCollate:
    """A collate function over :class:`SeededItems` items, run under a seed taken from the batch's
    first item (caption sub-sampling draws from ``random``)."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, pairs: list[tuple[dict, int]]) -> dict:
        with seeded_random(pairs[0][1] ^ 0x5DEECE66D):
            return self.collate([item for item, _ in pairs])
