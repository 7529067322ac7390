"""Run folders and weights: ``config.json`` + safetensors, never pickled code.

A trained model lives in a run folder::

    runs/00003-dfgan-shapes/
      config.json          the experiment config and the model's full constructor config
      vocab.json           the vocabulary
      model.safetensors    weights for inference (the generator is its moving average)
      checkpoints/         training checkpoints (see t2igan.trainer)
      samples/             sample grids written during training

:func:`load_run` rebuilds the model from ``config.json`` alone (nanoGPT/diffusers style).
"""

from __future__ import annotations

import dataclasses

import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import T2IError

CONFIG_NAME = "config.json"
VOCAB_NAME = "vocab.json"
WEIGHTS_NAME = "model.safetensors"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.filename is None:  # a failed write() names no file: name it
            raise OSError(e.errno, e.strerror or str(e), str(path)) from None
        raise


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> None:
    """Write tensors atomically (temporary file + rename): a killed process never leaves half a file."""
    from safetensors.torch import save

    data = save({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, metadata=metadata)
    atomic_write_bytes(Path(path), data)


# a weight beyond this is taken as diverged (float32 reaches 3e38, so such weights stay "finite")
WEIGHT_LIMIT = 1e15


def first_bad_tensor(tensors: dict[str, torch.Tensor]) -> str | None:
    """``"non-finite weights (name)"`` or ``"diverged weights (name: |w| up to X)"`` for the first
    floating-point tensor holding NaN/inf or values beyond :data:`WEIGHT_LIMIT`, else None."""
    for name, t in tensors.items():
        if not t.is_floating_point() or t.numel() == 0:
            continue
        if not torch.isfinite(t).all():
            return f"non-finite weights ({name})"
        peak = t.detach().abs().max().item()
        if peak > WEIGHT_LIMIT:
            return f"diverged weights ({name}: |w| up to {peak:.3g})"
    return None


def parse_device(device: str | torch.device) -> torch.device:
    """``auto`` (CUDA when available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``, checked to
    exist on this machine; anything else is a T2IError naming it."""
    if isinstance(device, torch.device):
        return device
    name = str(device).strip()
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError, TypeError):
        raise T2IError(f"unknown device {device!r} (use auto, cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise T2IError(f"device {device!r} is not available: this machine has no usable CUDA GPU (use cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise T2IError(f"device {device!r} is not available: {torch.cuda.device_count()} CUDA GPU(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise T2IError(f"device {device!r} is not available on this machine (use cpu)")
    elif dev.type != "cpu":
        raise T2IError(f"unsupported device {device!r} (use auto, cpu, cuda, cuda:N or mps)")
    return dev


def load_safetensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise T2IError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise T2IError(f"cannot read weights {path}: corrupt or not safetensors ({e})") from None


def load_safetensors_into(module: torch.nn.Module, path: str | Path, prefix: str = "",
                          may_lack: tuple[str, ...] = ()) -> None:
    """Load ``path`` into ``module``. Keys may carry ``prefix`` (e.g. ``text_encoder.``); any
    missing or unexpected key is an error naming the file, except missing keys that start with one
    of ``may_lack`` (an inference-only file without the discriminator)."""
    tensors = load_safetensors(path)
    if prefix and any(k.startswith(prefix) for k in tensors):
        tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    if may_lack:
        for key, value in module.state_dict().items():
            if key not in tensors and key.startswith(may_lack):
                tensors[key] = value
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise T2IError(f"weights {path} do not fit {type(module).__name__}: {' '.join(first[:2])[:300]}") from None


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
    config = {"experiment": experiment, "model_name": model.model_name, "model_config": model.config_dict()}
    atomic_write_bytes(run_dir / CONFIG_NAME, json.dumps(config, indent=2).encode())
    atomic_write_bytes(run_dir / VOCAB_NAME, json.dumps(vocab.to_dict(), ensure_ascii=False).encode())
    if weights:
        save_safetensors(inference_state_dict(model, ema_generator), run_dir / WEIGHTS_NAME, {"format": "pt"})


def read_run_config(run_dir: str | Path) -> dict:
    from .pretrained import resolve_run_dir

    run_dir = resolve_run_dir(run_dir)
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
    for key, kind in (("model_name", str), ("model_config", dict)):
        if not isinstance(config.get(key), kind):
            raise T2IError(f"{path} is not a t2igan run config: {key!r} is missing or not a {kind.__name__}")
    if not isinstance(config.get("experiment", {}), dict):
        raise T2IError(f"{path} is not a t2igan run config: 'experiment' is not an object")
    return config


# model config fields added after run folders were written, with the value those runs were made with:
# before ``truncation_form`` existed every truncation cut N(0, 1) at the bound ("clip"); before
# ``contrastive_pool`` the contrastive term summed D's 4x4 features ("sum")
LEGACY_MODEL_FIELDS = {"truncation_form": "clip", "contrastive_pool": "sum"}


def load_run(run_dir: str | Path, device: str | torch.device = "cpu"):
    """Rebuild ``(model, vocab, config_dict)`` from a run folder or a bundled model's name
    (:mod:`t2igan.pretrained`); the model is in eval mode. Weights stored in fp16 are loaded into
    the model's fp32 parameters."""
    from .data.text import Vocabulary
    from .pretrained import resolve_run_dir
    from .registry import create_model, model_config_class

    run_dir = resolve_run_dir(run_dir)
    config = read_run_config(run_dir)
    # config fields named *_weights point at pretrained parts used to start training; a run's own
    # model.safetensors already holds those parts, so they are not read again
    from .config import rename_legacy_fields

    model_config = {k: (None if k.endswith("_weights") else v)
                    for k, v in rename_legacy_fields(config["model_config"]).items()}
    fields = {f.name for f in dataclasses.fields(model_config_class(config["model_name"]))}
    legacy = {k: v for k, v in LEGACY_MODEL_FIELDS.items() if k in fields and k not in model_config}
    try:
        model = create_model(config["model_name"], **legacy, **model_config)
    except TypeError as e:  # a model config's own checks meeting a value of the wrong type
        raise T2IError(f"{run_dir / CONFIG_NAME}: bad model config ({e})") from None
    weights = run_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise T2IError(f"{run_dir} has no trained weights yet: {WEIGHTS_NAME} is written with the first checkpoint")
    # a bundled model ships its inference weights only: the training-only networks stay as built
    may_lack = tuple(f"{name}." for name in model.training_only_modules) if config.get("inference_only") else ()
    load_safetensors_into(model, weights, may_lack=may_lack)
    bad = first_bad_tensor(model.state_dict())
    if bad:
        raise T2IError(f"{weights} holds {bad}: the model cannot generate images")
    vocab = Vocabulary.load(run_dir / VOCAB_NAME)
    return model.to(device).eval(), vocab, config
