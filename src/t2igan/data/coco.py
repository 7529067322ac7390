"""MS-COCO captions (``annotations/captions_<split>2014.json``): :class:`COCODataset`."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import T2IError
from .captioned import (CaptionedImages, check_root, default_for_split, missing_files_error, take_captions,
                        warn_skipped)
from .text import tokenize

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
        super().__init__(image_size, default_for_split(train_transform, split), default_for_split(random_caption, split), cache,
                         fast_decode)
        root = check_root(root, "COCO")
        part = "val" if split == "test" else split
        ann_path = Path(annotations) if annotations else root / "annotations" / f"captions_{part}{year}.json"
        images_dir = Path(images_dir) if images_dir else root / f"{part}{year}"
        if not ann_path.is_file():
            raise T2IError(f"{split} split: COCO caption file not found: {ann_path} (run 't2igan data prepare coco')")
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
            captions = take_captions(by_image.get(image_id, []), captions_per_image,
                                      f"COCO image {file_name} (id {image_id}) in {ann_path}")
            self._add(path, file_name, -1, captions)
        if missing and not skip_missing:
            raise missing_files_error(split, missing, len(entries), root, "COCO images", "coco", subset_hint=False)
        if missing:
            warn_skipped(split, len(self.image_paths), len(entries), "COCO images")
        self.missing = len(missing)
        if not self.image_paths:
            raise T2IError(f"{split} split: no COCO image of {ann_path} was found in {images_dir}")
        self.root, self.split, self.captions_per_image = root, split, captions_per_image
