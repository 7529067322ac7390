"""The one way a config dataclass declares and checks its rules.

A config is a dataclass deriving from :class:`Config`; each field's annotation says what it accepts::

    @dataclass
    class DFGANConfig(Config):
        nf: Count = 32                                  # an integer >= 1
        lr: Positive = 1e-4                             # a finite number > 0
        ema_decay: Fraction = 0.999                     # a finite number in [0, 1)
        text_encoder_mode: Literal["frozen", "joint_d"] = "frozen"
        text_encoder_lr: Positive | None = None         # ... or null
        ma_gp_weight: float = 2.0                       # a number without a rule: finite and >= 0

Building the dataclass, whatever the route (``DFGANConfig(nf="16")``, :func:`build_config` from a
preset's YAML values, a run's ``config.json``), coerces each value to its type (``"1e-4"`` ->
``1e-4``, ``[0, 0.9]`` -> ``(0.0, 0.9)``) and checks it; a relation between fields is the config's
:meth:`Config.problem`. So ``--dry-run``, the Python API, training and loading accept and refuse the
same values, each with one :class:`T2IError` line naming the field, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Union

from .errors import T2IError, did_you_mean


@dataclass(frozen=True)
class Rule:
    test: Callable[[Any], bool]
    allowed: str  # what passes, as the error message says it


Count = Annotated[int, Rule(lambda v: v >= 1, ">= 1")]
VocabSize = Annotated[int, Rule(lambda v: v >= 2, ">= 2 (<pad> and <unk> at least)")]
Positive = Annotated[float, Rule(lambda v: v > 0, "> 0")]
Fraction = Annotated[float, Rule(lambda v: 0 <= v < 1, "in [0, 1)")]
UnitInterval = Annotated[float, Rule(lambda v: 0 <= v <= 1, "in [0, 1]")]
PowerOfTwo = Annotated[int, Rule(lambda v: v >= 16 and v & (v - 1) == 0, "a power of two >= 16")]
Betas = Annotated[tuple, Rule(lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)")]
Seed = Annotated[int, Rule(lambda v: 0 <= v < 2**31, "an integer in [0, 2^31)")]
Device = Annotated[str, Rule(lambda v: bool(re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", v)),
                             "auto, cpu, mps, cuda or cuda:N")]
Backbone = Literal["inception", "small_cnn"]  # the image encoders of DAMSM and STREAM

_KIND_NAMES = {bool: "true or false", int: "an integer", float: "a finite number", str: "a string",
               tuple: "a list of numbers", dict: "a mapping", list: "a list"}


class Config:
    """Base of the config dataclasses: building one checks every field (see the module docstring)."""

    section = "model"  # where its fields live in an experiment: model.X, data.X, train.X

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, Config):  # a nested config checked itself
                object.__setattr__(self, f.name, check_value(type(self), f.name, value))
        problem = self.problem()
        if problem:
            raise T2IError(f"invalid {self.section} config: {problem}" if self.section else problem)

    def problem(self) -> str | None:
        """What is wrong between fields (each fine alone), or None."""
        return None


def build_config(cls: type, values: dict):
    """``cls(**values)``, with one error line for values that are not a mapping or name unknown fields."""
    where = cls.section or "experiment"
    if not isinstance(values, dict):
        raise T2IError(f"config section {where!r} must be a mapping of key: value, got {values!r}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        hints = "".join(did_you_mean(k, names) for k in sorted(map(str, unknown)))
        raise T2IError(f"unknown {where} config keys: {sorted(map(str, unknown))}{hints} (valid: {sorted(names)})")
    return cls(**values)


# ---------------------------------------------------------------------------------------------------
# reading the annotations


@dataclass
class FieldSpec:
    kind: type | None  # bool, int, float, str, tuple, dict, list; None: no simple type, left as given
    rule: Rule | None
    choices: tuple | None  # a Literal's values
    optional: bool  # None allowed


_SPECS: dict[type, dict[str, FieldSpec]] = {}


def field_specs(cls: type) -> dict[str, FieldSpec]:
    """Each field's :class:`FieldSpec`, read once per class from its (inherited) annotations."""
    if cls not in _SPECS:
        hints = typing.get_type_hints(cls, include_extras=True)
        _SPECS[cls] = {f.name: _spec(hints[f.name]) for f in dataclasses.fields(cls)}
    return _SPECS[cls]


def _spec(hint) -> FieldSpec:
    optional = False
    if typing.get_origin(hint) in (Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        optional = len(members) < len(typing.get_args(hint))
        hint = members[0] if len(members) == 1 else Any
    rule = None
    if typing.get_origin(hint) is Annotated:
        hint, rule = typing.get_args(hint)[0], typing.get_args(hint)[1]
    choices = None
    if typing.get_origin(hint) is Literal:
        hint, choices = str, typing.get_args(hint)
    hint = typing.get_origin(hint) or hint  # tuple[float, float] -> tuple
    return FieldSpec(hint if hint in _KIND_NAMES else None, rule, choices, optional)


# ---------------------------------------------------------------------------------------------------
# checking a value


def _coerce(value, kind: type):
    """``value`` as ``kind``, or ValueError. Strings that spell a number become numbers (YAML reads
    ``1e-4`` as a string); a number given for a string (a path YAML read as a number) becomes a string."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if kind is int:
        if isinstance(value, str):
            value = value.strip()
            value = int(value) if re.fullmatch(r"[+-]?\d+", value) else float(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError
    if kind is float:
        if isinstance(value, str):
            value = float(value.strip())
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ValueError
    if kind is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str):
            return value
        raise ValueError
    if kind is tuple:
        if isinstance(value, (list, tuple)):
            return tuple(_coerce(v, float) for v in value)
        raise ValueError
    if kind is dict:
        if isinstance(value, dict):
            return value
        raise ValueError
    if kind is list:
        if isinstance(value, (list, tuple)):
            return list(value)
        raise ValueError
    return value


def check_value(cls: type, name: str, value):
    """``value`` of field ``name`` of the config dataclass ``cls``, coerced to the field's type and
    checked; a T2IError such as ``invalid train.batch_size=0: expected an integer >= 1``."""
    spec = field_specs(cls)[name]
    kind = _KIND_NAMES.get(spec.kind, "a value")
    if spec.choices:
        allowed = f"{kind}: one of {', '.join(spec.choices)}"
    elif spec.rule:
        text = spec.rule.allowed
        allowed = f"{kind} {text}" if text[0] in "<>=i" else f"{kind}: {text}"
    else:
        allowed = f"{kind} >= 0" if spec.kind in (int, float) else kind
    if spec.optional and spec.kind is not None:
        allowed += " (or null)"
    where = f"{cls.section}.{name}" if cls.section else name
    if value is None:
        if spec.optional or spec.kind is None:
            return None
        raise T2IError(f"invalid {where}=None: expected {allowed}")
    try:
        coerced = _coerce(value, spec.kind)
    except (ValueError, TypeError, OverflowError):
        raise T2IError(f"invalid {where}={value!r}: expected {allowed}") from None
    if spec.kind is None or isinstance(coerced, bool):
        return coerced
    if spec.choices:
        ok = coerced in spec.choices
    elif spec.rule:
        ok = spec.rule.test(coerced)
    else:
        ok = not isinstance(coerced, (int, float)) or coerced >= 0
    if not ok:
        raise T2IError(f"invalid {where}={value!r}: expected {allowed}")
    return coerced
