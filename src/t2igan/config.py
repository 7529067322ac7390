"""Experiment configuration: dataclasses, YAML presets, command-line overrides.

An experiment is ``ExperimentConfig(model=..., model_args=..., data=DataConfig, train=TrainConfig)``.
``model_args`` are the keyword arguments of the model's own config dataclass (e.g.
:class:`t2igan.models.dfgan.DFGANConfig`), so every paper hyperparameter is a named, typed field
there. Presets live in ``t2igan/presets/<model>-<dataset>.yaml``; overrides are ``section.key=value``
strings (``train.batch_size=8``, ``model.nf=16``, ``data.root=data/birds``) whose values are parsed
as YAML scalars.

Every config dataclass (these, the models', DAMSM's and STREAM's) declares its rules in its field
annotations and checks them when it is built (:mod:`t2igan.fields`); an :class:`ExperimentConfig`
also builds its model's config, as training will, so ``--dry-run`` refuses what training would.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Mapping

from .errors import T2IError, did_you_mean
from .fields import Betas, Config, Count, Device, Fraction, Positive, Seed, build_config


@dataclass
class DataConfig(Config):
    section = "data"

    dataset: Literal["shapes", "cub", "flowers", "coco", "folder", "jsonl"] = "shapes"
    root: str | None = None  # dataset folder (or JSONL file); unused for shapes
    image_size: Count = 64  # side of the square training images
    max_words: Count = 18  # longest caption in tokens (CUB 18, COCO 12)
    shorten: Literal["subsample", "truncate"] = "subsample"  # how longer captions are shortened in training
    num_workers: int = 0  # DataLoader worker processes
    vocab: str | None = None  # a vocabulary JSON or AttnGAN captions.pickle; built from the data if None
    train_args: dict = field(default_factory=dict)  # extra keyword arguments for the training dataset
    test_args: dict = field(default_factory=dict)  # extra keyword arguments for the test dataset


@dataclass
class TrainConfig(Config):
    section = "train"

    batch_size: Count = 32
    max_steps: Count = 10000  # iterations (one D step + one G step each)
    time_limit_min: Positive | None = None  # stop early after this many minutes (then save)
    time_limit_clock: Literal["wall", "cpu"] = "wall"  # cpu: CPU time of this process, a fair budget when runs share cores
    lr_g: Positive = 1e-4
    lr_d: Positive = 4e-4
    betas_g: Betas = (0.0, 0.9)
    betas_d: Betas = (0.0, 0.9)
    ema_decay: Fraction = 0.999  # moving average of G; 0 disables it
    ema_start: int = 0  # step after which the moving average starts tracking
    seed: Seed = 0
    device: Device = "auto"  # auto | cpu | cuda | cuda:N
    amp: Literal["none", "bf16", "fp16"] = "none"  # autocast on GPU; fp16 adds a loss scaler per optimizer
    channels_last: bool = False  # NHWC memory layout for G, D and images (faster convolutions on GPU)
    compile: bool = False  # torch.compile the generator (D is not: MA-GP/R1 need a double backward)
    log_every: Count = 50
    sample_every: int = 500  # write a sample grid every N steps (0: never)
    checkpoint_every: Count = 1000
    keep_checkpoints: Count = 3  # keep the last K checkpoints
    num_sample_captions: Count = 8  # captions in the periodic sample grid (from the test split)
    loggers: list | None = None  # trackers: [tensorboard, wandb]; None: tensorboard when installed (t2igan.loggers)


@dataclass
class ExperimentConfig(Config):
    section = ""

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
        if not isinstance(d, dict):
            raise T2IError(f"an experiment config must be a mapping of sections, got {type(d).__name__}")
        d = dict(d)
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(map(str, set(d) - set(names)))
        if unknown:
            hints = "".join(did_you_mean(k, names) for k in unknown)
            raise T2IError(f"unknown top-level config keys: {unknown}{hints}")
        data = build_config(DataConfig, d.pop("data", None) or {})
        train = build_config(TrainConfig, d.pop("train", None) or {})
        if "model_args" in d and d["model_args"] is None:
            d["model_args"] = {}
        return cls(data=data, train=train, **d)

    def problem(self) -> str | None:
        """The model's arguments must build its config, as training will build it."""
        try:
            model_args(self, vocab_size=2)  # the smallest vocabulary (<pad>, <unk>): the real one comes from the data
        except T2IError as e:
            return str(e)
        return None


def list_presets() -> list[str]:
    files = resources.files("t2igan").joinpath("presets")
    return sorted(p.name[:-5] for p in files.iterdir() if p.name.endswith(".yaml"))


def preset_description(name: str) -> str:
    """The one-line ``description:`` a built-in preset opens with (read without a YAML parser, so that
    ``t2igan list-presets`` starts fast; the test suite holds it equal to the parsed value)."""
    text = resources.files("t2igan").joinpath("presets", f"{name}.yaml").read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("description:"):
            return line.split(":", 1)[1].strip()
    return ""


def load_preset(name_or_path: str | Mapping) -> dict:
    """The raw dict of a preset name (``dfgan-shapes``), a YAML file path, or a mapping of sections
    (used as it is). A preset's ``description`` is for ``t2igan list-presets`` and is left out."""
    import yaml

    if isinstance(name_or_path, Mapping):
        d = copy.deepcopy(dict(name_or_path))
        d.pop("description", None)
        return d
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        text = path.read_text()
    else:
        res = resources.files("t2igan").joinpath("presets", f"{name_or_path}.yaml")
        if not res.is_file():
            raise T2IError(f"unknown preset {name_or_path!r}{did_you_mean(name_or_path, list_presets())} "
                           "(t2igan list-presets lists them; a YAML file works too)")
        text = res.read_text()
    try:
        d = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise T2IError(f"preset {name_or_path} is not valid YAML: {_yaml_problem(e)}") from None
    if not isinstance(d, dict):
        raise T2IError(f"preset {name_or_path} must be a YAML mapping of sections, got {type(d).__name__}")
    d.pop("description", None)
    d.setdefault("name", path.stem if path.suffix in (".yaml", ".yml") else name_or_path)
    return d


def apply_overrides(d: dict, overrides: list[str] | Mapping[str, Any]) -> dict:
    """Apply overrides: ``section.key=value`` strings (the value parsed as YAML) or a mapping
    ``{"section.key": value}`` (the value used as it is). ``model.X`` addresses ``model_args``."""
    import yaml

    d = json.loads(json.dumps(d))  # deep copy of plain data
    if isinstance(overrides, Mapping):
        items = [(str(k), v, f"{k}={v!r}") for k, v in overrides.items()]
    elif isinstance(overrides, str):
        raise T2IError(f"overrides must be a list of section.key=value strings or a mapping, got the string "
                       f"{overrides!r} (write [{overrides!r}])")
    else:
        items = []
        for item in overrides:
            if "=" not in item:
                raise T2IError(f"override {item!r} must look like section.key=value")
            key, raw = item.split("=", 1)
            try:
                value = yaml.safe_load(raw) if raw != "" else None
            except yaml.YAMLError as e:
                raise T2IError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(e)})") from None
            items.append((key, value, item))
    for key, value, item in items:
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


def _yaml_problem(e: Exception) -> str:
    return " ".join(str(getattr(e, "problem", None) or e).split())[:200]


def resolve_config(preset: str | Mapping, overrides: list[str] | Mapping[str, Any] | None = None) -> ExperimentConfig:
    """Preset + overrides -> a validated :class:`ExperimentConfig` (model args checked too).

    ``preset``: a preset name, a YAML file or a mapping of sections; ``overrides``: ``section.key=value``
    strings as on the command line, or a mapping, ``resolve_config("dfgan-shapes", {"train.max_steps": 20})``."""
    return ExperimentConfig.from_dict(apply_overrides(load_preset(preset), overrides or []))


def model_args(cfg: ExperimentConfig, vocab_size: int) -> dict:
    """The arguments the experiment's model is built from, checked by building its config: the
    vocabulary size comes from the data, ``image_size`` from ``data.image_size``."""
    from .models import model_config_class

    if not isinstance(cfg.model_args, dict):
        raise T2IError(f"config section 'model' must be a mapping of key: value, got {cfg.model_args!r}")
    cls = model_config_class(cfg.model)
    args = {**cfg.model_args, "vocab_size": vocab_size}
    if "image_size" in cls.__dataclass_fields__:
        if args.get("image_size", cfg.data.image_size) != cfg.data.image_size:
            raise T2IError(f"model.image_size={args['image_size']} differs from data.image_size={cfg.data.image_size}")
        args["image_size"] = cfg.data.image_size
    try:
        build_config(cls, args)
    except T2IError as e:
        if str(e).startswith("invalid model.image_size="):  # it came from data.image_size
            raise T2IError(str(e).replace("model.image_size", "data.image_size", 1)) from None
        raise
    return args
