"""Precomputed caption embeddings: Reed et al.'s char-CNN-RNN files in the StackGAN layout.

StackGAN (and the GAN-INT-CLS data its authors released) ships, for each split, a pickle
``<root>/<split>/char-CNN-RNN-embeddings.pickle`` holding one ``(10, 1024)`` float array per image
(a list of arrays or one ``(N, 10, 1024)`` array), in the order of ``<root>/<split>/filenames.pickle``:
row ``i`` holds the embeddings of the ten captions of image ``i``. The file is a Python 2 pickle from
the internet, so it is read with the restricted unpickler (:func:`t2igan.data.pickles.safe_pickle_load`).

:class:`CaptionEmbeddingDataset` wraps a data set whose items carry ``image_idx`` (the row in that
order) and ``caption_idx`` and adds ``sent_emb``, the embedding of the item's caption. The official
GAN-INT-CLS trainer conditions on the mean of 4 randomly drawn captions of the image
(``numCaption=4``): ``captions_per_embedding=4`` does that in training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import T2IError
from .pickles import safe_pickle_load

EMBEDDINGS_FILENAME = "char-CNN-RNN-embeddings.pickle"


def read_char_cnn_rnn_embeddings(path: str | Path) -> np.ndarray:
    """Read a StackGAN/Reed embeddings pickle into a float32 array ``(N, C, D)`` (CUB: C = 10, D = 1024).

    Accepts a list/tuple of ``N`` arrays ``(C, D)`` or one array ``(N, C, D)``; ``(N, D)`` (one
    embedding per image) becomes ``(N, 1, D)``. Anything else raises :class:`T2IError` naming the file.
    """
    path = Path(path)
    obj = safe_pickle_load(path)
    if isinstance(obj, dict):
        raise T2IError(f"{path}: expected a list or array of per-image embeddings, found a dict "
                       f"with keys {sorted(map(str, obj))[:5]}")
    try:
        if isinstance(obj, (list, tuple)):
            if not obj:
                raise T2IError(f"{path}: the embeddings list is empty")
            arr = np.stack([np.asarray(e, dtype=np.float32) for e in obj])
        else:
            arr = np.asarray(obj, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise T2IError(f"{path}: per-image embeddings are not numeric arrays of one shape ({e})") from None
    if arr.ndim == 2:
        arr = arr[:, None, :]
    if arr.ndim != 3 or 0 in arr.shape:
        raise T2IError(f"{path}: embeddings must have shape (N, captions, dim), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise T2IError(f"{path}: embeddings contain NaN or infinite values")
    return arr


class CaptionEmbeddingDataset(Dataset):
    """Adds ``sent_emb`` (float tensor ``(D,)``) to every item of ``base``.

    ``sent_emb`` is ``embeddings[row, caption_idx]``, where ``row`` is the position of the item's
    ``key`` in ``row_keys`` (the file names the embeddings file follows, e.g. ``filenames.pickle``),
    or the item's ``image_idx`` when no ``row_keys`` are given. With ``captions_per_embedding = k > 1``
    (and ``train``) it is the mean of that embedding and ``k - 1`` more captions of the same image
    drawn uniformly with replacement from torch's generator (official GAN-INT-CLS training: k = 4).
    Everything else (``captions``, ``all_captions``, attributes of the base set) is passed through.
    """

    def __init__(
        self,
        base,  # a data set whose items carry image_idx / key and caption_idx
        embeddings: np.ndarray | torch.Tensor,  # (N, C, D), e.g. read_char_cnn_rnn_embeddings(path)
        captions_per_embedding: int = 1,  # captions averaged per sent_emb in training (official 4)
        train: bool = True,  # False: sent_emb is exactly the item's caption (evaluation)
        row_keys: list[str] | None = None,  # key of each embeddings row; None: row = image_idx
        source: str = "embeddings",  # the file name, for error messages
    ):
        self.base = base
        self.embeddings = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))  # (N, C, D)
        if self.embeddings.ndim != 3:
            shape = tuple(self.embeddings.shape)
            raise T2IError(f"{source}: embeddings must have shape (N, captions, dim), got {shape}")
        if not isinstance(captions_per_embedding, int) or captions_per_embedding < 1:
            raise T2IError(f"captions_per_embedding must be a positive integer, got {captions_per_embedding!r}")
        self.captions_per_embedding = captions_per_embedding
        self.train = train
        self.source = source
        n = self.embeddings.shape[0]
        self.row_of_key = None
        if row_keys is not None:
            if len(row_keys) != n:
                raise T2IError(f"{source} has embeddings for {n} images but its file list names {len(row_keys)}")
            self.row_of_key = {k: i for i, k in enumerate(row_keys)}
            keys = getattr(base, "keys", None)
            unknown = [k for k in keys if k not in self.row_of_key] if isinstance(keys, list) else []
            if unknown:
                raise T2IError(f"{source}: no embeddings for {len(unknown)} images of the data set, "
                               f"first: {unknown[0]}")
        else:
            num_images = getattr(base, "num_images", None)
            if num_images is not None and num_images > n:
                raise T2IError(f"{source} has embeddings for {n} images; the data set has {num_images}")

    @property
    def embedding_dim(self) -> int:
        return self.embeddings.shape[2]

    def __len__(self) -> int:
        return len(self.base)

    def __getattr__(self, name):  # pass through the base data set's API (captions, all_captions, ...)
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def row(self, item: dict) -> int:
        """The embeddings row of a data set item."""
        if self.row_of_key is None:
            return int(item["image_idx"])
        row = self.row_of_key.get(item["key"])
        if row is None:
            raise T2IError(f"{self.source}: no embeddings for image {item['key']}")
        return row

    def sentence_embedding(self, row: int, caption_idx: int = 0, train: bool = False) -> torch.Tensor:
        """The embedding ``(D,)`` of one caption; in training the mean over ``captions_per_embedding`` captions."""
        n, c, _ = self.embeddings.shape
        if not 0 <= row < n:
            raise T2IError(f"{self.source}: no embeddings for image {row} (the file has {n} images)")
        if not 0 <= caption_idx < c:
            raise T2IError(f"{self.source}: image {row} has {c} caption embeddings, asked for caption {caption_idx}")
        rows = self.embeddings[row]  # (C, D)
        if not train or self.captions_per_embedding == 1:
            return rows[caption_idx].clone()
        extra = torch.randint(c, (self.captions_per_embedding - 1,))
        return torch.cat([rows[caption_idx: caption_idx + 1], rows[extra]]).mean(0)

    def __getitem__(self, i) -> dict:
        item = dict(self.base[i])
        item["sent_emb"] = self.sentence_embedding(self.row(item), int(item.get("caption_idx", 0)), self.train)
        return item


def attach_caption_embeddings(dataset, root: str | Path | None, split: str,
                              caption_embeddings: str | Path = EMBEDDINGS_FILENAME,
                              captions_per_embedding: int = 1, train: bool | None = None) -> CaptionEmbeddingDataset:
    """Wrap ``dataset`` with the embeddings file ``caption_embeddings``: a path, or a file name looked
    up in the StackGAN layout ``<root>/<split>/<name>`` (``"char-CNN-RNN-embeddings.pickle"``).

    When a ``filenames.pickle`` sits next to the embeddings file, rows are matched to items by ``key``
    (so a data set reading a subset of the images, or skipping missing ones, still gets the right
    rows); otherwise by ``image_idx``. ``train`` (caption averaging) defaults to ``split == "train"``.
    """
    path = Path(caption_embeddings)
    if not path.is_file() and root is not None and (Path(root) / split / path).is_file():
        path = Path(root) / split / path
    embeddings = read_char_cnn_rnn_embeddings(path)
    row_keys = None
    if (path.parent / "filenames.pickle").is_file():
        from .captioned import read_key_list

        row_keys = read_key_list(path.parent / "filenames.pickle")
    train = split == "train" if train is None else train
    return CaptionEmbeddingDataset(dataset, embeddings, captions_per_embedding, train, row_keys, source=str(path))
