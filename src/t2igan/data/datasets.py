"""Text-image data sets read from disk, in the layouts the official code bases read (AttnGAN's
``data/birds`` and ``data/coco``, the Oxford-102 flowers with Reed et al.'s captions), plus image
folders and JSONL manifests.

Every data set here is a ``torch.utils.data.Dataset`` of dicts::

    {"image": float tensor (3, S, S) in [-1, 1], RGB,
     "caption": str, "image_idx": int, "caption_idx": int, "class_id": int (-1 if none), "key": str}

and exposes ``captions(i) -> list[str]`` (all captions of image ``i``), ``all_captions()`` (every
caption, for the vocabulary) and ``get_item(i, caption_idx)``. ``len()`` is the number of *images*;
``__getitem__`` picks one caption of the image uniformly at random when ``random_caption`` is on
(the default for the training split), else caption 0.

Loaders, one module each, all subclasses of :class:`.captioned.CaptionedImages`:

* :class:`.cub.CUBDataset`: CUB-200-2011 in AttnGAN's ``data/birds`` layout, with the bounding-box crop;
* :class:`.cub.Flowers102Dataset`: Oxford-102 in the same layout (flat ``jpg/`` folder, no boxes);
* :class:`.coco.COCODataset`: COCO captions JSON (``annotations/captions_train2014.json``);
* :class:`.folders.ImageFolderCaptions`: any folder of images, each with a same-stem ``.txt`` of captions;
* :class:`.folders.JSONLManifest`: one ``{"image": ..., "captions": [...]}`` object per line;
* :class:`.shapes.ShapesDataset`: the built-in synthetic scenes (no files).

Image pipeline (:class:`.images.ImageTransform`, AttnGAN's): optional box crop, resize so the *shorter* side is
``int(image_size * 76 / 64)`` (torchvision ``Resize(int)`` semantics, bilinear), then a random
``image_size`` crop and a random horizontal flip for training, or a centre crop otherwise. It uses
PIL + numpy + torch only (no torchvision).

:func:`read_attngan_captions` / :func:`vocabulary_from_attngan` (here) read AttnGAN's ``captions.pickle`` so a
model can use exactly the official word indices; :func:`build_dataset` (here) maps names to classes.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from ..errors import T2IError
from .captioned import check_root
from .coco import COCODataset
from .cub import CUBDataset, Flowers102Dataset
from .folders import ImageFolderCaptions, JSONLManifest
from .pickles import safe_pickle_load
from .text import PAD_TOKEN, Vocabulary

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
        if name in ("cub", "flowers", "coco") and root is not None and not Path(root).exists():
            raise T2IError(f"{name} data not found: {root} does not exist (run 't2igan data prepare {name} -o {root}')")
        root = check_root(root, name)
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
