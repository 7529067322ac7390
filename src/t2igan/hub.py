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
from safetensors.torch import load_file, save_file

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
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_safetensors(tensors: dict[str, torch.Tensor], path: str | Path, metadata: dict | None = None) -> None:
    """Write tensors atomically (temporary file + rename): a killed process never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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


def save_run(run_dir: str | Path, experiment: dict, model, vocab, ema_generator=None) -> None:
    """Write ``config.json``, ``vocab.json`` and ``model.safetensors`` for inference."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {"experiment": experiment, "model_name": model.model_name, "model_config": model.config_dict()}
    atomic_write_bytes(run_dir / CONFIG_NAME, json.dumps(config, indent=2).encode())
    atomic_write_bytes(run_dir / VOCAB_NAME, json.dumps(vocab.to_dict(), ensure_ascii=False).encode())
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
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise T2IError(f"{path} is not valid JSON ({e})") from None


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
    model_config = {k: (None if k.endswith("_weights") else v) for k, v in config["model_config"].items()}
    fields = {f.name for f in dataclasses.fields(model_config_class(config["model_name"]))}
    legacy = {k: v for k, v in LEGACY_MODEL_FIELDS.items() if k in fields and k not in model_config}
    model = create_model(config["model_name"], **legacy, **model_config)
    weights = run_dir / WEIGHTS_NAME
    # a bundled model ships its inference weights only: the training-only networks stay as built
    may_lack = tuple(f"{name}." for name in model.training_only_modules) if config.get("inference_only") else ()
    load_safetensors_into(model, weights, may_lack=may_lack)
    vocab = Vocabulary.load(run_dir / VOCAB_NAME)
    return model.to(device).eval(), vocab, config
