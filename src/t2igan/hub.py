"""Weights files and devices: atomic writes (a killed process never leaves half a file), safetensors
read strictly (missing, unexpected and non-finite weights are errors naming the file, never pickled
code), and device names checked against the machine. Run folders: :mod:`t2igan.runs`.

torch and safetensors are imported where they are used, so that what imports this module to find run
folders (``t2igan list-pretrained``, ``info``) starts without them."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import T2IError

if TYPE_CHECKING:
    import torch


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
    import torch

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
    import torch

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
    from safetensors import SafetensorError
    from safetensors.torch import load_file

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
