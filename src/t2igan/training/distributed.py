"""Processes, devices and random states for the training loop.

Under ``torchrun`` every process joins one group (:func:`init_distributed`); gradients are averaged
with one flat all-reduce (:func:`all_reduce_gradients`) and buffers or initial weights taken from
rank 0 (:func:`broadcast_tensors`). Checkpoints hold every process's RNG states
(:func:`gather_rng_states`), restored with :func:`set_rng_state` on resume.
"""

from __future__ import annotations

import ast
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from ..hub import parse_device

# ---------------------------------------------------------------------------------------------
# processes and devices


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device_str: str) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (no-op otherwise)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and not device_str.startswith("cpu")
        if use_cuda:
            torch.cuda.set_device(info.local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info


def resolve_device(device: str, info: DistInfo) -> torch.device:
    if device in ("auto", "cuda") and torch.cuda.is_available() and info.world_size > 1:
        device = f"cuda:{info.local_rank}"
    return parse_device(device)


def all_reduce_gradients(params: list[torch.nn.Parameter], world_size: int,
                         loss: torch.Tensor | None = None) -> torch.Tensor | None:
    """Average gradients over processes, as DistributedDataParallel's reducer does, in one flat
    all-reduce. GAN losses call D several times per step and differentiate twice (MA-GP, R1);
    DDP's hooks do not support that, so the gradients are reduced here after ``backward``.

    ``loss`` (a scalar) travels in the same all-reduce and its mean over processes is returned, so
    every process sees at once when any process's loss is non-finite (and all stop together)."""
    if world_size <= 1:
        return loss
    grads = [p.grad for p in params if p.grad is not None]
    dtype = grads[0].dtype if grads else torch.float32
    parts = [g.flatten() for g in grads]
    if loss is not None:
        parts.append(loss.detach().reshape(1).to(dtype))
    if not parts:
        return loss
    flat = torch.cat(parts)
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset: offset + n].view_as(g))
        offset += n
    return flat[-1] if loss is not None else None


def broadcast_tensors(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in every process with rank ``src``'s values (one flat broadcast per dtype)."""
    by_dtype: dict = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.detach().flatten() for t in group])
        dist.broadcast(flat, src)
        offset = 0
        for t in group:
            t.data.copy_(flat[offset: offset + t.numel()].view_as(t))
            offset += t.numel()





def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state()[1].tolist(),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": repr(random.getstate()),
    }


def gather_rng_states(info: DistInfo) -> list[dict]:
    """Every process's RNG states, in rank order (collective: all ranks must call it)."""
    if info.world_size <= 1:
        return [rng_state()]
    states: list = [None] * info.world_size
    dist.all_gather_object(states, rng_state())
    return states


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    version, internal, gauss = ast.literal_eval(state["python"])
    random.setstate((version, tuple(internal), gauss))
