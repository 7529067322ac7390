"""Experiment trackers the trainer writes to, besides ``log.jsonl``: ``train.loggers=[tensorboard, wandb]``.

Every tracker has the same three calls, which the trainer makes on the main process only:
``log_scalars(step, {name: number})``, ``log_images(step, {name: PIL image})`` (the sample grids)
and ``close()``. The default (``train.loggers`` unset) is TensorBoard when it is installed, else none.

* ``tensorboard``: event files in ``RUN/tensorboard`` (``tensorboard --logdir RUN``).
* ``wandb``: a Weights & Biases run in ``RUN/wandb``. It is offline (nothing leaves the machine; upload
  later with ``wandb sync RUN/wandb/offline-run-*``) unless ``WANDB_MODE=online`` is set.

Before a run writes anything, :func:`resolve_names` checks what would otherwise fail later: an
unknown or missing tracker, a ``WANDB_MODE`` W&B does not know, and for ``WANDB_MODE=online`` a
missing API key or a W&B server that cannot be reached (within :data:`REACH_TIMEOUT_S`, not after
W&B's own minute and a half of retries). Each is one :class:`~t2igan.errors.T2IError` line.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from .errors import T2IError, one_line

KNOWN = ("tensorboard", "wandb")
WANDB_MODES = ("offline", "online", "disabled", "shared", "dryrun", "run")  # what wandb.init accepts
REACH_TIMEOUT_S = 10.0


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
        try:
            self.run = wandb.init(project="t2igan", name=run_dir.name, dir=str(run_dir), config=config,
                                  mode=wandb_mode(), reinit="create_new")
        except (wandb.errors.Error, ValueError, TimeoutError) as e:  # W&B's own refusals, as one line
            raise T2IError(f"W&B could not start a run ({wandb_mode()} mode): {one_line(e, 200)}") from None

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


def wandb_mode() -> str:
    """``WANDB_MODE`` (default ``offline``), checked against the modes W&B knows."""
    mode = os.environ.get("WANDB_MODE", "offline")
    if mode not in WANDB_MODES:
        raise T2IError(f"WANDB_MODE={mode!r} is not a W&B mode: leave it unset (offline: the run logs into "
                       f"RUN/wandb), or set {', '.join(m for m in WANDB_MODES if m in ('online', 'offline', 'disabled'))}")
    return mode


def wandb_server() -> str:
    import wandb

    return os.environ.get("WANDB_BASE_URL") or wandb.Settings().base_url


def reachable(url: str, timeout: float = REACH_TIMEOUT_S) -> str | None:
    """None when a TCP connection to ``url``'s host opens within ``timeout`` (name lookup included),
    else why not."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    outcome: list = []

    def connect():
        try:
            socket.create_connection((parsed.hostname, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as e:
            outcome.append(one_line(e.strerror or e, 120))

    thread = threading.Thread(target=connect, daemon=True)  # a name lookup ignores socket timeouts
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def check_wandb_online() -> None:
    """For ``WANDB_MODE=online``: an API key is configured and the W&B server answers."""
    import wandb

    server = wandb_server()
    try:  # W&B's own credential lookup (environment, netrc), without prompting
        from wandb.sdk.lib.wbauth.authenticate import authenticate_session
    except ImportError:  # another W&B version: wandb.init reports a missing key itself
        authenticate_session = None
    if authenticate_session is not None:
        try:
            auth = authenticate_session(host=server, source="t2igan", prompt=False, update_session=False)
        except (wandb.errors.Error, ValueError) as e:
            raise T2IError(f"WANDB_MODE=online: {one_line(e, 200)}") from None
        if auth is None:
            raise T2IError(f"WANDB_MODE=online needs a W&B API key for {server} (wandb login, or WANDB_API_KEY); "
                           "leave WANDB_MODE unset to log offline into RUN/wandb and upload later with wandb sync")
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return  # the proxy, not this machine, reaches the server
    problem = reachable(server)
    if problem:
        raise T2IError(f"WANDB_MODE=online: the W&B server {server} cannot be reached ({problem}); leave "
                       "WANDB_MODE unset to log offline into RUN/wandb and upload later with wandb sync")


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
    if "wandb" in names and wandb_mode() == "online":
        check_wandb_online()
    return list(dict.fromkeys(names))


def open_loggers(names: list[str] | None, run_dir: str | Path, config: dict) -> Loggers:
    run_dir = Path(run_dir)
    makers = {"tensorboard": lambda: TensorBoardLogger(run_dir), "wandb": lambda: WandbLogger(run_dir, config)}
    return Loggers([makers[n]() for n in resolve_names(names)])
