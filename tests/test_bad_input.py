"""Bad input through the real command line, one table row per case.

Every row runs ``python -m t2igan ...`` in a subprocess and must exit with status 2 and print exactly
one ``error: ...`` line (no traceback) matching the row's pattern; a row whose input is acceptable
instead exits 0 and shows its pattern in the output. Rows that touch a run folder work on a copy of
one tiny trained run (made once per session) and check that ``model.safetensors`` and every
checkpoint file are byte-identical afterwards. The rows run in parallel, a few processes at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from t2igan.config import resolve_config
from t2igan.runs import STATE_DIR, begin_overwrite
from t2igan.training import Trainer
from test_reliability import TINY  # the tiny DF-GAN every trainer test uses

TRAIN = ["train", "dfgan-shapes", *TINY, "--no-progress"]
DRY = ["train", "dfgan-shapes", "--dry-run"]


@dataclass
class Row:
    id: str
    argv: list[str]  # {run}: the run folder (a copy when copy=True), {tmp}: this row's own folder
    expect: str  # regex: the error line (status 2) or, for an accepted input, somewhere in the output
    status: int = 2
    copy: bool = False  # work on a private copy of the trained run (rows that may write or that damage it)
    setup: Callable[[Path, Path], None] | None = None  # f(run, tmp) before the command
    absent: tuple[str, ...] = ()  # paths (relative to tmp) that must not exist afterwards
    limit_file_size: int | None = None  # bytes: RLIMIT_FSIZE, a full disk for every write past it
    env: dict[str, str | None] = field(default_factory=dict)  # environment changes ({tmp} filled in; None: unset)
    every_file: bool = False  # every file of the run folder stays byte-identical, not only the trained ones


# ------------------------------------------------------------------------------------------ set-ups


def write(rel: str, content: bytes | str):
    def setup(run: Path, tmp: Path) -> None:
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return setup


def truncate_checkpoints(run: Path, tmp: Path) -> None:
    for p in (run / "checkpoints").glob("*.safetensors"):
        p.write_bytes(p.read_bytes()[:100])


def nan_file(path: Path) -> None:
    tensors = load_file(str(path))
    save_file({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in tensors.items()},
              str(path))


def nan_checkpoints(run: Path, tmp: Path) -> None:
    for p in (run / "checkpoints").glob("*.safetensors"):
        nan_file(p)


def nan_model(run: Path, tmp: Path) -> None:
    nan_file(run / "model.safetensors")


def huge_checkpoints(run: Path, tmp: Path) -> None:
    for p in (run / "checkpoints").glob("*.safetensors"):
        tensors = load_file(str(p))
        save_file({k: v * 1e30 if v.is_floating_point() else v for k, v in tensors.items()}, str(p))


def remove_model(run: Path, tmp: Path) -> None:
    (run / "model.safetensors").unlink()


def cut_log_line(run: Path, tmp: Path) -> None:
    with open(run / "log.jsonl", "a") as f:
        f.write('{"step": 5, "g_lo')


def run_config(content) -> Callable:
    def setup(run: Path, tmp: Path) -> None:
        (run / "config.json").write_text(json.dumps(content) if not isinstance(content, str) else content)
    return setup


def wrong_type_config(run: Path, tmp: Path) -> None:
    config = json.loads((run / "config.json").read_text())
    config["model_config"]["nf"] = "eight"
    (run / "config.json").write_text(json.dumps(config))


def png(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(path)


def image_folder(corrupt: bool, uncaptioned: bool) -> Callable:
    def setup(run: Path, tmp: Path) -> None:
        folder = tmp / "images"
        folder.mkdir()
        for i in range(8):
            png(folder / f"img{i}.png", i)
            (folder / f"img{i}.txt").write_text(f"a red circle number {i}\n")
        if corrupt:
            (folder / "img5.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        if uncaptioned:
            png(folder / "lonely.png", 99)
    return setup


def official_without_affine(run: Path, tmp: Path) -> None:
    torch.save({"netG": {"fc.weight": torch.zeros(1024, 100), "GBlocks.0.c1.weight": torch.zeros(2, 2)}},
               tmp / "official.pth")


def users_own_config(run: Path, tmp: Path) -> None:
    """The run's files, but config.json is the user's own and no manifest says otherwise."""
    shutil.rmtree(run / STATE_DIR)
    (run / "config.json").write_text('{"my": "settings"}')


def interrupted_overwrite(run: Path, tmp: Path) -> None:
    """The folder as an `--overwrite` killed after setting the old run aside leaves it."""
    assert begin_overwrite(run)[0]


def append_line(rel: str, line: bytes | str) -> Callable:
    def setup(run: Path, tmp: Path) -> None:
        with open(run / rel, "ab") as f:
            f.write(line if isinstance(line, bytes) else line.encode())
    return setup


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit PNG of ``width`` x ``height`` pixels in a few hundred KB (it decodes to GBs)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = zlib.compress(b"\x00" * ((width + 7) // 8 + 1) * height, 9)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", rows) + chunk(b"IEND", b""))


def sample_grid(content: bytes) -> Callable:
    def setup(run: Path, tmp: Path) -> None:
        (run / "samples").mkdir(exist_ok=True)
        (run / "samples" / "step-00000099.png").write_bytes(content)
    return setup


def config_max_words(value) -> Callable:
    def setup(run: Path, tmp: Path) -> None:
        config = json.loads((run / "config.json").read_text())
        config["experiment"]["data"]["max_words"] = value
        (run / "config.json").write_text(json.dumps(config))
    return setup


def bundled_folder() -> str:
    from t2igan.runs import BUNDLED_DIR

    return str(BUNDLED_DIR / "shapes-dfgan")


REPORT = ["report", "{run}", "-o", "{tmp}/report"]
WANDB_ONLINE = {"WANDB_MODE": "online", "WANDB_API_KEY": None, "HOME": "{tmp}", "NETRC": None, "WANDB_SILENT": "true"}
KEY = "k" * 40  # a well-formed API key; no server ever sees it

FOLDER_DATA = ["data.dataset=folder", "data.root={tmp}/images", "data.train_args={}", "data.test_args={}",
               "train.batch_size=4"]

# ------------------------------------------------------------------------------------------ the table

ROWS = [
    # typed, validated configs: --dry-run refuses what training would refuse
    Row("lr-as-yaml-string-accepted", [*DRY, "train.lr_g=1e-4"], r'"lr_g": 0\.0001', status=0),
    Row("batch-size-zero", [*DRY, "train.batch_size=0"], r"invalid train\.batch_size=0: expected an integer >= 1"),
    Row("batch-size-negative", [*DRY, "train.batch_size=-4"], r"invalid train\.batch_size=-4: expected an integer >= 1"),
    Row("batch-size-word", [*DRY, "train.batch_size=abc"], r"invalid train\.batch_size='abc': expected an integer"),
    Row("checkpoint-every-zero", [*DRY, "train.checkpoint_every=0"], r"invalid train\.checkpoint_every=0"),
    Row("log-every-zero", [*DRY, "train.log_every=0"], r"invalid train\.log_every=0"),
    Row("betas-out-of-range", [*DRY, "train.betas_g=[2,2]"], r"invalid train\.betas_g=\[2, 2\]: .*two numbers in \[0, 1\)"),
    Row("lr-negative", [*DRY, "train.lr_g=-1"], r"invalid train\.lr_g=-1: expected a finite number > 0"),
    Row("ema-decay-nan", [*DRY, "train.ema_decay=.nan"], r"invalid train\.ema_decay=nan: expected a finite number in \[0, 1\)"),
    Row("seed-too-large", [*DRY, "train.seed=1180591620717411303424"], r"invalid train\.seed=\d+: .*\[0, 2\^31\)"),
    Row("device-bogus-dry-run", [*DRY, "train.device=bogus"], r"invalid train\.device='bogus'"),
    Row("model-nf-negative", [*DRY, "model.nf=-3"], r"invalid model\.nf=-3: expected an integer >= 1"),
    Row("image-size-33", [*DRY, "data.image_size=33"], r"invalid data\.image_size=33: .*power of two >= 16"),
    Row("image-size-48", [*DRY, "data.image_size=48"], r"invalid data\.image_size=48: .*power of two >= 16"),
    Row("num-stages-zero", ["train", "attngan-shapes", "--dry-run", "model.num_stages=0"], r"invalid model\.num_stages=0"),
    Row("unknown-model-key", [*DRY, "model.nosuchkey=1"], r"unknown model config keys: \['nosuchkey'\]"),
    Row("section-not-a-mapping", [*DRY, "train=5"], r"config section 'train' must be a mapping"),
    Row("d-backbone-on-a-family-without-it", ["train", "attngan-shapes", "--dry-run", "model.d_backbone=damsm"],
        r"unknown model config keys: \['d_backbone'\]"),
    Row("d-backbone-unknown", [*DRY, "model.d_backbone=resnet"], r"invalid model\.d_backbone='resnet': .*none, damsm, damsm_random"),
    Row("d-augment-unknown", [*DRY, "model.d_augment=color"], r"invalid model\.d_augment='color': .*translation, cutout"),
    Row("d-backbone-without-damsm", [*TRAIN, "model.d_backbone=damsm", "model.damsm_weights=null", "--run-dir", "{tmp}/new"],
        r"d_backbone=damsm reads the image encoder of a pretrained DAMSM, but model\.damsm_weights is empty", absent=("new",)),
    Row("d-backbone-damsm-too-small", ["train", "dfgan-shapes", "data.image_size=128", "model.d_backbone=damsm",
                                       "--no-progress", "--run-dir", "{tmp}/new"],
        r"reads images at the DAMSM's 64 px, smaller than G's 128 px", absent=("new",)),
    Row("text-encoder-mode-typo", [*DRY, "model.text_encoder_mode=frozn"], r"invalid model\.text_encoder_mode='frozn': .*frozen, joint_d"),
    Row("yaml-tag-in-override", [*DRY, "train.seed=!!python/object/apply:os.system [touch {tmp}/pwned]"],
        r"override 'train\.seed=.*the value is not valid YAML", absent=("pwned",)),
    Row("yaml-tag-in-preset", ["train", "{tmp}/evil.yaml", "--dry-run"], r"preset .*evil\.yaml is not valid YAML",
        setup=write("evil.yaml", "train: !!python/object/apply:os.system [touch pwned]\n"), absent=("pwned",)),
    Row("preset-not-a-mapping", ["train", "{tmp}/list.yaml", "--dry-run"], r"must be a YAML mapping of sections",
        setup=write("list.yaml", "[1, 2]\n")),
    Row("unknown-preset", ["train", "no-such-preset"], r"unknown preset 'no-such-preset'"),
    Row("override-without-equals", ["train", "dfgan-shapes", "batch_size", "--dry-run"],
        r"override 'batch_size' must look like section\.key=value"),
    Row("unknown-option", [*DRY, "--bogus"], r"unrecognized arguments: --bogus \(see t2igan --help\)"),
    Row("sample-seed-not-a-number", ["sample", "{run}", "a red circle", "--seed", "2**70"],
        r"argument --seed: invalid int value: '2\*\*70' \(see t2igan sample --help\)"),
    # devices and paths at training time
    Row("train-device-missing-gpu", [*TRAIN, "train.device=cuda:99", "--run-dir", "{tmp}/new"],
        r"device 'cuda:99' is not available", absent=("new",)),
    Row("run-dir-is-a-file", [*TRAIN, "--run-dir", "{tmp}/afile"], r"run folder .*afile is a file, not a folder",
        setup=write("afile", "x")),
    Row("run-dir-under-a-file", [*TRAIN, "train.max_steps=1", "--run-dir", "{tmp}/afile/run"],
        r"Not a directory: .*afile", setup=write("afile", "x")),
    Row("jsonl-invalid-utf8", [*TRAIN, "data.dataset=jsonl", "data.root={tmp}/bad.jsonl", "data.train_args={}",
                               "data.test_args={}", "--run-dir", "{tmp}/new"],
        r"bad\.jsonl:2: not valid UTF-8 \(byte 0xff", setup=write("bad.jsonl", b'\n{"image": "x.png", "captions": ["a \xff"]}\n')),
    Row("corrupt-image-mid-run", [*TRAIN, *FOLDER_DATA, "train.max_steps=8", "--run-dir", "{tmp}/new"],
        r"cannot read image .*img5\.png.*training stopped at step \d+; last good checkpoint: ",
        setup=image_folder(corrupt=True, uncaptioned=False)),
    Row("image-without-caption-is-reported", [*TRAIN, *FOLDER_DATA, "train.max_steps=1", "--run-dir", "{tmp}/new"],
        r"warning: 1 of 9 images under .* have no same-name \.txt caption file .*lonely\.png", status=0,
        setup=image_folder(corrupt=False, uncaptioned=True)),
    Row("disk-full-mid-run", [*TRAIN, "train.max_steps=4", "--run-dir", "{tmp}/new"],
        r"File too large: .*step-00000002.*training stopped at step 2; last good checkpoint: none yet",
        limit_file_size=1 << 20, absent=("new/model.safetensors", "new/checkpoints/step-00000002.safetensors")),
    # run-folder safety: nothing trained is ever changed
    Row("train-into-existing-run", [*TRAIN, "--run-dir", "{run}"],
        r"already holds a run; continue it with --resume, or discard it with --overwrite", copy=True),
    Row("resume-and-overwrite", [*TRAIN, "--run-dir", "{run}", "--resume", "--overwrite"],
        r"--resume and --overwrite contradict each other", copy=True),
    Row("overwrite-batch-larger-than-data", [*TRAIN, "train.batch_size=100", "--run-dir", "{run}", "--overwrite"],
        r"fewer than one batch .*nothing in .* was changed", copy=True, every_file=True),
    Row("overwrite-never-replaces-the-users-config", [*TRAIN, "--run-dir", "{run}", "--overwrite"],
        r"config\.json was not written by a t2igan run and training would replace it", copy=True, every_file=True,
        setup=users_own_config),
    Row("resume-after-interrupted-overwrite", [*TRAIN, "--run-dir", "{run}", "--resume"],
        r"holds an interrupted --overwrite .*`t2igan undo-overwrite .*` puts the old run back", copy=True,
        every_file=True, setup=interrupted_overwrite),
    Row("sample-after-interrupted-overwrite", ["sample", "{run}", "a red circle", "-o", "{tmp}/a.png"],
        r"holds an interrupted --overwrite", copy=True, every_file=True, setup=interrupted_overwrite,
        absent=("a.png",)),
    Row("resume-without-run-dir", [*TRAIN, "--resume"], r"name the run folder to resume"),
    Row("resume-at-max-steps-changes-nothing", ["resume", "{run}"], r"already at step 4 .*nothing to train",
        status=0, copy=True),
    Row("resume-model-change-refused", ["resume", "{run}", "model.nf=16"], r"cannot resume .* changed model\.nf \(8 -> 16\)",
        copy=True),
    Row("resume-batch-size-change-refused", ["resume", "{run}", "train.batch_size=4", "train.max_steps=6"],
        r"changed train\.batch_size \(8 -> 4\)", copy=True),
    Row("resume-all-checkpoints-corrupt", ["resume", "{run}", "train.max_steps=6"],
        r"none of the 2 checkpoints in .* can be read", copy=True, setup=truncate_checkpoints),
    Row("resume-all-checkpoints-nan", ["resume", "{run}", "train.max_steps=6"],
        r"none of the 2 checkpoints in .* can be read", copy=True, setup=nan_checkpoints),
    Row("resume-all-checkpoints-diverged", ["resume", "{run}", "train.max_steps=6"],
        r"none of the 2 checkpoints in .* can be read", copy=True, setup=huge_checkpoints),
    Row("resume-disk-full", ["resume", "{run}", "train.max_steps=6"],
        r"File too large: .*step-00000006.*training stopped at step 6; last good checkpoint: .*step-00000004",
        copy=True, limit_file_size=1 << 20),
    Row("resume-broken-experiment", ["resume", "{run}"], r"experiment\.json is not valid JSON", copy=True,
        setup=lambda run, tmp: (run / "experiment.json").write_text("{")),
    Row("convert-into-existing-run", ["convert", "dfgan", "{tmp}/official.pth", "-o", "{run}"],
        r"already holds a run; convert into a new folder", copy=True, setup=official_without_affine),
    Row("convert-missing-key", ["convert", "dfgan", "{tmp}/official.pth", "-o", "{tmp}/out"],
        r"official\.pth: NetG has no 2-D GBlocks\.0\.fuse1\.affine0", setup=official_without_affine, absent=("out",)),
    # sampling
    Row("sample-seed-too-large", ["sample", "{run}", "a red circle", "--seed", str(2**70), "-o", "{tmp}/a.png"],
        r"seed must be an integer in \[0, 2\^63\), got 1180591620717411303424", absent=("a.png",)),
    Row("sample-truncation-nan", ["sample", "{run}", "a red circle", "--truncation", "nan", "-o", "{tmp}/a.png"],
        r"truncation must be a finite number >= 0", absent=("a.png",)),
    Row("sample-device-bogus", ["sample", "{run}", "a red circle", "--device", "bogus", "-o", "{tmp}/a.png"],
        r"unknown device 'bogus'"),
    Row("sample-device-missing-gpu", ["sample", "{run}", "a red circle", "--device", "cuda:99", "-o", "{tmp}/a.png"],
        r"device 'cuda:99' is not available"),
    Row("sample-output-missing-folder", ["sample", "{run}", "a red circle", "-o", "{tmp}/no/such/a.png"],
        r"cannot write .*/no/such/a\.png: folder .* does not exist"),
    Row("sample-output-under-a-file", ["sample", "{run}", "a red circle", "-o", "{tmp}/afile/a.png"],
        r"cannot write .*afile/a\.png: folder .*afile is a file, not a folder", setup=write("afile", "x")),
    Row("sample-output-unknown-extension", ["sample", "{run}", "a red circle", "-o", "{tmp}/a.xyz"],
        r"unknown image extension '\.xyz'"),
    Row("sample-caption-non-utf8-byte", ["sample", "{run}", "a red circle \udcff", "-o", "{tmp}/a.png"],
        r"caption 'a red circle \\udcff' is not valid UTF-8 text", absent=("a.png",)),
    Row("sample-empty-caption", ["sample", "{run}", "  ", "-o", "{tmp}/a.png"], r"empty caption '  '"),
    Row("sample-unknown-words", ["sample", "{run}", "zebra xylophone", "-o", "{tmp}/a.png"],
        r"caption 'zebra xylophone' has only unknown words: zebra, xylophone"),
    Row("sample-no-caption", ["sample", "{run}", "-o", "{tmp}/a.png"], r"give at least one caption"),
    Row("sample-n-zero", ["sample", "{run}", "a red circle", "--n", "0", "-o", "{tmp}/a.png"], r"n must be at least 1"),
    Row("sample-too-many", ["sample", "{run}", "a red circle", "--n", "100000", "-o", "{tmp}/a.png"],
        r"100000 images do not fit one grid \(at most 256\); write them to a folder instead: -o DIR/"),
    Row("sample-output-no-extension", ["sample", "{run}", "a red circle", "-o", "{tmp}/a"],
        r"cannot write .*/a: no image extension; give .*/a\.png for a grid, or .*/a/ for a folder", absent=("a",)),
    Row("sample-attention-without-attention", ["sample", "{run}", "a red circle", "--attention", "-o", "{tmp}/a.png"],
        r"--attention: the dfgan model has no word attention", absent=("a.png", "a-attention.png")),
    Row("sample-masks-without-masks", ["sample", "{run}", "a red circle", "--masks", "-o", "{tmp}/a.png"],
        r"--masks: the dfgan model predicts no masks", absent=("a.png", "a-masks.png")),
    Row("sample-mirror-without-stream", ["sample", "{run}", "a red circle", "--mirror", "-o", "{tmp}/a.png"],
        r"--mirror: the dfgan model has no STREAM captioner", absent=("a.png",)),
    Row("sample-stream-not-a-stream", ["sample", "{run}", "a red circle", "--mirror", "--stream", "shapes-dfgan",
                                       "-o", "{tmp}/a.png"], r"is a .dfgan. run, not a stream or mirrorgan run", absent=("a.png",)),
    Row("sample-stream-without-mirror", ["sample", "{run}", "a red circle", "--stream", "shapes-mirrorgan",
                                         "-o", "{tmp}/a.png"], r"--stream names the STREAM of --mirror: add --mirror"),
    Row("sample-folder-with-figures", ["sample", "{run}", "a red circle", "--attention", "-o", "{tmp}/out/"],
        r"--attention write or print figures beside a grid: give -o FILE\.png", absent=("out",)),
    Row("sample-folder-not-empty", ["sample", "{run}", "a red circle", "-o", "{tmp}/out/"],
        r"out already holds 1 PNG file\(s\); write into a new or empty folder", setup=write("out/x.png", "x")),
    Row("sample-captions-file-missing", ["sample", "{run}", "--captions-file", "{tmp}/none.txt", "-o", "{tmp}/a.png"],
        r"captions file not found: .*none\.txt", absent=("a.png",)),
    Row("sample-captions-file-blank", ["sample", "{run}", "--captions-file", "{tmp}/c.txt", "-o", "{tmp}/a.png"],
        r"captions file .*c\.txt holds no caption", setup=write("c.txt", "\n  \n"), absent=("a.png",)),
    Row("sample-captions-file-not-utf8", ["sample", "{run}", "--captions-file", "{tmp}/c.txt", "-o", "{tmp}/a.png"],
        r"captions file .*c\.txt is not UTF-8 text", setup=write("c.txt", b"a red \xff circle\n"), absent=("a.png",)),
    Row("sample-unknown-word-warns", ["sample", "{run}", "a red zebra circle", "--n", "1", "-o", "{tmp}/a.png"],
        r"warning: the dfgan model does not know 'zebra'", status=0),
    Row("sample-checkpoint-path", ["sample", "{run}/checkpoints/step-00000004.safetensors", "a red circle", "--n", "1",
                                   "-o", "{tmp}/a.png"], r"wrote .*a\.png \(1 images\)", status=0),
    Row("sample-interpolate-one-step", ["sample", "{run}", "--interpolate", "a red circle", "a blue square",
                                        "--steps", "1", "-o", "{tmp}/a.png"], r"interpolation needs 2 to 256 steps"),
    Row("sample-missing-run", ["sample", "{tmp}/nothing", "a red circle"], r"run folder not found: .*nothing"),
    Row("sample-nan-weights", ["sample", "{run}", "a red circle", "-o", "{tmp}/a.png"],
        r"model\.safetensors holds non-finite weights \(.*\): the model cannot generate", copy=True, setup=nan_model,
        absent=("a.png",)),
    Row("sample-no-weights-yet", ["sample", "{run}", "a red circle", "-o", "{tmp}/a.png"],
        r"has no trained weights yet", copy=True, setup=remove_model),
    Row("sample-config-empty-object", ["sample", "{run}", "a red circle"], r"config\.json is not a t2igan run config: "
        r"'model_name' is missing", copy=True, setup=run_config({})),
    Row("sample-config-a-list", ["sample", "{run}", "a red circle"], r"expected a JSON object, got list", copy=True,
        setup=run_config([1, 2])),
    Row("sample-config-wrong-type", ["sample", "{run}", "a red circle"],
        r"config\.json: invalid model\.nf='eight': expected an integer", copy=True, setup=wrong_type_config),
    Row("sample-config-not-json", ["sample", "{run}", "a red circle"], r"config\.json is not valid JSON", copy=True,
        setup=run_config("{\"model_name\": ")),
    Row("sample-vocab-corrupt", ["sample", "{run}", "a red circle"], r"vocab\.json is not a t2igan vocabulary", copy=True,
        setup=lambda run, tmp: (run / "vocab.json").write_text("[]")),
    Row("info-cut-log-line-accepted", ["info", "{run}"], r"last log: +step=4", status=0, copy=True, setup=cut_log_line),
    Row("info-config-empty-object", ["info", "{run}"], r"is not a t2igan run config", copy=True, setup=run_config({})),
    Row("sample-config-max-words-negative", ["sample", "{run}", "a red circle", "-o", "{tmp}/a.png"],
        r"config\.json: invalid data\.max_words=-1: expected an integer >= 1", copy=True, setup=config_max_words(-1),
        absent=("a.png",), every_file=True),
    # experiment trackers: W&B refusals before the run folder exists, in seconds (not W&B's 90 s of retries)
    Row("train-wandb-mode-bogus", [*TRAIN, "train.loggers=[wandb]", "--run-dir", "{tmp}/new"],
        r"WANDB_MODE='bogus' is not a W&B mode", env={"WANDB_MODE": "bogus"}, absent=("new",), every_file=True),
    Row("train-wandb-online-without-key", [*TRAIN, "train.loggers=[wandb]", "--run-dir", "{tmp}/new"],
        r"WANDB_MODE=online needs a W&B API key", env=WANDB_ONLINE, absent=("new",), every_file=True),
    Row("train-wandb-online-server-unreachable", [*TRAIN, "train.loggers=[wandb]", "--run-dir", "{tmp}/new"],
        r"WANDB_MODE=online: the W&B server http://127\.0\.0\.1:9 cannot be reached",
        env={**WANDB_ONLINE, "WANDB_API_KEY": KEY, "WANDB_BASE_URL": "http://127.0.0.1:9"}, absent=("new",), every_file=True),
    # the web page: what cannot be served is one line
    Row("serve-port-out-of-range", ["serve", "{run}", "--port", "99999"],
        r"port must be a whole number from 0 to 65535 \(0: any free port\), got 99999", every_file=True),
    Row("serve-address-not-here", ["serve", "{run}", "--host", "192.0.2.1", "--port", "0"],
        r"cannot listen on 192\.0\.2\.1:0: ", every_file=True),
    # the report reads a run folder as data: every malformed file is one line naming it
    Row("report-log-json-array", REPORT, r"log\.jsonl: line 5 is a JSON list, not an object", copy=True,
        setup=append_line("log.jsonl", "[1, 2]\n"), absent=("report/index.html",), every_file=True),
    Row("report-log-json-number", REPORT, r"log\.jsonl: line 5 is a JSON int, not an object", copy=True,
        setup=append_line("log.jsonl", "5\n"), absent=("report/index.html",), every_file=True),
    Row("report-log-row-without-step", REPORT, r"log\.jsonl: line 5 has no whole-number 'step' \(got null\)",
        copy=True, setup=append_line("log.jsonl", '{"g_loss": 1.0}\n'), absent=("report/index.html",), every_file=True),
    Row("report-log-huge-number", REPORT, r"log\.jsonl: line 5: 'g_loss' is a 401-digit number, too large for a float",
        copy=True, setup=append_line("log.jsonl", '{"step": 5, "g_loss": 1' + "0" * 400 + "}\n"),
        absent=("report/index.html",), every_file=True),
    Row("report-log-time-s-text", REPORT, r"log\.jsonl: line 5: 'time_s' must be a number of seconds, got \"ten\"",
        copy=True, setup=append_line("log.jsonl", '{"step": 5, "g_loss": 1.0, "time_s": "ten"}\n'),
        absent=("report/index.html",), every_file=True),
    Row("report-log-invalid-utf8", REPORT, r"log\.jsonl: line 5 is not valid UTF-8 \(byte 0xff\)", copy=True,
        setup=append_line("log.jsonl", b'{"step": 5, "note": "\xff"}\n'), absent=("report/index.html",), every_file=True),
    Row("report-metrics-json-array", REPORT, r"metrics\.jsonl: line 1 is a JSON list, not an object", copy=True,
        setup=append_line("metrics.jsonl", "[1]\n"), absent=("report/index.html",), every_file=True),
    Row("report-metrics-name-not-text", REPORT, r"metrics\.jsonl: line 1: 'metric' must be a name, got \[\"fid\"\]",
        copy=True, setup=append_line("metrics.jsonl", '{"metric": ["fid"], "value": 1}\n'), absent=("report/index.html",), every_file=True),
    Row("report-sample-decompression-bomb", REPORT, r"step-00000099\.png: an image too large to decode safely",
        copy=True, setup=sample_grid(bomb_png(30000, 30000)), absent=("report/index.html",), every_file=True),
    Row("report-sample-not-an-image", REPORT, r"step-00000099\.png: not a readable image", copy=True,
        setup=sample_grid(b"\x89PNG\r\n\x1a\nnot really"), absent=("report/index.html",), every_file=True),
    Row("report-config-not-json", REPORT, r"config\.json is not valid JSON", copy=True, setup=run_config("{"),
        absent=("report/index.html",), every_file=True),
    Row("report-config-a-list", REPORT, r"config\.json must hold a JSON object, got a list", copy=True,
        setup=run_config([1]), absent=("report/index.html",), every_file=True),
    Row("report-config-invalid-utf8", REPORT, r"config\.json: line 1 is not valid UTF-8 \(byte 0xff\)", copy=True,
        setup=lambda run, tmp: (run / "config.json").write_bytes(b'{"model_name": "\xff"}'),
        absent=("report/index.html",), every_file=True),
    Row("report-bundled-name", ["report", "shapes-dfgan"], r"wrote report-shapes-dfgan/index\.html and 2 figures: "
        r"grid-shapes-dfgan\.png, captions-shapes-dfgan\.png", status=0, every_file=True),
    Row("report-into-the-package", ["report", "shapes-dfgan", "-o", bundled_folder() + "/report"],
        r"the report cannot be written into the package's bundled models", every_file=True),
]

PROTECTED_GLOBS = ("model.safetensors", "checkpoints/*")


def snapshot(run: Path, every_file: bool = False) -> dict[str, str]:
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for pattern in (("**/*",) if every_file else PROTECTED_GLOBS) for p in sorted(run.glob(pattern)) if p.is_file()}


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("bad-input") / "run"
    Trainer(resolve_config("dfgan-shapes", TINY + ["train.max_steps=4"]), run, progress=False).fit()
    return run


@dataclass
class Outcome:
    status: int
    stdout: str
    stderr: str
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    tmp: Path | None = None


def run_row(row: Row, trained: Path, base: Path) -> Outcome:
    tmp = base / row.id
    tmp.mkdir()
    run = trained
    if row.copy:
        run = tmp / "run"
        shutil.copytree(trained, run)
    if row.setup:
        row.setup(run, tmp)
    before = snapshot(run, row.every_file)
    argv = [a.replace("{run}", str(run)).replace("{tmp}", str(tmp)) for a in row.argv]
    limit = row.limit_file_size

    def limit_writes():
        if limit:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    for key, value in row.env.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value.replace("{tmp}", str(tmp))
    proc = subprocess.run([sys.executable, "-m", "t2igan", *argv], cwd=tmp, env=env, capture_output=True,
                          timeout=300, preexec_fn=limit_writes)
    return Outcome(proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"),
                   before, snapshot(run, row.every_file), tmp)


@pytest.fixture(scope="module")
def outcomes(trained_run, tmp_path_factory) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("rows")
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {row.id: pool.submit(run_row, row, trained_run, base) for row in ROWS}
    return {k: f.result() for k, f in futures.items()}


def test_row_ids_are_unique():
    assert len({r.id for r in ROWS}) == len(ROWS)


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_bad_input_gives_one_line_and_changes_no_trained_file(row: Row, outcomes):
    out = outcomes[row.id]
    report = f"status {out.status}\nstdout:\n{out.stdout[-1500:]}\nstderr:\n{out.stderr[-3000:]}"
    assert "Traceback" not in out.stderr, report
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.status == row.status, report
    if row.status == 2:
        assert len(errors) == 1, report
        assert re.search(row.expect, errors[0]), report
    else:
        assert not errors, report
        assert re.search(row.expect, out.stdout + out.stderr), report
    assert out.after == out.before, "a trained file changed:\n" + report
    assert out.before, "the row's run folder has no trained files to protect"
    for rel in row.absent:
        assert not (out.tmp / rel).exists(), f"{rel} was written\n{report}"
    assert not list(out.tmp.glob("t2igan-traceback-*")), report
