"""The one training loop every model uses.

It schedules each model's phases (see :mod:`t2igan.models.base`), keeps the moving average of G,
writes the run folder (config, vocabulary, checkpoints, sample grids, ``log.jsonl``, TensorBoard
scalars when ``tensorboard`` is installed), resumes, and under ``torchrun`` averages gradients over
processes. It knows nothing about any particular model.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from .config import ExperimentConfig
from .data.text import CaptionCollator, Vocabulary, encode_captions
from .errors import T2IError
from .hub import load_safetensors, read_run_config, save_run, save_safetensors
from .registry import create_model, model_config_class
from .visualize import captioned_grid, to_pil

CKPT_RE = re.compile(r"step-(\d{8})\.safetensors$")


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
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and info.world_size > 1:
        device = f"cuda:{info.local_rank}"
    return torch.device(device)


def all_reduce_gradients(params: list[torch.nn.Parameter], world_size: int) -> None:
    """Average gradients over processes, as DistributedDataParallel's reducer does, in one flat
    all-reduce. GAN losses call D several times per step and differentiate twice (MA-GP, R1);
    DDP's hooks do not support that, so the gradients are reduced here after ``backward``."""
    grads = [p.grad for p in params if p.grad is not None]
    if world_size <= 1 or not grads:
        return
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    flat /= world_size
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset: offset + n].view_as(g))
        offset += n


# ---------------------------------------------------------------------------------------------
# building blocks


def build_vocab(cfg: ExperimentConfig, train_set) -> Vocabulary:
    if cfg.data.vocab:
        path = Path(cfg.data.vocab)
        if path.suffix == ".pickle":
            from .data.datasets import read_attngan_captions, vocabulary_from_attngan

            return vocabulary_from_attngan(read_attngan_captions(path)[2])
        return Vocabulary.load(path)
    return Vocabulary.build(train_set.all_captions())


def build_datasets(cfg: ExperimentConfig):
    from .data.datasets import build_dataset

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
    return create_model(cfg.model, vocab_size=vocab_size, **args)


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """``runs/00007-<name>``: the next free number."""
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    nums = [int(p.name[:5]) for p in runs_dir.iterdir() if p.is_dir() and p.name[:5].isdigit()]
    path = runs_dir / f"{(max(nums) + 1 if nums else 0):05d}-{name}"
    path.mkdir()
    return path


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


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    ckpt_dir = Path(run_dir) / "checkpoints"
    if not ckpt_dir.is_dir():
        return []
    found = []
    for p in ckpt_dir.iterdir():
        m = CKPT_RE.match(p.name)
        if m and p.with_suffix(".state.pt").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def rng_state() -> dict:
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": np.random.get_state()[1].tolist(),
        "numpy_pos": int(np.random.get_state()[2]),
        "python": repr(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    np.random.set_state(("MT19937", np.array(state["numpy"], dtype=np.uint32), state["numpy_pos"], 0, 0.0))
    import ast

    version, internal, gauss = ast.literal_eval(state["python"])
    random.setstate((version, tuple(internal), gauss))


# ---------------------------------------------------------------------------------------------
# the loop


class Trainer:
    def __init__(self, cfg: ExperimentConfig, run_dir: str | Path | None = None, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        self.dist = init_distributed(cfg.train.device)
        self.device = resolve_device(cfg.train.device, self.dist)
        t = cfg.train
        seed = t.seed + self.dist.rank
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

        self.train_set, self.test_set = build_datasets(cfg)
        self.vocab = build_vocab(cfg, self.train_set)
        self.collate = CaptionCollator(self.vocab, cfg.data.max_words, cfg.data.shorten, train=True)
        self.model = build_model(cfg, len(self.vocab)).to(self.device)
        self.model.train()
        self.optimizers = {
            phase: torch.optim.Adam(groups) for phase, groups in self.model.optimizer_groups(t).items()
        }
        self.ema = EMA(self.model.generator, t.ema_decay) if t.ema_decay > 0 else None
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.last_checkpoint: Path | None = None
        self.run_dir = Path(run_dir) if run_dir else None
        self._tb = None

    # -- run folder ------------------------------------------------------------------------------
    def prepare_run_dir(self) -> Path:
        if self.run_dir is None:
            if self.dist.world_size > 1:
                raise T2IError("with torchrun, name the run folder: t2igan train ... --run-dir DIR")
            self.run_dir = new_run_dir(self.cfg.runs_dir, self.cfg.name)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "experiment.json").write_text(self.cfg.to_json())
            save_run(self.run_dir, self.cfg.to_dict(), self.model, self.vocab, self.ema.module if self.ema else None)
        return self.run_dir

    def log(self, logs: dict) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, **logs}) + "\n")
        if self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self._tb = SummaryWriter(str(self.run_dir / "tensorboard"))
            except ImportError:
                self._tb = False
        if self._tb:
            for k, v in logs.items():
                if isinstance(v, (int, float)):
                    self._tb.add_scalar(k, v, self.step)

    # -- checkpoints -----------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Weights (safetensors) + optimizer/RNG/data position (``torch.save`` of plain tensors and
        numbers, read back with ``weights_only=True``), each written atomically; old ones pruned."""
        ckpt_dir = self.run_dir / "checkpoints"
        ckpt_dir.mkdir(exist_ok=True)
        path = ckpt_dir / f"step-{self.step:08d}.safetensors"
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.ema:
            tensors.update({f"ema.{k}": v for k, v in self.ema.module.state_dict().items()})
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "rng": rng_state(),
        }
        state_path = path.with_suffix(".state.pt")
        tmp = state_path.with_name(f".{state_path.name}.tmp")
        torch.save(state, tmp)
        save_safetensors(tensors, path, {"step": str(self.step)})
        os.replace(tmp, state_path)  # the state file last: a checkpoint counts only when both exist
        save_run(self.run_dir, self.cfg.to_dict(), self.model, self.vocab, self.ema.module if self.ema else None)
        self.last_checkpoint = path
        for _, old in list_checkpoints(self.run_dir)[: -self.cfg.train.keep_checkpoints]:
            old.unlink(missing_ok=True)
            old.with_suffix(".state.pt").unlink(missing_ok=True)
        return path

    def load_checkpoint(self, path: Path) -> None:
        tensors = load_safetensors(path)
        model_sd = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        self.model.load_state_dict(model_sd)
        if self.ema:
            self.ema.module.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
        try:
            state = torch.load(path.with_suffix(".state.pt"), map_location="cpu", weights_only=True)
        except Exception as e:
            raise T2IError(f"cannot read checkpoint state {path.with_suffix('.state.pt')}: {e}") from None
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        set_rng_state(state["rng"])
        self.last_checkpoint = path

    def resume(self) -> bool:
        """Continue from the newest readable checkpoint of ``run_dir``; a corrupt one is reported
        and the one before it used."""
        for step, path in reversed(list_checkpoints(self.run_dir)):
            try:
                self.load_checkpoint(path)
                return True
            except T2IError as e:
                tqdm.write(f"warning: skipping unreadable checkpoint {path.name}: {e}", file=sys.stderr)
        return False

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def write_samples(self) -> Path | None:
        if not self.dist.is_main or not self.cfg.train.sample_every:
            return None
        n = self.cfg.train.num_sample_captions
        captions = [self.test_set.captions(i)[0] for i in range(min(n, len(self.test_set)))]
        tokens, lengths = encode_captions(self.vocab, captions, self.cfg.data.max_words)
        gen = torch.Generator().manual_seed(self.cfg.train.seed)
        noise = self.model.noise(len(captions), getattr(self.model.config, "truncation", None), gen)
        was = self.model.training
        self.model.eval()
        out = self.model.generate(tokens.to(self.device), lengths.to(self.device), noise.to(self.device),
                                  self.ema.module if self.ema else None)
        self.model.train(was)
        path = self.run_dir / "samples" / f"step-{self.step:08d}.png"
        path.parent.mkdir(exist_ok=True)
        captioned_grid(to_pil(out.images), captions, ncol=min(8, len(captions))).save(path)
        return path

    # -- main loop -------------------------------------------------------------------------------
    def epoch_indices(self) -> list[int]:
        """This process's sample order for ``self.epoch``: a function of (seed, epoch, rank) only,
        so a resumed run sees exactly the batches an uninterrupted one would."""
        t = self.cfg.train
        if self.dist.world_size > 1:
            sampler = DistributedSampler(self.train_set, self.dist.world_size, self.dist.rank, shuffle=True,
                                         seed=t.seed, drop_last=True)
            sampler.set_epoch(self.epoch)
            return list(sampler)
        return torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(t.seed + self.epoch)).tolist()

    def batches(self):
        """Endless batches. The position (epoch, batch) is tracked; on resume the batches already
        seen in the current epoch are skipped without being loaded."""
        t = self.cfg.train
        if len(self.train_set) < t.batch_size * self.dist.world_size:
            raise T2IError(f"the training set has {len(self.train_set)} images, fewer than one batch ({t.batch_size})")
        while True:
            indices = self.epoch_indices()
            n_batches = len(indices) // t.batch_size
            start = self.batch_in_epoch
            loader = DataLoader(self.train_set, t.batch_size, sampler=indices[start * t.batch_size:],
                                collate_fn=self.collate, drop_last=True, num_workers=self.cfg.data.num_workers,
                                pin_memory=self.device.type == "cuda",
                                # its own generator: creating a loader must not draw from the global RNG
                                generator=torch.Generator().manual_seed(t.seed + 7919 * self.epoch + start))
            for i, batch in enumerate(loader, start=start + 1):
                self.batch_in_epoch = i
                yield {k: (v.to(self.device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in batch.items()}
            assert self.batch_in_epoch == n_batches or start >= n_batches
            self.epoch += 1
            self.batch_in_epoch = 0

    def train_step(self, batch) -> dict:
        state: dict = {}
        logs: dict = {}
        amp = self.cfg.train.amp
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16,
                                  enabled=amp != "none" and self.device.type == "cuda")
        for phase in self.model.phases:
            opt = self.optimizers[phase]
            with autocast:
                loss, phase_logs = self.model.compute_loss(phase, batch, state)
            if not torch.isfinite(loss):
                where = self.last_checkpoint or "none yet"
                raise T2IError(f"non-finite {phase} loss ({loss.item()}) at step {self.step}: "
                               f"{phase_logs}; last good checkpoint: {where}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for g in opt.param_groups for p in g["params"]]
            all_reduce_gradients(params, self.dist.world_size)
            opt.step()
            logs.update(phase_logs)
        if self.ema:
            self.ema.update(self.model.generator, self.ema_decay())
        return logs

    def ema_decay(self) -> float:
        """The moving average's decay at this step: 0 (a plain copy) before ``ema_start``, then
        warmed up as ``min(decay, (1 + n) / (10 + n))`` over the ``n`` steps since, so that a short
        run's average is not dominated by the initial weights."""
        t = self.cfg.train
        if self.step < t.ema_start:
            return 0.0
        n = self.step - t.ema_start
        return min(t.ema_decay, (1 + n) / (10 + n))

    def fit(self, resume: bool = False) -> Path:
        t = self.cfg.train
        self.prepare_run_dir()
        if resume and not self.resume() and self.dist.is_main:
            tqdm.write(f"no checkpoint in {self.run_dir}; starting from step 0")
        start_time = time.time()
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not (self.progress and self.dist.is_main),
                   desc=f"train {self.cfg.model}", dynamic_ncols=True)
        batches = self.batches()
        stopped_early = False
        while self.step < t.max_steps:
            if t.time_limit_min and time.time() - start_time > 60 * t.time_limit_min:
                stopped_early = True
                break
            logs = self.train_step(next(batches))
            self.step += 1
            bar.update(1)
            if self.step % t.log_every == 0 or self.step == 1:
                bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k.endswith("loss")})
                self.log({**logs, "epoch": self.epoch, "time_s": round(time.time() - start_time, 1)})
            if t.sample_every and self.step % t.sample_every == 0:
                self.write_samples()
            if self.step % t.checkpoint_every == 0 and self.dist.is_main:
                self.save_checkpoint()
        bar.close()
        if self.dist.is_main:
            if not self.last_checkpoint or not str(self.last_checkpoint).endswith(f"{self.step:08d}.safetensors"):
                self.save_checkpoint()
            grid = self.write_samples()
            if stopped_early:
                tqdm.write(f"time limit reached after {self.step} steps")
            if grid:
                tqdm.write(f"samples: {grid}")
        if self.dist.world_size > 1:
            dist.barrier()
        return self.run_dir


def train(cfg: ExperimentConfig, run_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Train a new run; returns its folder."""
    return Trainer(cfg, run_dir, progress).fit()


def resume_training(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True) -> Path:
    """Continue the run in ``run_dir`` from its newest checkpoint (with optional overrides such as
    ``train.max_steps=20000``)."""
    from .config import apply_overrides

    run_dir = Path(run_dir)
    read_run_config(run_dir)
    exp = json.loads((run_dir / "experiment.json").read_text()) if (run_dir / "experiment.json").is_file() \
        else read_run_config(run_dir)["experiment"]
    cfg = ExperimentConfig.from_dict(apply_overrides(exp, overrides or []))
    return Trainer(cfg, run_dir, progress).fit(resume=True)
