"""Experiment configuration: dataclasses, YAML presets, command-line overrides.

An experiment is ``ExperimentConfig(model=..., model_args=..., data=DataConfig, train=TrainConfig)``.
``model_args`` are the keyword arguments of the model's own config dataclass (e.g.
:class:`t2igan.models.dfgan.DFGANConfig`), so every paper hyperparameter is a named, typed field
there. Presets live in ``t2igan/presets/<model>-<dataset>.yaml``; overrides are ``section.key=value``
strings (``train.batch_size=8``, ``model.nf=16``, ``data.root=data/birds``) whose values are parsed
as YAML scalars.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import T2IError


@dataclass
class DataConfig:
    dataset: str = "shapes"  # shapes | cub | flowers | coco | folder | jsonl
    root: str | None = None  # dataset folder (or JSONL file); unused for shapes
    image_size: int = 64  # side of the square training images
    max_words: int = 18  # longest caption in tokens (CUB 18, COCO 12)
    shorten: str = "subsample"  # how longer captions are shortened in training: subsample | truncate
    num_workers: int = 0  # DataLoader worker processes
    vocab: str | None = None  # a vocabulary JSON or AttnGAN captions.pickle; built from the data if None
    train_args: dict = field(default_factory=dict)  # extra keyword arguments for the training dataset
    test_args: dict = field(default_factory=dict)  # extra keyword arguments for the test dataset


@dataclass
class TrainConfig:
    batch_size: int = 32
    max_steps: int = 10000  # iterations (one D step + one G step each)
    time_limit_min: float | None = None  # stop early after this many minutes (then save)
    time_limit_clock: str = "wall"  # wall | cpu: CPU time of this process, a fair budget when runs share cores
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    betas_g: tuple = (0.0, 0.9)
    betas_d: tuple = (0.0, 0.9)
    ema_decay: float = 0.999  # moving average of G; 0 disables it
    ema_start: int = 0  # step after which the moving average starts tracking
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    amp: str = "none"  # none | bf16 | fp16 (autocast on GPU; fp16 adds a loss scaler per optimizer)
    channels_last: bool = False  # NHWC memory layout for G, D and images (faster convolutions on GPU)
    compile: bool = False  # torch.compile the generator (D is not: MA-GP/R1 need a double backward)
    log_every: int = 50
    sample_every: int = 500  # write a sample grid every N steps (0: never)
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3  # keep the last K checkpoints
    num_sample_captions: int = 8  # captions in the periodic sample grid (from the test split)
    loggers: list | None = None  # trackers: [tensorboard, wandb]; None: tensorboard when installed (t2igan.loggers)


@dataclass
class ExperimentConfig:
    model: str = "dfgan"
    model_args: dict = field(default_factory=dict)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    name: str = "experiment"  # preset name, used in the run folder's name
    runs_dir: str = "runs"  # run folders are created below this one

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise T2IError(f"unknown top-level config keys: {sorted(unknown)}")
        data = _build(DataConfig, d.pop("data", {}), "data")
        train = _build(TrainConfig, d.pop("train", {}), "train")
        return cls(data=data, train=train, **d)


def _build(cls, values: dict, section: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise T2IError(f"unknown {section} config keys: {sorted(unknown)} (valid: {sorted(names)})")
    values = dict(values)
    for f in dataclasses.fields(cls):
        if f.name in values and f.type == "tuple" and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def list_presets() -> list[str]:
    files = resources.files("t2igan").joinpath("presets")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def load_preset(name_or_path: str) -> dict:
    """The raw dict of a preset name (``dfgan-shapes``) or a YAML file path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text()
    else:
        res = resources.files("t2igan").joinpath("presets", f"{name_or_path}.yaml")
        if not res.is_file():
            raise T2IError(f"unknown preset {name_or_path!r}; presets: {', '.join(list_presets())}")
        text = res.read_text()
    d = yaml.safe_load(text) or {}
    d.setdefault("name", path.stem if path.suffix in (".yaml", ".yml") else name_or_path)
    return d


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` overrides. ``model.X`` addresses ``model_args``."""
    d = json.loads(json.dumps(d))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise T2IError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else None
        parts = key.strip().split(".")
        if parts[0] == "model" and len(parts) > 1:
            parts[0] = "model_args"
        node = d
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise T2IError(f"override {item!r}: {p!r} is not a section")
        node[parts[-1]] = value
    return d


def resolve_config(preset: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Preset + overrides -> a validated :class:`ExperimentConfig` (model args checked too)."""
    d = apply_overrides(load_preset(preset), overrides or [])
    cfg = ExperimentConfig.from_dict(d)
    from .registry import model_config_class

    model_config_class(cfg.model)(**{k: v for k, v in cfg.model_args.items() if k != "vocab_size"}, vocab_size=1)
    return cfg


def build_dataclass(cls, values: dict, what: str):
    """``cls(**values)`` with a one-line error naming unknown keys (lists become tuples for tuple fields)."""
    return _build(cls, values, what)


def dataclass_to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)
