"""Run folders: the one place that finds, checks, writes and reads them.

A trained model lives in a run folder::

    runs/00003-dfgan-shapes/
      config.json          format version, the experiment config and the model's full config
      vocab.json           the vocabulary
      model.safetensors    weights for inference (the generator is its moving average)
      experiment.json      the resolved experiment config (training runs)
      checkpoints/         training checkpoints (see t2igan.training.checkpoints)
      samples/, log.jsonl  sample grids and losses written during training

:func:`load_run` rebuilds the model from ``config.json`` alone (nanoGPT/diffusers style). A name
that is not a folder on disk is looked up among the models bundled with the package
(``src/t2igan/pretrained/<name>/``, written by ``tools/bundle_pretrained.py``). ``config.json``
records :data:`FORMAT_VERSION`; a folder written in another format is refused with one line naming
its version, never read by guessing.

Training-run safety (:func:`check_run_dir`, :func:`check_resume_config`):

* a folder that already holds a run is never trained into by accident: ``train --run-dir`` on it is
  refused unless ``--resume`` (continue it) or ``--overwrite`` (discard it) is given;
* a resume first loads and validates a checkpoint; only then is anything in the folder written;
* on resume only the settings that can change mid-run (:data:`RESUMABLE`) may differ from the run's
  ``experiment.json``; the rest (batch size, seed, model, data set) would silently break the
  continuation, so a change is refused naming the setting.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .errors import T2IError
from .hub import atomic_write_bytes, first_bad_tensor, load_safetensors_into, save_safetensors

CONFIG_NAME = "config.json"
VOCAB_NAME = "vocab.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1  # of config.json; raise it when a change makes older run folders read differently
BUNDLED_DIR = Path(__file__).parent / "pretrained"


# ---------------------------------------------------------------------------------------------------
# finding a run folder
# ---------------------------------------------------------------------------------------------------


def bundled_names() -> list[str]:
    """Names of the models shipped with the package, sorted."""
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / CONFIG_NAME).is_file())


def bundled_card(name: str) -> dict:
    """The model card's facts (``card.json``: command, steps, hardware, time, probe scores) of a bundled model."""
    path = BUNDLED_DIR / name / "card.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def is_bundled(path: str | Path) -> bool:
    """True when ``path`` is (inside) the package's folder of bundled models: nothing is written there."""
    try:
        return Path(path).resolve().is_relative_to(BUNDLED_DIR.resolve())
    except OSError:
        return False


def resolve_run_dir(name_or_path: str | Path, file_ok: bool = False) -> Path:
    """A run folder on disk, or the folder of the bundled model of that name; with ``file_ok`` a file
    in a run folder (its ``model.safetensors``) stands for its folder.

    A folder on disk wins over a bundled name; a name that is neither is an error listing the
    bundled models. A path that does not exist is returned as it is (reading it fails clearly).
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if file_ok and path.is_file():
        return path.parent
    name = str(name_or_path)
    if name in bundled_names():
        return BUNDLED_DIR / name
    if "/" not in name and "\\" not in name and not path.exists():
        known = ", ".join(bundled_names()) or "none"
        raise T2IError(f"no run folder and no bundled model named {name!r} (bundled: {known})")
    return path


# ---------------------------------------------------------------------------------------------------
# config.json
# ---------------------------------------------------------------------------------------------------


def run_config_problem(config: dict) -> str | None:
    """Why a ``config.json`` object is not a run config of this format version, or None (the report
    shows such a folder, saying what its config lacks)."""
    for key, expected in (("model_name", str), ("model_config", dict)):
        if not isinstance(config.get(key), expected):
            return f"{key!r} is missing or not a {expected.__name__}"
    version = config.get("format_version", 0)  # 0: written before config.json recorded its format
    if version != FORMAT_VERSION:
        return f"it is in run-folder format {version}; this t2igan reads format {FORMAT_VERSION}"
    if not isinstance(config.get("experiment", {}), dict):
        return "'experiment' is not an object"
    return None


def read_config(run: str | Path, kind: str | tuple[str, ...] | None = None, file_ok: bool = False) -> dict:
    """The checked ``config.json`` of a run folder (or bundled name): a JSON object of this format
    version with ``model_name`` and ``model_config``; with ``kind``, the model name(s) the run must hold
    (an error names what it holds instead)."""
    run_dir = resolve_run_dir(run, file_ok)
    path = run_dir / CONFIG_NAME
    if not run_dir.is_dir():
        raise T2IError(f"run folder not found: {run_dir}")
    if not path.is_file():
        raise T2IError(f"{run_dir} is not a t2igan run folder: {CONFIG_NAME} is missing")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise T2IError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise T2IError(f"{path} is not a t2igan run config: expected a JSON object, got {type(config).__name__}")
    for key, expected in (("model_name", str), ("model_config", dict)):
        if not isinstance(config.get(key), expected):
            raise T2IError(f"{path} is not a t2igan run config: {key!r} is missing or not a {expected.__name__}")
    version = config.get("format_version", 0)  # 0: written before config.json recorded its format
    if version != FORMAT_VERSION:
        raise T2IError(f"{path} is in run-folder format {version}; this t2igan reads format {FORMAT_VERSION}: "
                       "train or convert the run again")
    if not isinstance(config.get("experiment", {}), dict):
        raise T2IError(f"{path} is not a t2igan run config: 'experiment' is not an object")
    kinds = (kind,) if isinstance(kind, str) else kind
    if kinds and config["model_name"] not in kinds:
        raise T2IError(f"{run_dir} is a {config['model_name']!r} run, not a {' or '.join(kinds)} run")
    return config


def inference_state_dict(model: torch.nn.Module, ema_generator: torch.nn.Module | None) -> dict[str, torch.Tensor]:
    """The model's weights with ``generator.*`` taken from the moving-average copy."""
    state = dict(model.state_dict())
    if ema_generator is not None:
        for k, v in ema_generator.state_dict().items():
            state[f"generator.{k}"] = v
    return state


def save_run(run_dir: str | Path, experiment: dict, model, vocab, ema_generator=None, weights: bool = True) -> None:
    """Write ``config.json``, ``vocab.json`` and (with ``weights``) ``model.safetensors`` for inference.
    Training writes the weights only with a checkpoint, so they are always trained ones."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"format_version": FORMAT_VERSION, "experiment": experiment, "model_name": model.model_name,
              "model_config": model.config_dict()}
    atomic_write_bytes(run_dir / CONFIG_NAME, json.dumps(config, indent=2).encode())
    atomic_write_bytes(run_dir / VOCAB_NAME, json.dumps(vocab.to_dict(), ensure_ascii=False).encode())
    if weights:
        save_safetensors(inference_state_dict(model, ema_generator), run_dir / WEIGHTS_NAME, {"format": "pt"})


def load_vocab(run: str | Path, file_ok: bool = False):
    """The ``vocab.json`` of a run folder (or bundled name)."""
    from .data.text import Vocabulary

    return Vocabulary.load(resolve_run_dir(run, file_ok) / VOCAB_NAME)


def load_run(run: str | Path, device: str | torch.device = "cpu", kind: str | tuple[str, ...] | None = None,
             file_ok: bool = False):
    """Rebuild ``(model, vocab, config)`` from a run folder or a bundled model's name; the model is in
    eval mode. ``kind``: the model name(s) the run must hold (an error names what it holds instead).
    Weights stored in fp16 are loaded into the model's fp32 parameters."""
    from .models import create_model

    run_dir = resolve_run_dir(run, file_ok)
    config = read_config(run_dir, kind)
    name = config["model_name"]
    # config fields named *_weights point at pretrained parts used to start training; a run's own
    # model.safetensors already holds those parts, so they are not read again
    model_config = {k: (None if k.endswith("_weights") else v) for k, v in config["model_config"].items()}
    try:
        model = create_model(name, **model_config)
    except T2IError as e:
        raise T2IError(f"{run_dir / CONFIG_NAME}: {e}") from None
    weights = run_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise T2IError(f"{run_dir} has no trained weights yet: {WEIGHTS_NAME} is written with the first checkpoint")
    # a bundled model ships its inference weights only: the training-only networks stay as built
    may_lack = tuple(f"{m}." for m in model.training_only_modules) if config.get("inference_only") else ()
    load_safetensors_into(model, weights, may_lack=may_lack)
    bad = first_bad_tensor(model.state_dict())
    if bad:
        raise T2IError(f"{weights} holds {bad}: the model cannot generate images")
    return model.to(device).eval(), load_vocab(run_dir), config


def _checked_vocab(model, vocab, run_dir: Path, label: str):
    if len(vocab) != model.config.vocab_size:
        raise T2IError(f"{run_dir}: vocab.json has {len(vocab)} words but the {label} was built for "
                       f"{model.config.vocab_size}")
    return model, vocab


def load_damsm(run: str | Path, device: str | torch.device = "cpu"):
    """``(DAMSM in eval mode, Vocabulary)`` of a DAMSM run folder, a file in it or a bundled name."""
    run_dir = resolve_run_dir(run, file_ok=True)
    if not run_dir.exists():
        raise T2IError(f"DAMSM run folder not found: {run}")
    model, vocab, _ = load_run(run_dir, device, kind="damsm")
    return _checked_vocab(model, vocab, run_dir, "DAMSM")


def load_stream(run: str | Path, device: str | torch.device = "cpu"):
    """``(StreamCaptioner in eval mode, Vocabulary)`` of a ``t2igan pretrain stream`` run folder (a file
    in it, a bundled name), or the STREAM inside a MirrorGAN run."""
    run_dir = resolve_run_dir(run, file_ok=True)
    if not run_dir.exists():
        raise T2IError(f"STREAM run folder not found: {run}")
    model, vocab, config = load_run(run_dir, device, kind=("stream", "mirrorgan"))
    if config["model_name"] == "mirrorgan":
        return model.stream, vocab
    return _checked_vocab(model, vocab, run_dir, "STREAM")


# ---------------------------------------------------------------------------------------------------
# training runs
# ---------------------------------------------------------------------------------------------------

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


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """``runs/00007-<name>``: the next free number."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    nums = [int(p.name[:5]) for p in runs_dir.iterdir() if p.is_dir() and p.name[:5].isdigit()]
    path = runs_dir / f"{(max(nums) + 1 if nums else 0):05d}-{name}"
    path.mkdir()
    return path


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


def read_experiment(run_dir: Path) -> dict:
    """The experiment config a run was trained with: its ``experiment.json`` (or, without one, the copy
    in ``config.json``)."""
    exp = read_config(run_dir).get("experiment")
    path = run_dir / "experiment.json"
    if path.is_file():
        try:
            exp = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise T2IError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(exp, dict):
        raise T2IError(f"{run_dir} has no experiment config to resume (experiment.json)")
    return exp


def check_resume_config(run_dir: Path, experiment: dict) -> None:
    """Refuse settings that differ from the run's ``experiment.json`` and cannot change on resume."""
    from .config import ExperimentConfig

    path = run_dir / "experiment.json"
    if not path.is_file():
        return
    try:
        saved = ExperimentConfig.from_dict(json.loads(path.read_text())).to_dict()
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
