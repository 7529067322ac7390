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
