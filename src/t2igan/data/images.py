"""Image files to tensors: AttnGAN's pipeline (optional box crop, resize of the shorter side to
``image_size * 76 / 64``, random or centre crop, random flip) with PIL + numpy + torch only."""

from __future__ import annotations

import math
import random
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import T2IError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
LOAD_SCALE = 76 / 64  # AttnGAN resizes to 76/64 of the target, then crops (random or centre)


# ----------------------------------------------------------------------------- images


def load_rgb(path: str | Path, crop: Callable[[int, int], tuple[int, int, int, int]] | None = None,
             min_side: int | None = None) -> Image.Image:
    """Open an image file fully decoded and in RGB (grayscale, palette, CMYK, RGBA are converted).

    ``crop(width, height) -> (left, upper, right, lower)``, if given, is applied in the coordinates of
    the full image. With ``min_side``, a JPEG is decoded at a reduced scale (1/2, 1/4 or 1/8, libjpeg's
    DCT scaling: much faster) as long as the shorter side of the (cropped) result stays at least about
    ``min_side``; the crop box is scaled to match.
    A missing, truncated or corrupt file raises :class:`T2IError` ``"cannot read image <path>: ..."``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. PIL's DecompressionBombWarning, palette transparency
            with Image.open(path) as img:  # leaving the block closes the file, the pixels stay
                width, height = img.size
                box = crop(width, height) if crop is not None else (0, 0, width, height)
                if box[2] <= box[0] or box[3] <= box[1]:
                    raise T2IError(f"cannot read image {path}: empty crop box {box} for a {width}x{height} image")
                if min_side is not None and img.format == "JPEG":
                    scale = min_side / max(1, min(box[2] - box[0], box[3] - box[1]))
                    if scale <= 0.5:  # draft picks the smallest decode size that is at least this
                        img.draft(img.mode, (math.ceil(width * scale), math.ceil(height * scale)))
                img.load()  # PIL opens lazily: decode now so a corrupt file fails here
            if img.size != (width, height):
                sx, sy = img.size[0] / width, img.size[1] / height
                box = (round(box[0] * sx), round(box[1] * sy), round(box[2] * sx), round(box[3] * sy))
            if box != (0, 0) + img.size:
                img = img.crop(box)
            return img if img.mode == "RGB" else img.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise T2IError(f"cannot read image {path}: {e}") from None


def load_size_for(image_size: int) -> int:
    """Side the image is resized to before cropping ``image_size`` (AttnGAN: ``int(S * 76 / 64)``)."""
    return int(image_size * LOAD_SCALE)


def resize_shorter_side(img: Image.Image, size: int) -> Image.Image:
    """Resize (bilinear) so the shorter side is ``size``, keeping the aspect ratio.

    Same output size as torchvision's ``Resize(size)``: the longer side becomes
    ``int(size * long / short)``.
    """
    w, h = img.size
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) == (w, h):
        return img
    return img.resize((new_w, new_h), Image.BILINEAR)


def bbox_crop_box(bbox: Sequence[float], width: int, height: int) -> tuple[int, int, int, int]:
    """AttnGAN's crop around a CUB box ``(x, y, w, h)``: a square of half-side ``int(0.75 max(w, h))``
    centred on the box, clipped to the image. Returns PIL's ``(left, upper, right, lower)``."""
    x, y, w, h = bbox
    r = int(max(w, h) * 0.75)
    cx = int((2 * x + w) / 2)
    cy = int((2 * y + h) / 2)
    x1, x2 = max(0, cx - r), min(width, cx + r)
    y1, y2 = max(0, cy - r), min(height, cy + r)
    return x1, y1, x2, y2


def uint8_to_tensor(array: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 -> float ``(3, H, W)`` in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).float().div_(127.5).sub_(1.0)


class ImageTransform:
    """Resize + crop (+ flip) to a square ``image_size`` tensor in [-1, 1].

    Split in two so the deterministic part can be cached: :meth:`prepare` (PIL image -> resized uint8
    array, shorter side ``load_size``) and :meth:`finish` (crop, flip, to tensor). With ``train=True``
    the crop is random and the image is flipped with probability 1/2 (Python's ``random``); otherwise
    the crop is centred and there is no flip.
    """

    def __init__(self, image_size: int, train: bool = True, load_size: int | None = None, flip: bool = True):
        if not isinstance(image_size, int) or image_size < 1:
            raise T2IError(f"image_size must be a positive integer, got {image_size!r}")
        self.image_size = image_size
        self.load_size = load_size_for(image_size) if load_size is None else load_size
        if self.load_size < image_size:
            raise T2IError(f"load_size {self.load_size} is smaller than image_size {image_size}")
        self.train = train
        self.flip = flip

    def prepare(self, img: Image.Image) -> np.ndarray:
        """Resized image as uint8 ``(H, W, 3)`` with ``min(H, W) == load_size``."""
        return np.asarray(resize_shorter_side(img, self.load_size))

    def finish(self, array: np.ndarray) -> torch.Tensor:
        """Crop (random or centre) and maybe flip a prepared array -> ``(3, S, S)`` in [-1, 1]."""
        h, w = array.shape[:2]
        s = self.image_size
        if self.train:
            top, left = random.randint(0, h - s), random.randint(0, w - s)
        else:
            top, left = int(round((h - s) / 2.0)), int(round((w - s) / 2.0))
        crop = array[top: top + s, left: left + s]
        if self.train and self.flip and random.random() < 0.5:
            crop = crop[:, ::-1]
        return uint8_to_tensor(crop)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        return self.finish(self.prepare(img))
