"""Model families, one module per family group that a reader holds beside the paper (importing a module
registers its models by name):

* :mod:`.dfgan` -- DF-GAN, and the one-way D, losses and options SSA-GAN (:mod:`.ssagan`) reuses;
* :mod:`.attngan` -- AttnGAN, and the multi-stage generator, stage discriminators and losses that
  MirrorGAN (:mod:`.mirrorgan`, GLAM stages) and DR-GAN (:mod:`.drgan`, SDM stages) reuse;
* :mod:`.gan_int_cls` -- GAN-INT-CLS;
* :mod:`.damsm` -- the DAMSM, its losses and the :class:`~.damsm.DAMSMCritic` the GANs share;
* :mod:`.stream` -- MirrorGAN's STREAM captioner (DAMSM and STREAM are registered models that the shared
  trainer pretrains, see :mod:`t2igan.commands.pretrain`);
* :mod:`.base` -- :class:`~.base.T2IModel`: phase dispatch, frozen and unsaved submodules, optimizer groups.

A family imports :mod:`t2igan.nn`, :mod:`t2igan.losses`, these shared modules and its group's module; never
another family.
"""

from __future__ import annotations

from ..errors import T2IError
from ..fields import build_config
from ..registry import MODELS, PRETRAINING
from . import attngan, damsm, dfgan, drgan, gan_int_cls, mirrorgan, ssagan, stream  # noqa: F401 (they register)


def list_models() -> list[str]:
    """The text-to-image models."""
    return sorted(set(MODELS) - PRETRAINING)


def _lookup(name: str) -> tuple[type, type]:
    if name not in MODELS:
        raise T2IError(f"unknown model {name!r}; models: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def model_config_class(name: str) -> type:
    return _lookup(name)[1]


def create_model(name: str, config=None, **kwargs):
    """A registered model built from its config: ``create_model("dfgan", DFGANConfig(nf=16))``, or from the
    config's fields as keyword arguments, ``create_model("dfgan", nf=16)``. The model is random and reads
    no file (:func:`t2igan.training.build.build_model` loads the pretrained parts a config names)."""
    cls, config_cls = _lookup(name)
    if config is None:
        config = build_config(config_cls, kwargs)
    elif kwargs or not isinstance(config, config_cls):
        raise T2IError(f"create_model({name!r}, config) takes a built {config_cls.__name__} and no other arguments")
    return cls(config)
