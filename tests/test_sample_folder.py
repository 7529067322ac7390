"""``t2igan sample RUN --captions-file F -o DIR/``: one PNG per caption and seed with a manifest, the
folder external FID / IS tools read; each image is the one the pipeline draws for that caption and seed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from t2igan.pipeline import Text2ImagePipeline


def t2igan(*args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "t2igan", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_folder_export_writes_one_png_per_caption_and_seed_with_a_manifest(tmp_path):
    (tmp_path / "captions.txt").write_text("a red circle on the left\n\n  a blue square at the top  \n")
    result = t2igan("sample", "shapes-dfgan", "a green triangle", "--captions-file", "captions.txt", "--n", "2",
                    "--seed", "7", "--batch-size", "4", "-o", "fake/", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 6 images (3 captions x 2 seeds) and manifest.json to fake" in result.stdout

    manifest = json.loads((tmp_path / "fake/manifest.json").read_text())
    assert manifest["run"] == "shapes-dfgan" and manifest["model"] == "dfgan" and manifest["truncation"] == 0.88
    captions = ["a green triangle", "a red circle on the left", "a blue square at the top"]
    expected = [(f"{i:05d}_{s}.png", c, s) for i, c in enumerate(captions) for s in (7, 8)]
    assert [(r["file"], r["caption"], r["seed"]) for r in manifest["images"]] == expected
    assert sorted(p.name for p in (tmp_path / "fake").iterdir()) == sorted([e[0] for e in expected] + ["manifest.json"])

    # each file is the image `t2igan sample RUN caption --n 1 --seed s` draws, whatever the batch it came in
    pipe = Text2ImagePipeline.from_pretrained("shapes-dfgan")
    for name, caption, seed in expected:
        written = np.asarray(Image.open(tmp_path / "fake" / name).convert("RGB"))
        drawn = np.asarray(pipe([caption], n=1, seed=seed)[0])
        assert written.shape == drawn.shape == (32, 32, 3)
        assert np.abs(written.astype(int) - drawn.astype(int)).max() <= 1, name
    # seeds differ, so do the images of one caption
    a, b = (np.asarray(Image.open(tmp_path / "fake" / f"00000_{s}.png"), dtype=float) for s in (7, 8))
    assert np.abs(a - b).mean() > 1.0


def test_folder_export_refuses_what_would_lose_or_half_write(tmp_path):
    kept = tmp_path / "full"
    kept.mkdir()
    (kept / "00000_0.png").write_bytes(b"earlier work")
    (tmp_path / "captions.txt").write_text("a red circle\nzzz qqq\n")

    cases = [
        (["a red circle", "-o", "full/"], "full is not empty"),                         # never overwrites
        (["--captions-file", "captions.txt", "-o", "new/"], "caption 2 of 2: "),         # checked before writing
        (["--captions-file", "missing.txt", "-o", "new/"], "captions file missing.txt does not exist"),
        (["-o", "new/"], "give captions"),
        (["a red circle", "-o", "new"], "sample -o DIR/ writes a folder of images"),   # no extension, no folder
        (["a red circle", "--interpolate", "a red circle", "a blue square", "-o", "new/"], "give -o FILE.png"),
    ]
    for args, message in cases:
        result = t2igan("sample", "shapes-dfgan", *args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, lines)
    assert (kept / "00000_0.png").read_bytes() == b"earlier work"
    assert not (tmp_path / "new").exists()


def test_captions_file_feeds_a_grid_too(tmp_path):
    (tmp_path / "captions.txt").write_text("a red circle\na blue square\n")
    result = t2igan("sample", "shapes-dfgan", "--captions-file", "captions.txt", "--n", "3", "-o", "grid.png",
                    cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote grid.png (6 images)" in result.stdout
    assert Image.open(tmp_path / "grid.png").width >= 3 * 32
