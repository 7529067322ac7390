"""Experiment trackers the trainer writes to, besides ``log.jsonl``: ``train.loggers=[tensorboard, wandb]``.

Every tracker has the same three calls, which the trainer makes on the main process only:
``log_scalars(step, {name: number})``, ``log_images(step, {name: PIL image})`` (the sample grids)
and ``close()``. The default (``train.loggers`` unset) is TensorBoard when it is installed, else none.

* ``tensorboard``: event files in ``RUN/tensorboard`` (``tensorboard --logdir RUN``).
* ``wandb``: a Weights & Biases run in ``RUN/wandb``. It is offline (nothing leaves the machine; upload
  later with ``wandb sync RUN/wandb/offline-run-*``) unless ``WANDB_MODE=online`` is set.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from .errors import T2IError

KNOWN = ("tensorboard", "wandb")


class TensorBoardLogger:
    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_dir / "tensorboard"))

    def log_scalars(self, step: int, values: dict) -> None:
        for k, v in values.items():
            self.writer.add_scalar(k, v, step)

    def log_images(self, step: int, images: dict) -> None:
        for k, image in images.items():
            self.writer.add_image(k, np.asarray(image.convert("RGB")), step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class WandbLogger:
    def __init__(self, run_dir: Path, config: dict):
        import wandb

        self.wandb = wandb
        self.run = wandb.init(project="t2igan", name=run_dir.name, dir=str(run_dir), config=config,
                              mode=os.environ.get("WANDB_MODE", "offline"), reinit="create_new")

    def log_scalars(self, step: int, values: dict) -> None:
        self.run.log(values, step=step)

    def log_images(self, step: int, images: dict) -> None:
        self.run.log({k: self.wandb.Image(image) for k, image in images.items()}, step=step)

    def close(self) -> None:
        self.run.finish()
        # finish() can return before W&B's background service has written the run file (seen with
        # wandb 0.31 offline: a 7-byte file); teardown waits for the service to flush and stop
        self.wandb.teardown()


class Loggers:
    """All the trackers of a run behind the three calls; numbers only go to ``log_scalars``."""

    def __init__(self, trackers: list):
        self.trackers = trackers

    def log_scalars(self, step: int, values: dict) -> None:
        numbers = {k: v for k, v in values.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for t in self.trackers:
            t.log_scalars(step, numbers)

    def log_images(self, step: int, images: dict) -> None:
        for t in self.trackers:
            t.log_images(step, images)

    def close(self) -> None:
        for t in self.trackers:
            t.close()
        self.trackers = []


def installed(name: str) -> bool:
    return importlib.util.find_spec("tensorboard" if name == "tensorboard" else "wandb") is not None


def resolve_names(names: list[str] | None) -> list[str]:
    """``train.loggers`` -> tracker names; None is the default (TensorBoard when installed)."""
    if names is None:
        return ["tensorboard"] if installed("tensorboard") else []
    if isinstance(names, str):
        names = [names]
    for n in names:
        if n not in KNOWN:
            raise T2IError(f"unknown logger {n!r} in train.loggers; known: {', '.join(KNOWN)}")
        if not installed(n):
            raise T2IError(f"train.loggers names {n}, which is not installed: pip install \"t2igan[{n}]\"")
    return list(dict.fromkeys(names))


def open_loggers(names: list[str] | None, run_dir: str | Path, config: dict) -> Loggers:
    run_dir = Path(run_dir)
    makers = {"tensorboard": lambda: TensorBoardLogger(run_dir), "wandb": lambda: WandbLogger(run_dir, config)}
    return Loggers([makers[n]() for n in resolve_names(names)])
