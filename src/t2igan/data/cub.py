"""CUB-200-2011 in AttnGAN's ``data/birds`` layout (bounding-box crops) and Oxford-102 in the same
layout (:class:`CUBDataset`, :class:`Flowers102Dataset`)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from PIL import Image

from ..errors import T2IError
from .captioned import (CaptionedImages, check_root, default_for_split, first_number, missing_files_error,
                        read_caption_lines, read_key_list, split_arguments, strip_image_extension, take_captions,
                        warn_skipped)
from .images import bbox_crop_box, load_rgb
from .pickles import safe_pickle_load

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
    ``t2igan data prepare cub`` builds this folder from the published archives.
    """

    prepare_name = "cub"  # the `t2igan data prepare` name that builds this layout

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
        super().__init__(image_size, default_for_split(train_transform, split), default_for_split(random_caption, split), cache,
                         fast_decode)
        root = check_root(root, type(self).__name__)
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
                class_id = first_number(text_path.parent.name)
            captions = take_captions(read_caption_lines(text_path), captions_per_image, f"caption file {text_path}")
            self._add(image_path, key, class_id, captions)
        if missing and not skip_missing:
            raise missing_files_error(split, missing, len(keys), root, "files", self.prepare_name)
        if missing:
            warn_skipped(split, len(self.image_paths), len(keys), "images")
        self.missing = len(missing)
        if not self.image_paths:
            raise T2IError(f"{split} split: no image of its list was found under {self.images_dir}")

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
            path = self.root / self.split / "filenames.pickle"
            if not path.is_file():
                arg = split_arguments(self.split)
                raise T2IError(f"{self.split} split: its list {path} is not there; run 't2igan data prepare "
                               f"{self.prepare_name}', or list the images: '{arg}={{filenames: FILE}}' (lines "
                               "class/name)")
            keys = read_key_list(path)
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
            keys = [strip_image_extension(str(k)) for k in filenames]
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
        names[parts[0]] = strip_image_extension(parts[1])
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
    the class id is the number of the caption's class folder. ``t2igan data prepare flowers`` builds it.
    """

    prepare_name = "flowers"

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
