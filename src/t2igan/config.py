"""Experiment configuration: dataclasses, YAML presets, command-line overrides.

An experiment is ``ExperimentConfig(model=..., model_args=..., data=DataConfig, train=TrainConfig)``.
``model_args`` are the keyword arguments of the model's own config dataclass (e.g.
:class:`t2igan.models.dfgan.DFGANConfig`), so every paper hyperparameter is a named, typed field
there. Presets live in ``t2igan/presets/<model>-<dataset>.yaml``; overrides are ``section.key=value``
strings (``train.batch_size=8``, ``model.nf=16``, ``data.root=data/birds``) whose values are parsed
as YAML scalars.

Every config dataclass (these, the models', DAMSM's and STREAM's) is checked in one place,
:func:`check_fields`, when it is built: each field is coerced to its annotated type (``"1e-4"`` ->
``1e-4``, ``[0, 0.9]`` -> ``(0.0, 0.9)``) and range-checked against :data:`FIELD_RULES`, so
``--dry-run``, the Python API and training accept and refuse the same values. A bad value is a
:class:`T2IError` naming the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
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

    def __post_init__(self):
        check_fields(self, "data")


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

    def __post_init__(self):
        check_fields(self, "train")


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
        if not isinstance(d, dict):
            raise T2IError(f"an experiment config must be a mapping of sections, got {type(d).__name__}")
        d = dict(d)
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise T2IError(f"unknown top-level config keys: {sorted(unknown)}")
        data = _build(DataConfig, d.pop("data", None) or {}, "data")
        train = _build(TrainConfig, d.pop("train", None) or {}, "train")
        if "model_args" in d and d["model_args"] is None:
            d["model_args"] = {}
        return cls(data=data, train=train, **d)

    def __post_init__(self):
        check_fields(self, "")


def _build(cls, values: dict, section: str):
    if not isinstance(values, dict):
        raise T2IError(f"config section {section!r} must be a mapping of key: value, got {values!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = {k for k in values if k not in names}
    if unknown:
        raise T2IError(f"unknown {section} config keys: {sorted(map(str, unknown))} (valid: {sorted(names)})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    # typed before construction, so a config's own __post_init__ sees numbers, not strings
    values = {k: check_value(cls, fields[k], v, section) for k, v in values.items()}
    return check_fields(cls(**values), section)


# ---------------------------------------------------------------------------------------------
# typed fields and their allowed ranges

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _rule(test, allowed: str):
    return test, allowed


_AT_LEAST_1 = _rule(lambda v: v >= 1, ">= 1")
_POSITIVE = _rule(lambda v: v > 0, "> 0")
_FRACTION = _rule(lambda v: 0 <= v < 1, "in [0, 1)")
_BETAS = _rule(lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)")
_POWER_OF_TWO = _rule(lambda v: v >= 16 and v & (v - 1) == 0, "a power of two >= 16")


def _one_of(*choices: str):
    return _rule(lambda v: v in choices, "one of " + ", ".join(choices))


# field name (any config) or ClassName.field (that class and its subclasses) -> (test, what is allowed).
# Numbers without a rule must be >= 0 (and finite); None passes wherever the annotation allows it.
FIELD_RULES: dict[str, tuple] = {
    **{name: _AT_LEAST_1 for name in (
        "batch_size", "max_steps", "log_every", "checkpoint_every", "keep_checkpoints", "num_sample_captions",
        "max_words", "image_size", "nf", "ngf", "ndf", "z_dim", "c_dim", "text_emb_dim", "text_hidden_dim",
        "num_stages", "base_size", "embed_dim", "hidden_dim", "mask_hidden", "d_max_mult", "dnm_z_dim", "dnm_ngf",
        "text_proj_dim", "embedding_dim", "cnn_channels", "max_len", "epochs", "eval_beam", "rprec_captions",
        "rprec_splits", "stream_image_size", "eval_images")},
    **{name: _POSITIVE for name in ("lr_g", "lr_d", "lr", "text_encoder_lr", "time_limit_min")},
    **{name: _FRACTION for name in ("ema_decay", "text_dropout", "dropout")},
    "seed": _rule(lambda v: 0 <= v < 2**31, "an integer in [0, 2^31)"),
    **{name: _BETAS for name in ("betas", "betas_g", "betas_d")},
    "device": _rule(lambda v: bool(_DEVICE_RE.match(v)), "auto, cpu, mps, cuda or cuda:N"),
    "amp": _one_of("none", "bf16", "fp16"),
    "time_limit_clock": _one_of("wall", "cpu"),
    "shorten": _one_of("subsample", "truncate"),
    "dataset": _one_of("shapes", "cub", "flowers", "coco", "folder", "jsonl"),
    # choices the model configs do not check themselves (the others raise their own one-line errors)
    "DFGANConfig.text_encoder_mode": _one_of("frozen", "joint_d"),
    **{f"{cls}.image_size": _POWER_OF_TWO for cls in ("DFGANConfig", "SSAGANConfig", "GANINTCLSConfig")},
}


def _rule_for(cls: type, name: str):
    for klass in cls.__mro__:
        if f"{klass.__name__}.{name}" in FIELD_RULES:
            return FIELD_RULES[f"{klass.__name__}.{name}"]
    return FIELD_RULES.get(name)


def _coerce(value, kinds: set[str]):
    """``value`` as one of the annotated ``kinds`` (int, float, bool, str, tuple, dict, list), or
    raise ValueError. Strings that spell a number become numbers (YAML reads ``1e-4`` as a string)."""
    if value is None:
        if "None" in kinds:
            return None
        raise ValueError
    if "bool" in kinds:
        if isinstance(value, bool):
            return value
        raise ValueError
    if "int" in kinds:
        if isinstance(value, str):
            value = value.strip()
            value = int(value) if re.fullmatch(r"[+-]?\d+", value) else float(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError
    if "float" in kinds:
        if isinstance(value, str):
            value = float(value.strip())
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ValueError
    if "str" in kinds:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # a path or name YAML read as a number
        if isinstance(value, str):
            return value
        raise ValueError
    if "tuple" in kinds:
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(v, {"float"}) for v in value)
        raise ValueError
    if "dict" in kinds:
        if isinstance(value, dict):
            return value
        raise ValueError
    if "list" in kinds and isinstance(value, (list, tuple)):
        return list(value)
    if "list" in kinds:
        raise ValueError
    return value  # an annotation without a simple type: left as it is


_KIND_NAMES = {"bool": "true or false", "int": "an integer", "float": "a finite number", "str": "a string",
               "tuple": "a list of numbers", "dict": "a mapping", "list": "a list"}


def check_value(cls: type, f: dataclasses.Field, value, section: str):
    """``value`` of field ``f`` of the config dataclass ``cls``, coerced to the field's annotated type
    and range-checked; a T2IError such as ``invalid train.batch_size=0: expected an integer >= 1``."""
    kinds = {k.strip().split("[")[0] for k in str(f.type).split("|")}
    note = ""
    if section.endswith(")") and " (" in section:  # "model (dfgan)": invalid model.nf=-3 (dfgan)
        section, note = section.split(" (", 1)
        note = f" ({note}"
    name = f"{section}.{f.name}" if section else f.name
    kind = next((_KIND_NAMES[k] for k in _KIND_NAMES if k in kinds), "a value")
    rule = _rule_for(cls, f.name)
    if rule:
        allowed = f"{kind} {rule[1]}" if rule[1][0] in "<>=i" else f"{kind}: {rule[1]}"
    else:
        allowed = f"{kind} >= 0" if kind in (_KIND_NAMES["int"], _KIND_NAMES["float"]) else kind
    if "None" in kinds and kind != "a value":
        allowed += " (or null)"
    raw = value
    try:
        value = _coerce(value, kinds)
    except (ValueError, TypeError, OverflowError):
        raise T2IError(f"invalid {name}={raw!r}{note}: expected {allowed}") from None
    if value is None or isinstance(value, bool) or kind == "a value":
        return value
    ok = rule[0](value) if rule else not isinstance(value, (int, float)) or value >= 0
    if not ok:
        raise T2IError(f"invalid {name}={raw!r}{note}: expected {allowed}")
    return value


def check_fields(obj, section: str):
    """Coerce and check every field of the dataclass ``obj`` in place (see :func:`check_value`)."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if not dataclasses.is_dataclass(value):
            object.__setattr__(obj, f.name, check_value(type(obj), f, value, section))
    return obj


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
    try:
        d = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise T2IError(f"preset {name_or_path} is not valid YAML: {_yaml_problem(e)}") from None
    if not isinstance(d, dict):
        raise T2IError(f"preset {name_or_path} must be a YAML mapping of sections, got {type(d).__name__}")
    d.setdefault("name", path.stem if path.suffix in (".yaml", ".yml") else name_or_path)
    return d


def apply_overrides(d: dict, overrides: list[str]) -> dict:
    """Apply ``section.key=value`` overrides. ``model.X`` addresses ``model_args``."""
    d = json.loads(json.dumps(d))  # deep copy of plain data
    for item in overrides:
        if "=" not in item:
            raise T2IError(f"override {item!r} must look like section.key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else None
        except yaml.YAMLError as e:
            raise T2IError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(e)})") from None
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


def resolve_config(preset: str, overrides: list[str] | None = None) -> ExperimentConfig:
    """Preset + overrides -> a validated :class:`ExperimentConfig` (model args checked too)."""
    d = apply_overrides(load_preset(preset), overrides or [])
    cfg = ExperimentConfig.from_dict(d)
    check_model_args(cfg)
    return cfg


def check_model_args(cfg: ExperimentConfig) -> None:
    """Build (and so type- and range-check) the model's config dataclass as training will: the
    vocabulary size comes from the data and ``image_size`` from ``data.image_size``."""
    from .registry import model_config_class

    if not isinstance(cfg.model_args, dict):
        raise T2IError(f"config section 'model' must be a mapping of key: value, got {cfg.model_args!r}")
    cls = model_config_class(cfg.model)
    args = {k: v for k, v in cfg.model_args.items() if k != "vocab_size"}
    if "image_size" in cls.__dataclass_fields__:
        if args.get("image_size", cfg.data.image_size) != cfg.data.image_size:
            raise T2IError(f"model.image_size={args['image_size']} differs from data.image_size={cfg.data.image_size}")
        args["image_size"] = cfg.data.image_size
    try:
        _build(cls, {**args, "vocab_size": 1}, "model")
    except T2IError as e:
        if "image_size" in args and str(e).startswith("invalid model.image_size="):
            raise T2IError(str(e).replace("model.image_size", "data.image_size", 1)) from None
        raise
    except TypeError as e:  # a config's own __post_init__ meeting a value of the wrong type
        raise T2IError(f"invalid model config: {e}") from None


def build_dataclass(cls, values: dict, what: str):
    """``cls(**values)`` with a one-line error naming unknown keys (lists become tuples for tuple fields)."""
    return _build(cls, values, what)


def dataclass_to_dict(obj: Any) -> dict:
    return dataclasses.asdict(obj)
