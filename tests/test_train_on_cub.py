"""The README's "Train on CUB" commands, run as written on the real CUB subset for a few steps: data
prepare -> DAMSM (small CNN) -> DF-GAN and AttnGAN -> eval -> sample -> report, from a folder that
stands for the repository root, offline and without Inception weights.

The only changes to the commands: training and pretraining get ``train.max_steps=2`` appended (their
CPU budgets would stop them after minutes), and ``eval`` scores ``--n 100`` images instead of 983. The
``t2igan`` lines run in this process through the console script's entry point
(:func:`t2igan.cli.main`), which saves a Python start and a torch import per command. The subset comes
from ``T2IGAN_CUB_SUBSET`` (default ``../shared/data/cub_birds_subset`` beside the repository); the
test fails, saying so, when it is absent.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from t2igan.cli import main

REPO = Path(__file__).resolve().parents[1]
SUBSET = Path(os.environ.get("T2IGAN_CUB_SUBSET", REPO.parent / "shared/data/cub_birds_subset"))
EVAL_IMAGES = 100


def readme_commands() -> list[str]:
    """The lines of the first bash block of the README's "Train on CUB" section."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Train on CUB\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)[1]
    return [line for line in block.splitlines() if line.strip()]


def run(line: str, cwd: Path, env: dict, capsys) -> tuple[int, str, str]:
    """Run one README line in ``cwd``: ``(exit status, stdout, stderr)``."""
    line = line.replace("PATH_TO_SUBSET", shlex.quote(str(SUBSET)))
    words = shlex.split(line)
    if words[0] != "t2igan":  # the shell line that lists the subset's images
        done = subprocess.run(line, cwd=cwd, env=env, shell=True, capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout, done.stderr
    if words[1] in ("train", "pretrain"):
        words.append("train.max_steps=2")
    if words[1] == "eval":
        words[words.index("--n") + 1] = str(EVAL_IMAGES)
    capsys.readouterr()
    status = main(words[1:])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.slow
def test_the_readme_train_on_cub_commands_run_as_written(tmp_path, monkeypatch, capsys):
    assert (SUBSET / "CUB_200_2011" / "images").is_dir(), (
        f"the shared CUB subset is missing: expected {SUBSET}; set T2IGAN_CUB_SUBSET to its folder")
    commands = readme_commands()
    kinds = [shlex.split(c)[1] if c.startswith("t2igan") else shlex.split(c)[0] for c in commands]
    assert kinds == ["data", "cat", "pretrain", "train", "train", "eval", "eval", "sample", "report"]
    monkeypatch.setenv("T2IGAN_OFFLINE", "1")
    monkeypatch.setenv("T2IGAN_CACHE", str(tmp_path / "cache"))
    for var in ("T2IGAN_INCEPTION_WEIGHTS", "T2IGAN_INCEPTION_IS_WEIGHTS", "T2IGAN_INCEPTION_CUB_WEIGHTS"):
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "repo"  # stands for the repository root: every path in the commands is relative
    root.mkdir()
    monkeypatch.chdir(root)
    outputs = []
    for line in commands:
        status, out, err = run(line, root, dict(os.environ), capsys)
        assert status == 0, f"{line}\n{err[-2000:]}"
        outputs.append(out)
    prepare, _, damsm, dfgan, attngan, eval_dfgan, eval_attngan, _, _ = outputs

    prepared = json.loads((root / "data/birds/PREPARED.json").read_text())
    assert {k: v["kept"] for k, v in prepared["splits"].items()} == {"train": 275, "test": 983}
    assert "train: 275 of 8,855 listed images kept" in prepare
    assert len((root / "data/birds/all_filenames.txt").read_text().split()) == 1258

    # each training introduces itself: all 1,258 subset images train, the 983 of the test split test
    for out, run_dir in ((damsm, "runs/cub-damsm"), (dfgan, "runs/cub-dfgan"), (attngan, "runs/cub-attngan")):
        assert f"run folder: {run_dir}" in out
        assert "data: cub at data/birds, 64 px: 1,258 training images, 983 test images" in out
        assert re.search(r"device: cpu \(\d+ threads?\), float32", out) and "parameters: " in out
        assert (root / run_dir / "model.safetensors").is_file()
    assert "parameters: text encoder" in damsm and "image encoder" in damsm
    assert re.search(r"parameters: G [\d.]+ M, D [\d.]+ M, text encoder [\d.]+ M \(frozen\)", dfgan)
    damsm_record = json.loads((root / "runs/cub-damsm/metrics.jsonl").read_text().splitlines()[-1])
    assert 0.0 <= damsm_record["mean"] <= 1.0  # R-precision of the real test images

    # eval: R-precision by the DAMSM the GAN trained with; FID and the CUB IS skipped, saying how to get them
    for out, run_dir in ((eval_dfgan, "runs/cub-dfgan"), (eval_attngan, "runs/cub-attngan")):
        assert "fid: skipped: Inception weights not found" in out and "T2IGAN_INCEPTION_WEIGHTS" in out
        assert "is: skipped: CUB Inception weights not found" in out and "t2igan convert inception-cub" in out
        assert "shapes: skipped" in out and "rprec" in out
        (record,) = [json.loads(x) for x in (root / run_dir / "metrics.jsonl").read_text().splitlines()]
        assert record["metric"] == "rprec" and record["n"] == EVAL_IMAGES and record["damsm_used_in_training"] is True
    assert (root / "cub-dfgan.png").is_file()
    assert (root / "report-cub" / "index.html").is_file()
