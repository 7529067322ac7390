"""Pretraining of the networks the GANs load, DAMSM (:mod:`t2igan.models.damsm`) and STREAM
(:mod:`t2igan.models.stream`): their presets (:class:`PretrainExperiment`), the shared schedule
fields (:class:`PretrainSchedule`) and one loop (:func:`run_pretraining`).

(Issue 18's next step moves this onto the GAN trainer, for its resume, torchrun, AMP and
non-finite stop.)
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import torch
from torch import nn

from ..errors import T2IError


@dataclass
class PretrainSchedule:
    """The schedule fields every pretraining shares (the ``train`` section of its preset)."""

    max_steps: int | None = None  # stop after this many steps (overrides epochs)
    time_limit_min: float | None = None  # stop after this many minutes
    time_limit_clock: str = "wall"  # wall | cpu (this process's CPU time: fair budgets on a shared machine)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 50  # steps between log.jsonl lines


def build_config(cls, values: dict, what: str):
    """``cls(**values)`` with a one-line error for unknown keys."""
    from ..config import build_dataclass

    return build_dataclass(cls, values, what)


@dataclass
class PretrainSetup:
    """What a pretraining loop starts from (:meth:`PretrainExperiment.prepare`)."""

    data: object  # DataConfig
    train: object  # the experiment's train config
    device: torch.device
    train_set: object
    test_set: object
    vocab: object
    model: nn.Module  # on ``device``
    loader: object  # shuffled training batches
    params: list  # the trainable parameters ...
    optimizer: torch.optim.Optimizer  # ... and their Adam
    total: int  # steps to run
    run_dir: Path  # created
    log_path: Path


@dataclass
class PretrainExperiment:
    """A pretraining preset of a network the GANs load (DAMSM, STREAM): ``model`` (its name),
    ``model_args`` (the network's config), ``data`` (:class:`t2igan.config.DataConfig`) and ``train``
    (its schedule). A subclass names the network (``kind``), its class (``network``), its config and
    train config classes as class arguments."""

    kind: ClassVar[str] = ""
    network: ClassVar[type] = nn.Module
    model_class: ClassVar[type] = object
    train_class: ClassVar[type] = object

    model: str = ""  # default: kind
    model_args: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    name: str = ""  # run name; default: kind
    runs_dir: str = "runs"

    def __post_init__(self):
        self.model, self.name = self.model or self.kind, self.name or self.kind

    def __init_subclass__(cls, kind: str = "", network: type = nn.Module, model_class: type = object,
                          train_class: type = object, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.kind, cls.network, cls.model_class, cls.train_class = kind, network, model_class, train_class

    def data_config(self):
        from ..config import DataConfig

        return build_config(DataConfig, self.data, "data")

    def train_config(self):
        return build_config(self.train_class, self.train, "train")

    def model_config(self, vocab_size: int = 0):
        values = dict(self.model_args, vocab_size=vocab_size)
        values.setdefault("image_size", self.data_config().image_size)
        return build_config(self.model_class, values, "model_args")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def resolve(cls, preset: str, overrides: list[str] | None = None) -> "PretrainExperiment":
        """A preset (``damsm-shapes``) or YAML file plus ``section.key=value`` overrides, validated."""
        from ..config import apply_overrides, load_preset

        d = apply_overrides(load_preset(preset), overrides or [])
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise T2IError(f"unknown top-level keys in {cls.kind.upper()} preset {preset!r}: {sorted(unknown)}")
        if d.get("model", cls.kind) != cls.kind:
            raise T2IError(f"preset {preset!r} is for model {d['model']!r}, not {cls.kind} (use `t2igan train`)")
        exp = cls(**d)
        exp.data_config(), exp.model_config()  # unknown keys fail here, in one line
        if exp.train_config().time_limit_clock not in ("wall", "cpu"):
            raise T2IError(f"train.time_limit_clock must be wall or cpu, got {exp.train_config().time_limit_clock!r}")
        return exp

    @classmethod
    def load_network(cls, run_dir: Path, config: dict, device: str | torch.device = "cpu"):
        """``(network in eval mode, Vocabulary)`` of a pretraining run folder whose ``config.json``
        says ``config``."""
        from ..data.text import Vocabulary
        from ..hub import VOCAB_NAME, WEIGHTS_NAME, load_safetensors_into

        values = dict(config.get("model_config", {}))
        values["inception_weights"] = None  # the run's own weights hold the backbone
        try:
            model = cls.network(build_config(cls.model_class, values, f"{run_dir}/config.json model_config"))
        except TypeError as err:
            raise T2IError(f"{run_dir}/config.json: bad {cls.kind.upper()} config ({err})") from None
        load_safetensors_into(model, run_dir / WEIGHTS_NAME)
        vocab = Vocabulary.load(run_dir / VOCAB_NAME)
        if len(vocab) != model.config.vocab_size:
            raise T2IError(f"{run_dir}: vocab.json has {len(vocab)} words but the {cls.kind.upper()} was built for "
                           f"{model.config.vocab_size}")
        return model.to(device).eval(), vocab

    def prepare(self, run_dir: str | Path | None = None) -> PretrainSetup:
        """Seeds, device, data, vocabulary, the network (with ImageNet Inception weights when its
        backbone is Inception: required, so this fails before loading data), its Adam and the run folder."""
        import random
        from types import SimpleNamespace

        from ..data.text import CaptionCollator
        from ..trainer import build_datasets, build_vocab, new_run_dir

        data, train = self.data_config(), self.train_config()
        torch.manual_seed(train.seed)
        random.seed(train.seed)
        device = resolve_device(train.device)
        inception_weights = self.model_config().inception_weights
        if self.model_config().backbone == "inception":
            from ..metrics.inception import resolve_weights_path

            inception_weights = str(resolve_weights_path("imagenet", inception_weights))
        data_only = SimpleNamespace(data=data)  # what the trainer's data helpers read
        train_set, test_set = build_datasets(data_only)
        vocab = build_vocab(data_only, train_set)
        config = dataclasses.replace(self.model_config(len(vocab)), inception_weights=inception_weights)
        model = self.network(config).to(device)
        loader = torch.utils.data.DataLoader(
            train_set, batch_size=train.batch_size, shuffle=True, drop_last=len(train_set) >= train.batch_size,
            num_workers=data.num_workers, collate_fn=CaptionCollator(vocab, data.max_words, data.shorten, train=True),
            generator=torch.Generator().manual_seed(train.seed),
        )
        params = model.trainable_parameters()
        optimizer = torch.optim.Adam(params, lr=train.lr, betas=tuple(train.betas))
        total = train.max_steps if train.max_steps is not None else train.epochs * len(loader)
        run_dir = Path(run_dir) if run_dir is not None else new_run_dir(self.runs_dir, self.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        return PretrainSetup(data, train, device, train_set, test_set, vocab, model, loader, params, optimizer,
                             total, run_dir, run_dir / "log.jsonl")


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def append_jsonl(path: Path, record: dict) -> None:
    """Add one JSON line to a log file."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def run_pretraining(run: PretrainSetup, train_step, label: str, clip_params: list, progress: bool = True,
                    lr_at=None) -> tuple[int, int]:
    """The pretraining loop; returns ``(steps, epochs)`` done.

    For each batch of ``run.loader``, epoch after epoch: ``loss, logs = train_step(batch)``, a
    backward pass, the gradient norm of ``clip_params`` clipped at ``train.grad_clip`` (when set)
    and an Adam step, until ``run.total`` steps or ``train.time_limit_min`` minutes. ``lr_at(epoch)``
    (optional) sets the learning rate of each epoch. ``log.jsonl`` gets the mean logs every
    ``log_every`` steps and at the end, with step, epoch, lr, wall and CPU seconds. Ctrl-C stops
    the loop (the caller then saves what was learnt)."""
    from tqdm import tqdm

    from ..trainer import elapsed_seconds

    train, model, optimizer = run.train, run.model, run.optimizer
    start, cpu_start, step, epoch, running = time.time(), time.process_time(), 0, 0, []
    lr = train.lr
    bar = tqdm(total=run.total, desc=f"{label.lower()} {run.run_dir.name}", unit="step", disable=not progress)

    def flush():
        mean = {k: sum(r[k] for r in running) / len(running) for k in running[0]}
        append_jsonl(run.log_path, {"step": step, "epoch": epoch, **({"lr": lr} if lr_at else {}),
                                    "time_s": round(time.time() - start, 1),
                                    "cpu_s": round(time.process_time() - cpu_start, 1), **mean})
        running.clear()

    model.train()
    done = step >= run.total
    try:
        while not done:
            if lr_at is not None:
                lr = lr_at(epoch)
                for group in optimizer.param_groups:
                    group["lr"] = lr
            for batch in run.loader:
                loss, logs = train_step(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if train.grad_clip:
                    torch.nn.utils.clip_grad_norm_(clip_params, train.grad_clip)
                optimizer.step()
                step += 1
                running.append(logs)
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{lr:.2g}")
                if step % train.log_every == 0:
                    flush()
                out_of_time = (train.time_limit_min is not None
                               and elapsed_seconds(train.time_limit_clock, start, cpu_start) > 60 * train.time_limit_min)
                if step >= run.total or out_of_time:
                    done = True
                    break
            else:
                epoch += 1
    except KeyboardInterrupt:
        print(f"interrupted: saving the {label} as it is", flush=True)
    finally:
        bar.close()
    if running:
        flush()
    model.eval()
    return step, epoch
