"""Run-folder safety: what ``Trainer.fit`` may write into a folder, and when.

* A folder that already holds a run is never trained into by accident: ``train --run-dir`` on it
  is refused unless ``--resume`` (continue it) or ``--overwrite`` (discard it) is given.
* A resume first loads and validates a checkpoint; only then is anything in the folder written,
  so a failed resume leaves every file as it was.
* On resume only the settings that can change mid-run (:data:`RESUMABLE`) may differ from the
  run's ``experiment.json``; the rest (batch size, seed, model, data set) would silently break the
  continuation, so a change is refused naming the setting.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .errors import T2IError
from .hub import CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME

# files and folders a training run writes (removed by --overwrite)
RUN_FILES = (CONFIG_NAME, "experiment.json", VOCAB_NAME, WEIGHTS_NAME, "log.jsonl", "metrics.jsonl")
RUN_FOLDERS = ("checkpoints", "samples", "tensorboard")

# settings a resumed run may change: learning rates and betas are applied to the restored optimizers
RESUMABLE = {
    "train": {"max_steps", "time_limit_min", "time_limit_clock", "lr_g", "lr_d", "betas_g", "betas_d", "device",
              "amp", "channels_last", "compile", "log_every", "sample_every", "checkpoint_every",
              "keep_checkpoints", "num_sample_captions"},
    "data": {"root", "num_workers"},
    # DAMSM's and STREAM's optimizer and end-of-run evaluation settings (their model config holds them)
    "model_args": {"lr", "betas", "grad_clip", "rprec_captions", "rprec_splits", "eval_images", "eval_beam"},
}


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds (part of) a training run."""
    if not run_dir.is_dir():
        return False
    ckpt = run_dir / "checkpoints"
    return any((run_dir / name).exists() for name in RUN_FILES) or (ckpt.is_dir() and any(ckpt.iterdir()))


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a run folder that cannot be trained into with these flags (nothing is written)."""
    if resume and overwrite:
        raise T2IError("--resume and --overwrite contradict each other: continue the run or discard it")
    if run_dir.exists() and not run_dir.is_dir():
        raise T2IError(f"run folder {run_dir} is a file, not a folder")
    if holds_run(run_dir) and not resume and not overwrite:
        raise T2IError(f"{run_dir} already holds a run; continue it with --resume, or discard it with --overwrite")


def clear_run(run_dir: Path) -> None:
    """Remove the files of a previous run (``--overwrite``); other files in the folder stay."""
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)
    for name in RUN_FOLDERS:
        if (run_dir / name).is_dir():
            shutil.rmtree(run_dir / name)


def check_resume_config(run_dir: Path, experiment: dict) -> None:
    """Refuse settings that differ from the run's ``experiment.json`` and cannot change on resume."""
    from .config import ExperimentConfig, rename_legacy_fields

    path = run_dir / "experiment.json"
    if not path.is_file():
        return
    try:
        saved = ExperimentConfig.from_dict(json.loads(path.read_text())).to_dict()
        saved["model_args"] = rename_legacy_fields(saved["model_args"] or {})
    except (ValueError, OSError) as e:
        raise T2IError(f"cannot resume: {path} is unreadable ({str(e)[:200]})") from None
    changed = []
    for section in ("model", "model_args", "data", "train"):
        old, new = saved.get(section), experiment.get(section)
        if isinstance(old, dict) and isinstance(new, dict):
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key) and key not in RESUMABLE.get(section, ()):
                    name = "model" if section == "model_args" else section
                    changed.append(f"{name}.{key} ({old.get(key)!r} -> {new.get(key)!r})")
        elif old != new:
            changed.append(f"{section} ({old!r} -> {new!r})")
    if changed:
        raise T2IError(f"cannot resume {run_dir} with a changed {', '.join(changed)}: only "
                       f"train.max_steps, learning rates, betas, time limit, logging, device and data.root/num_workers "
                       f"may change; start a new run instead")
