"""The base class of the on-disk text-image data sets (:class:`CaptionedImages`) and the caption
file readers they share (one caption per line, key lists)."""

from __future__ import annotations

import random
import re
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from ..errors import T2IError
from .images import IMAGE_EXTENSIONS, ImageTransform, load_rgb
from .pickles import safe_pickle_load
from .text import tokenize

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


def first_number(name: str) -> int:
    """``"002.Laysan_Albatross"`` -> 2, ``"class_00017"`` -> 17, no digits -> -1."""
    m = re.search(r"\d+", name)
    return int(m.group()) if m else -1


def strip_image_extension(key: str) -> str:
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
    return [strip_image_extension(k.decode("latin1") if isinstance(k, bytes) else k) for k in keys]


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


def check_root(root: str | Path, what: str) -> Path:
    if root is None:
        raise T2IError(f"the {what} data set needs a root folder")
    root = Path(root)
    if not root.exists():
        raise T2IError(f"{what} data not found: {root} does not exist")
    return root


def split_arguments(split: str) -> str:
    """The command-line field holding a split's data set arguments: ``data.train_args`` / ``data.test_args``."""
    return "data.train_args" if split == "train" else "data.test_args"


def relative_to(path, root: Path) -> str:
    """``path`` relative to ``root`` when under it (shorter error lines), else as given."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def missing_files_error(split: str, missing: list, listed: int, root: Path, what: str, dataset: str,
                        subset_hint: bool = True) -> T2IError:
    """The one-line error for a split whose listed files are partly absent, with the command-line fixes."""
    arg = split_arguments(split)
    fixes = f"keep what is there: '{arg}={{skip_missing: true}}'"
    if subset_hint:
        fixes += f", or list a subset: '{arg}={{filenames: FILE}}' (lines class/name)"
    return T2IError(f"{split} split: {len(missing)} of {listed} listed {what} are missing (first: "
                    f"{relative_to(missing[0], root)} in {root}); run 't2igan data prepare {dataset}', or {fixes}")


def warn_skipped(split: str, kept: int, listed: int, what: str) -> None:
    """Say how many listed files ``skip_missing`` kept and left out."""
    warnings.warn(f"{split} split: kept {kept} of {listed} listed {what}, left out {listed - kept} whose files "
                  "are missing (skip_missing)", stacklevel=3)


def default_for_split(flag: bool | None, split: str) -> bool:
    return split == "train" if flag is None else bool(flag)


def take_captions(captions: list[str], n: int | None, source) -> list[str]:
    """First ``n`` captions; too few -> T2IError naming ``source``."""
    if n is None:
        if not captions:
            raise T2IError(f"{source} has no caption")
        return captions
    if len(captions) < n:
        raise T2IError(f"{source} has {len(captions)} non-empty captions, expected at least {n}")
    return captions[:n]
