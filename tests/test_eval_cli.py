import json

import numpy as np
import pytest
import torch
from torch import nn

from t2igan.cli import main
from t2igan.config import resolve_config
from t2igan.data.shapes import ShapesDataset
from t2igan.data.text import Vocabulary
from t2igan.runs import save_run
from t2igan.metrics.shapes_probe import ShapesProbe, save_probe
from t2igan.models.damsm import DAMSM, DAMSMConfig
from t2igan.models import create_model

TEST_IMAGES = 30  # 150 test captions: enough for 99 mismatched ones


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny untrained DF-GAN run on 32 px Shapes, a tiny DAMSM run and a tiny probe file."""
    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    cfg = resolve_config("dfgan-shapes", ["model.nf=4", "model.text_encoder_mode=joint_d", "model.damsm_weights=null",
                                          "data.image_size=32", "data.train_args={num_images: 64}",
                                          f"data.test_args={{num_images: {TEST_IMAGES}}}"])
    vocab = Vocabulary.build(ShapesDataset("train", 32, num_images=64).all_captions())
    model = create_model("dfgan", vocab_size=len(vocab), image_size=32, nf=4)
    run = root / "00000-dfgan-shapes"
    save_run(run, cfg.to_dict(), model, vocab)
    damsm_vocab = Vocabulary.build(ShapesDataset("train", 32, num_images=200).all_captions())
    damsm = DAMSM(DAMSMConfig(vocab_size=len(damsm_vocab), embed_dim=16, text_emb_dim=8, text_hidden_dim=8,
                              backbone="small_cnn", image_size=32, cnn_channels=4)).eval()
    save_run(root / "damsm", {"data": {"max_words": 18}}, damsm, damsm_vocab)
    save_probe(ShapesProbe(32, channels=4, feature_dim=8), root / "probe.safetensors", {"accuracy": {}})
    return run, root / "damsm", root / "probe.safetensors"


def read_metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_eval_rprec_and_shapes_write_metrics_and_table(setup, capsys):
    run, damsm, probe = setup
    args = ["eval", str(run), "--metrics", "rprec,shapes", "--n", "40", "--damsm", str(damsm), "--probe", str(probe),
            "--batch-size", "20", "--device", "cpu", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    for name in ("rprec", "shapes_attr", "shapes_attr_heldout", "shapes_fid"):
        assert name in out
    assert f"DAMSM {damsm}" in out
    assert f"appended 4 lines to {run / 'metrics.jsonl'}" in out
    records = read_metrics(run)
    by_name = {r["metric"]: r for r in records}
    assert set(by_name) == {"rprec", "shapes_attr", "shapes_attr_heldout", "shapes_fid"}
    assert 0.0 <= by_name["rprec"]["value"] <= 1.0 and by_name["rprec"]["damsm"] == str(damsm)
    assert by_name["rprec"]["damsm_used_in_training"] is False
    assert 0.0 <= by_name["shapes_attr"]["value"] <= 1.0 and by_name["shapes_attr"]["n"] == 40
    assert by_name["shapes_attr_heldout"]["n"] == TEST_IMAGES  # one caption per held-out test image
    assert by_name["shapes_fid"]["value"] >= 0.0
    # seeded: a second evaluation appends identical values
    assert main(args) == 0
    again = read_metrics(run)
    assert len(again) == 8
    assert [r["value"] for r in again[4:]] == [r["value"] for r in records]
    capsys.readouterr()
    assert main(["eval", str(run), "--metrics", "rprec", "--n", "20", "--damsm", str(damsm), "--device", "cpu",
                 "--no-progress"]) == 0
    assert "appended 1 line to" in capsys.readouterr().out  # not "1 lines"


class FakeInception(nn.Module):
    """Stands in for the FID Inception (whose weights are not available offline)."""

    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.conv = nn.Conv2d(3, 12, 4, stride=4)
        self.fc = nn.Linear(12, 6)
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=gen)

    def forward(self, images, output="pool3"):
        assert images.min() >= -1 and images.max() <= 1
        return torch.tanh(self.conv(images)).mean(dim=(2, 3))


def test_fid_and_is_with_stats_file(setup, tmp_path, monkeypatch, capsys):
    import t2igan.metrics.inception as inception

    monkeypatch.setattr(inception, "build_inception", lambda kind="fid", path=None, device="cpu", **kw: FakeInception())
    monkeypatch.setattr(inception, "resolve_weights_path", lambda kind="fid", path=None, download=None: "fake.pth")
    run, _, _ = setup
    stats = tmp_path / "stats.npz"
    assert main(["eval-stats", "dfgan-shapes", "data.image_size=32", f"data.test_args={{num_images: {TEST_IMAGES}}}",
                 "-o", str(stats), "--no-progress", "--device", "cpu"]) == 0
    assert f"{TEST_IMAGES} shapes test images" in capsys.readouterr().out
    with np.load(stats) as f:
        assert f["mu"].shape == (12,) and f["sigma"].shape == (12, 12)
    base = ["eval", str(run), "--metrics", "fid,is", "--n", "20", "--device", "cpu", "--no-progress"]
    assert main(base + ["--fid-stats", str(stats)]) == 0
    assert main(base) == 0  # reference computed from the same real test images
    records = [r for r in read_metrics(run) if r["metric"] in ("fid", "is")][-4:]
    fid_file, is_1, fid_computed, is_2 = records
    assert fid_file["metric"] == "fid" and fid_file["reference"] == str(stats)
    assert fid_file["value"] == pytest.approx(fid_computed["value"], rel=1e-6) and fid_file["value"] > 0
    assert 1.0 <= is_1["value"] <= 6.0 and is_1["value"] == is_2["value"]


def test_clear_errors(setup, tmp_path, monkeypatch, capsys):
    run, _, _ = setup
    monkeypatch.setenv("T2IGAN_OFFLINE", "1")
    monkeypatch.setenv("T2IGAN_CACHE", str(tmp_path))
    monkeypatch.delenv("T2IGAN_INCEPTION_WEIGHTS", raising=False)
    assert main(["eval", str(run), "--metrics", "fid", "--n", "10", "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Inception weights not found") and "\n" not in err
    assert main(["eval", str(run), "--metrics", "rprec", "--n", "10", "--device", "cpu", "--no-progress"]) == 2
    assert "--damsm" in capsys.readouterr().err
    assert main(["eval", str(run), "--metrics", "fid,bleu", "--no-progress"]) == 2
    assert "bleu" in capsys.readouterr().err


def test_training_damsm_is_found_from_the_model_config(setup, tmp_path):
    from t2igan.evaluate import training_damsm

    run, damsm, _ = setup
    assert training_damsm({"damsm_weights": str(damsm)}) == str(damsm)
    assert training_damsm({"damsm_weights": str(damsm / "model.safetensors")}) == str(damsm)
    assert training_damsm({"damsm_weights": str(run / "model.safetensors")}) is None  # a GAN run
    assert training_damsm({"damsm_weights": str(tmp_path / "gone")}) is None
    assert training_damsm({}) is None


def test_eval_truncation_changes_the_noise_and_is_recorded(setup, capsys):
    from t2igan.evaluate import evaluate

    run, _, probe = setup
    common = dict(metrics="shapes", n=20, batch_size=10, probe=str(probe), device="cpu", progress=False, write=False)
    default = {r["metric"]: r for r in evaluate(run, **common)}
    model_own = {r["metric"]: r for r in evaluate(run, truncation=0.88, **common)}
    untruncated = {r["metric"]: r for r in evaluate(run, truncation=0.0, **common)}
    assert default["shapes_fid"]["truncation"] == 0.88 and untruncated["shapes_fid"]["truncation"] == 0.0
    assert model_own["shapes_fid"]["value"] == default["shapes_fid"]["value"]  # the default is the model's own
    assert untruncated["shapes_fid"]["value"] != default["shapes_fid"]["value"]  # other noise, other images
    lines_before = len(read_metrics(run)) if (run / "metrics.jsonl").exists() else 0
    assert main(["eval", str(run), "--metrics", "shapes", "--n", "10", "--probe", str(probe), "--truncation", "-1",
                 "--no-progress"]) == 2
    assert "truncation must be a finite number >= 0" in capsys.readouterr().err
    assert (len(read_metrics(run)) if (run / "metrics.jsonl").exists() else 0) == lines_before  # nothing written


def test_eval_truncation_form_changes_the_noise_and_is_recorded(setup, capsys):
    from t2igan.evaluate import evaluate

    run, _, probe = setup
    common = dict(metrics="shapes", n=20, batch_size=10, probe=str(probe), device="cpu", progress=False, write=False)
    own = {r["metric"]: r for r in evaluate(run, **common)}  # the model's own form: the official "scaled"
    scaled = {r["metric"]: r for r in evaluate(run, truncation_form="scaled", **common)}
    clip = {r["metric"]: r for r in evaluate(run, truncation_form="clip", **common)}
    assert own["shapes_fid"]["truncation_form"] == "scaled" and clip["shapes_fid"]["truncation_form"] == "clip"
    assert scaled["shapes_fid"]["value"] == own["shapes_fid"]["value"]
    assert clip["shapes_fid"]["value"] != own["shapes_fid"]["value"]  # narrower noise, other images
    assert main(["eval", str(run), "--metrics", "shapes", "--n", "10", "--probe", str(probe),
                 "--truncation-form", "wide", "--no-progress"]) == 2
    assert "truncation form must be one of scaled, clip" in capsys.readouterr().err
