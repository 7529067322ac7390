"""``t2igan report``: a self-contained page over real (tiny) runs: every logged quantity plotted,
the sample grids as a strip, the metrics table with meanings, attention / mask figures when the
model has them, several runs overlaid."""

import base64
import html
import io
import json
import re

import pytest
from conftest import TINY_RUN, TINY_SIZE, tiny_model_overrides
from PIL import Image

from t2igan.cli import main
from t2igan.config import resolve_config
from t2igan.errors import T2IError
from t2igan.report import (build_report, config_differences, read_run, samples_figure, smooth, split_captions,
                           strip_picks, training_time)
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


# -- what a run folder holds is data ----------------------------------------------------------------

# script that sets window.__xss if it ever runs, in the contexts a page could be broken out of
PAYLOADS = [
    '<script>window.__xss="script"</script>',
    '<img src=x onerror="window.__xss=\'img\'">',
    '"><svg onload="window.__xss=\'svg\'">',
    "'><iframe srcdoc=\"<script>parent.__xss='iframe'</script>\"></iframe>",
    '</title><script>window.__xss="title"</script>',
    '</style><script>window.__xss="style"</script>',
    '</pre></details><script>window.__xss="pre"</script>',
    '<a href="javascript:window.__xss=\'href\'">click</a>',
]
FOLDER_PAYLOAD = "<img src=x onerror=window.__xss=1>"  # a folder name has no "/"


def hostile_run(root, name: str = FOLDER_PAYLOAD):
    """A run folder from someone else: script in its name, every log key, every metrics field, the
    config and the card; a real sample grid."""
    run = root / name
    (run / "samples").mkdir(parents=True)
    Image.new("RGB", (64, 32), (200, 30, 30)).save(run / "samples" / "step-00000002.png")
    rows = [{"step": s, "time_s": 6.0 * s, **{p: 1.0 / (s + i) for i, p in enumerate(PAYLOADS)}, "note": PAYLOADS[0]}
            for s in (1, 2)]
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    metrics = [{"metric": p, "value": p, "n": p, "std": p} for p in PAYLOADS]
    metrics.append({"metric": "fid", "value": 12.5, "n": PAYLOADS[1], "std": 0.5})
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (run / "config.json").write_text(json.dumps({"model_name": PAYLOADS[0], PAYLOADS[2]: PAYLOADS[3],
                                                 "experiment": {"data": {"root": PAYLOADS[6]}}}))
    (run / "card.json").write_text(json.dumps({"name": PAYLOADS[4], "command": PAYLOADS[5], "steps": PAYLOADS[7],
                                               "probe": {p: p for p in PAYLOADS}}))
    return run


def test_everything_from_the_run_folder_is_escaped(tmp_path):
    run = hostile_run(tmp_path / "runs")
    report = build_report([run, hostile_run(tmp_path / "more", '"><svg onload=window.__xss=2>')], tmp_path / "out")
    page = report.html.read_text()
    head, _, body = page.partition("<body>")
    # the only tags are the report's own: no script, handler, frame, link or foreign image
    for tag in ("<script", "<svg", "<iframe", "<a "):
        assert tag not in page.lower(), tag
    assert not re.search(r"<[a-z]+[^>]*\son[a-z]+=", page, re.I)  # no event-handler attribute on any tag
    assert re.findall(r"<img [^>]*>", body) and all(re.match(r'<img src="data:image/png;base64,', t)
                                                     for t in re.findall(r"<img [^>]*>", body))
    # every payload is shown, as text
    for p in PAYLOADS + [FOLDER_PAYLOAD]:
        assert html.escape(p) in page, p
    # and the page could not run script even if something slipped through
    assert "Content-Security-Policy" in head and "default-src 'none'" in head


def test_report_of_a_bundled_model_shows_its_card_grid_and_config(tmp_path, monkeypatch):
    """Bundled names work (the README says every command takes them); the page goes outside the
    read-only package (./report-NAME), which is left byte for byte as it was."""
    from t2igan.runs import BUNDLED_DIR

    def package_files():
        return {p: p.read_bytes() for p in (BUNDLED_DIR / "shapes-dfgan").rglob("*") if p.is_file()}

    before = package_files()
    monkeypatch.chdir(tmp_path)
    assert main(["report", "shapes-dfgan"]) == 0
    page = (tmp_path / "report-shapes-dfgan" / "index.html").read_text()
    card = json.loads((BUNDLED_DIR / "shapes-dfgan" / "card.json").read_text())
    assert "shapes-dfgan: model card" in page and f"{card['steps']:,} steps (model card)" in page
    assert "probe.mean" in page and f"{card['probe']['mean']:.4g}" in page
    assert "The model card&#x27;s sample grid" in page and "<code>config.json</code>" in page and "max_words" in page
    grid = Image.open(tmp_path / "report-shapes-dfgan" / "grid-shapes-dfgan.png")
    assert grid.size == Image.open(BUNDLED_DIR / "shapes-dfgan" / "grid.png").size
    assert package_files() == before
    with pytest.raises(T2IError, match="cannot be written into the package's bundled models"):
        build_report(["shapes-dfgan"], BUNDLED_DIR / "shapes-dfgan" / "report")


def test_a_cut_last_log_line_is_left_out(runs, tmp_path):
    """A training run being written (or killed mid-line) is reported up to its last whole row."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs[0], run, ignore=shutil.ignore_patterns("model.safetensors", "checkpoints"))
    whole = (run / "log.jsonl").read_text()
    (run / "log.jsonl").write_text(whole + '{"step": 5, "g_lo')
    assert len(read_run(run).log) == len(whole.splitlines())
    (run / "log.jsonl").write_text(whole + '{"step": 5, "g_lo\n{"step": 6}\n')  # not the last line: an error
    with pytest.raises(T2IError, match=r"log\.jsonl: line \d+ is not JSON"):
        read_run(run)


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
    assert {"samples-by-step.png", "masks-drgan.png"} <= {p.name for p in (tmp_path / "both").iterdir()}
    # side by side: the runs' facts and metrics a column per run, and the settings that differ
    assert re.search(r"<th>metric</th><th>dfgan</th><th>drgan</th>", page)
    assert re.search(r"<tr><th></th><th>dfgan</th><th>drgan</th></tr><tr><th>model</th><td><b>dfgan</b></td>"
                     r"<td><b>drgan</b></td>", page)
    differing = dict(config_differences([read_run(dfgan), read_run(drgan)]))
    assert differing["model"] == ["dfgan", "drgan"] and differing["train.max_steps"] == [4, 2]
    assert "train.log_every" not in differing  # the same in both: left out
    assert "<h2>Settings that differ</h2>" in page and "<th>train.max_steps</th><td>4</td><td>2</td>" in page
    # the sample grids: a column per run, a row per step; each run's newest grid in the last row
    figure = Image.open(tmp_path / "both" / "samples-by-step.png")
    assert figure.width > figure.height / 2
    assert "steps 1, 2, 4; the newest last" in page


def test_smoothing_and_bad_folders(tmp_path):
    assert smooth([1.0, 1.0, 1.0], 0.9) == pytest.approx([1.0, 1.0, 1.0])  # bias-corrected: no pull to 0
    assert smooth([0.0, 10.0], 0.5) == pytest.approx([0.0, 5 / 0.75])
    with pytest.raises(T2IError, match="not a run folder"):
        build_report([str(tmp_path / "no-such-run")], tmp_path / "report")


def test_the_newest_grid_is_always_in_the_strip():
    for count in range(1, 30):
        picks = strip_picks(count, 6)
        assert picks[0] == 0 and picks[-1] == count - 1 and len(picks) == min(6, count)
        assert picks == sorted(set(picks))


def test_a_strip_of_three_grids_shows_all_three(runs, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = read_run(runs[0])  # grids at steps 2 and 4
    run.samples = run.samples + [(6, run.samples[-1][1])]
    assert samples_figure(plt, [run], tmp_path / "strip.png") == [2, 4, 6]


def test_training_time_adds_up_the_sessions_of_a_resumed_run(runs, tmp_path):
    """``time_s`` counts from the start of each process; a resumed run's log starts again from 0."""
    import shutil

    log = [{"step": 1, "time_s": 100.0}, {"step": 2, "time_s": 440.0},  # first session: 440 s
           {"step": 3, "time_s": 30.0}, {"step": 4, "time_s": 880.0},  # resumed: 880 s
           {"step": 5, "time_s": 12.0}]  # resumed again: 12 s
    assert training_time(log) == (440.0 + 880.0 + 12.0, 3)
    assert training_time([{"step": 1}]) == (0.0, 0)
    run = tmp_path / "resumed"
    shutil.copytree(runs[0], run, ignore=shutil.ignore_patterns("model.safetensors", "checkpoints"))
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    page = build_report([run], tmp_path / "out").html.read_text()
    assert "22.2 min in 3 sessions (resumed 2x)" in page


def test_final_weights_use_the_runs_own_test_captions(runs, tmp_path):
    """The captions figure draws the first captions of the run's own test split; a run whose data is
    in files (a CUB run) gets a note, never another data set's captions: the report opens no path a
    run folder's config names."""
    import shutil

    from t2igan.data.datasets import build_dataset

    dfgan = read_run(runs[0])
    data = dfgan.experiment["data"]
    test_set = build_dataset(data["dataset"], root=data.get("root"), split="test", image_size=data["image_size"],
                             **data.get("test_args", {}))
    captions, why_not = split_captions(dfgan)
    assert why_not is None and captions == [test_set.captions(i)[0] for i in range(4)]
    cub = tmp_path / "cub-run"
    shutil.copytree(runs[0], cub, ignore=shutil.ignore_patterns("checkpoints"))
    config = json.loads((cub / "config.json").read_text())
    config["experiment"]["data"].update(dataset="cub", root=str(tmp_path / "no-birds-here"), test_args={})
    (cub / "config.json").write_text(json.dumps(config))
    assert split_captions(read_run(cub))[0] == []
    report = build_report([cub], tmp_path / "out")
    page = report.html.read_text()
    assert "captions-cub-run.png" not in [p.name for p in report.figures]
    assert "No final-weights figure" in page and "opens no path a run folder gives" in page and "--caption" in page
    # given captions, the figure is drawn
    report = build_report([cub], tmp_path / "given", captions=["a red circle"])
    assert "captions-cub-run.png" in [p.name for p in report.figures]
