"""Helpers of ``make_official_fixtures.py``: importing old official code with compatibility shims
(textual size substitutions, a stub ``cfg``, single functions of files whose imports cannot be met),
perturbing weights, and writing fixtures. Nothing here is official code."""

from __future__ import annotations

import json
import subprocess
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official"
SUBGRID = 8  # largest side of a stored image / mask: outputs are sampled on a strided grid
SEED = 0
HALF_PREFIXES = ("official.", "input.")  # stored as float16 (their values are float16-exact)




def official_commit(official_dir: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(official_dir), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        sys.exit(f"error: {official_dir} is not a git checkout (its commit is recorded in the fixtures)")


def import_official(official_dir: Path, relpath: str, name: str, patches=(), namespace: dict | None = None):
    """Import ``official_dir/relpath`` as module ``name`` after the textual ``(old, new)`` patches
    (each must occur); ``namespace`` seeds the module's globals (e.g. sizes the patches name)."""
    path = official_dir / relpath
    source = path.read_text()
    for old, new in patches:
        if old not in source:
            sys.exit(f"error: {path}: the shim expects {old!r}; is this the official commit?")
        source = source.replace(old, new)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__dict__.update(namespace or {})
    sys.modules[name] = module
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def official_function(official_dir: Path, relpath: str, name: str, namespace: dict):
    """One top-level function of an official file whose imports cannot all be met here (e.g.
    torchvision), compiled from its own source alone with the globals it needs (``namespace``)."""
    import ast

    path = official_dir / relpath
    source = path.read_text()
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            exec(compile(ast.get_source_segment(source, node), str(path), "exec"), namespace)
            return namespace[name]
    sys.exit(f"error: {path} has no function {name}; is this the official commit?")


def stub_module(name: str, **attrs) -> types.ModuleType:
    """Register module ``name`` holding ``attrs`` (parents created as empty packages), e.g. the
    official ``miscc.config`` replaced by one whose ``cfg`` holds the fixture's small sizes."""
    parent, _, leaf = name.rpartition(".")
    if parent and parent not in sys.modules:
        stub_module(parent).__path__ = []
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    if parent:
        setattr(sys.modules[parent], leaf, module)
    return module


class Cfg(dict):
    """An attribute dict like the official ``easydict`` cfg."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


def cfg_tree(d: dict) -> Cfg:
    return Cfg({k: cfg_tree(v) if isinstance(v, dict) else v for k, v in d.items()})


@torch.no_grad()
def perturb(module: torch.nn.Module, gen: torch.Generator, scale: float = 0.1) -> None:
    """Move every parameter and float buffer off its initial value (running variances stay > 0)."""
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if not t.is_floating_point():
            continue
        noise = torch.randn(t.shape, generator=gen) * scale
        if name.endswith("running_var"):
            t.copy_(0.5 + torch.rand(t.shape, generator=gen))
        elif name.endswith(("gamma",)) and t.numel() == 1:  # residual gates start at 0
            t.copy_(0.3 + noise.abs())
        else:
            t.add_(noise)
        t.copy_(t.half().float())  # exactly representable in float16: stored at half the size, losslessly


def subgrid(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) on a strided grid of at most SUBGRID x SUBGRID positions."""
    step = max(1, x.shape[-1] // SUBGRID)
    return x[..., ::step, ::step].contiguous()


def half_exact(x: torch.Tensor) -> torch.Tensor:
    """``x`` rounded to float16 values (kept in float32), so that it is stored losslessly."""
    return x.half().float()


def upsample(small: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour repetition of a stored small image to ``size`` (exact, reproducible)."""
    return F.interpolate(small, size=(size, size), mode="nearest")


def prefixed(prefix: str, state: dict) -> dict:
    return {f"{prefix}{k}": v.detach().clone().contiguous() for k, v in state.items()}


def write(family: str, tensors: dict, meta: dict, official_dir: Path) -> Path:
    meta = {"family": family, "official_commit": official_commit(official_dir),
            "generated_by": "tools/make_official_fixtures.py", **meta}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{family}.safetensors"
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    for k, v in tensors.items():  # weights and inputs were rounded to float16 before use: lossless
        if v.is_floating_point() and k.startswith(HALF_PREFIXES):
            if not torch.equal(v.half().float(), v):
                sys.exit(f"error: {k} is not exactly representable in float16")
            tensors[k] = v.half()
        elif v.is_floating_point():
            tensors[k] = v.float()
    save_file(tensors, str(path), {k: json.dumps(v) for k, v in meta.items()})
    print(f"{path}: {len(tensors)} tensors, {path.stat().st_size / 1024:.0f} KiB, commit {meta['official_commit']}")
    return path
