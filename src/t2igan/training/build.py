"""What the trainer builds before its loop: data sets, vocabulary, the model and the moving average of G."""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from ..config import ExperimentConfig
from ..data.text import Vocabulary
from ..errors import T2IError
from ..registry import create_model, model_class, model_config_class
from ..runs import load_vocab


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
    path = Path(source).expanduser()
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


def build_model(cfg: ExperimentConfig, vocab_size: int):
    args = dict(cfg.model_args)
    fields = model_config_class(cfg.model).__dataclass_fields__
    if "image_size" in fields:
        if args.get("image_size", cfg.data.image_size) != cfg.data.image_size:
            raise T2IError(f"model.image_size={args['image_size']} differs from data.image_size={cfg.data.image_size}")
        args["image_size"] = cfg.data.image_size
    return create_model(cfg.model, vocab_size=vocab_size, **model_class(cfg.model).training_args(args))


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
