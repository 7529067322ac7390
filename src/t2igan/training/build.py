"""What the trainer builds before its loop: data sets, vocabulary, the model with the pretrained parts its
config names, and the moving average of G.

A model reads no file and never changes its config. :func:`build_model` completes a model's arguments
from the pretrained parts they name, builds the model (:func:`t2igan.models.create_model`) and loads
the parts into it:

* ``damsm_weights`` (a DAMSM run, a file in it or a bundled name): a GAN's DAMSM critic takes the run's
  frozen image encoder and the GAN's text encoder starts from the run's (:meth:`DAMSMCritic.adopt
  <t2igan.models.damsm.DAMSMCritic.adopt>`); ``damsm_gamma1/2/3`` and ``damsm_paper_form`` left ``None``
  become the run's own (without a run: :class:`~t2igan.models.damsm.DAMSMConfig`'s defaults), so the
  saved run records what its DAMSM term used. GAN-INT-CLS takes the text encoder only (also from a bare
  ``model.safetensors``). A DF-GAN-family D with ``d_backbone`` (damsm, damsm_random) is built on the
  run's image encoder architecture (``damsm_backbone``, ``damsm_image_size``, ``damsm_cnn_channels``
  become the run's) and with ``damsm`` reads the run's frozen backbone weights, which ``damsm`` requires.
* ``stream_weights`` (MirrorGAN): a STREAM run (or a MirrorGAN run's STREAM) fills the ``stream_*``
  architecture fields left ``None`` (a value that disagrees is an error naming both) and its weights
  the frozen STREAM; without one the fields take :data:`t2igan.models.mirrorgan.STREAM_DEFAULTS`.
* ``inception_weights`` (DAMSM, STREAM with the Inception backbone): the ImageNet Inception-v3 file,
  found by :func:`t2igan.metrics.inception.resolve_weights_path` (required: a missing file fails before
  any data is loaded) and loaded into the frozen backbone.

:func:`missing_damsm` is the recipe check that ``t2igan train`` (``--dry-run`` too) and a new run's
:meth:`Trainer.fit <t2igan.training.Trainer.fit>` make first: a GAN on CUB or COCO whose text encoder is
frozen or whose G has a DAMSM loss needs a pretrained DAMSM, and without one would train against random
weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..config import ExperimentConfig, model_args
from ..data.text import Vocabulary
from ..errors import T2IError
from ..fields import build_config
from ..hub import first_bad_tensor, load_safetensors_into
from ..models import create_model, model_config_class
from ..models.damsm import DAMSM_LOSS_SETTINGS, DAMSMConfig
from ..nn.image_encoder import InceptionBackbone
from ..runs import WEIGHTS_NAME, load_damsm, load_vocab, read_config, resolve_path, resolve_run_dir


def build_vocab(cfg: ExperimentConfig, train_set) -> Vocabulary:
    """The vocabulary of ``data.vocab``: a ``vocab.json``, AttnGAN's ``captions.pickle``, or a run folder
    / bundled model's name (its ``vocab.json``). Unset, it is the vocabulary of the ``model.damsm_weights``
    run when one is given (the GAN must share the DAMSM's word indices), else built from the captions."""
    source = cfg.data.vocab or cfg.model_args.get("damsm_weights")
    if not cfg.data.vocab and source and Path(source).suffix == ".safetensors" and \
            not (Path(source).expanduser().parent / "vocab.json").is_file():
        source = None  # a bare DAMSM weights file without its run folder: no vocabulary to take
    if not source:
        return Vocabulary.build(train_set.all_captions())
    path = resolve_path(source)  # a bundled model's file too: shapes-damsm/vocab.json
    if path.suffix == ".pickle":
        from ..data.datasets import read_attngan_captions, vocabulary_from_attngan

        return vocabulary_from_attngan(read_attngan_captions(path)[2])
    if path.suffix != ".json":  # a run folder, a file in it, or a bundled model's name
        return load_vocab(path, file_ok=True)
    return Vocabulary.load(path)


def build_datasets(cfg: ExperimentConfig):
    from ..data.datasets import build_dataset

    d = cfg.data
    train_set = build_dataset(d.dataset, root=d.root, split="train", image_size=d.image_size, **d.train_args)
    test_set = build_dataset(d.dataset, root=d.root, split="test", image_size=d.image_size, **d.test_args)
    return train_set, test_set


# data set -> (the DAMSM preset that pretrains one, AttnGAN's released text and image encoders of it)
DAMSM_SOURCES = {"cub": ("damsm-cub", "text_encoder200.pth", "image_encoder200.pth"),
                 "coco": ("damsm-coco", "text_encoder100.pth", "image_encoder100.pth")}


def missing_damsm(cfg: ExperimentConfig) -> str | None:
    """Why ``cfg`` cannot train as written, or None: on CUB or COCO, a model with a ``damsm_weights`` field left
    empty whose text encoder is frozen (DF-GAN, SSA-GAN, the AttnGAN family: the papers' pretrained DAMSM
    text encoder) or whose G has a DAMSM loss would train against random weights. The message gives both
    ways to a DAMSM run: pretraining one, or converting AttnGAN's released encoders."""
    sources = DAMSM_SOURCES.get(cfg.data.dataset)
    if sources is None:
        return None
    config = build_config(model_config_class(cfg.model), model_args(cfg, vocab_size=2))
    if not hasattr(config, "damsm_weights") or config.damsm_weights:
        return None
    parts = []
    if getattr(config, "text_source", "encoder") == "encoder" and getattr(config, "text_encoder_mode", "frozen") == "frozen":
        parts.append("its frozen text encoder")
    if (getattr(config, "damsm_loss_weight", None) or getattr(config, "damsm_weight", None) or 0) > 0:
        parts.append("the image encoder of its DAMSM loss")
    if not parts:
        return None
    preset, text_encoder, image_encoder = sources
    return (f"{cfg.model} on {cfg.data.dataset} needs a pretrained DAMSM ({' and '.join(parts)} would be random): "
            f"set model.damsm_weights=RUN, a DAMSM run from `t2igan pretrain damsm {preset}` or from AttnGAN's "
            f"released encoders: `t2igan convert damsm {text_encoder} --image-encoder {image_encoder} "
            f"--captions captions.pickle -o RUN`")


def build_model(name: str, **args):
    """``create_model(name, **args)`` with the pretrained parts its arguments name loaded in (see the
    module docstring): the model training starts from."""
    args = dict(args)
    fields = model_config_class(name).__dataclass_fields__
    if "inception_weights" in fields and args.get("backbone", fields["backbone"].default) == "inception":
        from ..metrics.inception import resolve_weights_path

        try:
            args["inception_weights"] = str(resolve_weights_path("imagenet", args.get("inception_weights")))
        except T2IError as e:  # where the file goes, and the image encoder that needs none
            raise T2IError(f"{name}: {missing_inception(e, args.get('inception_weights'))}; or use the small CNN "
                           "image encoder, which needs none: model.backbone=small_cnn data.image_size=64") from None
    damsm = None
    if "damsm_gamma1" in fields:  # a GAN with a DAMSM critic: its loss settings are the run's (else the defaults)
        damsm = load_damsm(args["damsm_weights"]) if args.get("damsm_weights") else None
        source = damsm[0].config if damsm else DAMSMConfig
        for setting in DAMSM_LOSS_SETTINGS:
            if args.get(f"damsm_{setting}") is None:
                args[f"damsm_{setting}"] = getattr(source, setting)
    if "d_backbone" in fields:
        args.update(d_backbone_architecture(args, damsm))
    if "stream_weights" in fields:
        args.update(stream_architecture(args))
    model = create_model(name, **args)
    c = model.config
    if getattr(c, "d_backbone", "none") == "damsm":
        model.feature_network.load_state_dict(damsm[0].image_encoder.backbone.state_dict())
    if damsm is not None:
        model.damsm_critic.adopt(*damsm, c.damsm_weights, model.text_encoder, c.vocab_size)
    elif getattr(c, "damsm_weights", None) and getattr(model, "text_encoder", None) is not None:
        load_damsm_text_encoder(model.text_encoder, c.damsm_weights)
    if getattr(c, "stream_weights", None):
        run_dir = resolve_run_dir(c.stream_weights, file_ok=True)
        load_safetensors_into(model.stream, run_dir / WEIGHTS_NAME, prefix="stream.")
        bad = first_bad_tensor(model.stream.state_dict())
        if bad:
            raise T2IError(f"the STREAM in {c.stream_weights} holds {bad}")
    if getattr(c, "inception_weights", None):
        from ..metrics.inception import load_inception_weights

        state = load_inception_weights("imagenet", c.inception_weights)
        for module in model.modules():
            if isinstance(module, InceptionBackbone):
                module.load_imagenet_weights(state, source=c.inception_weights)
    return model


def missing_inception(error: T2IError, given: str | None) -> str:
    """Where the ImageNet Inception weights of a DAMSM / STREAM backbone go, when they were not found."""
    import os

    from ..metrics.inception import WEIGHTS, cache_dir

    info = WEIGHTS["imagenet"]
    if given or os.environ.get(info["env"]):
        return str(error)  # the path given is wrong: the error names it
    return (f"no ImageNet Inception weights: put {info['file']} ({info['url']}) in {cache_dir()} or give "
            f"its path (model.inception_weights=PATH or {info['env']}=PATH)")


def build_experiment_model(cfg: ExperimentConfig, vocab_size: int):
    """:func:`build_model` of an experiment (:func:`t2igan.config.model_args`: the vocabulary size from the
    data, ``model.image_size`` from ``data.image_size``)."""
    return build_model(cfg.model, **model_args(cfg, vocab_size))


def d_backbone_architecture(args: dict, damsm) -> dict:
    """The ``damsm_*`` architecture fields of a DF-GAN-family D that reads a DAMSM backbone
    (``d_backbone`` damsm or damsm_random): those of the loaded ``damsm_weights`` run (``damsm``:
    ``(DAMSM, vocabulary)`` or None), else as ``args`` gives them; ``damsm`` needs the run."""
    choice = args.get("d_backbone", "none")
    if choice == "damsm" and damsm is None:
        raise T2IError("model.d_backbone=damsm reads the image encoder of a pretrained DAMSM, but model.damsm_weights "
                       "is empty; name one (e.g. model.damsm_weights=shapes-damsm)")
    if choice == "none" or damsm is None:
        return {}
    run = damsm[0].config
    return {"damsm_backbone": run.backbone, "damsm_image_size": run.image_size, "damsm_cnn_channels": run.cnn_channels}


def stream_architecture(args: dict) -> dict:
    """MirrorGAN's ``stream_*`` fields: those of the ``stream_weights`` run (a STREAM run, or a MirrorGAN
    run's STREAM), else :data:`~t2igan.models.mirrorgan.STREAM_DEFAULTS`; a value given in ``args`` must
    agree with the run's. The run's vocabulary must be the data's (``args["vocab_size"]``)."""
    from ..models.mirrorgan import STREAM_DEFAULTS

    path = args.get("stream_weights")
    if not path:
        return {ours: default if args.get(ours) is None else args[ours]
                for ours, (_, default) in STREAM_DEFAULTS.items()}
    config = read_config(resolve_run_dir(path, file_ok=True), kind=("stream", "mirrorgan"))
    vocab = load_vocab(path, file_ok=True)
    if len(vocab) != args.get("vocab_size"):
        raise T2IError(f"the STREAM in {path} has a {len(vocab)}-word vocabulary but the data's has "
                       f"{args.get('vocab_size')}; pretrain it with data.vocab=<DAMSM run>/vocab.json and train "
                       "with the same data.vocab")
    mc = config["model_config"]
    out = {}
    for ours, (theirs, default) in STREAM_DEFAULTS.items():
        run_value = mc.get(ours if config["model_name"] == "mirrorgan" else theirs)
        run_value = default if run_value is None else run_value
        if args.get(ours) is not None and args[ours] != run_value:
            raise T2IError(f"mirrorgan: {ours}={args[ours]!r} but the STREAM in {path} has "
                           f"{theirs}={run_value!r}; set model.{ours}={run_value} or leave it null")
        out[ours] = run_value
    return out


def load_damsm_text_encoder(text_encoder: torch.nn.Module, damsm_weights: str) -> None:
    """Load the text encoder of a DAMSM run folder (or a bundled DAMSM's name), or of a safetensors file
    (its ``model.safetensors``; keys with or without the ``text_encoder.`` prefix); errors name the file."""
    path = Path(damsm_weights).expanduser()
    if not path.exists():
        path = resolve_run_dir(path)
    load_safetensors_into(text_encoder, path / WEIGHTS_NAME if path.is_dir() else path, prefix="text_encoder.")


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied)."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, source: torch.nn.Module, decay: float | None = None) -> None:
        decay = self.decay if decay is None else decay
        for e, s in zip(self.module.parameters(), source.parameters()):
            e.lerp_(s.detach(), 1.0 - decay)
        for e, s in zip(self.module.buffers(), source.buffers()):
            e.copy_(s)
