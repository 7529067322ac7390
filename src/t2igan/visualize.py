"""Images for people: tensors to PIL, captioned PNG grids."""

from __future__ import annotations

import textwrap

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def to_pil(images: torch.Tensor) -> list[Image.Image]:
    """``(B, 3, H, W)`` in [-1, 1] -> list of RGB PIL images."""
    arr = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    arr = arr.permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a, "RGB") for a in arr]


def from_pil(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> ``(3, H, W)`` float in [-1, 1]."""
    arr = np.asarray(image.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1) / 127.5 - 1.0


def _font(size: int = 11):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def captioned_grid(images: list[Image.Image], captions: list[str] | None = None, ncol: int = 8,
                   cell: int | None = None, caption_lines: int = 4) -> Image.Image:
    """A grid of images with each caption wrapped under its image."""
    if not images:
        raise ValueError("no images to put in a grid")
    cell = cell or max(96, images[0].width)
    ncol = max(1, min(ncol, len(images)))
    nrow = (len(images) + ncol - 1) // ncol
    font = _font(11)
    line_h = 13 if captions else 0
    text_h = line_h * caption_lines + (4 if captions else 0)
    pad = 4
    W = ncol * (cell + pad) + pad
    H = nrow * (cell + text_h + pad) + pad
    grid = Image.new("RGB", (W, H), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    chars = max(8, int(cell / 5.8))
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        x = pad + c * (cell + pad)
        y = pad + r * (cell + text_h + pad)
        grid.paste(img.resize((cell, cell), Image.NEAREST if img.width < cell else Image.LANCZOS), (x, y))
        if captions:
            lines = textwrap.wrap(captions[i], chars)[:caption_lines]
            for j, line in enumerate(lines):
                draw.text((x, y + cell + 2 + j * line_h), line, fill=(0, 0, 0), font=font)
    return grid


def heat_colours(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] ``(H, W)`` -> a black-red-yellow-white heat map ``(H, W, 3)`` float in [0, 255]."""
    v = np.clip(values, 0.0, 1.0)[..., None] * 3.0
    return np.clip(np.concatenate([v, v - 1.0, v - 2.0], axis=-1), 0.0, 1.0) * 255.0


def attention_figure(image: Image.Image, words: list[str], attn_maps, title: str | None = None,
                     alpha: float = 0.5) -> Image.Image:
    """One row as in AttnGAN's figures: the image, then for each word its attention map, up-sampled
    bilinearly to the image size and laid over it as a heat map, labelled with the word.

    ``attn_maps`` is ``(T, h, w)`` (tensor or array) with ``T >= len(words)``; the first ``len(words)``
    maps are used. The maps of a row are scaled together to [0, 1] by the row's minimum and maximum
    (as the official visualisation), so a bright map is a word the pixels attend to strongly.
    ``title`` labels the image (e.g. the caption).
    """
    maps = torch.as_tensor(attn_maps).detach().float().cpu()
    if maps.dim() != 3 or maps.shape[0] < len(words):
        raise ValueError(f"need one (h, w) attention map per word: {len(words)} words, maps of shape {tuple(maps.shape)}")
    maps = maps[: len(words)]
    up = torch.nn.functional.interpolate(maps[:, None], size=(image.height, image.width), mode="bilinear",
                                         align_corners=False)[:, 0]
    lo, hi = up.min(), up.max()
    up = ((up - lo) / (hi - lo).clamp(min=1e-8)).numpy()
    base = np.asarray(image.convert("RGB"), dtype=np.float32)
    cells = [image.convert("RGB")]
    for m in up:
        blend = (1.0 - alpha) * base + alpha * heat_colours(m)
        cells.append(Image.fromarray(blend.round().astype(np.uint8), "RGB"))
    return captioned_grid(cells, [title or "", *words], ncol=len(cells), caption_lines=3)


def mask_images(masks: list[torch.Tensor], size: int) -> list[list[Image.Image]]:
    """Per-block masks ``[(B, C, h, w)]`` in [0, 1] -> for each of the B images, one grey-scale RGB
    image per block (the channel mean: black = 0, white = 1), enlarged to ``size x size`` with
    nearest neighbour so each block's true resolution stays visible."""
    rows: list[list[Image.Image]] = [[] for _ in range(masks[0].shape[0])]
    for mask in masks:
        grey = mask.detach().float().cpu().mean(dim=1).clamp(0, 1)
        grey = (grey * 255).round().to(torch.uint8).numpy()  # (B, h, w)
        for i, m in enumerate(grey):
            rows[i].append(Image.fromarray(m, "L").resize((size, size), Image.NEAREST).convert("RGB"))
    return rows


def masks_figure(image: Image.Image, masks: list[Image.Image], sizes: list[tuple[int, int]],
                 title: str | None = None) -> Image.Image:
    """One row: the image (labelled ``title``), then each block's mask labelled with its resolution."""
    labels = [title or "", *(f"mask {h}x{w}" for h, w in sizes)]
    return captioned_grid([image, *masks], labels, ncol=1 + len(masks), caption_lines=3)


def stack_rows(rows: list[Image.Image]) -> Image.Image:
    """Rows of possibly different widths, top to bottom on white."""
    canvas = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), (255, 255, 255))
    y = 0
    for r in rows:
        canvas.paste(r, (0, y))
        y += r.height
    return canvas
