"""Model registry: ``register_model``, ``create_model``, ``list_models`` (timm style).

A model family registers its class with its config dataclass::

    @register_model("dfgan", DFGANConfig)
    class DFGAN(T2IModel): ...

``create_model("dfgan", vocab_size=5000, nf=16)`` builds ``DFGAN(DFGANConfig(vocab_size=5000, nf=16))``.
"""

from __future__ import annotations

import importlib

from .errors import T2IError

_MODELS: dict[str, tuple[type, type]] = {}
_PRETRAINING: set[str] = set()  # registered with text_to_image=False

# model modules imported on first use, so registering never depends on import order
_MODEL_MODULES = ("dfgan", "attngan", "gan_int_cls", "ssagan", "mirrorgan", "drgan", "damsm", "stream")


def register_model(name: str, config_class: type, text_to_image: bool = True):
    def deco(cls):
        _MODELS[name] = (cls, config_class)
        if not text_to_image:
            _PRETRAINING.add(name)
        cls.model_name = name
        cls.config_class = config_class
        return cls

    return deco


def _import_all() -> None:
    for mod in _MODEL_MODULES:
        try:
            importlib.import_module(f"t2igan.models.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"t2igan.models.{mod}":
                raise


def list_models() -> list[str]:
    """The text-to-image models."""
    _import_all()
    return sorted(set(_MODELS) - _PRETRAINING)


def list_pretraining_models() -> list[str]:
    """The networks pretrained for the GANs (``damsm``, ``stream``)."""
    _import_all()
    return sorted(_PRETRAINING)


def _lookup(name: str) -> tuple[type, type]:
    _import_all()
    if name not in _MODELS:
        raise T2IError(f"unknown model {name!r}; models: {', '.join(sorted(_MODELS))}")
    return _MODELS[name]


def model_config_class(name: str) -> type:
    return _lookup(name)[1]


def model_class(name: str) -> type:
    return _lookup(name)[0]


def create_model(name: str, **config):
    """Build a registered model from keyword arguments of its config dataclass."""
    from .config import build_dataclass

    cls, config_cls = _lookup(name)
    return cls(build_dataclass(config_cls, config, f"model ({name})"))
