"""Your own data: a folder of images with same-stem ``.txt`` captions (:class:`ImageFolderCaptions`)
or a JSONL manifest (:class:`JSONLManifest`)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from ..errors import T2IError
from .captioned import CaptionedImages, check_root, read_caption_lines, take_captions
from .images import IMAGE_EXTENSIONS
from .text import tokenize

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
        root = check_root(root, "image folder")
        if not root.is_dir():
            raise T2IError(f"not a folder: {root}")
        images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        for path in images:
            text_path = path.with_suffix(".txt")
            if not text_path.is_file():
                self.missing += 1
                continue
            captions = take_captions(read_caption_lines(text_path), captions_per_image, f"caption file {text_path}")
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
        path = check_root(path, "JSONL manifest")
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
            captions = take_captions(captions, captions_per_image, where)
            self._add(image_path, str(entry.get("key", entry["image"])), class_id, captions)
        if missing and not skip_missing:
            raise T2IError(f"{len(missing)} images of the manifest are missing, first: {missing[0]}; keep what is "
                           "there: 'data.train_args={skip_missing: true}' (data.test_args for the test split)")
        if missing:
            warnings.warn(f"{path.name}: kept {len(self.image_paths)} of {len(self.image_paths) + len(missing)} "
                          f"images, left out {len(missing)} whose files are missing (skip_missing)", stacklevel=2)
        self.missing = len(missing)
        if not self.image_paths:
            raise T2IError(f"JSONL manifest {path} lists no image")
        self.path = path
