"""``t2igan sample RUN "caption" ... --masks``: the spatial masks a model predicts (SSA-GAN, DR-GAN).

Writes ``<output stem>-masks.png`` next to the ordinary grid: one row per generated image (a row
per caption with ``--n 1``), the image first, then the mask of each generator block, from 4x4 up,
enlarged to the image size (nearest neighbour, so each block's true resolution stays visible) in
grey-scale: black = 0 (the text leaves the features alone), white = 1 (full text modulation).
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ..errors import T2IError
from ..visualize import captioned_grid, mask_images


def masks_grid(images: list[Image.Image], masks: list[torch.Tensor], captions: list[str]) -> Image.Image:
    """Rows of ``[image, mask 4x4, mask 8x8, ...]``; the image is labelled with its caption, each
    mask with its resolution."""
    if len(images) != masks[0].shape[0]:
        raise T2IError(f"{len(images)} images but masks for {masks[0].shape[0]}")
    size = images[0].width
    cells, labels = [], []
    for image, caption, row in zip(images, captions, mask_images(masks, size)):
        cells += [image, *row]
        labels += [caption, *(f"mask {m.shape[2]}x{m.shape[3]}" for m in masks)]
    return captioned_grid(cells, labels, ncol=1 + len(masks))


def write_masks(pipe, out, out_path) -> None:
    """``<output stem>-masks.png`` next to ``out_path``."""
    masks = out.masks
    if not masks:
        raise T2IError(f"--masks: the {pipe.model_name} model predicts no masks (SSA-GAN and DR-GAN do)")
    path = Path(out_path)
    path = path.with_name(f"{path.stem}-masks.png")
    masks_grid(out.images, masks, out.captions).save(path)
    print(f"wrote {path} ({len(masks)} masks per image)")
