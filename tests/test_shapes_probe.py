import numpy as np
import pytest
import torch

from t2igan.data.shapes import ShapesDataset
from t2igan.errors import T2IError
from t2igan.metrics.shapes_probe import (
    PROBE_KEYS,
    ShapesProbe,
    attribute_accuracy,
    canonical_attributes,
    evaluate_probe,
    labels_tensor,
    load_or_train_probe,
    load_probe,
    probe_labels,
    read_dataset,
    save_probe,
    shapes_fid,
    train_probe,
)


def test_two_object_scenes_are_read_left_or_top_object_first():
    a = {"shape": "star", "colour": "red", "size": "small", "position": "right"}
    b = {"shape": "circle", "colour": "blue", "size": "large", "position": "left"}
    scene = {"objects": [a, b], "relation": "right of"}
    assert canonical_attributes(scene) == {"objects": [b, a], "relation": "left of"}
    same = {"objects": [b, a], "relation": "left of"}
    assert probe_labels(scene) == probe_labels(same)
    one = {"objects": [a], "relation": None}
    labels = probe_labels(one)
    assert labels["shape1"] == -1 and labels["relation"] == -1 and labels["count"] == 0


def test_attribute_accuracy_counts_only_present_attributes():
    one = {"objects": [{"shape": "star", "colour": "red", "size": "small", "position": "top"}], "relation": None}
    labels = labels_tensor([one, one])  # 5 attributes each
    preds = labels.clone()
    preds[0, PROBE_KEYS.index("colour0")] = (preds[0, PROBE_KEYS.index("colour0")] + 1) % 8  # one wrong
    preds[:, PROBE_KEYS.index("shape1")] = 3  # absent attribute: ignored whatever it says
    acc = attribute_accuracy(preds, labels)
    assert acc["mean"] == pytest.approx((4 / 5 + 1) / 2)
    assert acc["exact"] == 0.5
    assert acc["per_attribute"]["colour"] == 0.5 and acc["per_attribute"]["shape"] == 1.0
    assert np.isnan(acc["per_attribute"]["relation"])


def test_short_training_learns_and_round_trips(tmp_path):
    torch.manual_seed(0)
    data = ShapesDataset("test", 32, num_images=300, cache=False)
    untrained = ShapesProbe(32, channels=8, feature_dim=32).eval()
    before = attribute_accuracy(*read_dataset(untrained, data)[:2])["mean"]
    probe = train_probe(32, steps=60, batch_size=32, channels=8, feature_dim=32, progress=False)
    preds, labels, feats = read_dataset(probe, data)
    acc = attribute_accuracy(preds, labels)
    assert acc["mean"] > before + 0.2
    assert acc["per_attribute"]["count"] > 0.85 and acc["per_attribute"]["position"] > 0.85
    assert feats.shape == (300, 32)
    # Shapes-FID: real vs real (other images) is much smaller than real vs blank images
    other = ShapesDataset("test", 32, num_images=300, seed=5, cache=False)
    _, _, feats_other = read_dataset(probe, other)
    _, blank_feats = probe.predict(torch.zeros(300, 3, 32, 32) + 0.1 * torch.randn(300, 3, 32, 32))
    assert shapes_fid(feats_other, feats) < 0.2 * shapes_fid(blank_feats, feats)
    # save / load keeps predictions and the info
    path = tmp_path / "probe.safetensors"
    save_probe(probe, path, {"steps": 60})
    loaded, info = load_probe(path)
    assert info == {"steps": 60}
    assert torch.equal(loaded.predict(torch.zeros(2, 3, 32, 32))[0], probe.predict(torch.zeros(2, 3, 32, 32))[0])
    # other image sizes are resized to the probe's
    assert loaded.predict(torch.zeros(2, 3, 64, 64))[0].shape == (2, len(PROBE_KEYS))


def test_cached_probe_is_trained_once(tmp_path, monkeypatch):
    monkeypatch.setenv("T2IGAN_CACHE", str(tmp_path))
    calls = []
    import t2igan.metrics.shapes_probe as sp

    def tiny_train(image_size, steps, seed, device, progress):
        calls.append(image_size)
        return sp.ShapesProbe(image_size, channels=4, feature_dim=8).eval()

    monkeypatch.setattr(sp, "train_probe", tiny_train)
    monkeypatch.setattr(sp, "evaluate_probe", lambda probe, size, device: {"test": {"mean": 0.5}})
    probe, info, path = load_or_train_probe(16, progress=False)  # no probe ships for 16 px
    assert path == tmp_path / "shapes_probe-16.safetensors" and path.is_file()
    assert info["accuracy"] == {"test": {"mean": 0.5}} and info["seed"] == 0
    again, info2, _ = load_or_train_probe(16, progress=False)
    assert calls == [16] and info2 == info
    with pytest.raises(T2IError, match="64 px"):
        load_or_train_probe(64, path=path, progress=False)
    with pytest.raises(T2IError, match="not found"):
        load_probe(tmp_path / "missing.safetensors")


def test_evaluate_probe_reports_both_test_splits():
    probe = ShapesProbe(32, channels=4, feature_dim=8).eval()
    out = evaluate_probe(probe, 32, num_images=20)
    assert set(out) == {"test", "test_heldout"}
    assert set(out["test"]["per_attribute"]) == {"count", "relation", "shape", "colour", "size", "position"}
