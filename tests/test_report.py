"""``t2igan report``: a self-contained page over real (tiny) runs: every logged quantity plotted,
the sample grids as a strip, the metrics table with meanings, attention / mask figures when the
model has them, several runs overlaid."""

import base64
import io
import json
import re

import pytest
from conftest import TINY_RUN, TINY_SIZE, tiny_model_overrides
from PIL import Image

from t2igan.cli import main
from t2igan.config import resolve_config
from t2igan.errors import T2IError
from t2igan.report import build_report, smooth
from t2igan.training import Trainer

DFGAN = TINY_RUN + ["train.max_steps=4", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=100",
                    "train.num_sample_captions=2", "train.loggers=[]"]
DRGAN = [f"data.image_size={TINY_SIZE}", "data.train_args={num_images: 8}", "data.test_args={num_images: 4}",
         "train.batch_size=4", "train.max_steps=2", "train.log_every=1", "train.sample_every=1",
         "train.checkpoint_every=100", "train.num_sample_captions=2", "train.loggers=[]", *tiny_model_overrides("drgan")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    dfgan = Trainer(resolve_config("dfgan-shapes", DFGAN), root / "dfgan", progress=False).fit()
    drgan = Trainer(resolve_config("drgan-shapes", DRGAN), root / "drgan", progress=False).fit()
    with open(dfgan / "metrics.jsonl", "w") as f:  # as `t2igan eval` appends them: the latest row counts
        f.write(json.dumps({"metric": "shapes_attr", "value": 0.25, "n": 100}) + "\n")
        f.write(json.dumps({"metric": "shapes_attr", "value": 0.4125, "n": 200}) + "\n")
        f.write(json.dumps({"metric": "shapes_fid", "value": 123.456, "n": 200}) + "\n")
    return dfgan, drgan


def inlined_images(page: str) -> list[Image.Image]:
    return [Image.open(io.BytesIO(base64.b64decode(m))) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


def test_one_run_page_is_self_contained_with_every_figure(runs, tmp_path):
    dfgan, _ = runs
    report = build_report([dfgan], tmp_path / "report")
    page = report.html.read_text()
    logged = {k for line in (dfgan / "log.jsonl").read_text().splitlines() for k in json.loads(line)}
    assert set(report.quantities) == logged - {"step", "epoch", "time_s"} and "g_loss" in report.quantities
    assert [p.name for p in report.figures] == ["losses.png", "samples-dfgan.png", "captions-dfgan.png"]
    assert all(p.is_file() for p in report.figures)
    images = inlined_images(page)
    assert len(images) == len(report.figures)  # every figure inlined, nothing linked
    assert [im.size for im in images] == [Image.open(p).size for p in report.figures]
    assert "http://" not in page and "https://" not in page
    # the metrics table: the latest row of each metric, with what it means
    assert "41.25%" in page and "25.00%" not in page and "123.5" in page
    assert "attribute" in page and "Frechet distance of Shapes-probe features" in page


@pytest.mark.slow
def test_attention_and_mask_figures_for_a_model_that_has_them(runs, tmp_path):
    _, drgan = runs
    report = build_report([drgan], tmp_path / "report", captions=["a red circle", "a blue square"])
    names = [p.name for p in report.figures]
    assert names == ["losses.png", "samples-drgan.png", "captions-drgan.png", "attention-drgan.png", "masks-drgan.png"]
    attention = Image.open(tmp_path / "report" / "attention-drgan.png")
    assert attention.width >= 32 * 4  # the image then a map per word ("a red circle")
    assert "No <code>metrics.jsonl</code> yet" in report.html.read_text()


@pytest.mark.slow
def test_several_runs_are_overlaid_from_the_command_line(runs, tmp_path, capsys):
    dfgan, drgan = runs
    assert main(["report", str(dfgan), str(drgan), "-o", str(tmp_path / "both")]) == 0
    assert "wrote" in capsys.readouterr().out
    page = (tmp_path / "both" / "index.html").read_text()
    assert "2 runs: dfgan, drgan" in page
    assert {"samples-dfgan.png", "samples-drgan.png", "masks-drgan.png"} <= {p.name for p in (tmp_path / "both").iterdir()}
    # one table with a column per run
    assert re.search(r"<th>metric</th><th>dfgan</th><th>drgan</th>", page)


def test_smoothing_and_bad_folders(tmp_path):
    assert smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # bias-corrected: no pull to 0
    assert smooth([0.0, 10.0], 0.5) == pytest.approx([0.0, 5 / 0.75])
    with pytest.raises(T2IError, match="not a run folder"):
        build_report([str(tmp_path / "no-such-run")], tmp_path / "report")
