"""The diversity metric (t2igan.metrics.diversity, `t2igan eval --metrics diversity`): tested at its
extremes with the shipped Shapes probe, and through the CLI on a Shapes run and a folder run."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from t2igan.cli import main
from t2igan.config import resolve_config
from t2igan.data.shapes import ShapesDataset, parse_shapes_caption
from t2igan.data.text import Vocabulary
from t2igan.metrics.diversity import (OPEN_FORMS, mean_pairwise_distance, normalized_entropy, open_captions,
                                      precision_recall_density_coverage, real_renders, shapes_diversity,
                                      value_coverage)
from t2igan.metrics.shapes_probe import load_or_train_probe, scene_labels
from t2igan.models import create_model
from t2igan.runs import save_run


@pytest.fixture(scope="module")
def probe():
    return load_or_train_probe(32, progress=False)[0]  # the shipped 32 px probe


def read_both(probe, fake, real):
    fake_preds, fake_feats = probe.predict(fake)
    real_preds, real_feats = probe.predict(real)
    return fake_preds, fake_feats, real_preds, real_feats


def test_entropy_and_coverage_of_value_lists():
    assert normalized_entropy([3] * 32, 5) == 0.0
    assert normalized_entropy(list(range(5)) * 8, 5) == pytest.approx(1.0)
    assert 0.4 < normalized_entropy([0] * 16 + [1] * 16, 4) < 0.6  # two of four values: log 2 / log 4 (+ 1/64)
    assert value_coverage([1] * 10, 5) == 0.2 and value_coverage([0, 1, 1], 2) == 1.0
    assert mean_pairwise_distance(torch.ones(4, 3)) == 0.0
    assert mean_pairwise_distance(torch.tensor([[0.0, 0.0], [3.0, 4.0]])) == pytest.approx(5.0)


def test_open_captions_leave_out_what_their_form_says():
    captions = open_captions(3)
    assert [c.form for c in captions] == [f for f in OPEN_FORMS for _ in range(3)]
    assert open_captions(3) == captions  # a pure function of its arguments
    by_form = {c.form: c for c in captions}
    for caption in captions:  # read back with the data's own caption reader: left out = not said
        said = scene_labels(parse_shapes_caption(caption.caption))  # canonical object order, -1: not said
        assert said == scene_labels(caption.named_scene()), caption
        assert sum(v < 0 for v in said) == sum(v < 0 for v in scene_labels(caption.scene)) + len(caption.open_keys)
    assert by_form["two_no_sizes"].open_keys == ["size0", "size1"]
    assert by_form["neither"].open_keys == ["size0", "position0"]


def test_identical_images_score_zero_entropy_and_one_value(probe):
    """K copies of one real render: nothing varies, one value of each left-out attribute."""
    k, captions = 8, open_captions(2)
    reals = [real_renders(c, k, 32) for c in captions]
    copies = torch.cat([r[:1].expand(k, -1, -1, -1) for r in reals])
    result = shapes_diversity(captions, k, *read_both(probe, copies, torch.cat(reals)))
    assert result["entropy"]["value"] == 0.0
    for form, attrs in result["coverage"]["per_form"].items():
        for attr, coverage in attrs.items():
            assert coverage == {"size": 1 / 2, "position": 1 / 5}[attr], (form, attr)
    assert result["features"]["value"] == 0.0 and result["features"]["fake"] == 0.0
    assert result["faithfulness"]["value"] >= 0.95  # a real render: what the caption names is right


def test_real_renders_score_about_one(probe):
    """Real renders of each caption against other real renders of it: the data's own variety."""
    k, captions = 32, open_captions(3)
    fake = torch.cat([real_renders(c, k, 32, seed=1) for c in captions])
    real = torch.cat([real_renders(c, k, 32, seed=0) for c in captions])
    result = shapes_diversity(captions, k, *read_both(probe, fake, real))
    assert result["entropy"]["value"] >= 0.9 and result["entropy"]["real"]["value"] >= 0.9
    assert set(result["entropy"]["per_attribute"]) == {"size", "position"}
    assert result["coverage"]["value"] >= 0.95
    assert 0.85 <= result["features"]["value"] <= 1.15
    assert result["faithfulness"]["value"] >= 0.95 and result["faithfulness"]["real"] >= 0.95


def test_shapes_diversity_refuses_fewer_than_two_seeds(probe):
    from t2igan.errors import T2IError

    captions = open_captions(1)
    one = torch.zeros(len(captions), len(probe.heads), dtype=torch.long)
    with pytest.raises(T2IError, match="at least 2"):
        shapes_diversity(captions, 1, one, torch.zeros(len(captions), 4), one, torch.zeros(len(captions), 4))


def test_precision_recall_density_coverage_at_the_extremes():
    gen = torch.Generator().manual_seed(0)
    real = torch.randn(400, 8, generator=gen)
    same = precision_recall_density_coverage(real, torch.randn(400, 8, generator=gen))
    assert same["precision"] > 0.7 and same["recall"] > 0.7 and same["coverage"] > 0.8
    assert 0.7 < same["density"] < 1.3
    # a generator that copies ten of its training images: every sample real-looking, little of the data
    copies = precision_recall_density_coverage(real, real[:10].repeat(40, 1))
    assert copies["precision"] == 1.0
    assert copies["recall"] <= 0.05 and copies["coverage"] <= 0.2
    far = precision_recall_density_coverage(real, real + 100.0)
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


# ---------------------------------------------------------------------------------------------------
# through the CLI
# ---------------------------------------------------------------------------------------------------


def tiny_run(root, preset, overrides, captions):
    cfg = resolve_config(preset, ["model.nf=4", "model.text_encoder_mode=joint_d", "model.damsm_weights=null",
                                  "data.image_size=32", *overrides])
    vocab = Vocabulary.build(captions)
    torch.manual_seed(0)
    model = create_model("dfgan", vocab_size=len(vocab), image_size=32, nf=4)
    run = root / f"run-{preset}"
    save_run(run, cfg.to_dict(), model, vocab)
    return run


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_eval_diversity_on_a_shapes_run(tmp_path, capsys):
    run = tiny_run(tmp_path, "dfgan-shapes", ["data.test_args={num_images: 20}"],
                   ShapesDataset("train", 32, num_images=64).all_captions())
    args = ["eval", str(run), "--metrics", "diversity", "--n", "20", "--k", "4", "--diversity-captions", "2",
            "--batch-size", "16", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    records = {r["metric"]: r for r in read_metrics(run)}
    expected = {"prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage", "caption_diversity",
                "diversity_entropy", "diversity_coverage", "diversity_features", "diversity_faithfulness",
                "open_prdc_precision", "open_prdc_recall", "open_prdc_density", "open_prdc_coverage"}
    assert set(records) == expected and all(name in out for name in expected)
    entropy = records["diversity_entropy"]
    assert entropy["k"] == 4 and entropy["captions"] == 2 * len(OPEN_FORMS) and 0 <= entropy["value"] <= 1
    assert set(entropy["per_form"]) == set(OPEN_FORMS) and entropy["real"]["value"] > 0.5
    assert "Shapes probe" in entropy["features"]
    assert records["caption_diversity"]["captions"] == 2 and records["caption_diversity"]["value"] >= 0
    assert records["prdc_precision"]["num_real"] == 20
    assert main(args) == 0  # seeded: the same numbers again
    again = read_metrics(run)[len(expected):]
    assert [r["value"] for r in again] == [records[r["metric"]]["value"] for r in again]


def test_eval_diversity_on_a_folder_run_uses_inception_features(tmp_path, monkeypatch, capsys):
    import t2igan.metrics.inception as inception
    from test_eval_cli import FakeInception

    monkeypatch.setattr(inception, "build_inception", lambda kind="fid", path=None, device="cpu", **kw: FakeInception())
    monkeypatch.setattr(inception, "resolve_weights_path", lambda kind="fid", path=None, download=None: "fake.pth")
    data = tmp_path / "pictures"
    data.mkdir()
    rng = np.random.default_rng(0)
    captions = []
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(data / f"{i}.png")
        captions.append(f"a picture of thing {i}")
        (data / f"{i}.txt").write_text(captions[-1] + "\n")
    run = tiny_run(tmp_path, "dfgan-coco", ["data.dataset=folder", f"data.root={data}"], captions)
    assert main(["eval", str(run), "--metrics", "diversity", "--n", "12", "--k", "3", "--diversity-captions", "2",
                 "--device", "cpu", "--no-progress"]) == 0
    records = {r["metric"]: r for r in read_metrics(run)}
    assert set(records) == {"prdc_precision", "prdc_recall", "prdc_density", "prdc_coverage", "caption_diversity"}
    assert records["caption_diversity"]["features"] == "Inception pool3 fake.pth"
    assert 0 <= records["prdc_recall"]["value"] <= 1 and records["prdc_precision"]["num_fake"] == 12


def test_eval_diversity_bad_input(tmp_path, capsys):
    shapes = tiny_run(tmp_path, "dfgan-shapes", ["data.test_args={num_images: 20}"],
                      ShapesDataset("train", 32, num_images=64).all_captions())
    base = ["eval", str(shapes), "--n", "20", "--device", "cpu", "--no-progress"]
    assert main(base + ["--metrics", "diversity", "--k", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: diversity needs at least 2 seeds per caption (--k), got 1"
    assert main(base + ["--metrics", "diversity,variety"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unknown metric(s) ['variety']") and "\n" not in err
    assert not (shapes / "metrics.jsonl").exists()  # nothing written
    cub = tiny_run(tmp_path, "dfgan-cub", [f"data.root={tmp_path / 'no-birds-here'}"], ["a small red bird"])
    assert main(["eval", str(cub), "--metrics", "diversity", "--n", "20", "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: diversity compares generated with real test images") and "\n" not in err
    assert "no-birds-here" in err
    assert not (cub / "metrics.jsonl").exists()
