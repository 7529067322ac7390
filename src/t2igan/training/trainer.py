"""The one training loop every model uses.

It schedules each model's phases (see :mod:`t2igan.models.base`), keeps the moving average of G,
writes the run folder (config, vocabulary, checkpoints, sample grids, ``log.jsonl``, and the
``train.loggers`` trackers, see :mod:`t2igan.loggers`), resumes, and under ``torchrun`` averages gradients over
processes. It knows nothing about any particular model.

Reliability (see :mod:`t2igan.training.checkpoints`): checkpoints are atomic, read back, resumable bit for bit.

* The run folder (see :mod:`t2igan.runs`): a folder holding a run is refused without
  ``resume``/``overwrite``; a resume loads and validates its checkpoint before anything is written.
* A non-finite loss stops training at once with the step, the loss terms and the last good
  checkpoint; nothing is written after it, and weights are checked for NaN/inf before every save.

Speed switches (``train.*``):

* ``amp``: ``bf16`` (the recommended path) or ``fp16`` autocast, on CUDA only (ignored on CPU).
  Discriminators return logits and the losses (hinge, BCE-with-logits) are autocast-safe. ``fp16``
  gets a ``GradScaler`` per optimizer (saved in checkpoints); bf16 needs none.
* ``channels_last``: G, D and image batches in NHWC layout; checkpoints are layout-free.
* ``compile``: ``torch.compile`` of the generator only, in place (weight names unchanged). D is
  not compiled: MA-GP / R1 differentiate its output twice, which torch.compile does not support.

Several processes (``torchrun --nproc_per_node N -m t2igan train ... --run-dir DIR``):

* ``train.batch_size`` is per process: the global batch is ``N * batch_size``.
* Every process builds the model from the same seed and then takes rank 0's weights; training
  randomness (noise, dropout) is seeded with ``seed + rank``. Each process reads its own shard of
  every epoch (``DistributedSampler``, ``drop_last``).
* Gradients are averaged with one flat all-reduce after each phase's ``backward``
  (:func:`all_reduce_gradients`), not by ``DistributedDataParallel``: GAN losses call D several times
  per step and differentiate twice (MA-GP, R1), which DDP's reducer does not support. Buffers
  (batch-norm statistics) are taken from rank 0 after every step, as DDP does.
* Only rank 0 logs, writes samples and checkpoints (with the RNG states of all ranks).
* Two processes with batch B are not bit-identical to one process with batch 2B: each process
  draws its own noise, and losses that pair samples inside a batch (mismatched captions, DAMSM)
  pair them within each process's half.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler
from tqdm.auto import tqdm

from ..config import ExperimentConfig
from ..data.seeded import SeededCollate, SeededItems, sample_seeds
from ..data.text import CaptionCollator, Vocabulary
from ..errors import T2IError, describe_error
from ..hub import atomic_write_bytes
from ..loggers import Loggers, open_loggers, resolve_names
from ..pipeline import Text2ImagePipeline
from ..runs import (FIXED_FILES, WEIGHTS_NAME, RunLock, begin_overwrite, check_no_unfinished_overwrite,
                    check_resume_config, check_run_dir, describe_holder, new_run_dir, read_experiment, record_files,
                    recording_new_entries, remove_leftovers, save_run, undo_overwrite, unfinished_overwrite)
from ..visualize import captioned_grid, to_pil
from .build import EMA, build_datasets, build_experiment_model, build_vocab, missing_damsm
from .final_metrics import final_metrics
from .intro import Pace, introduction
from .checkpoints import CheckpointIO
from .distributed import all_reduce_gradients, broadcast_tensors, init_distributed, resolve_device, seed_everything


class Trainer(CheckpointIO):
    def __init__(self, cfg: ExperimentConfig, run_dir: str | Path | None = None, progress: bool = True):
        self.cfg = cfg
        self.progress = progress
        t = cfg.train
        resolve_names(t.loggers)  # an unknown or missing tracker fails before any work
        self.dist = init_distributed(t.device)
        self.device = resolve_device(t.device, self.dist)
        seed_everything(t.seed)  # the same model in every process

        self.train_set, self.test_set = build_datasets(cfg)
        self.vocab = build_vocab(cfg, self.train_set)
        self.collate = CaptionCollator(self.vocab, cfg.data.max_words, cfg.data.shorten, train=True)
        self.model = build_experiment_model(cfg, len(self.vocab)).to(self.device)
        if self.dist.world_size > 1:  # rank 0's weights everywhere, whatever the initialisers did
            broadcast_tensors(list(self.model.parameters()) + list(self.model.buffers()))
        generator = getattr(self.model, "generator", None)  # DAMSM and STREAM have none
        if t.channels_last:
            for name in ("generator", "discriminator"):
                if getattr(self.model, name, None) is not None:
                    getattr(self.model, name).to(memory_format=torch.channels_last)
        self.model.train()
        seed_everything(t.seed + self.dist.rank)  # training noise and dropout differ per process
        self.optimizers = {
            phase: torch.optim.Adam(groups) for phase, groups in self.model.optimizer_groups(t).items()
        }
        # fp16 needs its gradients scaled (one scaler per optimizer); bf16 has fp32's range and does not
        use_scaler = t.amp == "fp16" and self.device.type == "cuda"
        self.scalers = {phase: torch.amp.GradScaler("cuda", enabled=use_scaler) for phase in self.optimizers}
        self.ema = EMA(generator, t.ema_decay) if t.ema_decay > 0 and generator is not None else None
        if t.compile and generator is not None:
            # in place (state_dict keys unchanged), after the EMA copy. Only G: D's MA-GP / R1 take a
            # gradient of a gradient, which torch.compile does not support.
            self.model.generator.compile()
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.last_checkpoint: Path | None = None
        self.checkpoint_step: int | None = None  # the step last_checkpoint was written at
        self.run_dir = Path(run_dir) if run_dir else None
        self._loggers: Loggers | None = None
        self.pending_overwrite = False  # an old run is set aside until this run's first good checkpoint

    # -- run folder ------------------------------------------------------------------------------
    def lock_run_dir(self) -> RunLock | None:
        """Take the run folder's lock (:class:`t2igan.runs.RunLock`) and clear what a killed writer left.
        Under torchrun rank 0, the one process that writes the folder, holds it for all: the others
        wait for it here and stop with an error if it was refused. Collective."""
        lock, error = None, None
        if self.dist.is_main:
            try:
                lock = RunLock(self.run_dir).acquire()
                if lock.taken_over:
                    tqdm.write(f"warning: {self.run_dir} was locked by {describe_holder(lock.taken_over)}, "
                               f"which ended without letting go (killed?); taking the lock over", file=sys.stderr)
                remove_leftovers(self.run_dir)
            except (T2IError, OSError) as e:
                if lock is not None:
                    lock.release()
                lock, error = None, e
        if self.dist.world_size > 1:
            locked = torch.tensor([float(error is None)], device=self.device)
            dist.broadcast(locked, 0)
            if error is None and not locked.item():
                error = T2IError(f"{self.run_dir}: process 0 could not lock the run folder (its error says why)")
        if error is not None:
            raise error
        return lock

    def open_run_dir(self, resume: bool, overwrite: bool) -> bool:
        """Check the run folder and, with ``resume``, load its newest good checkpoint; nothing is
        written. True when training continues from a checkpoint (loaded here or before ``fit``)."""
        if self.checkpoint_step is not None:  # a checkpoint of this folder was loaded before fit()
            check_no_unfinished_overwrite(self.run_dir)
            return True
        check_run_dir(self.run_dir, resume, overwrite)
        if not resume:
            return False
        check_resume_config(self.run_dir, self.cfg.to_dict())
        saved_vocab = self.run_dir / "vocab.json"
        if saved_vocab.is_file() and Vocabulary.load(saved_vocab).words != self.vocab.words:
            raise T2IError(f"cannot resume {self.run_dir}: the data's vocabulary differs from its vocab.json")
        if self.resume():
            return True
        if (self.run_dir / WEIGHTS_NAME).is_file():  # a converted run: weights, no checkpoint
            self.start_from_run_weights(self.run_dir / WEIGHTS_NAME)
            if self.dist.is_main:
                tqdm.write(f"no checkpoint in {self.run_dir}; starting from its {WEIGHTS_NAME} at step 0")
            return False
        if self.dist.is_main:
            tqdm.write(f"no checkpoint in {self.run_dir}; starting from step 0")
        return False

    def start_from_run_weights(self, path: Path) -> None:
        """Load a run folder's inference weights (``t2igan convert`` writes no checkpoint) into the model and
        its moving average, so resuming a converted run trains the official weights, not new random ones;
        networks a file may lack (a bundled model's discriminator) keep their initial weights."""
        from ..hub import load_safetensors_into

        may_lack = tuple(f"{name}." for name in getattr(self.model, "training_only_modules", ()))
        load_safetensors_into(self.model, path, may_lack=may_lack)
        if self.ema:
            self.ema.module.load_state_dict(self.model.generator.state_dict())

    def prepare_run_dir(self, resumed: bool = False, overwrite: bool = False) -> Path:
        """Write the run's config and vocabulary (never weights: those come with a checkpoint); with
        ``overwrite``, first set the old run aside (:func:`t2igan.runs.begin_overwrite`)."""
        if self.dist.world_size > 1:
            dist.barrier()  # every process has checked the folder before it changes
        if self.dist.is_main:
            if overwrite:
                if unfinished_overwrite(self.run_dir):
                    tqdm.write(f"warning: {self.run_dir} held an interrupted --overwrite: its unfinished new run is "
                               f"discarded; the old run stays set aside until this run's first checkpoint",
                               file=sys.stderr)
                self.pending_overwrite, kept = begin_overwrite(self.run_dir)
                if kept:
                    shown = ", ".join(kept[:10]) + (f" and {len(kept) - 10} more" if len(kept) > 10 else "")
                    tqdm.write(f"warning: --overwrite keeps {len(kept)} file(s) in {self.run_dir} that no run wrote: "
                               f"{shown}", file=sys.stderr)
            self.run_dir.mkdir(parents=True, exist_ok=True)
            record_files(self.run_dir, *FIXED_FILES)  # before they are written
            atomic_write_bytes(self.run_dir / "experiment.json", self.cfg.to_json().encode())
            save_run(self.run_dir, self.cfg.to_dict(), self.model, self.vocab, weights=False)
            if resumed:
                self.truncate_log()
        if self.dist.world_size > 1:
            dist.barrier()
        return self.run_dir

    def log(self, logs: dict) -> None:
        if not self.dist.is_main:
            return
        with open(self.run_dir / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": self.step, **logs}) + "\n")
        self.trackers().log_scalars(self.step, logs)

    def say(self, lines: list[str]) -> None:
        """Print ``lines`` above the progress bar (main process)."""
        if self.dist.is_main:
            for line in lines:
                tqdm.write(line)

    def trackers(self) -> Loggers:
        """The ``train.loggers`` of this run (TensorBoard, W&B), opened on first use (main process);
        their folders (``tensorboard/``, ``wandb/``) go into the run's manifest."""
        if self._loggers is None:
            names = self.cfg.train.loggers
            names = resolve_names(None) if names is None else names  # a list: checked when the trainer was built
            with recording_new_entries(self.run_dir, [n for n in ("tensorboard", "wandb") if n in names]):
                self._loggers = open_loggers(self.cfg.train.loggers, self.run_dir, self.cfg.to_dict())
        return self._loggers

    def close_trackers(self) -> None:
        if self._loggers is not None:  # closed, not opened just to close
            self._loggers.close()
            self._loggers = None

    # -- sampling --------------------------------------------------------------------------------
    @torch.no_grad()
    def write_samples(self) -> Path | None:
        """``samples/step-N.png``: the first test captions drawn by the moving-average G through the
        inference pipeline, with the same seeded noise at every step."""
        if not self.dist.is_main or not self.cfg.train.sample_every or getattr(self.model, "generator", None) is None:
            return None
        n = self.cfg.train.num_sample_captions
        captions = [self.test_set.captions(i)[0] for i in range(min(n, len(self.test_set)))]
        was = self.model.training
        pipe = Text2ImagePipeline(self.model, self.vocab, {"experiment": self.cfg.to_dict()}, self.device,
                                  self.ema.module if self.ema else None)
        noise = pipe.noise(len(captions), self.cfg.train.seed)
        images = torch.cat([batch.images for batch in pipe.generate_batches(captions, noise)])
        self.model.train(was)
        path = self.run_dir / "samples" / f"step-{self.step:08d}.png"
        grid = captioned_grid(to_pil(images), captions, ncol=min(8, len(captions)))
        png = io.BytesIO()
        grid.save(png, format="PNG")
        record_files(self.run_dir, f"samples/{path.name}")
        atomic_write_bytes(path, png.getvalue())
        self.trackers().log_images(self.step, {"samples": grid})
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
        order = torch.randperm(len(self.train_set), generator=torch.Generator().manual_seed(t.seed + self.epoch))
        return order.tolist()

    def apply_lr_schedule(self) -> None:
        """Per-epoch learning-rate schedule of models that define ``lr_factor(epoch)`` (GAN-INT-CLS
        halves its rates every 100 epochs): every group's rate becomes its initial rate times the
        factor. A function of the epoch alone, so a resumed run gets the same rates."""
        factor_fn = getattr(self.model, "lr_factor", None)
        if factor_fn is None:
            return
        factor = factor_fn(self.epoch)
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor

    def batches(self):
        """Endless batches. The position (epoch, batch) is tracked; on resume the batches already
        seen in the current epoch are skipped without being loaded."""
        t = self.cfg.train
        if len(self.train_set) < t.batch_size * self.dist.world_size:
            raise T2IError(f"the training set has {len(self.train_set)} images, fewer than one batch "
                           f"({t.batch_size} x {self.dist.world_size} processes)")
        while True:
            self.apply_lr_schedule()
            indices = self.epoch_indices()
            n_batches = len(indices) // t.batch_size
            start = self.batch_in_epoch
            # each item carries its own seed, so crops, flips and captions do not depend on the worker
            keys = list(zip(indices, sample_seeds(t.seed, self.epoch, self.dist.rank, len(indices))))
            loader = DataLoader(SeededItems(self.train_set), t.batch_size, sampler=keys[start * t.batch_size:],
                                collate_fn=SeededCollate(self.collate), drop_last=True,
                                num_workers=self.cfg.data.num_workers,
                                pin_memory=self.device.type == "cuda",
                                # its own generator: creating a loader must not draw from the global RNG
                                generator=torch.Generator().manual_seed(t.seed + 7919 * self.epoch + start))
            for i, batch in enumerate(loader, start=start + 1):
                self.batch_in_epoch = i
                yield {k: self.to_device(v) for k, v in batch.items()}
            assert self.batch_in_epoch == n_batches or start >= n_batches
            self.epoch += 1
            self.batch_in_epoch = 0

    def to_device(self, v):
        if not torch.is_tensor(v):
            return v
        v = v.to(self.device, non_blocking=True)
        if self.cfg.train.channels_last and v.dim() == 4:
            v = v.contiguous(memory_format=torch.channels_last)
        return v

    def check_finite(self, phase: str, loss: torch.Tensor, logs: dict) -> None:
        """Stop at the first non-finite loss, naming the step, the loss terms and the last good checkpoint."""
        if torch.isfinite(loss):
            return
        bad = [f"{k}={v}" for k, v in logs.items() if isinstance(v, float) and not math.isfinite(v)]
        where = "" if bad or self.dist.world_size == 1 else " on another process"
        raise T2IError(f"non-finite {phase} loss{where} at step {self.step + 1} "
                       f"({', '.join(bad) or f'{phase} loss={loss.item()}'}); training stopped without saving; "
                       f"last good checkpoint: {self.last_checkpoint or 'none yet'}")

    def train_step(self, batch) -> dict:
        state: dict = {}
        logs: dict = {}
        amp = self.cfg.train.amp
        autocast = torch.autocast(self.device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16,
                                  enabled=amp != "none" and self.device.type == "cuda")
        for phase in self.model.phases:
            name = self.model.optimizer_name(phase)
            opt, scaler = self.optimizers[name], self.scalers[name]
            with autocast:
                loss, phase_logs = self.model.compute_loss(phase, batch, state)
            if self.dist.world_size == 1:
                self.check_finite(phase, loss, phase_logs)  # before anything is changed
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            params = [p for g in opt.param_groups for p in g["params"]]
            mean_loss = all_reduce_gradients(params, self.dist.world_size, loss)
            if self.dist.world_size > 1:  # every process stops if any process's loss is non-finite
                self.check_finite(phase, mean_loss, phase_logs)
            clipped = self.model.clipped_parameters(phase)
            if clipped is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(clipped[0], clipped[1])
            scaler.step(opt)
            scaler.update()
            logs.update(phase_logs)
        if self.dist.world_size > 1:
            buffers = [b for b in self.model.buffers() if b.is_floating_point()]
            if buffers:
                broadcast_tensors(buffers)
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

    def fit(self, resume: bool = False, overwrite: bool = False) -> Path:
        """Train to ``train.max_steps``. ``resume``: continue the run in ``run_dir`` from its newest
        good checkpoint; ``overwrite``: discard the run ``run_dir`` holds. A folder holding a run is
        refused without one of them. A resumed run already at ``max_steps`` changes nothing.

        The folder's lock is held from the first check to the return. Everything is checked, the first
        batch included, before the folder changes; with ``overwrite`` the old run is only set aside
        until this run's first checkpoint has been read back, and put back if training stops before."""
        if resume and overwrite:
            raise T2IError("--resume and --overwrite contradict each other: continue the run or discard it")
        if self.run_dir is None:
            if self.dist.world_size > 1 or resume:
                raise T2IError("name the run folder to resume (or to train with torchrun): --run-dir DIR")
            self.run_dir = new_run_dir(self.cfg.runs_dir, self.cfg.name)
        lock = self.lock_run_dir()
        try:
            return self.fit_locked(resume, overwrite)
        finally:
            if lock is not None:
                lock.release()

    def fit_locked(self, resume: bool, overwrite: bool) -> Path:
        t = self.cfg.train
        if not resume and (problem := missing_damsm(self.cfg)):
            raise T2IError(problem)
        resumed = self.open_run_dir(resume, overwrite)
        if resumed and self.step >= t.max_steps:
            if self.dist.is_main:
                tqdm.write(f"{self.run_dir} is already at step {self.step} (train.max_steps={t.max_steps}); "
                           f"nothing to train: raise train.max_steps to continue")
            return self.run_dir
        prepared = False
        try:
            batches = self.batches()
            first = next(batches)  # the data yields a batch before anything in the folder changes
            prepared = True
            self.prepare_run_dir(resumed, overwrite)
            self.say(introduction(self, resumed))
            self.train_loop(itertools.chain([first], batches))
        except BaseException as e:  # name where training stopped and what is safe
            self.close_trackers()
            put_back = (self.abandon_overwrite() if prepared else
                        f"; nothing in {self.run_dir} was changed" if overwrite else "")
            if isinstance(e, torch.cuda.OutOfMemoryError):
                e = T2IError(f"out of memory on {self.device} ({describe_error(e)[:200]}): "
                             f"lower train.batch_size")
            if not isinstance(e, (T2IError, OSError)):
                raise
            msg = describe_error(e)
            if "last good checkpoint" not in msg:
                last = self.last_checkpoint or "none yet"
                msg += f" (training stopped at step {self.step}; last good checkpoint: {last})"
            raise T2IError(msg + put_back) from None
        return self.run_dir

    def abandon_overwrite(self) -> str:
        """Training stopped before the first good checkpoint of an ``--overwrite``: put the old run back
        (main process). Returns what to add to the error."""
        if not self.pending_overwrite:
            return ""
        self.pending_overwrite = False
        try:
            undo_overwrite(self.run_dir)
            return "; the old run was put back"
        except (T2IError, OSError) as e:
            return (f"; the old run could not be put back ({describe_error(e)}): "
                    f"`t2igan undo-overwrite {self.run_dir}` tries again")

    def train_loop(self, batches) -> None:
        t = self.cfg.train
        start_time, cpu_start = time.time(), time.process_time()
        bar = tqdm(total=t.max_steps, initial=self.step, disable=not (self.progress and self.dist.is_main),
                   desc=f"train {self.cfg.model}", dynamic_ncols=True)
        pace = Pace(t, self.device, self.step)
        stopped_early = False
        try:
            while self.step < t.max_steps:
                if t.time_limit_min and self.time_is_up(start_time, cpu_start):
                    stopped_early = True
                    break
                logs = self.train_step(next(batches))
                self.step += 1
                bar.update(1)
                self.say(pace.after_step(self.step))
                if self.step % t.log_every == 0 or self.step == 1:
                    bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k.endswith("loss")})
                    self.log({**logs, "epoch": self.epoch, "time_s": round(time.time() - start_time, 1)})
                if t.sample_every and self.step % t.sample_every == 0:
                    self.write_samples()
                if self.step % t.checkpoint_every == 0:
                    self.save_checkpoint()
        finally:
            bar.close()  # an error line starts on a line of its own
        if self.checkpoint_step != self.step:
            self.save_checkpoint()
        if self.dist.is_main:
            grid = self.write_samples()
            if stopped_early:
                tqdm.write(f"time limit reached after {self.step} steps")
            if grid:
                tqdm.write(f"samples: {grid}")
            self.write_end_of_run_metrics()
            self.close_trackers()
        if self.dist.world_size > 1:
            dist.barrier()

    def write_end_of_run_metrics(self) -> None:
        """The run's :func:`~t2igan.training.final_metrics.final_metrics` (DAMSM's R-precision, STREAM's
        caption scores), each record appended to ``metrics.jsonl`` with the step, each line printed."""
        was = self.model.training
        self.model.eval()
        results = final_metrics(self.model, self.test_set, self.vocab, self.cfg, self.run_dir, self.progress)
        self.model.train(was)
        for record, line in results:
            if record is not None:
                with open(self.run_dir / "metrics.jsonl", "a") as f:
                    f.write(json.dumps({**record, "step": self.step}) + "\n")
            tqdm.write(line)

    def time_is_up(self, start_time: float, cpu_start: float) -> bool:
        """Whether ``time_limit_min`` has passed on ``time_limit_clock``; rank 0's clock decides for
        every process."""
        t = self.cfg.train
        up = torch.tensor([float(elapsed_seconds(t.time_limit_clock, start_time, cpu_start) > 60 * t.time_limit_min)])
        if self.dist.world_size > 1:
            dist.broadcast(up, 0)
        return bool(up.item())


def elapsed_seconds(clock: str, wall_start: float, cpu_start: float) -> float:
    """Seconds since the start on ``clock``: ``wall`` (time.time) or ``cpu`` (this process's CPU time,
    all its threads: a budget that other processes sharing the cores do not eat into)."""
    return time.time() - wall_start if clock == "wall" else time.process_time() - cpu_start


def train(cfg: ExperimentConfig, run_dir: str | Path | None = None, progress: bool = True,
          overwrite: bool = False) -> Path:
    """Train a new run; returns its folder."""
    return Trainer(cfg, run_dir, progress).fit(overwrite=overwrite)


def resume_training(run_dir: str | Path, overrides: list[str] | None = None, progress: bool = True) -> Path:
    """Continue the run in ``run_dir`` from its newest checkpoint (with optional overrides such as
    ``train.max_steps=20000``)."""
    from ..config import apply_overrides

    run_dir = Path(run_dir)
    cfg = ExperimentConfig.from_dict(apply_overrides(read_experiment(run_dir), overrides or []))
    return Trainer(cfg, run_dir, progress).fit(resume=True)
