"""The table of model families (timm style): a family registers itself where it is defined::

    @register_model("dfgan", DFGANConfig)
    class DFGAN(T2IModel): ...

:mod:`t2igan.models` imports every family and looks names up here (``create_model``, ``list_models``).
"""

from __future__ import annotations

MODELS: dict[str, tuple[type, type]] = {}  # name -> (model class, config class)
PRETRAINING: set[str] = set()  # registered with text_to_image=False: the networks pretrained for the GANs


def register_model(name: str, config_class: type, text_to_image: bool = True):
    def deco(cls):
        MODELS[name] = (cls, config_class)
        if not text_to_image:
            PRETRAINING.add(name)
        cls.model_name = name
        cls.config_class = config_class
        return cls

    return deco


def declared_models() -> list[str]:
    """The text-to-image model names the family modules declare (``@register_model("name", ...)`` lines
    without ``text_to_image=False``), read from their source without importing them, so that
    ``t2igan list-models`` needs no torch. :func:`t2igan.models.list_models` (which imports every
    family) gives the same names; a test holds them equal."""
    import re
    from pathlib import Path

    names = set()
    for path in (Path(__file__).parent / "models").glob("*.py"):
        for m in re.finditer(r'^@register_model\("(\w+)"([^\n]*)\)\s*$', path.read_text(encoding="utf-8"), re.M):
            if "text_to_image=False" not in m.group(2):
                names.add(m.group(1))
    return sorted(names)
