"""From the published archives to the folders the presets read: ``t2igan data prepare cub|coco|flowers``
(:func:`prepare`).

The archives (:data:`ARCHIVES`) are the ones the text-to-image papers' code uses:

* ``cub``: Caltech's ``CUB_200_2011.tgz`` (images, bounding boxes) and AttnGAN's ``birds.zip``
  (train/test split lists and class ids, Reed et al.'s ten captions per image in a ``text.zip``
  inside it, ``captions.pickle``) -> AttnGAN's ``data/birds`` layout (:class:`.cub.CUBDataset`).
* ``coco``: ``train2014.zip``, ``val2014.zip`` and ``annotations_trainval2014.zip`` -> ``annotations/
  captions_{train,val}2014.json``, ``train2014/``, ``val2014/`` (:class:`.coco.COCODataset`); AttnGAN's
  ``coco.zip``, when given, adds its ``captions.pickle`` (the official vocabulary).
* ``flowers``: Oxford's ``102flowers.tgz`` and Reed et al.'s ``cvpr2016_flowers.tar.gz`` (``text_c10``
  captions, the 82/20 class split) -> ``jpg/``, ``text_c10/``, ``train|test/filenames.pickle``
  (:class:`.cub.Flowers102Dataset`); StackGAN's ``flowers.zip``, when given, supplies the split lists
  and the char-CNN-RNN embeddings GAN-INT-CLS trains on.

Sources are files or folders in any order: a file is recognised by its published name (and then
checked against the published MD5, where one is published), and every source is searched by
content, so an archive already unpacked into a folder (or the AttnGAN layout itself) works too. What
the sources given (and the download folder, :func:`.download.archive_dir`) lack is downloaded when
online. Every image is decoded and every caption file counted; a listed image whose image, caption
file or box is missing or broken is left out, and the split lists (with their class ids and
embeddings) then name the kept images only. Each split's counts and each reason for leaving an image
out are printed; ``left_out.tsv`` lists them one by one.

Everything is written to a hidden ``.<name>.partial-<pid>`` folder beside the output and renamed into
place only at the end, with ``PREPARED.json`` (the sources, their checksums and the counts) written
last: an output folder either does not exist or is complete. A damaged or truncated archive stops
the run with one error line and leaves no output.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import T2IError
from .archives import read_members
from .download import Archive, archive_dir, check_md5, download, downloads_allowed, file_md5, google_drive

MARKER = "PREPARED.json"  # written last: a folder that has it is complete
LEFT_OUT = "left_out.tsv"  # split, key, reason of every listed image left out

_BIRDS = google_drive("1O_LtUP9sch09QH3s_EBAgLEctBQ5JBSJ")  # AttnGAN / DF-GAN README, "birds"
_COCO_META = google_drive("1rSnbIGNDGZeHlsUlLdahj0RJ9oo6lgH9")  # AttnGAN / DF-GAN README, "coco"
_REED_FLOWERS = google_drive("0B0ywwgffWnLLcms2WWJQRFNSWXM")  # Reed et al., reedscot/cvpr2016 data
_STACKGAN_FLOWERS = google_drive("0B3y_msrWZaXLaUc0UXpmcnhaVmM")  # StackGAN README, "flowers"

ARCHIVES: dict[str, tuple[Archive, ...]] = {
    "cub": (
        Archive("CUB_200_2011.tgz", "CUB-200-2011 images and bounding boxes (Caltech)",
                "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz?download=1",
                1_150_585_339, "97eceeb196236b17998738112f37df78"),
        Archive("birds.zip", "AttnGAN's birds metadata: split lists, class ids, captions (text.zip), captions.pickle",
                _BIRDS[0], page=_BIRDS[1]),
    ),
    "coco": (
        Archive("train2014.zip", "COCO-2014 training images", "http://images.cocodataset.org/zips/train2014.zip",
                13_510_573_713, "0da8c0bd3d6becc4dcb32757491aca88"),
        Archive("val2014.zip", "COCO-2014 validation images (the text-to-image test split)",
                "http://images.cocodataset.org/zips/val2014.zip", 6_645_013_297, "a3d79f5ed8d289b7a7554ce06a5782b3"),
        Archive("annotations_trainval2014.zip", "COCO-2014 annotations (captions_train2014.json, captions_val2014.json)",
                "http://images.cocodataset.org/annotations/annotations_trainval2014.zip", 252_872_794,
                "0a379cfc70b0e71301e0f377548639bd"),
        Archive("coco.zip", "AttnGAN's coco metadata, for its captions.pickle (the official vocabulary); optional",
                _COCO_META[0], page=_COCO_META[1], fetch=False),
    ),
    "flowers": (
        Archive("102flowers.tgz", "Oxford-102 images (Nilsback and Zisserman)",
                "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz", 344_862_509,
                "52808999861908f626f3c1f4e79d11fa"),
        Archive("cvpr2016_flowers.tar.gz", "Reed et al.'s ten captions per image (text_c10) and class splits",
                _REED_FLOWERS[0], page=_REED_FLOWERS[1]),
        Archive("flowers.zip", "StackGAN's flowers metadata: split lists and char-CNN-RNN embeddings (for "
                "gan_int_cls-flowers); optional", _STACKGAN_FLOWERS[0], page=_STACKGAN_FLOWERS[1], fetch=False),
    ),
}
DEFAULT_OUT = {"cub": "data/birds", "coco": "data/coco", "flowers": "data/flowers"}  # the presets' data.root
DATASETS = tuple(ARCHIVES)

# ----------------------------------------------------------------------------- what is taken from a source


@dataclass(frozen=True)
class Pattern:
    """Members whose cleaned name matches ``regex`` have ``role``; ``key(match)`` names the item and
    ``dest(match)`` is where it is written in the output (None: kept in memory, e.g. a split list)."""

    regex: str
    role: str
    key: Callable[[re.Match], str] | None = None
    dest: Callable[[re.Match], str] | None = None


_CLASS = r"(\d{3}\.[^/]+)"  # a CUB class folder, "001.Black_footed_Albatross"
_SPLIT_FILES = Pattern(r"(?:^|/)(train|test)/(filenames|class_info|char-CNN-RNN-embeddings)\.pickle$", "split_file",
                       key=lambda m: f"{m[1]}/{m[2]}")
_VOCAB = Pattern(r"(?:^|/)captions\.pickle$", "vocab", key=lambda m: "captions.pickle", dest=lambda m: "captions.pickle")

PATTERNS: dict[str, tuple[Pattern, ...]] = {
    "cub": (
        Pattern(rf"(?:^|/)CUB_200_2011/images/{_CLASS}/([^/]+)\.jpg$", "image", key=lambda m: f"{m[1]}/{m[2]}",
                dest=lambda m: f"CUB_200_2011/images/{m[1]}/{m[2]}.jpg"),
        Pattern(r"(?:^|/)CUB_200_2011/(images\.txt|bounding_boxes\.txt|classes\.txt|image_class_labels\.txt|"
                r"train_test_split\.txt|README)$", "table", key=lambda m: m[1], dest=lambda m: f"CUB_200_2011/{m[1]}"),
        Pattern(rf"(?:^|/)(?:text|text_c10)/{_CLASS}/([^/]+)\.txt$", "caption", key=lambda m: f"{m[1]}/{m[2]}",
                dest=lambda m: f"text/{m[1]}/{m[2]}.txt"),
        Pattern(r"(?:^|/)text\.zip$", "nested"),  # birds.zip holds the captions as birds/text.zip
        _SPLIT_FILES,
        _VOCAB,
    ),
    "coco": (
        Pattern(r"(?:^|/)(train2014|val2014)/(COCO_(?:train|val)2014_\d+\.jpg)$", "image", key=lambda m: f"{m[1]}/{m[2]}",
                dest=lambda m: f"{m[1]}/{m[2]}"),
        Pattern(r"(?:^|/)captions_(train|val)2014\.json$", "annotations", key=lambda m: m[1]),
        _VOCAB,
    ),
    "flowers": (
        Pattern(r"(?:^|/)jpg/(image_\d+)\.jpg$", "image", key=lambda m: m[1], dest=lambda m: f"jpg/{m[1]}.jpg"),
        Pattern(r"(?:^|/)text_c10/(class_\d+)/(image_\d+)\.txt$", "caption", key=lambda m: m[2],
                dest=lambda m: f"text_c10/{m[1]}/{m[2]}.txt"),
        Pattern(r"(?:^|/)(trainvalclasses|testclasses)\.txt$", "class_list", key=lambda m: m[1]),
        _SPLIT_FILES,
    ),
}
SPLITS = ("train", "test")


class Found:
    """What the sources held so far: files written into the staging folder, and in-memory members."""

    def __init__(self, dataset: str, staging: Path):
        self.dataset, self.staging = dataset, staging
        self.patterns = [(re.compile(p.regex), p) for p in PATTERNS[dataset]]
        self.files: dict[str, dict[str, str]] = {}  # role -> key -> path relative to staging
        self.blobs: dict[str, dict[str, bytes]] = {}  # role -> key -> bytes
        self.origin: dict[tuple[str, str], str] = {}  # (role, key) -> "source: member" (for errors)
        self.duplicates = 0

    def match(self, name: str):
        for regex, pattern in self.patterns:
            m = regex.search(name)
            if m:
                return pattern, m
        return None

    def add_source(self, source, progress: bool) -> int:
        """Take every member this data set uses from ``source`` (path, or (label, bytes)); returns how many."""
        label = source[0] if isinstance(source, tuple) else str(source)
        used = 0
        for name, data in read_members(source, lambda n: self.match(n) is not None, progress):
            pattern, m = self.match(name)
            used += 1
            if pattern.role == "nested":
                used += self.add_source((f"{label}:{name}", data), progress) - 1
                continue
            key = pattern.key(m)
            if pattern.dest is not None:
                files = self.files.setdefault(pattern.role, {})
                if key in files:
                    self.duplicates += 1
                    continue
                path = self.staging / pattern.dest(m)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                files[key] = pattern.dest(m)
            blobs = self.blobs.setdefault(pattern.role, {})
            if pattern.dest is None or pattern.role == "vocab":
                if key in blobs and blobs[key] != data and not _same_list(blobs[key], data):
                    raise T2IError(f"two different {name}: {self.origin[pattern.role, key]} and {label}: {name}; "
                                   "pass only one of them")
                blobs.setdefault(key, data)
                self.origin.setdefault((pattern.role, key), f"{label}: {name}")
        return used

    def has(self, role: str, *keys: str) -> bool:
        held = {**self.files.get(role, {}), **self.blobs.get(role, {})}
        return bool(held) if not keys else all(k in held for k in keys)


def _same_list(a: bytes, b: bytes) -> bool:
    """Whether two pickles hold the same list of names or ids (AttnGAN's and StackGAN's copies of a split
    list differ in bytes: Python 2 / 3 pickles, numpy or plain integers)."""
    from .pickles import safe_pickle_loads

    def plain(x):
        return x.decode("latin1") if isinstance(x, bytes) else x if isinstance(x, str) else int(x)

    try:
        a, b = safe_pickle_loads(a, "a"), safe_pickle_loads(b, "b")
        lists = isinstance(a, (list, tuple)) and isinstance(b, (list, tuple))
        return lists and [plain(x) for x in a] == [plain(x) for x in b]
    except (T2IError, TypeError, ValueError):
        return False


def needs(found: Found) -> list[tuple[str, str]]:
    """``(archive file name, what is missing)`` for each part of the data set the sources lack."""
    d, out = found.dataset, []
    if d == "cub":
        if not found.has("image"):
            out.append(("CUB_200_2011.tgz", "the CUB images (CUB_200_2011/images/)"))
        elif not found.has("table", "images.txt", "bounding_boxes.txt"):
            out.append(("CUB_200_2011.tgz", "CUB_200_2011/images.txt and bounding_boxes.txt"))
        if not found.has("split_file", "train/filenames", "test/filenames"):
            out.append(("birds.zip", "the split lists train/filenames.pickle and test/filenames.pickle"))
        elif not found.has("caption") and not found.has("vocab"):
            out.append(("birds.zip", "the captions (text/<class>/<name>.txt, in birds.zip's text.zip)"))
    elif d == "coco":
        if not found.has("annotations", "train", "val"):
            out.append(("annotations_trainval2014.zip", "captions_train2014.json and captions_val2014.json"))
        images = found.files.get("image", {})
        for part in ("train2014", "val2014"):
            if not any(k.startswith(part + "/") for k in images):
                out.append((f"{part}.zip", f"the {part} images"))
    else:
        if not found.has("image"):
            out.append(("102flowers.tgz", "the Oxford-102 images (jpg/)"))
        if not found.has("caption"):
            out.append(("cvpr2016_flowers.tar.gz", "Reed et al.'s captions (text_c10/class_*/image_*.txt)"))
        elif not (found.has("split_file", "train/filenames", "test/filenames")
                  or found.has("class_list", "trainvalclasses", "testclasses")):
            out.append(("cvpr2016_flowers.tar.gz", "the class split (trainvalclasses.txt, testclasses.txt)"))
    return out


# ----------------------------------------------------------------------------- checks and split lists


@dataclass
class SplitReport:
    listed: int = 0
    kept: int = 0
    left_out: Counter = field(default_factory=Counter)  # reason -> count
    rows: list = field(default_factory=list)  # (key, reason) of each image left out


class Checker:
    """Checks each image (decoded, at a reduced scale) and caption file once."""

    def __init__(self, staging: Path, captions_per_image: int):
        self.staging, self.captions_per_image = staging, captions_per_image
        self._images: dict[str, str | None] = {}

    def image_problem(self, rel: str) -> str | None:
        if rel not in self._images:
            from .images import load_rgb

            try:
                load_rgb(self.staging / rel, min_side=1)  # every byte decoded, at 1/8 scale for a JPEG
                self._images[rel] = None
            except T2IError as e:
                self._images[rel] = "corrupt image (" + str(e).rsplit(": ", 1)[-1] + ")"
        return self._images[rel]

    def caption_problem(self, rel: str) -> str | None:
        from .captioned import read_caption_lines

        n = len(read_caption_lines(self.staging / rel))
        if n < self.captions_per_image:
            return f"caption file has fewer than {self.captions_per_image} captions"
        return None


def _split_list(found: Found, split: str, name: str):
    from .pickles import safe_pickle_loads

    key = f"{split}/{name}"
    data = found.blobs.get("split_file", {}).get(key)
    return None if data is None else (data, safe_pickle_loads(data, found.origin["split_file", key]))


def _write_split(staging: Path, found: Found, split: str, keys: list[str], kept: list[int],
                 class_ids: list[int] | None) -> None:
    """``<split>/filenames.pickle`` (+ ``class_info``, embeddings): the published bytes when nothing
    was left out, else the kept rows (protocol 2, plain lists and arrays)."""
    import numpy as np

    folder = staging / split
    folder.mkdir(parents=True, exist_ok=True)
    whole = len(kept) == len(keys)
    for name in ("filenames", "class_info", "char-CNN-RNN-embeddings"):
        loaded = _split_list(found, split, name)
        if name == "filenames":
            value = [keys[i] for i in kept]
        elif name == "class_info":
            if class_ids is None:
                continue
            value = [class_ids[i] for i in kept]
        elif loaded is None:
            continue
        else:
            from .embeddings import read_char_cnn_rnn_embeddings

            path = staging / f".{split}-embeddings.pickle"
            path.write_bytes(loaded[0])
            rows = read_char_cnn_rnn_embeddings(path)
            path.unlink()
            if len(rows) != len(keys):
                raise T2IError(f"{found.origin['split_file', f'{split}/{name}']} has {len(rows)} rows, "
                               f"{split}/filenames.pickle lists {len(keys)} images")
            value = np.ascontiguousarray(rows[kept])
        target = folder / f"{name}.pickle"
        if whole and loaded is not None:
            target.write_bytes(loaded[0])
        else:
            with open(target, "wb") as f:
                pickle.dump(value, f, protocol=2)


def _keys_and_classes(found: Found, split: str) -> tuple[list[str], list[int] | None] | None:
    from .captioned import strip_image_extension

    loaded = _split_list(found, split, "filenames")
    if loaded is None:
        return None
    keys = loaded[1]
    label = found.origin["split_file", f"{split}/filenames"]
    if not isinstance(keys, (list, tuple)) or not all(isinstance(k, (str, bytes)) for k in keys):
        raise T2IError(f"{label} is not a list of image names")
    keys = [strip_image_extension(k.decode("latin1") if isinstance(k, bytes) else k) for k in keys]
    info = _split_list(found, split, "class_info")
    if info is None:
        return keys, None
    try:
        classes = [int(c) for c in info[1]]
    except (TypeError, ValueError):
        raise T2IError(f"{found.origin['split_file', f'{split}/class_info']} is not a list of class ids") from None
    if len(classes) != len(keys):
        raise T2IError(f"{found.origin['split_file', f'{split}/class_info']} has {len(classes)} class ids for "
                       f"{len(keys)} images")
    return keys, classes


def _select(keys: list[str], problem: Callable[[str], str | None], report: SplitReport) -> list[int]:
    kept = []
    for i, key in enumerate(keys):
        reason = problem(key)
        if reason is None:
            kept.append(i)
        else:
            report.left_out[reason] += 1
            report.rows.append((key, reason))
    report.listed, report.kept = len(keys), len(kept)
    return kept


def _remove_unkept(found: Found, role: str, kept: set[str]) -> int:
    """Delete the ``role`` files not kept; returns how many were removed."""
    removed = 0
    for key, rel in list(found.files.get(role, {}).items()):
        if key not in kept:
            (found.staging / rel).unlink()
            del found.files[role][key]
            removed += 1
    return removed


def build_cub(found: Found, progress: bool) -> dict:
    from tqdm import tqdm

    from .cub import read_cub_bboxes
    from .datasets import read_attngan_captions

    staging, check = found.staging, Checker(found.staging, 10)
    boxes = read_cub_bboxes(staging / "CUB_200_2011")
    images, captions = found.files.setdefault("image", {}), found.files.setdefault("caption", {})
    rebuilt, notes = 0, []
    vocab = None
    if found.has("vocab"):
        try:
            vocab = read_attngan_captions(staging / "captions.pickle")
        except T2IError as e:
            notes.append(f"captions.pickle not used to rebuild captions: {e}")
    reports, kept_keys, listed = {}, set(), set()
    for split in SPLITS:
        keys, class_ids = _keys_and_classes(found, split)
        listed.update(keys)
        caps = None if vocab is None else (vocab[0] if split == "train" else vocab[1])
        aligned = caps is not None and len(caps) == 10 * len(keys)
        row = {key: i for i, key in enumerate(keys)}

        def problem(key, bar):
            nonlocal rebuilt
            bar.update(1)
            if key not in images:
                return "image not in the sources"
            if key not in boxes:
                return "no bounding box in CUB_200_2011/bounding_boxes.txt"
            if key not in captions:
                if not aligned:
                    return "no caption file"
                words = vocab[2]  # AttnGAN's own tokens: lower case, no punctuation (same model input)
                try:
                    lines = [" ".join(str(words[w]) for w in c) for c in caps[10 * row[key]: 10 * row[key] + 10]]
                except (KeyError, IndexError, TypeError):  # a word index captions.pickle does not define
                    return "no caption file"
                rel = f"text/{key}.txt"
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                (staging / rel).write_text("\n".join(lines) + "\n", encoding="utf-8")
                captions[key] = rel
                rebuilt += 1
            return check.caption_problem(captions[key]) or check.image_problem(images[key])

        report = reports[split] = SplitReport()
        with tqdm(total=len(keys), desc=f"checking {split}", unit=" images", disable=not progress) as bar:
            kept = _select(keys, lambda k: problem(k, bar), report)
        _write_split(staging, found, split, keys, kept, class_ids)
        kept_keys.update(keys[i] for i in kept)
    not_listed = sum(1 for k in images if k not in listed)
    _remove_unkept(found, "image", kept_keys)
    _remove_unkept(found, "caption", kept_keys)
    if rebuilt:
        notes.append(f"{rebuilt} caption files rebuilt from captions.pickle (AttnGAN's tokens: lower case, "
                     "no punctuation; the same model input as the original files)")
    return {"splits": reports, "not_listed": not_listed, "notes": notes}


def build_coco(found: Found, progress: bool) -> dict:
    from tqdm import tqdm

    from .text import tokenize

    staging, check = found.staging, Checker(found.staging, 5)
    images = found.files.setdefault("image", {})
    (staging / "annotations").mkdir(exist_ok=True)
    reports, kept_keys, listed = {}, set(), set()
    for split, part in (("train", "train"), ("test", "val")):  # the loader reads val2014 as the test split
        raw, label = found.blobs["annotations"][part], found.origin["annotations", part]
        try:
            data = json.loads(raw.decode("utf-8"))
            image_id = {f"{part}2014/{im['file_name']}": im["id"] for im in data["images"]}
            worded = Counter(a["image_id"] for a in data["annotations"] if tokenize(a["caption"]))
        except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise T2IError(f"{label} is not a COCO caption file ({type(e).__name__}: {e})") from None
        keys = list(image_id)
        listed.update(keys)

        def problem(key, bar):
            bar.update(1)
            if key not in images:
                return "image not in the sources"
            if worded[image_id[key]] < 5:
                return "fewer than 5 captions"
            return check.image_problem(images[key])

        report = reports[split] = SplitReport()
        with tqdm(total=len(keys), desc=f"checking {split}", unit=" images", disable=not progress) as bar:
            kept = _select(keys, lambda k: problem(k, bar), report)
        target = staging / "annotations" / f"captions_{part}2014.json"
        if len(kept) == len(keys):
            target.write_bytes(raw)
        else:
            ids = {image_id[keys[i]] for i in kept}
            data["images"] = [im for im in data["images"] if im["id"] in ids]
            data["annotations"] = [a for a in data["annotations"] if a["image_id"] in ids]
            target.write_text(json.dumps(data), encoding="utf-8")
        kept_keys.update(keys[i] for i in kept)
    not_listed = sum(1 for k in images if k not in listed)
    _remove_unkept(found, "image", kept_keys)
    return {"splits": reports, "not_listed": not_listed, "notes": []}


def build_flowers(found: Found, progress: bool) -> dict:
    from tqdm import tqdm

    staging, check = found.staging, Checker(found.staging, 10)
    images, captions = found.files.setdefault("image", {}), found.files.setdefault("caption", {})
    folder_of = {name: rel.split("/")[1] for name, rel in captions.items()}  # image_06734 -> class_00001
    reports, kept_names, listed, notes = {}, set(), set(), []
    for split in SPLITS:
        loaded = _keys_and_classes(found, split)
        if loaded is None:  # Reed et al.'s class split: 82 train+val classes, 20 test classes
            name = "trainvalclasses" if split == "train" else "testclasses"
            text = found.blobs["class_list"][name].decode("utf-8", errors="replace")
            classes = {line.strip() for line in text.splitlines() if line.strip()}
            keys = sorted(f"{folder_of[n]}/{n}" for n in captions if folder_of[n] in classes)
            class_ids = [int(k.split("/")[0].split("_")[1]) for k in keys]
            notes.append(f"{split} list: the images of the {len(classes)} classes in {name}.txt")
        else:
            keys, class_ids = loaded
        listed.update(k.rsplit("/", 1)[-1] for k in keys)

        def problem(key, bar):
            bar.update(1)
            name = key.rsplit("/", 1)[-1]
            if name not in images:
                return "image not in the sources"
            if name not in captions:
                return "no caption file"
            return check.caption_problem(captions[name]) or check.image_problem(images[name])

        report = reports[split] = SplitReport()
        with tqdm(total=len(keys), desc=f"checking {split}", unit=" images", disable=not progress) as bar:
            kept = _select(keys, lambda k: problem(k, bar), report)
        _write_split(staging, found, split, keys, kept, class_ids)
        kept_names.update(keys[i].rsplit("/", 1)[-1] for i in kept)
    not_listed = sum(1 for k in images if k not in listed)
    _remove_unkept(found, "image", kept_names)
    _remove_unkept(found, "caption", kept_names)
    if not found.has("split_file", "train/char-CNN-RNN-embeddings"):
        notes.append("no char-CNN-RNN embeddings (StackGAN's flowers.zip): the gan_int_cls-flowers preset needs them")
    return {"splits": reports, "not_listed": not_listed, "notes": notes}


BUILDERS = {"cub": build_cub, "coco": build_coco, "flowers": build_flowers}

# ----------------------------------------------------------------------------- the command


def _expand(dataset: str, sources) -> list[Path]:
    """The paths to read: a folder that holds published archives of ``dataset`` at its top level
    stands for those archives; any other folder is read as an unpacked tree."""
    names = {a.filename for a in ARCHIVES[dataset]}
    paths = []
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise T2IError(f"source not found: {path}")
        held = sorted(p for p in path.iterdir() if p.name in names and p.is_file()) if path.is_dir() else []
        paths.extend(held or [path])
    return paths


def _inside(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents


def _clean_stale(out: Path) -> None:
    """Remove ``.<name>.partial-<pid>`` folders of earlier runs that were killed."""
    for stale in out.parent.glob(f".{out.name}.partial-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        try:
            os.kill(int(pid), 0)
            continue  # that run is still going
        except (ValueError, ProcessLookupError):
            shutil.rmtree(stale, ignore_errors=True)
        except PermissionError:
            continue


def _commit(staging: Path, out: Path) -> None:
    """Move the finished staging folder to ``out`` (replacing a prepared one)."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        try:
            staging.rename(out)
        except BaseException:
            old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        staging.rename(out)


def prepare(dataset: str, sources=(), out: str | Path | None = None, download_dir: str | Path | None = None,
            offline: bool = False, hash_check: bool = True, force: bool = False, progress: bool = True,
            log: Callable[[str], None] = print) -> dict:
    """Prepare ``dataset`` (``cub``, ``coco``, ``flowers``) in ``out`` (default: the presets' ``data.root``)
    from ``sources`` (archives or folders), the archives already in ``download_dir`` (default
    :func:`.download.archive_dir`), and downloads of what is still missing unless ``offline`` (or
    ``T2IGAN_OFFLINE=1``). Returns the contents of ``PREPARED.json``."""
    if dataset not in ARCHIVES:
        raise T2IError(f"unknown data set {dataset!r} (prepare one of {', '.join(DATASETS)})")
    out = Path(out if out is not None else DEFAULT_OUT[dataset]).expanduser()
    download_dir = Path(download_dir).expanduser() if download_dir else archive_dir()
    paths = _expand(dataset, sources)
    for path in paths:
        if _inside(path, out) or (path.is_dir() and _inside(out, path)):
            raise T2IError(f"the output folder {out} and the source {path} overlap: choose another -o")
    if (out / MARKER).is_file() and not force:
        log(f"{out} is already prepared ({MARKER}); --force prepares it again")
        return json.loads((out / MARKER).read_text(encoding="utf-8"))
    if out.exists() and not (out / MARKER).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise T2IError(f"{out} exists and is not a prepared data set (no {MARKER}): remove it or choose another -o")
    archives = {a.filename: a for a in ARCHIVES[dataset]}
    given = {p.name for p in paths}
    paths += [download_dir / n for n in archives if n not in given and (download_dir / n).is_file()]

    log(f"preparing {dataset} in {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale(out)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        found = Found(dataset, staging)
        used = [_read_source(found, path, archives.get(path.name), hash_check, progress, log) for path in paths]
        missing = needs(found)
        read = {p.name for p in paths}
        fetch = [archives[n] for n in dict.fromkeys(n for n, _ in missing) if n not in read and archives[n].fetch]
        if fetch and not downloads_allowed(offline):
            wanted = "; ".join(f"get {a.filename} from {a.manual_url}" for a in fetch)
            raise T2IError(f"downloads are off (--offline or T2IGAN_OFFLINE=1); {wanted}; put them in {download_dir} "
                           "or pass their paths")
        for archive in fetch:
            path = download(archive, download_dir, progress)
            used.append(_read_source(found, path, archive, False, progress, log, downloaded=True))
        missing = needs(found)
        if missing:
            name, what = missing[0]
            raise T2IError(f"the sources lack {what}: {name} ({archives[name].what}) holds it, "
                           f"from {archives[name].manual_url}")
        result = BUILDERS[dataset](found, progress)
        record = _record(dataset, used, result, found)
        rows = [(s, key, reason) for s, rep in result["splits"].items() for key, reason in rep.rows]
        if rows:
            (staging / LEFT_OUT).write_text("split\tkey\treason\n" + "".join(f"{s}\t{k}\t{r}\n" for s, k, r in rows),
                                            encoding="utf-8")
        (staging / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        _commit(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    for line in summary(record, out):
        log(line)
    return record


def _read_source(found: Found, path: Path, archive: Archive | None, hash_check: bool, progress: bool, log,
                 downloaded: bool = False) -> dict:
    entry = {"source": str(path), "name": path.name}
    if path.is_file():
        entry["bytes"] = path.stat().st_size
        if downloaded:
            entry["check"] = "md5 matches the published one" if archive.md5 else "no published checksum; contents checked"
            if archive.md5 is None:
                entry["md5"] = file_md5(path, progress)
        elif archive is not None and archive.md5 is not None:
            if hash_check:
                check_md5(path, archive, progress)
                entry["check"] = "md5 matches the published one"
            else:
                entry["check"] = "hash check skipped (--no-hash-check); contents checked"
        elif hash_check:
            entry["md5"] = file_md5(path, progress)
            entry["check"] = "no published checksum; contents checked"
        else:
            entry["check"] = "contents checked"
        if archive is not None and archive.md5 is not None and "skipped" not in entry["check"]:
            entry["md5"] = archive.md5
        log(f"  {path.name}: {entry['check']}")
    else:
        entry["check"] = "folder; contents checked"
        log(f"  {path.name}/: {entry['check']}")
    entry["files_used"] = found.add_source(path, progress)
    if entry["files_used"] == 0:
        log(f"  note: nothing in {path} belongs to {found.dataset}")
    return entry


def _record(dataset: str, used: list[dict], result: dict, found: Found) -> dict:
    from .. import __version__

    return {
        "dataset": dataset,
        "prepared_with": f"t2igan {__version__}",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "sources": used,
        "splits": {s: {"listed": r.listed, "kept": r.kept, "left_out": dict(r.left_out)}
                   for s, r in result["splits"].items()},
        "not_in_a_split_list": result["not_listed"],
        "duplicates_ignored": found.duplicates,
        "notes": result["notes"],
    }


def summary(record: dict, out: Path) -> list[str]:
    """The lines printed at the end: counts per split, what was left out and why."""
    lines = [f"prepared {record['dataset']} in {out}:"]
    any_left = False
    for split, s in record["splits"].items():
        line = f"  {split}: {s['kept']:,} of {s['listed']:,} listed images kept"
        if s["left_out"]:
            any_left = True
            line += "; left out: " + ", ".join(f"{n:,} {reason}" for reason, n in sorted(s["left_out"].items(),
                                                                                        key=lambda kv: -kv[1]))
        lines.append(line)
    if record["not_in_a_split_list"]:
        lines.append(f"  {record['not_in_a_split_list']:,} images in the sources are in no split list (not copied)")
    if any_left:
        lines.append(f"  the split lists name the kept images only; {out / LEFT_OUT} gives each one left out")
    lines += [f"  note: {n}" for n in record["notes"]]
    return lines
