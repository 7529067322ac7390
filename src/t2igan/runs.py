"""Run folders: the one place that finds, checks, writes and reads them.

A trained model lives in a run folder::

    runs/00003-dfgan-shapes/
      config.json          format version, the experiment config and the model's full config
      vocab.json           the vocabulary
      model.safetensors    weights for inference (the generator is its moving average)
      experiment.json      the resolved experiment config (training runs)
      checkpoints/         training checkpoints (see t2igan.training.checkpoints)
      samples/, log.jsonl  sample grids and losses written during training
      .t2igan/             bookkeeping: manifest.json (every file the run wrote), the writer's lock,
                           and during an --overwrite its journal and the old run (old/)

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
  continuation, so a change is refused naming the setting;
* one writer at a time (:class:`RunLock`): a second training of the folder is refused naming the
  process that writes it; the operating system drops the lock of a killed process;
* the run's manifest lists every file it writes, recorded before it is written; ``--overwrite``
  touches nothing else, and a training that would replace a file no run wrote is refused;
* ``--overwrite`` moves the old run aside (:func:`begin_overwrite`) and deletes it only once the new
  run's first checkpoint has been read back (:func:`commit_overwrite`); a failure before that puts
  it back (:func:`undo_overwrite`), and a folder whose overwrite was killed half-way is refused by
  every command (:func:`check_no_unfinished_overwrite`) until it is undone or done again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import T2IError
from .hub import atomic_write_bytes, first_bad_tensor, load_safetensors_into, save_safetensors

CONFIG_NAME = "config.json"
VOCAB_NAME = "vocab.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 1  # of config.json; raise it when a change makes older run folders read differently
BUNDLED_DIR = Path(__file__).parent / "pretrained"

if TYPE_CHECKING:  # torch is imported where a model is built, so finding run folders starts fast
    import torch


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


def resolve_path(path: str | Path) -> Path:
    """``path`` itself when it exists; ``NAME/FILE`` that does not exist, with ``NAME`` a bundled model,
    is that model's file (``data.vocab=shapes-damsm/vocab.json``)."""
    path = Path(path).expanduser()
    if not path.exists() and len(path.parts) > 1 and path.parts[0] in bundled_names():
        return BUNDLED_DIR.joinpath(*path.parts)
    return path


def checkpoint_file(path: str | Path) -> Path | None:
    """``path`` when it names a training checkpoint's weights (``RUN/checkpoints/step-N.safetensors``), else None."""
    path = Path(path).expanduser()
    if path.parent.name == "checkpoints" and path.name.startswith("step-") and path.suffix == ".safetensors" \
            and path.is_file():
        return path
    return None


def resolve_run_dir(name_or_path: str | Path, file_ok: bool = False) -> Path:
    """A run folder on disk, or the folder of the bundled model of that name; with ``file_ok`` a file
    in a run folder (its ``model.safetensors``, a checkpoint in its ``checkpoints/``) stands for its folder.

    A folder on disk wins over a bundled name; a name that is neither is an error naming the closest
    bundled models. A path that does not exist is returned as it is (reading it fails clearly). A
    folder in the middle of an ``--overwrite`` is refused (:func:`check_no_unfinished_overwrite`).
    """
    path = resolve_path(name_or_path)
    if path.is_dir():
        check_no_unfinished_overwrite(path)
        return path
    if file_ok and checkpoint_file(path):
        check_no_unfinished_overwrite(path.parent.parent)
        return path.parent.parent
    if file_ok and path.is_file():
        check_no_unfinished_overwrite(path.parent)
        return path.parent
    name = str(name_or_path)
    if name in bundled_names():
        return BUNDLED_DIR / name
    if "/" not in name and "\\" not in name and not path.exists():
        from .errors import did_you_mean

        known = ", ".join(bundled_names()) or "none"
        raise T2IError(f"no run folder and no bundled model named {name!r}{did_you_mean(name, bundled_names())} "
                       f"(bundled: {known})")
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
    record_files(run_dir, *FIXED_FILES)
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
    """Rebuild ``(model, vocab, config)`` from a run folder or a bundled model's name (with ``file_ok``
    also a file in a run folder: ``model.safetensors``, or a training checkpoint
    ``checkpoints/step-N.safetensors``, whose generator is then its moving average); the model is in
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
    checkpoint = checkpoint_file(run) if file_ok else None
    weights = checkpoint or run_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise T2IError(f"{run_dir} has no trained weights yet: {WEIGHTS_NAME} is written with the first checkpoint")
    if checkpoint:  # the trainer's weights (model.*) with the generator from its moving average (ema.*)
        load_safetensors_into(model, checkpoint, prefix="model.")
        if ema_in_checkpoint(checkpoint):
            load_safetensors_into(model.generator, checkpoint, prefix="ema.")
    else:
        # a bundled model ships its inference weights only: the training-only networks stay as built
        may_lack = tuple(f"{m}." for m in model.training_only_modules) if config.get("inference_only") else ()
        load_safetensors_into(model, weights, may_lack=may_lack)
    bad = first_bad_tensor(model.state_dict())
    if bad:
        raise T2IError(f"{weights} holds {bad}: the model cannot generate images")
    return model.to(device).eval(), load_vocab(run_dir), config


def ema_in_checkpoint(path: Path) -> bool:
    """Whether a training checkpoint holds a moving average of the generator (``ema.*`` tensors)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return any(k.startswith("ema.") for k in f.keys())


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


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse a run folder that cannot be trained into with these flags (nothing is written): one that
    holds a run without ``resume``/``overwrite``, one with an interrupted ``--overwrite`` (unless this
    is ``--overwrite`` again), and one where training would replace a file that no run wrote."""
    if resume and overwrite:
        raise T2IError("--resume and --overwrite contradict each other: continue the run or discard it")
    if run_dir.exists() and not run_dir.is_dir():
        raise T2IError(f"run folder {run_dir} is a file, not a folder")
    if not overwrite:
        check_no_unfinished_overwrite(run_dir)
    owned = set(run_files(run_dir))
    if owned and not resume and not overwrite:
        raise T2IError(f"{run_dir} already holds a run; continue it with --resume, or discard it with --overwrite")
    for name in FIXED_FILES:
        if os.path.lexists(run_dir / name) and name not in owned:
            raise T2IError(f"{run_dir / name} was not written by a t2igan run and training would replace it: "
                           f"move it out of the folder, or train into another --run-dir")


def holds_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds (part of) a run: files its manifest lists (or, written before
    manifests, files named as a run names them)."""
    return bool(run_files(run_dir))


# ---------------------------------------------------------------------------------------------------
# the run's own files: the manifest
# ---------------------------------------------------------------------------------------------------

STATE_DIR = ".t2igan"  # the folder's bookkeeping: lock, manifest, an --overwrite's journal and the old run
MANIFEST_NAME = "manifest.json"
# the files every run may write under these names (recorded in its manifest before it writes them)
FIXED_FILES = (CONFIG_NAME, "experiment.json", VOCAB_NAME, WEIGHTS_NAME, "log.jsonl", "metrics.jsonl")
# what a run written before manifests holds, by name (its config.json must be a t2igan run config)
PRE_MANIFEST_PATTERNS = FIXED_FILES[1:] + (
    "checkpoints/step-*.safetensors", "checkpoints/step-*.state.pt", "samples/step-*.png",
    "tensorboard/events.out.tfevents.*", "wandb/offline-run-*", "wandb/run-*", "wandb/latest-run",
    "wandb/debug.log", "wandb/debug-internal.log")
# temporary files of an atomic write (hub.atomic_write_bytes: ".NAME.XXXXXXXX.tmp") a kill left behind
TMP_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")


def entry_path(run_dir: Path, rel) -> Path | None:
    """The path of a manifest entry (``samples/step-00000002.png``, ``wandb/`` for a whole folder), or
    None for one that would reach outside the folder: absolute, ``..``, through a symbolic link, or into
    the bookkeeping folder. A manifest is data read from the folder; it never names a path to touch
    elsewhere."""
    if not isinstance(rel, str) or not rel.strip("/") or rel.startswith("/") or "\\" in rel or "\x00" in rel:
        return None
    parts = rel.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts) or parts[0] == STATE_DIR:
        return None
    path = Path(run_dir)
    for part in parts[:-1]:
        path = path / part
        if path.is_symlink():
            return None
    return path / parts[-1]


def read_manifest(run_dir: Path) -> list[str] | None:
    """The entries of ``RUN/.t2igan/manifest.json`` (None when there is none); entries that would reach
    outside the folder are dropped."""
    path = Path(run_dir) / STATE_DIR / MANIFEST_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise T2IError(f"{path} is not valid JSON ({e}): the run's files cannot be told from others; delete "
                       "it and they are recognised by their names") from None
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, list):
        raise T2IError(f"{path} is not a t2igan manifest (no 'files' list): the run's files cannot be told "
                       "from others; delete it and they are recognised by their names")
    return [rel for rel in files if entry_path(run_dir, rel) is not None]


def pre_manifest_files(run_dir: Path) -> list[str]:
    """The files of a run written before manifests, recognised by name: none unless its ``config.json``
    is a t2igan run config or it has checkpoints."""
    run_dir = Path(run_dir)
    try:
        config = json.loads((run_dir / CONFIG_NAME).read_text(encoding="utf-8"))
        is_run = isinstance(config, dict) and isinstance(config.get("model_name"), str)
    except (OSError, ValueError):
        is_run = False
    if not is_run and not any(run_dir.glob("checkpoints/step-*.safetensors")):
        return []
    found = [CONFIG_NAME] if is_run else []
    for pattern in PRE_MANIFEST_PATTERNS:
        for p in sorted(run_dir.glob(pattern)):
            rel = p.relative_to(run_dir).as_posix() + ("/" if p.is_dir() and not p.is_symlink() else "")
            if entry_path(run_dir, rel) is not None:
                found.append(rel)
    return found


def listed_files(run_dir: Path) -> list[str]:
    """The manifest's entries, or a pre-manifest run's files by name."""
    listed = read_manifest(run_dir)
    return pre_manifest_files(run_dir) if listed is None else listed


def run_files(run_dir: Path) -> list[str]:
    """The entries of the run in ``run_dir`` that exist, sorted (a folder's entry before what is in it)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    return sorted(rel for rel in listed_files(run_dir) if os.path.lexists(entry_path(run_dir, rel)))


def write_manifest(run_dir: Path, files) -> None:
    body = {"format_version": FORMAT_VERSION, "files": sorted(set(files))}
    atomic_write_bytes(Path(run_dir) / STATE_DIR / MANIFEST_NAME, json.dumps(body, indent=1).encode())


def record_files(run_dir: Path, *rels: str) -> None:
    """Add entries to the run's manifest *before* writing them, so that a kill at any moment leaves no
    file of the run unlisted. ``name/`` stands for a whole folder."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    listed = pre_manifest_files(run_dir) if manifest is None else manifest
    new = [rel for rel in rels if rel not in listed]
    if new or manifest is None:
        write_manifest(run_dir, listed + new)


def forget_files(run_dir: Path, *rels: str) -> None:
    """Drop entries the run has deleted (pruned checkpoints) from its manifest."""
    listed = read_manifest(run_dir)
    if listed is not None and set(rels) & set(listed):
        write_manifest(run_dir, [rel for rel in listed if rel not in rels])


@contextlib.contextmanager
def recording_new_entries(run_dir: Path, folders):
    """Record what trackers create in ``folders`` (``tensorboard``, ``wandb``), whose file names they pick
    themselves: a folder that does not exist yet is recorded whole before it is made; in one that exists
    (and is not the run's), the entries that appear while the block runs."""
    run_dir = Path(run_dir)
    listed = set(listed_files(run_dir))
    before = {}
    for folder in folders:
        if f"{folder}/" in listed:
            continue
        if os.path.lexists(run_dir / folder):
            before[folder] = set(os.listdir(run_dir / folder)) if (run_dir / folder).is_dir() else set()
        else:
            record_files(run_dir, f"{folder}/")
    try:
        yield
    finally:
        for folder, seen in before.items():
            new = sorted(set(os.listdir(run_dir / folder)) - seen) if (run_dir / folder).is_dir() else []
            record_files(run_dir, *(f"{folder}/{n}" + ("/" if (run_dir / folder / n).is_dir() else "") for n in new))


def other_files(run_dir: Path) -> list[str]:
    """Every file in the folder that the run's manifest does not list (the bookkeeping folder aside)."""
    run_dir = Path(run_dir)
    owned = [entry_path(run_dir, rel) for rel in run_files(run_dir)]
    found = []
    for p in sorted(run_dir.rglob("*")):
        rel = p.relative_to(run_dir)
        if rel.parts[0] == STATE_DIR or (p.is_dir() and not p.is_symlink()):
            continue
        if not any(p == o or o in p.parents for o in owned):
            found.append(rel.as_posix())
    return found


def remove_entry(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def remove_leftovers(run_dir: Path) -> int:
    """Delete what a killed writer left behind: temporary files of atomic writes (only names of their
    pattern, ``.NAME.XXXXXXXX.tmp``) and the old run of an ``--overwrite`` that had already committed.
    For the process holding the lock; returns the number of temporary files removed."""
    run_dir = Path(run_dir)
    removed = 0
    for folder in (run_dir, run_dir / "checkpoints", run_dir / "samples", run_dir / STATE_DIR):
        if folder.is_dir() and not folder.is_symlink():
            for p in folder.iterdir():
                if TMP_RE.match(p.name) and p.is_file() and not p.is_symlink():
                    p.unlink()
                    removed += 1
    state = run_dir / STATE_DIR
    if not (state / JOURNAL_NAME).exists():
        remove_entry(state / OLD_DIR)
        remove_entry(state / OLD_MANIFEST)
    return removed


# ---------------------------------------------------------------------------------------------------
# one writer: the lock
# ---------------------------------------------------------------------------------------------------

LOCK_NAME = "lock"


def read_holder(path: Path) -> dict | None:
    """What a lock file says of its holder (``pid``, ``started``), or None."""
    try:
        info = json.loads(Path(path).read_bytes())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and isinstance(info.get("pid"), int) else None


def describe_holder(info: dict | None) -> str:
    if not info:
        return "another process"
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"process {info['pid']} (started {when})"


class RunLock:
    """The one-writer lock of a run folder: an exclusive ``flock`` on ``RUN/.t2igan/lock``, which holds
    the writer's process id, start time and command.

    ``acquire`` refuses (one line naming that process) while another process holds it. The operating
    system drops the lock when its process ends in any way, so a lock left by a killed process is
    simply taken over (the file still names the dead process: a warning says so). ``release`` deletes
    the file (and the folders ``acquire`` made, when they are empty). Under ``torchrun`` only rank 0,
    the one process that writes the folder, takes it (see the trainer).
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / STATE_DIR / LOCK_NAME
        self.fd: int | None = None
        self.made: list[Path] = []
        self.taken_over: dict | None = None  # the dead holder whose lock this one took over

    def acquire(self) -> RunLock:
        if self.run_dir.exists() and not self.run_dir.is_dir():
            raise T2IError(f"run folder {self.run_dir} is a file, not a folder")
        for folder in (self.run_dir, self.path.parent):
            if not folder.is_dir():
                folder.mkdir(parents=True, exist_ok=True)
                self.made.append(folder)
        try:
            for _ in range(100):  # the holder deletes the file as it lets go: then lock the new one
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise T2IError(f"{self.run_dir} is being written by {describe_holder(read_holder(self.path))}") \
                        from None
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if not same:
                    os.close(fd)
                    continue
                previous = read_holder(self.path)  # a holder that ended without letting go (killed)
                self.taken_over = previous if previous and previous["pid"] != os.getpid() else None
                os.ftruncate(fd, 0)
                me = {"pid": os.getpid(), "started": time.time(), "command": " ".join(sys.argv)[:500]}
                os.write(fd, json.dumps(me).encode())
                self.fd = fd
                return self
            raise T2IError(f"could not lock {self.path}: it keeps being replaced")
        except BaseException:
            self.remove_made()
            raise

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # before letting go: a waiting process then locks a new file
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)  # also for data-loader workers that inherited the file
            os.close(self.fd)
            self.fd = None
            self.remove_made()

    def remove_made(self) -> None:
        for folder in reversed(self.made):
            try:
                folder.rmdir()
            except OSError:  # not empty: the run wrote into it
                break
        self.made = []

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def being_written(run_dir: Path) -> dict | None:
    """The holder of the folder's lock when another process holds it now, else None."""
    path = Path(run_dir) / STATE_DIR / LOCK_NAME
    info = read_holder(path)
    if not info or info["pid"] == os.getpid():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # let go at once: only asks whether it is held
        return None
    except BlockingIOError:
        return info
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------------
# --overwrite: the old run is moved aside, and deleted only once the new one has a good checkpoint
# ---------------------------------------------------------------------------------------------------

JOURNAL_NAME = "overwrite.json"  # exists from the first move until the commit (or the undo) is done
OLD_DIR = "old"  # the old run's entries, at their relative paths
OLD_MANIFEST = "old-manifest.json"


def unfinished_overwrite(run_dir: Path) -> bool:
    return (Path(run_dir) / STATE_DIR / JOURNAL_NAME).is_file()


def check_no_unfinished_overwrite(run_dir: Path) -> None:
    """Refuse a folder in the middle of an ``--overwrite``: one line naming the live writer, or, when the
    overwrite was interrupted, how to undo or finish it."""
    run_dir = Path(run_dir)
    if not unfinished_overwrite(run_dir):
        return
    holder = being_written(run_dir)
    if holder:
        raise T2IError(f"{run_dir} is being written by {describe_holder(holder)}")
    raise T2IError(f"{run_dir} holds an interrupted --overwrite (stopped before the new run's first checkpoint; "
                   f"the old run is in {STATE_DIR}/{OLD_DIR}): `t2igan undo-overwrite {run_dir}` puts the old run "
                   f"back; the same `t2igan train ... --overwrite` command again finishes the overwrite")


def read_journal(run_dir: Path) -> dict | None:
    path = Path(run_dir) / STATE_DIR / JOURNAL_NAME
    if not path.is_file():
        return None
    try:
        journal = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise T2IError(f"{path} is not valid JSON ({e}): the old run is in {path.parent / OLD_DIR}") from None
    moved = journal.get("moved") if isinstance(journal, dict) else None
    if not isinstance(moved, list) or journal.get("phase") not in ("moving", "moved", "restoring"):
        raise T2IError(f"{path} is not an --overwrite journal: the old run is in {path.parent / OLD_DIR}")
    journal["moved"] = [rel for rel in moved if entry_path(run_dir, rel) is not None]
    return journal


def write_journal(run_dir: Path, journal: dict) -> None:
    atomic_write_bytes(Path(run_dir) / STATE_DIR / JOURNAL_NAME, json.dumps(journal, indent=1).encode())


def remove_empty_folders(run_dir: Path, rels) -> None:
    """Remove the folders that hold ``rels`` inside ``run_dir`` when moving them out left them empty."""
    for rel in rels:
        parent = entry_path(run_dir, rel)
        while parent is not None and (parent := parent.parent) != Path(run_dir):
            try:
                parent.rmdir()
            except OSError:
                break


def begin_overwrite(run_dir: Path) -> tuple[bool, list[str]]:
    """Set the run in ``run_dir`` aside in ``RUN/.t2igan/old`` (renames only; nothing is copied or
    deleted) for ``--overwrite``. Returns whether a run was set aside (then :func:`commit_overwrite` or
    :func:`undo_overwrite` must follow) and the files that stay because the run did not write them.

    Each step is recorded first in the journal ``RUN/.t2igan/overwrite.json``, so that a process killed
    at any moment leaves a folder that :func:`undo_overwrite` puts back. An earlier interrupted
    overwrite is undone first: its partial new run goes, its old run is the one set aside again."""
    run_dir = Path(run_dir)
    undo_overwrite(run_dir)
    state = run_dir / STATE_DIR
    entries = run_files(run_dir)
    entries = [rel for rel in entries if not any(rel.startswith(d) and rel != d for d in entries if d.endswith("/"))]
    if not entries:
        return False, other_files(run_dir)
    journal = {"phase": "moving", "moved": entries, "pid": os.getpid(), "started": time.time()}
    write_journal(run_dir, journal)
    try:
        if (state / MANIFEST_NAME).exists():
            os.replace(state / MANIFEST_NAME, state / OLD_MANIFEST)
        for rel in entries:
            target = entry_path(state / OLD_DIR, rel)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(entry_path(run_dir, rel), target)
        remove_empty_folders(run_dir, entries)
        write_manifest(run_dir, [])  # the new run's, from now on
    except BaseException:  # a move failed (or was interrupted): put back what was moved
        undo_overwrite(run_dir)
        raise
    write_journal(run_dir, {**journal, "phase": "moved"})
    return True, other_files(run_dir)


def commit_overwrite(run_dir: Path) -> None:
    """The new run has a good checkpoint: delete the old run for good (the journal first, so that a kill
    during the deletion leaves only leftovers that :func:`remove_leftovers` clears)."""
    state = Path(run_dir) / STATE_DIR
    (state / JOURNAL_NAME).unlink(missing_ok=True)
    remove_entry(state / OLD_DIR)
    remove_entry(state / OLD_MANIFEST)


def undo_overwrite(run_dir: Path) -> bool:
    """Put back the run an unfinished ``--overwrite`` set aside, deleting what the new run wrote (its
    manifest lists it all). Safe to repeat after a kill at any point. False when there is nothing to undo."""
    run_dir = Path(run_dir)
    journal = read_journal(run_dir)
    if journal is None:
        return False
    state = run_dir / STATE_DIR
    if journal["phase"] == "moved":  # the new run may have written: its manifest lists everything it did
        new = sorted(read_manifest(run_dir) or [])  # never names recognised by pattern: those may be the user's
        for rel in new:
            remove_entry(entry_path(run_dir, rel))
        remove_empty_folders(run_dir, new)
        (state / MANIFEST_NAME).unlink(missing_ok=True)
        write_journal(run_dir, {**journal, "phase": "restoring"})
    for rel in journal["moved"]:
        source, target = entry_path(state / OLD_DIR, rel), entry_path(run_dir, rel)
        if source is None or not os.path.lexists(source):
            continue  # not moved yet, or already back
        if os.path.lexists(target):
            raise T2IError(f"cannot put {rel} back: {target} exists; the old run is in {state / OLD_DIR}")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(source, target)
    if (state / OLD_MANIFEST).exists():
        os.replace(state / OLD_MANIFEST, state / MANIFEST_NAME)
    (state / JOURNAL_NAME).unlink()
    remove_entry(state / OLD_DIR)
    return True


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
