"""Captions to token ids: the AttnGAN text convention (taoxugit/AttnGAN ``code/datasets.py``).

* lower-case, tokens are ``\\w+`` runs;
* index 0 is padding and end of caption, index 1 the unknown word (``<unk>``);
* at most ``max_words`` per caption (CUB 18, COCO 12). A longer caption is shortened either by
  randomly *sub-sampling* words in order (what the official loaders do during training) or by
  truncating the tail. Sub-sampling is deterministic when the collator is not in training mode.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Iterable, Sequence

import torch

from ..errors import T2IError

TOKEN_RE = re.compile(r"\w+")
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
PAD_ID = 0
UNK_ID = 1


def tokenize(caption: str) -> list[str]:
    """Split a caption into lower-case ``\\w+`` tokens (AttnGAN's ``RegexpTokenizer(r'\\w+')``)."""
    return TOKEN_RE.findall(caption.lower())


class Vocabulary:
    """Word <-> index table. ``words[0]`` is padding/end; ``unk_token`` (if any) maps unknown words.

    AttnGAN's ``captions.pickle`` has no unknown token (it drops unknown words); such a vocabulary
    is built with ``unk_token=None`` so its indices stay exactly those of the official checkpoints.
    """

    def __init__(self, words: Sequence[str], unk_token: str | None = UNK_TOKEN):
        if not words:
            raise T2IError("a vocabulary needs at least the padding token")
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        if len(self.index) != len(self.words):
            raise T2IError("vocabulary has duplicate words")
        if unk_token is not None and unk_token not in self.index:
            raise T2IError(f"vocabulary lacks its unknown token {unk_token!r}")
        self.unk_token = unk_token

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1, max_size: int | None = None) -> "Vocabulary":
        """Build from training captions: most frequent first, ties broken alphabetically."""
        counts = Counter(tok for cap in captions for tok in tokenize(cap))
        ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - 2)]
        return cls([PAD_TOKEN, UNK_TOKEN] + ranked)

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.index

    @property
    def unk_id(self) -> int | None:
        return None if self.unk_token is None else self.index[self.unk_token]

    def unknown_words(self, caption: str) -> list[str]:
        return [t for t in tokenize(caption) if t not in self.index]

    def encode(self, caption: str, strict: bool = False) -> list[int]:
        """Token ids of ``caption`` (no padding).

        Unknown words map to ``<unk>`` (or are dropped when the vocabulary has none, as AttnGAN does).
        With ``strict=True`` (inference) an empty caption, or one whose words are all unknown, raises
        a :class:`T2IError` naming the caption and the unknown words.
        """
        if strict:
            check_caption_text(caption)
        tokens = tokenize(caption)
        if strict and not tokens:
            raise T2IError(f"empty caption {caption!r}: it has no words")
        unk = self.unk_id
        ids = []
        for t in tokens:
            i = self.index.get(t, unk)
            if i is not None:
                ids.append(i)
        if strict:
            known = [i for i in ids if i != unk]
            if not known:
                raise T2IError(
                    f"caption {caption!r} has only unknown words: {', '.join(self.unknown_words(caption))}"
                )
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i == PAD_ID:
                break
            out.append(self.words[i] if 0 <= i < len(self.words) else UNK_TOKEN)
        return " ".join(out)

    def to_dict(self) -> dict:
        return {"words": self.words, "unk_token": self.unk_token}

    @classmethod
    def from_dict(cls, d: dict) -> "Vocabulary":
        return cls(d["words"], unk_token=d.get("unk_token", UNK_TOKEN))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), ensure_ascii=False))

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        if not path.is_file():
            raise T2IError(f"vocabulary file not found: {path}")
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise T2IError(f"vocabulary file {path} is not a t2igan vocabulary JSON ({e})") from None


def check_caption_text(caption) -> None:
    """A T2IError unless ``caption`` is a string of valid Unicode text (a byte that was not UTF-8
    reaches Python as a lone surrogate, which cannot be encoded, drawn or printed)."""
    if not isinstance(caption, str):
        raise T2IError(f"a caption must be a string, got {type(caption).__name__} {caption!r}")
    try:
        caption.encode("utf-8")
    except UnicodeEncodeError as e:
        raise T2IError(f"caption {caption!r} is not valid UTF-8 text (character {e.start + 1} is an undecodable "
                       f"byte or a lone surrogate)") from None


def text_seed(caption: str) -> bytes:
    """A seed for ``random.Random`` from any caption string, lone surrogates included."""
    return caption.encode("utf-8", "surrogatepass")


def shorten(ids: Sequence[int], max_words: int, mode: str = "subsample", rng: random.Random | None = None) -> list[int]:
    """Keep at most ``max_words`` ids.

    ``"subsample"``: a random subset of positions, kept in order (official AttnGAN/DF-GAN loaders);
    ``"truncate"``: the first ``max_words``. ``rng`` makes sub-sampling reproducible.
    """
    if len(ids) <= max_words:
        return list(ids)
    if mode == "truncate":
        return list(ids[:max_words])
    if mode != "subsample":
        raise T2IError(f"unknown caption shortening mode {mode!r} (use 'subsample' or 'truncate')")
    rng = rng or random
    keep = sorted(rng.sample(range(len(ids)), max_words))
    return [ids[i] for i in keep]


def pad_batch(seqs: Sequence[Sequence[int]], max_words: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad id lists (already at most ``max_words`` long) into ``tokens (B, max_words)``, ``lengths (B,)``.

    The padded width is always ``max_words`` (as in the official code), so a model sees a fixed T.
    Every length is at least 1: an empty caption becomes a single padding token of length 1.
    """
    tokens = torch.zeros(len(seqs), max_words, dtype=torch.long)
    lengths = torch.ones(len(seqs), dtype=torch.long)
    for b, ids in enumerate(seqs):
        n = min(len(ids), max_words)
        if n:
            tokens[b, :n] = torch.as_tensor(list(ids[:n]), dtype=torch.long)
            lengths[b] = n
    return tokens, lengths


def padding_mask(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Bool mask ``(B, T)``, True at padded positions (never to be attended)."""
    t = torch.arange(tokens.shape[1], device=tokens.device)
    return t[None, :] >= lengths[:, None]


def encode_captions(vocab: Vocabulary, captions: Sequence[str], max_words: int, strict: bool = False,
                    shorten_mode: str = "truncate") -> tuple[torch.Tensor, torch.Tensor]:
    """Captions -> padded ``tokens (B, max_words)``, ``lengths (B,)``, deterministically (inference).

    With ``strict=True`` an empty caption or one with only unknown words raises :class:`T2IError`.
    """
    seqs = []
    for cap in captions:
        ids = vocab.encode(cap, strict=strict)
        seqs.append(shorten(ids, max_words, shorten_mode, random.Random(text_seed(cap))))
    return pad_batch(seqs, max_words)


class CaptionCollator:
    """``DataLoader`` collate function: stacks images, tokenises captions.

    Each dataset item is a dict with at least ``image`` (float tensor, [-1, 1]) and ``caption`` (str);
    the batch holds ``image (B,3,H,W)``, ``tokens (B,T)``, ``lengths (B,)``, ``captions`` and
    every other key, stacked when it is a tensor or number, listed otherwise.
    In training mode long captions are sub-sampled with Python's global ``random`` (seeded per batch
    by the trainer, see :mod:`t2igan.data.seeded`); otherwise with a generator seeded by the caption text, so
    evaluation is deterministic.
    """

    def __init__(self, vocab: Vocabulary, max_words: int, shorten_mode: str = "subsample", train: bool = True):
        self.vocab = vocab
        self.max_words = max_words
        self.shorten_mode = shorten_mode
        self.train = train

    def encode(self, caption: str) -> list[int]:
        ids = self.vocab.encode(caption)
        rng = random if self.train else random.Random(text_seed(caption))
        return shorten(ids, self.max_words, self.shorten_mode, rng)

    def __call__(self, items: list[dict]) -> dict:
        batch: dict = {}
        for key in items[0]:
            values = [it[key] for it in items]
            if isinstance(values[0], torch.Tensor):
                batch[key] = torch.stack(values)
            elif isinstance(values[0], (int, float)) and not isinstance(values[0], bool):
                batch[key] = torch.tensor(values)
            else:
                batch[key] = values
        batch["captions"] = batch.pop("caption")
        batch["tokens"], batch["lengths"] = pad_batch([self.encode(c) for c in batch["captions"]], self.max_words)
        return batch
