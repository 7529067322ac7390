"""Text-image data sets read from disk (SPEC "Shared parts / Data on disk").

Every data set here is a ``torch.utils.data.Dataset`` of dicts::

    {"image": float tensor (3, S, S) in [-1, 1], RGB,
     "caption": str, "image_idx": int, "caption_idx": int, "class_id": int (-1 if none), "key": str}

and exposes ``captions(i) -> list[str]`` (all captions of image ``i``), ``all_captions()`` (every
caption, for the vocabulary) and ``get_item(i, caption_idx)``. ``len()`` is the number of *images*;
``__getitem__`` picks one caption of the image uniformly at random when ``random_caption`` is on
(the default for the training split), else caption 0.

Loaders:

* :class:`CUBDataset`: CUB-200-2011 in AttnGAN's ``data/birds`` layout, with the bounding-box crop;
* :class:`Flowers102Dataset`: Oxford-102 in the same layout (flat ``jpg/`` folder, no boxes);
* :class:`COCODataset`: COCO captions JSON (``annotations/captions_train2014.json``);
* :class:`ImageFolderCaptions`: any folder of images, each with a same-stem ``.txt`` of captions;
* :class:`JSONLManifest`: one ``{"image": ..., "captions": [...]}`` object per line.

Image pipeline (:class:`ImageTransform`, AttnGAN's): optional box crop, resize so the *shorter* side is
``int(image_size * 76 / 64)`` (torchvision ``Resize(int)`` semantics, bilinear), then a random
``image_size`` crop and a random horizontal flip for training, or a centre crop otherwise. It uses
PIL + numpy + torch only (no torchvision).

:func:`read_attngan_captions` / :func:`vocabulary_from_attngan` read AttnGAN's ``captions.pickle`` so a
model can use exactly the official word indices; :func:`build_dataset` maps names to classes.
"""

from __future__ import annotations

import inspect
import json
import math
import random
import re
import sys
import warnings
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import T2IError
from .pickles import safe_pickle_load
from .text import PAD_TOKEN, Vocabulary, tokenize

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


# ----------------------------------------------------------------------------- captions


def read_caption_lines(path: Path) -> list[str]:
    """Non-empty caption lines of a text file (stripped). A line with no word (``\\w+``) counts as empty."""
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except OSError as e:
        raise T2IError(f"cannot read caption file {path}: {e}") from None
    # AttnGAN turns the two replacement characters left by a broken two-byte sequence into a space.
    text = text.replace("\ufffd\ufffd", " ")
    return [line.strip() for line in text.splitlines() if tokenize(line)]


def _first_number(name: str) -> int:
    """``"002.Laysan_Albatross"`` -> 2, ``"class_00017"`` -> 17, no digits -> -1."""
    m = re.search(r"\d+", name)
    return int(m.group()) if m else -1


def _strip_image_extension(key: str) -> str:
    return key[: -len(Path(key).suffix)] if Path(key).suffix.lower() in IMAGE_EXTENSIONS else key


def read_key_list(path: str | Path) -> list[str]:
    """Image keys from a text file (one per line; blank lines and ``#`` comments skipped) or a pickle."""
    path = Path(path)
    if not path.is_file():
        raise T2IError(f"file list not found: {path}")
    if path.suffix == ".pickle":
        keys = safe_pickle_load(path)
    else:
        keys = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()]
        keys = [k for k in keys if k and not k.startswith("#")]
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, (str, bytes)) for k in keys):
        raise T2IError(f"file list {path} is not a list of image names")
    return [_strip_image_extension(k.decode("latin1") if isinstance(k, bytes) else k) for k in keys]


# ----------------------------------------------------------------------------- base class


class CaptionedImages(Dataset):
    """Shared machinery: a list of images, each with its captions, a class id and a key.

    Subclasses fill ``self.image_paths``, ``self.keys``, ``self.class_ids`` and ``self._captions``
    (one list of strings per image) and may override :meth:`raw_image` (e.g. to crop a box).
    """

    def __init__(self, image_size: int, train_transform: bool, random_caption: bool, cache: bool,
                 fast_decode: bool = False):
        self.transform = ImageTransform(image_size, train=train_transform)
        self.image_size = image_size
        self.random_caption = random_caption
        self.cache = cache
        # Decode JPEGs at 1/2..1/8 scale when that still covers load_size (see load_rgb): 2-4x faster
        # loading, pixels slightly different from a full decode + resize (the official pipeline).
        self.fast_decode = fast_decode
        self.image_paths: list[Path] = []
        self.keys: list[str] = []
        self.class_ids: list[int] = []
        self._captions: list[list[str]] = []
        self._prepared: dict[int, np.ndarray] = {}  # image_idx -> resized uint8 (H, W, 3), when cache
        self.missing = 0  # listed images left out because a file was absent (skip_missing=True)

    def __len__(self) -> int:
        return len(self.image_paths)

    def _index(self, i) -> int:
        i = int(i)
        if not 0 <= i < len(self):
            raise IndexError(f"image index {i} out of range (0..{len(self) - 1})")
        return i

    def captions(self, i) -> list[str]:
        """All captions of image ``i``."""
        return list(self._captions[self._index(i)])

    def all_captions(self) -> list[str]:
        """Every caption of every image, image by image (for building the vocabulary)."""
        return [c for caps in self._captions for c in caps]

    def raw_image(self, i) -> Image.Image:
        """Image ``i`` as an RGB PIL image before resizing (after the box crop where there is one;
        already reduced when ``fast_decode``)."""
        return load_rgb(self.image_paths[self._index(i)], min_side=self._min_side)

    @property
    def _min_side(self) -> int | None:
        return self.transform.load_size if self.fast_decode else None

    def prepared_image(self, i) -> np.ndarray:
        """Image ``i`` resized to ``load_size`` (uint8 ``(H, W, 3)``), from the cache when enabled."""
        i = self._index(i)
        array = self._prepared.get(i)
        if array is None:
            array = self.transform.prepare(self.raw_image(i))
            if self.cache:
                self._prepared[i] = array
        return array

    def image(self, i) -> torch.Tensor:
        """Image ``i`` as ``(3, S, S)`` in [-1, 1] (random crop/flip when ``train_transform``)."""
        return self.transform.finish(self.prepared_image(i))

    def get_item(self, i, caption_idx: int) -> dict:
        i = self._index(i)
        captions = self._captions[i]
        if not 0 <= caption_idx < len(captions):
            raise IndexError(f"image {self.keys[i]} has {len(captions)} captions, asked for {caption_idx}")
        return {
            "image": self.image(i),  # (3, S, S) in [-1, 1]
            "caption": captions[caption_idx],
            "image_idx": i,
            "caption_idx": caption_idx,
            "class_id": self.class_ids[i],
            "key": self.keys[i],
        }

    def __getitem__(self, i) -> dict:
        i = self._index(i)
        if self.random_caption:
            # randrange excludes its bound. The official loaders' random.randint(0, n) is inclusive and,
            # 1 time in n + 1, reads the first caption of the *next* image: not reproduced here.
            caption_idx = random.randrange(len(self._captions[i]))
        else:
            caption_idx = 0
        return self.get_item(i, caption_idx)

    def _add(self, image_path: Path, key: str, class_id: int, captions: list[str]) -> None:
        self.image_paths.append(image_path)
        self.keys.append(key)
        self.class_ids.append(class_id)
        self._captions.append(captions)


def _check_root(root: str | Path, what: str) -> Path:
    if root is None:
        raise T2IError(f"the {what} data set needs a root folder")
    root = Path(root)
    if not root.exists():
        raise T2IError(f"{what} data not found: {root} does not exist")
    return root


def _default(flag: bool | None, split: str) -> bool:
    return split == "train" if flag is None else bool(flag)


def _take_captions(captions: list[str], n: int | None, source) -> list[str]:
    """First ``n`` captions; too few -> T2IError naming ``source``."""
    if n is None:
        if not captions:
            raise T2IError(f"{source} has no caption")
        return captions
    if len(captions) < n:
        raise T2IError(f"{source} has {len(captions)} non-empty captions, expected at least {n}")
    return captions[:n]


# ----------------------------------------------------------------------------- CUB / Oxford-102


class CUBDataset(CaptionedImages):
    """CUB-200-2011 with Reed et al.'s captions, in AttnGAN's ``data/birds`` layout::

        root/CUB_200_2011/images/<class>/<name>.jpg
        root/CUB_200_2011/images.txt, bounding_boxes.txt      (for use_bbox)
        root/text/<class>/<name>.txt                           (10 captions, one per line)
        root/<split>/filenames.pickle, class_info.pickle

    Keys are ``"<class>/<name>"``. ``filenames`` (a text file with one key per line, a pickle, or a
    list) replaces ``<split>/filenames.pickle``; a relative file name is also looked up under ``root``.
    Class ids come from ``<split>/class_info.pickle`` when the keys come from ``filenames.pickle``,
    otherwise from the number that starts the class folder (``"002.Laysan_Albatross"`` -> 2).

    Every listed image and caption file is checked at construction: a missing one raises
    :class:`T2IError` naming it, unless ``skip_missing=True`` (then absent ones are left out and
    counted in ``.missing``). A caption file with fewer than ``captions_per_image`` non-empty lines
    raises; extra lines are ignored.

    With ``use_bbox`` each image is first cropped around its bird box (:func:`bbox_crop_box`).
    ``train_transform`` / ``random_caption`` default to ``split == "train"``. ``cache=True`` keeps each
    resized (``76/64 * image_size``) image in memory, so later epochs skip JPEG decoding.
    AttnGAN's COCO layout (``images/``, ``text/``, ``<split>/filenames.pickle``) loads with
    ``images_dir="images", use_bbox=False, captions_per_image=5``.
    """

    def __init__(
        self,
        root: str | Path,  # the data/birds folder
        split: str = "train",  # "train" | "test": which filenames.pickle / class_info.pickle
        image_size: int = 64,  # output side in pixels
        captions_per_image: int = 10,  # captions kept per image (the first N non-empty lines)
        train_transform: bool | None = None,  # random crop + flip; None: split == "train"
        filenames: str | Path | Sequence[str] | None = None,  # keys to use instead of filenames.pickle
        use_bbox: bool = True,  # crop around the CUB bounding box first
        random_caption: bool | None = None,  # random caption per access; None: split == "train"
        skip_missing: bool = False,  # leave out listed images whose files are absent instead of raising
        cache: bool = False,  # keep resized images in memory
        fast_decode: bool = False,  # decode JPEGs at a reduced scale when large enough (faster, see load_rgb)
        images_dir: str = "CUB_200_2011/images",  # image folder, relative to root
        text_dir: str | None = "text",  # caption folder, relative to root (None: "text" or "text_c10")
        bbox_dir: str = "CUB_200_2011",  # folder of images.txt and bounding_boxes.txt
    ):
        super().__init__(image_size, _default(train_transform, split), _default(random_caption, split), cache,
                         fast_decode)
        root = _check_root(root, type(self).__name__)
        self.root = root
        self.split = split
        self.captions_per_image = captions_per_image
        self.images_dir = root / images_dir
        self.text_dir = self._find_text_dir(root, text_dir)
        if not self.images_dir.is_dir():
            raise T2IError(f"image folder not found: {self.images_dir}")
        self._text_index: dict[str, Path] | None = None  # basename -> caption file, built on demand

        keys, class_ids = self._read_keys(filenames)
        missing = []
        for key, class_id in zip(keys, class_ids):
            image_path = self._image_path(key)
            text_path = self._text_path(key) if image_path is not None else None
            if image_path is None or text_path is None:
                absent = f"{self.images_dir / key}.jpg" if image_path is None else f"{self.text_dir / key}.txt"
                missing.append(absent)
                continue
            if class_id is None:
                class_id = _first_number(text_path.parent.name)
            captions = _take_captions(read_caption_lines(text_path), captions_per_image, f"caption file {text_path}")
            self._add(image_path, key, class_id, captions)
        if missing and not skip_missing:
            raise T2IError(
                f"{len(missing)} of {len(keys)} listed files are missing, first: {missing[0]} "
                "(pass filenames= for a subset, or skip_missing=True)"
            )
        self.missing = len(missing)
        if not self.image_paths:
            raise T2IError(f"no image of the {split} list was found under {self.images_dir}")

        self.bboxes: list[tuple[float, float, float, float]] | None = None
        if use_bbox:
            table = read_cub_bboxes(root / bbox_dir)
            self.bboxes = []
            for key, path in zip(self.keys, self.image_paths):
                try:
                    rel = path.relative_to(self.images_dir).with_suffix("").as_posix()
                except ValueError:  # found outside images_dir (root/<key>.jpg)
                    rel = key
                if rel not in table:
                    raise T2IError(f"no bounding box for {path} in {root / bbox_dir / 'images.txt'}")
                self.bboxes.append(table[rel])

    @staticmethod
    def _find_text_dir(root: Path, text_dir: str | None) -> Path:
        candidates = [text_dir] if text_dir is not None else ["text", "text_c10"]
        for name in candidates:
            if (root / name).is_dir():
                return root / name
        raise T2IError(f"caption folder not found: {root / candidates[0]}")

    def _read_keys(self, filenames) -> tuple[list[str], list[int | None]]:
        if filenames is None:
            keys = read_key_list(self.root / self.split / "filenames.pickle")
            info_path = self.root / self.split / "class_info.pickle"
            if info_path.is_file():
                info = safe_pickle_load(info_path)
                if not hasattr(info, "__len__") or len(info) != len(keys):
                    raise T2IError(f"{info_path} does not have one class id per file name ({len(keys)})")
                return keys, [int(c) for c in info]
            return keys, [None] * len(keys)
        if isinstance(filenames, (str, Path)):
            path = Path(filenames)
            if not path.is_absolute() and not path.exists() and (self.root / path).exists():
                path = self.root / path
            keys = read_key_list(path)
        else:
            keys = [_strip_image_extension(str(k)) for k in filenames]
        return keys, [None] * len(keys)

    @property
    def split_rows(self) -> list[int] | None:
        """Row of each image in ``<split>/filenames.pickle`` (-1 if not listed there), the order of
        per-split files such as StackGAN's ``char-CNN-RNN-embeddings.pickle``; None without that file."""
        if not hasattr(self, "_split_rows"):
            path = self.root / self.split / "filenames.pickle"
            row = {key: n for n, key in enumerate(read_key_list(path))} if path.is_file() else None
            self._split_rows = None if row is None else [row.get(key, -1) for key in self.keys]
        return self._split_rows

    def _image_path(self, key: str) -> Path | None:
        """``images_dir/<key>.jpg``, else (flat folders such as Oxford-102's ``jpg/``) ``images_dir/<name>.jpg``."""
        name = f"{key}.jpg"
        for candidate in (self.images_dir / name, self.root / name, self.images_dir / Path(name).name):
            if candidate.is_file():
                return candidate
        return None

    def _text_path(self, key: str) -> Path | None:
        """``text_dir/<key>.txt``, else the caption file of the same name anywhere under ``text_dir``."""
        direct = self.text_dir / f"{key}.txt"
        if direct.is_file():
            return direct
        if self._text_index is None:
            self._text_index = {p.stem: p for p in sorted(self.text_dir.rglob("*.txt"))}
        return self._text_index.get(Path(key).name)

    def raw_image(self, i) -> Image.Image:
        i = self._index(i)
        crop = None
        if self.bboxes is not None:
            bbox = self.bboxes[i]
            crop = lambda width, height: bbox_crop_box(bbox, width, height)  # noqa: E731
        return load_rgb(self.image_paths[i], crop=crop, min_side=self._min_side)


def read_cub_bboxes(folder: Path) -> dict[str, tuple[float, float, float, float]]:
    """``"<class>/<name>"`` -> ``(x, y, w, h)`` from CUB's ``images.txt`` and ``bounding_boxes.txt``."""
    files = {name: folder / name for name in ("images.txt", "bounding_boxes.txt")}
    for path in files.values():
        if not path.is_file():
            raise T2IError(f"bounding box file not found: {path} (or pass use_bbox=False)")
    names = {}
    for n, line in enumerate(files["images.txt"].read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise T2IError(f"{files['images.txt']}:{n}: expected '<id> <path>'")
        names[parts[0]] = _strip_image_extension(parts[1])
    boxes = {}
    for n, line in enumerate(files["bounding_boxes.txt"].read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            x, y, w, h = (float(v) for v in parts[1:])
            boxes[names[parts[0]]] = (x, y, w, h)
        except (ValueError, KeyError):
            raise T2IError(
                f"{files['bounding_boxes.txt']}:{n}: expected '<id> <x> <y> <w> <h>' with an id of images.txt"
            ) from None
    return boxes


class Flowers102Dataset(CUBDataset):
    """Oxford-102 flowers with Reed et al.'s captions, in the same layout without boxes::

        root/jpg/image_06734.jpg
        root/text_c10/class_00001/image_06734.txt   (or root/text/...)
        root/<split>/filenames.pickle                (keys "class_00001/image_06734" or "jpg/image_06734")

    Images are found by name in the flat ``jpg/`` folder and captions by name under the caption folder;
    the class id is the number of the caption's class folder.
    """

    def __init__(
        self,
        root: str | Path,  # the data/flowers folder
        split: str = "train",
        image_size: int = 64,
        captions_per_image: int = 10,
        train_transform: bool | None = None,  # None: split == "train"
        filenames: str | Path | Sequence[str] | None = None,  # keys to use instead of filenames.pickle
        random_caption: bool | None = None,  # None: split == "train"
        skip_missing: bool = False,
        cache: bool = False,
        fast_decode: bool = False,
        images_dir: str = "jpg",
        text_dir: str | None = None,  # None: "text" or "text_c10", whichever exists
    ):
        super().__init__(root, split, image_size, captions_per_image, train_transform, filenames, use_bbox=False,
                         random_caption=random_caption, skip_missing=skip_missing, cache=cache,
                         fast_decode=fast_decode, images_dir=images_dir, text_dir=text_dir)


# ----------------------------------------------------------------------------- COCO


class COCODataset(CaptionedImages):
    """MS-COCO captions: ``root/annotations/captions_{split}{year}.json``, images in ``root/{split}{year}/``.

    Captions are grouped by image id in file order; the first ``captions_per_image`` (default 5: COCO
    has 5 to 7) are kept, and an image with fewer raises :class:`T2IError`. Key = file name; class -1.
    """

    def __init__(
        self,
        root: str | Path,  # folder holding annotations/ and train2014/ (val2014/ ...)
        split: str = "train",  # "train" | "val" (also accepts "test", read as "val", the usual T2I test set)
        image_size: int = 64,
        year: int = 2014,
        captions_per_image: int | None = 5,  # captions kept per image (None: all of them)
        train_transform: bool | None = None,  # None: split == "train"
        random_caption: bool | None = None,  # None: split == "train"
        skip_missing: bool = False,  # leave out images whose file is absent instead of raising
        cache: bool = False,
        fast_decode: bool = False,
        annotations: str | Path | None = None,  # caption JSON (default root/annotations/captions_{split}{year}.json)
        images_dir: str | Path | None = None,  # image folder (default root/{split}{year})
    ):
        super().__init__(image_size, _default(train_transform, split), _default(random_caption, split), cache,
                         fast_decode)
        root = _check_root(root, "COCO")
        part = "val" if split == "test" else split
        ann_path = Path(annotations) if annotations else root / "annotations" / f"captions_{part}{year}.json"
        images_dir = Path(images_dir) if images_dir else root / f"{part}{year}"
        if not ann_path.is_file():
            raise T2IError(f"COCO caption file not found: {ann_path}")
        try:
            data = json.loads(ann_path.read_text(encoding="utf-8"))
            images = data["images"]
            by_image: dict[int, list[str]] = {}
            for ann in data["annotations"]:
                if tokenize(ann["caption"]):
                    by_image.setdefault(ann["image_id"], []).append(ann["caption"].strip())
            entries = [(im["id"], im["file_name"]) for im in images]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise T2IError(f"{ann_path} is not a COCO caption file ({type(e).__name__}: {e})") from None
        missing = []
        for image_id, file_name in entries:
            path = images_dir / file_name
            if not path.is_file():
                missing.append(path)
                continue
            captions = _take_captions(by_image.get(image_id, []), captions_per_image,
                                      f"COCO image {file_name} (id {image_id}) in {ann_path}")
            self._add(path, file_name, -1, captions)
        if missing and not skip_missing:
            raise T2IError(f"{len(missing)} of {len(entries)} COCO images are missing, first: {missing[0]}")
        self.missing = len(missing)
        if not self.image_paths:
            raise T2IError(f"no COCO image of {ann_path} was found in {images_dir}")
        self.root, self.split, self.captions_per_image = root, split, captions_per_image


# ----------------------------------------------------------------------------- folder / manifest


class ImageFolderCaptions(CaptionedImages):
    """Every image under ``root`` (recursive; .jpg .jpeg .png .bmp .webp) with a same-stem ``.txt``
    holding one caption per line. Images without a ``.txt`` are left out and counted in ``.missing``;
    no captioned image at all raises :class:`T2IError`. Key = path relative to ``root``; class -1.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: int = 64,
        captions_per_image: int | None = None,  # keep the first N per image (None: all, at least 1)
        train_transform: bool = True,  # random crop + flip
        random_caption: bool = True,  # random caption per access
        cache: bool = False,
        fast_decode: bool = False,
    ):
        super().__init__(image_size, train_transform, random_caption, cache, fast_decode)
        root = _check_root(root, "image folder")
        if not root.is_dir():
            raise T2IError(f"not a folder: {root}")
        images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        for path in images:
            text_path = path.with_suffix(".txt")
            if not text_path.is_file():
                self.missing += 1
                continue
            captions = _take_captions(read_caption_lines(text_path), captions_per_image, f"caption file {text_path}")
            self._add(path, path.relative_to(root).as_posix(), -1, captions)
        if not self.image_paths:
            raise T2IError(f"no image with a same-name .txt caption file under {root} ({len(images)} images seen)")
        if self.missing:
            first = next(p for p in images if not p.with_suffix(".txt").is_file())
            print(f"warning: {self.missing} of {len(images)} images under {root} have no same-name .txt caption "
                  f"file and are left out (first: {first})", file=sys.stderr)
        self.root = root


class JSONLManifest(CaptionedImages):
    """A JSON-lines manifest: one object per line, ``{"image": "path.jpg", "captions": ["...", ...]}``
    (or ``"caption": "..."``), optionally ``"class_id"`` (int) and ``"key"``. Relative image paths are
    relative to the manifest's folder; blank lines are skipped. A malformed line raises
    :class:`T2IError` with the file and line number.
    """

    def __init__(
        self,
        path: str | Path,  # the .jsonl file
        image_size: int = 64,
        captions_per_image: int | None = None,  # keep the first N per image (None: all, at least 1)
        train_transform: bool = True,
        random_caption: bool = True,
        skip_missing: bool = False,  # leave out entries whose image is absent instead of raising
        cache: bool = False,
        fast_decode: bool = False,
    ):
        super().__init__(image_size, train_transform, random_caption, cache, fast_decode)
        path = _check_root(path, "JSONL manifest")
        if not path.is_file():
            raise T2IError(f"JSONL manifest is not a file: {path}")
        missing = []
        for n, raw in enumerate(path.read_bytes().splitlines(), 1):
            where = f"{path}:{n}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise T2IError(f"{where}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError as e:
                raise T2IError(f"{where}: not valid JSON ({e.msg})") from None
            if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
                raise T2IError(f'{where}: expected an object with an "image" path')
            captions = entry.get("captions", entry.get("caption"))
            if isinstance(captions, str):
                captions = [captions]
            if not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
                raise T2IError(f'{where}: "captions" must be a list of strings (or "caption" a string)')
            captions = [c.strip() for c in captions if tokenize(c)]
            class_id = entry.get("class_id", -1)
            if not isinstance(class_id, int):
                raise T2IError(f'{where}: "class_id" must be an integer')
            image_path = Path(entry["image"])
            if not image_path.is_absolute():
                image_path = path.parent / image_path
            if not image_path.is_file():
                missing.append(f"{image_path} ({where})")
                continue
            captions = _take_captions(captions, captions_per_image, where)
            self._add(image_path, str(entry.get("key", entry["image"])), class_id, captions)
        if missing and not skip_missing:
            raise T2IError(f"{len(missing)} images of the manifest are missing, first: {missing[0]}")
        self.missing = len(missing)
        if not self.image_paths:
            raise T2IError(f"JSONL manifest {path} lists no image")
        self.path = path


# ----------------------------------------------------------------------------- AttnGAN captions.pickle


def read_attngan_captions(path: str | Path):
    """AttnGAN's ``captions.pickle``: ``(train_captions, test_captions, ixtoword, wordtoix)``.

    The caption lists hold one list of word indices per caption (image-major, 10 per CUB image).
    Read with the restricted unpickler (no code runs).
    """
    data = safe_pickle_load(path)
    if not isinstance(data, (list, tuple)) or len(data) != 4:
        raise T2IError(f"{path} is not an AttnGAN captions.pickle (expected a list of 4 items)")
    train_captions, test_captions, ixtoword, wordtoix = data
    if not isinstance(ixtoword, (dict, list)) or not isinstance(wordtoix, dict):
        raise T2IError(f"{path} is not an AttnGAN captions.pickle (no ixtoword / wordtoix tables)")
    return [list(c) for c in train_captions], [list(c) for c in test_captions], ixtoword, wordtoix


def vocabulary_from_attngan(ixtoword) -> Vocabulary:
    """A :class:`Vocabulary` with AttnGAN's exact word indices (``unk_token=None``, as AttnGAN drops
    unknown words). Index 0 (``<end>`` in AttnGAN) becomes the padding token."""
    if isinstance(ixtoword, dict):
        n = len(ixtoword)
        if sorted(int(i) for i in ixtoword) != list(range(n)):
            raise T2IError("AttnGAN ixtoword indices are not 0..N-1")
        words = [ixtoword[i] for i in sorted(ixtoword, key=int)]
    else:
        words = list(ixtoword)
    words = [w.decode("utf-8") if isinstance(w, bytes) else str(w) for w in words]
    if not words:
        raise T2IError("AttnGAN ixtoword is empty")
    words[0] = PAD_TOKEN
    return Vocabulary(words, unk_token=None)


# ----------------------------------------------------------------------------- factory

DATASET_NAMES = ("shapes", "cub", "flowers", "coco", "folder", "jsonl")


def _dataset_class(name: str):
    if name == "shapes":
        from .shapes import ShapesDataset  # written separately; imported only when asked for

        return ShapesDataset
    return {"cub": CUBDataset, "flowers": Flowers102Dataset, "coco": COCODataset,
            "folder": ImageFolderCaptions, "jsonl": JSONLManifest}[name]


def build_dataset(name: str, root: str | Path | None = None, split: str = "train", image_size: int = 64,
                  caption_embeddings: str | Path | None = None, captions_per_embedding: int = 1, **kwargs):
    """Data set by name: ``shapes`` (no root), ``cub``, ``flowers``, ``coco`` (root folder), ``folder``
    (``root/<split>/`` if that folder exists, else ``root``), ``jsonl`` (a manifest file, or
    ``root/<split>.jsonl`` when root is a folder). For ``folder`` / ``jsonl`` the split also sets the
    defaults of ``train_transform`` and ``random_caption`` (on for ``"train"``).

    ``caption_embeddings`` (a path, or a file name under ``root/<split>/``) wraps the data set in
    :class:`t2igan.data.embeddings.CaptionEmbeddingDataset`, which adds ``sent_emb`` to each item
    (GAN-INT-CLS with Reed et al.'s char-CNN-RNN embeddings). The file's rows follow
    ``<split>/filenames.pickle``; CUB / Oxford-102 subsets are matched to their rows by key.
    """
    dataset = _build_dataset(name, root, split, image_size, **kwargs)
    if caption_embeddings is None:
        return dataset
    from .embeddings import CaptionEmbeddingDataset, read_char_cnn_rnn_embeddings

    path = Path(caption_embeddings)
    if not path.is_file() and root is not None and (Path(root) / split / path).is_file():
        path = Path(root) / split / path
    embeddings = read_char_cnn_rnn_embeddings(path)  # (N, C, D) in filenames.pickle order
    rows = getattr(dataset, "split_rows", None)
    if rows is not None:
        for key, row in zip(dataset.keys, rows):
            if not 0 <= row < len(embeddings):
                raise T2IError(f"{path} has no embedding for {key} (not in {split}/filenames.pickle or past its end)")
        embeddings = embeddings[rows]
    elif len(embeddings) < len(dataset):
        raise T2IError(f"{path} has embeddings for {len(embeddings)} images; the data set has {len(dataset)}")
    return CaptionEmbeddingDataset(dataset, embeddings, captions_per_embedding, train=split == "train",
                                   source=str(path))


def _build_dataset(name: str, root, split: str, image_size: int, **kwargs):
    if name not in DATASET_NAMES:
        raise T2IError(f"unknown data set {name!r} (use one of {', '.join(DATASET_NAMES)})")
    cls = _dataset_class(name)
    if name == "shapes":
        args, kw = (), dict(split=split, image_size=image_size, **kwargs)
    else:
        root = _check_root(root, name)
        if name == "folder":
            root = root / split if (root / split).is_dir() else root
        elif name == "jsonl" and root.is_dir():
            root = root / f"{split}.jsonl"
            if not root.is_file():
                raise T2IError(f"JSONL manifest not found: {root}")
        if name in ("folder", "jsonl"):
            kwargs.setdefault("train_transform", split == "train")
            kwargs.setdefault("random_caption", split == "train")
            args, kw = (root,), dict(image_size=image_size, **kwargs)
        else:
            args, kw = (root,), dict(split=split, image_size=image_size, **kwargs)
    try:
        inspect.signature(cls).bind(*args, **kw)  # a misspelt option from a config: one clear line
    except TypeError as e:
        raise T2IError(f"bad arguments for data set {name!r}: {e}") from None
    return cls(*args, **kw)
