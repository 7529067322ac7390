import random

import pytest
import torch

from t2igan.data.text import (
    CaptionCollator,
    Vocabulary,
    encode_captions,
    pad_batch,
    padding_mask,
    shorten,
    tokenize,
)
from t2igan.errors import T2IError


def test_tokenize_matches_attngan_convention():
    assert tokenize("This bird's wings are RED, and-short!") == ["this", "bird", "s", "wings", "are", "red", "and", "short"]
    assert tokenize("   ") == []


def test_vocabulary_build_order_and_specials():
    v = Vocabulary.build(["b a a", "a c"])
    assert v.words[:2] == ["<pad>", "<unk>"]
    assert v.words[2:] == ["a", "b", "c"]  # by frequency, then alphabetically
    assert v.encode("a zebra c") == [2, 1, 4]
    assert v.decode([2, 3, 0, 4]) == "a b"  # 0 ends the caption


def test_vocabulary_json_roundtrip(tmp_path):
    v = Vocabulary.build(["a red circle", "a blue square"])
    v.save(tmp_path / "vocab.json")
    w = Vocabulary.load(tmp_path / "vocab.json")
    assert w.words == v.words and w.unk_token == v.unk_token


def test_vocabulary_load_errors_name_the_file(tmp_path):
    with pytest.raises(T2IError, match="not found"):
        Vocabulary.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(T2IError, match="bad.json"):
        Vocabulary.load(bad)


def test_strict_encoding_rejects_empty_and_unknown_captions():
    v = Vocabulary.build(["a red circle"])
    with pytest.raises(T2IError, match="empty caption"):
        v.encode("  ,! ", strict=True)
    with pytest.raises(T2IError, match="only unknown words: zebra, quux"):
        v.encode("zebra quux", strict=True)
    assert v.encode("a zebra", strict=True) == [v.index["a"], v.unk_id]


def test_vocabulary_without_unk_drops_unknown_words():
    v = Vocabulary(["<end>", "a", "bird"], unk_token=None)
    assert v.encode("a red bird") == [1, 2]


def test_shorten_subsample_keeps_order_and_truncate_keeps_head():
    ids = list(range(1, 31))
    sub = shorten(ids, 18, "subsample", random.Random(0))
    assert len(sub) == 18 and sub == sorted(sub) and set(sub) <= set(ids)
    assert shorten(ids, 18, "truncate") == ids[:18]
    assert shorten(ids[:5], 18, "subsample") == ids[:5]
    with pytest.raises(T2IError):
        shorten(ids, 18, "middle")


def test_pad_batch_and_mask():
    tokens, lengths = pad_batch([[5, 6, 7], [8]], 4)
    assert tokens.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
    assert lengths.tolist() == [3, 1]
    assert padding_mask(tokens, lengths).tolist() == [[False, False, False, True], [False, True, True, True]]


def test_collator_training_subsamples_and_eval_is_deterministic():
    long = " ".join(f"w{i}" for i in range(30))
    v = Vocabulary.build([long])
    items = [{"image": torch.zeros(3, 4, 4), "caption": long, "image_idx": 0}]
    train = CaptionCollator(v, 18, train=True)
    outs = {tuple(train(items)["tokens"][0].tolist()) for _ in range(10)}
    assert len(outs) > 1  # random sub-sampling
    ev = CaptionCollator(v, 18, train=False)
    a, b = ev(items), ev(items)
    assert torch.equal(a["tokens"], b["tokens"]) and a["lengths"].item() == 18
    assert a["image"].shape == (1, 3, 4, 4) and a["image_idx"].tolist() == [0]
    tokens, lengths = encode_captions(v, [long], 18)
    assert tokens[0].tolist() == [v.index[f"w{i}"] for i in range(18)]  # inference truncates
