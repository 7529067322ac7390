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
    # --n counts every image: half from the test captions, half from the held-out pairs
    assert 0.0 <= by_name["shapes_attr"]["value"] <= 1.0 and by_name["shapes_attr"]["n"] == 20
    assert by_name["shapes_attr_heldout"]["n"] == 20
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


def test_clear_errors(setup, folder_run, tmp_path, monkeypatch, capsys):
    run, _, _ = setup
    monkeypatch.setenv("T2IGAN_OFFLINE", "1")
    monkeypatch.setenv("T2IGAN_CACHE", str(tmp_path))
    monkeypatch.delenv("T2IGAN_INCEPTION_WEIGHTS", raising=False)
    assert main(["eval", str(run), "--metrics", "fid", "--n", "10", "--device", "cpu", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: Inception weights not found") and "\n" not in err
    # a run that names no DAMSM and is not Shapes (whose runs default to shapes-damsm)
    assert main(["eval", str(folder_run), "--metrics", "rprec", "--n", "10", "--device", "cpu", "--no-progress"]) == 2
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


# --------------------------------------------------------------------------- what eval scores by default


@pytest.fixture(scope="module")
def folder_run(tmp_path_factory):
    """A tiny untrained DF-GAN run on a folder of 60 captioned images (a data set that is not Shapes; enough
    captions for R-precision's 99 mismatched ones)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("folder-eval")
    images = root / "images"
    images.mkdir()
    words = ["red", "blue", "green", "yellow"]
    for i in range(60):
        Image.new("RGB", (32, 32), (4 * i, 255 - 4 * i, 90)).save(images / f"bird{i}.png")
        (images / f"bird{i}.txt").write_text(f"a {words[i % 4]} bird\nthis bird is {words[(i + 1) % 4]}\n")
    cfg = resolve_config("dfgan-shapes", ["model.nf=4", "model.text_encoder_mode=joint_d", "model.damsm_weights=null",
                                          "data.dataset=folder", f"data.root={images}", "data.image_size=32",
                                          "data.train_args={}", "data.test_args={}"])
    vocab = Vocabulary.build([f"a {w} bird" for w in words] + [f"this bird is {w}" for w in words])
    torch.manual_seed(0)
    run = root / "run"
    save_run(run, cfg.to_dict(), create_model("dfgan", vocab_size=len(vocab), image_size=32, nf=4), vocab)
    return run


def offline_without_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("T2IGAN_OFFLINE", "1")
    monkeypatch.setenv("T2IGAN_CACHE", str(tmp_path / "empty-cache"))
    for var in ("T2IGAN_INCEPTION_WEIGHTS", "T2IGAN_INCEPTION_IS_WEIGHTS", "T2IGAN_INCEPTION_CUB_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)


def test_eval_defaults_on_shapes_are_the_shapes_metrics_and_rprec_by_shapes_damsm(setup, tmp_path, monkeypatch,
                                                                                   capsys):
    """No --metrics on a Shapes run: the Shapes probe and R-precision by the bundled shapes-damsm (the run
    names no DAMSM); FID and IS are left out, each with a line saying why and how to ask for it."""
    run, _, probe = setup
    offline_without_weights(monkeypatch, tmp_path)
    before = len(read_metrics(run)) if (run / "metrics.jsonl").exists() else 0
    assert main(["eval", str(run), "--n", "40", "--probe", str(probe), "--batch-size", "20", "--device", "cpu",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    for name in ("fid", "is"):
        assert f"{name}: skipped: Inception features mean little on Shapes images" in out
        assert f"--metrics {name}" in out
    records = read_metrics(run)[before:]
    by_name = {r["metric"]: r for r in records}
    assert set(by_name) == {"rprec", "shapes_attr", "shapes_attr_heldout", "shapes_fid"}
    assert by_name["rprec"]["damsm"] == "shapes-damsm" and "DAMSM shapes-damsm" in out  # by name, not a path


def test_eval_damsm_takes_a_bundled_name(setup, capsys):
    run, _, _ = setup
    assert main(["eval", str(run), "--metrics", "rprec", "--damsm", "shapes-damsm", "--n", "20", "--device", "cpu",
                 "--no-progress"]) == 0
    assert read_metrics(run)[-1]["damsm"] == "shapes-damsm"
    assert main(["eval", str(run), "--metrics", "rprec", "--damsm", "no-such-damsm", "--n", "20",
                 "--no-progress"]) == 2
    assert "no bundled model named 'no-such-damsm'" in capsys.readouterr().err


def test_eval_defaults_elsewhere_are_fid_is_rprec_each_missing_one_said(folder_run, setup, tmp_path, monkeypatch,
                                                                        capsys):
    """No --metrics on a run that is not Shapes: FID, IS and R-precision; offline without Inception weights
    FID and IS are skipped with where the weights go, R-precision without a DAMSM with --damsm, the Shapes
    metric as not applying. Nothing left: one error line, nothing written."""
    offline_without_weights(monkeypatch, tmp_path)
    base = ["eval", str(folder_run), "--n", "12", "--device", "cpu", "--no-progress"]
    assert main(base) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().startswith("error: no metric can score") and "\n" not in captured.err.strip()
    lines = {line.split(":")[0]: line for line in captured.out.splitlines() if ": skipped: " in line}
    assert set(lines) == {"fid", "is", "rprec", "shapes"}
    assert "T2IGAN_INCEPTION_WEIGHTS" in lines["fid"] and "pt_inception-2015-12-05" in lines["fid"]
    assert "T2IGAN_INCEPTION_WEIGHTS" in lines["is"]  # a folder run's IS network is the FID one
    assert "--damsm RUN" in lines["rprec"] and "Shapes runs only" in lines["shapes"]
    assert not (folder_run / "metrics.jsonl").exists()

    _, damsm, _ = setup  # with a DAMSM, R-precision is scored and FID / IS are still said to be skipped
    assert main(base + ["--damsm", str(damsm)]) == 0
    out = capsys.readouterr().out
    assert "fid: skipped" in out and "is: skipped" in out and "rprec: skipped" not in out
    assert [r["metric"] for r in read_metrics(folder_run)] == ["rprec"]
    # asked for by name, a missing network is an error, not a skip
    assert main(base + ["--metrics", "fid"]) == 2
    assert capsys.readouterr().err.startswith("error: Inception weights not found")
    assert main(base + ["--metrics", "shapes"]) == 2
    assert "the shapes metric needs a Shapes run" in capsys.readouterr().err


def test_n_counts_images_and_the_progress_bar_agrees(setup, capsys):
    run, _, probe = setup
    assert main(["eval", str(run), "--metrics", "shapes", "--n", "30", "--probe", str(probe), "--batch-size", "7",
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "30/30" in err and "60/" not in err and "/60" not in err
    records = read_metrics(run)[-3:]
    by_name = {r["metric"]: r for r in records}
    assert by_name["shapes_attr"]["n"] + by_name["shapes_attr_heldout"]["n"] == 30


def test_small_n_frechet_distances_warn_and_record_unreliable(setup, tmp_path, monkeypatch, capsys):
    """FID below 10,000 images and Shapes-FID below 1,000 print a warning and record reliable: false;
    at or above the threshold (lowered here) they are reliable: true."""
    import t2igan.evaluate as evaluate_module
    import t2igan.metrics.inception as inception

    monkeypatch.setattr(inception, "build_inception", lambda kind="fid", path=None, device="cpu", **kw: FakeInception())
    monkeypatch.setattr(inception, "resolve_weights_path", lambda kind="fid", path=None, download=None: "fake.pth")
    run, _, probe = setup
    assert main(["eval", str(run), "--metrics", "fid,shapes", "--n", "40", "--probe", str(probe), "--device", "cpu",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "warning: fid of 20 generated images" in out and "fewer than 10,000 images" in out
    assert "warning: shapes_fid of 20 generated images" in out and "fewer than 1,000 images" in out
    by_name = {r["metric"]: r for r in read_metrics(run)[-5:]}
    assert by_name["fid"]["reliable"] is False and by_name["fid"]["min_reliable_n"] == 10000
    assert by_name["shapes_fid"]["reliable"] is False and by_name["shapes_fid"]["min_reliable_n"] == 1000

    monkeypatch.setattr(evaluate_module, "MIN_RELIABLE_N", {"fid": 20, "shapes_fid": 20})
    assert main(["eval", str(run), "--metrics", "fid,shapes", "--n", "40", "--probe", str(probe), "--device", "cpu",
                 "--no-progress"]) == 0
    assert "warning" not in capsys.readouterr().out
    by_name = {r["metric"]: r for r in read_metrics(run)[-5:]}
    assert by_name["fid"]["reliable"] is True and by_name["shapes_fid"]["reliable"] is True
