"""Checkpoint reading and writing of the trainer (:class:`CheckpointIO`, a base of
:class:`t2igan.training.trainer.Trainer`).

* Checkpoints (``checkpoints/step-N.safetensors`` + ``step-N.state.pt``) are written to a temporary
  file, flushed to disk and renamed, the state file last: a checkpoint exists only when both files
  do, so a run killed at any moment (even ``kill -9`` mid-write) leaves the previous ones intact.
  The state holds the optimizers, loss scalers, every process's RNG states and the data position
  (epoch, batch), so a resumed run continues bit for bit as if never interrupted. The last
  ``keep_checkpoints`` are kept. An unreadable checkpoint (or one holding non-finite weights) is
  reported and the one before it used. Every checkpoint is read back after writing; only then is it
  the "last good checkpoint" and is ``model.safetensors`` (always trained weights, or absent) updated,
  and only then does an ``--overwrite`` delete the old run it had set aside.
* Both files are entered in the run's manifest before they are written (see :mod:`t2igan.runs`).
"""

from __future__ import annotations

import io
import json
import re
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..errors import T2IError
from ..hub import atomic_write_bytes, first_bad_tensor, load_safetensors
from ..runs import commit_overwrite, forget_files, record_files, save_run
from .distributed import gather_rng_states, seed_everything, set_rng_state

CKPT_RE = re.compile(r"step-(\d{8})\.safetensors$")


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """``(step, weights path)`` of the complete checkpoints (weights and state), oldest first."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    if not ckpt_dir.is_dir():
        return []
    found = []
    for p in ckpt_dir.iterdir():
        m = CKPT_RE.match(p.name)
        if m and p.with_suffix(".state.pt").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict | None = None) -> bytes:
    from safetensors.torch import save

    return save(tensors, metadata=metadata)


class CheckpointIO:
    """The checkpoint methods of the trainer; they read and set its ``model``, ``ema``, ``optimizers``,
    ``scalers``, ``dist``, data position (``step``, ``epoch``, ``batch_in_epoch``), ``run_dir`` and
    ``pending_overwrite``."""

    def save_checkpoint(self) -> Path:
        """Weights (safetensors) + optimizers, loss scalers, RNG states of every process and data
        position (``torch.save`` of plain tensors and numbers, read back with ``weights_only=True``).
        Each file is written to a temporary file, flushed and renamed, the state file last; older
        checkpoints beyond ``keep_checkpoints`` are removed. Collective: every process calls it,
        only rank 0 writes. Refuses to write non-finite weights."""
        rngs = gather_rng_states(self.dist)
        ckpt_dir = self.run_dir / "checkpoints"
        path = ckpt_dir / f"step-{self.step:08d}.safetensors"
        if not self.dist.is_main:
            self.last_checkpoint, self.checkpoint_step = path, self.step
            return path
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.ema:
            tensors.update({f"ema.{k}": v for k, v in self.ema.module.state_dict().items()})
        bad = first_bad_tensor(tensors)
        if bad:
            raise T2IError(f"{bad} at step {self.step}; not saving them; "
                           f"last good checkpoint: {self.last_checkpoint or 'none yet'}")
        state = {
            "step": self.step,
            "epoch": self.epoch,
            "batch_in_epoch": self.batch_in_epoch,
            "world_size": self.dist.world_size,
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "scalers": {k: s.state_dict() for k, s in self.scalers.items()},
            "rng": rngs[0],
            "rng_per_rank": rngs,
        }
        weights = safetensors_bytes({k: v.detach().contiguous().cpu() for k, v in tensors.items()},
                                    metadata={"step": str(self.step)})
        record_files(self.run_dir, f"checkpoints/{path.name}", f"checkpoints/{path.with_suffix('.state.pt').name}")
        atomic_write_bytes(path, weights)
        buf = io.BytesIO()
        torch.save(state, buf)
        atomic_write_bytes(path.with_suffix(".state.pt"), buf.getvalue())  # last: completes the checkpoint
        try:
            self.read_checkpoint(path)  # "good" means it reads back, finite
        except T2IError as e:
            raise T2IError(f"checkpoint {path.name} did not read back ({e}); "
                           f"last good checkpoint: {self.last_checkpoint or 'none yet'}") from None
        save_run(self.run_dir, self.cfg.to_dict(), self.model, self.vocab, self.ema.module if self.ema else None)
        self.last_checkpoint, self.checkpoint_step = path, self.step
        if self.pending_overwrite:  # the new run has a good checkpoint: the old one goes for good
            commit_overwrite(self.run_dir)
            self.pending_overwrite = False
        self.prune_checkpoints()
        return path

    def prune_checkpoints(self) -> None:
        """Keep the newest ``keep_checkpoints`` complete checkpoints; drop older ones and any older
        half-written weights file (a run killed between its two files)."""
        keep = {p for _, p in list_checkpoints(self.run_dir)[-max(1, self.cfg.train.keep_checkpoints):]}
        for p in (self.run_dir / "checkpoints").glob("step-*.safetensors"):
            m = CKPT_RE.match(p.name)
            if p not in keep and m and int(m.group(1)) <= self.step:
                p.unlink(missing_ok=True)
                p.with_suffix(".state.pt").unlink(missing_ok=True)
                forget_files(self.run_dir, f"checkpoints/{p.name}", f"checkpoints/{p.with_suffix('.state.pt').name}")

    def read_checkpoint(self, path: Path) -> tuple[dict, dict]:
        """``(tensors, state)`` of a checkpoint, or a T2IError naming the unreadable file."""
        tensors = load_safetensors(path)
        state_path = path.with_suffix(".state.pt")
        try:
            state = torch.load(state_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise T2IError(f"cannot read checkpoint state {state_path}: {type(e).__name__}: {str(e)[:200]}") from None
        missing = {"step", "epoch", "batch_in_epoch", "optimizers", "rng"} - set(state if isinstance(state, dict) else {})
        if missing:
            raise T2IError(f"checkpoint state {state_path} lacks {sorted(missing)}")
        bad = first_bad_tensor(tensors)
        if bad:
            raise T2IError(f"checkpoint {path} holds {bad}")
        return tensors, state

    def load_checkpoint(self, path: Path) -> None:
        tensors, state = self.read_checkpoint(path)  # everything is read before anything is changed
        try:
            self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
            if self.ema:
                self.ema.module.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
            for k, o in self.optimizers.items():
                # this config's rates and betas (a resume may change them) replace the saved ones
                fresh = [{"lr": g["lr"], "betas": g["betas"]} for g in o.param_groups]
                o.load_state_dict(state["optimizers"][k])
                for group, hyper in zip(o.param_groups, fresh):
                    group.update(hyper)
                    if "initial_lr" in group:  # the base of a per-epoch schedule (apply_lr_schedule)
                        group["initial_lr"] = hyper["lr"]
            for k, s in self.scalers.items():
                if state.get("scalers", {}).get(k):
                    s.load_state_dict(state["scalers"][k])
        except (RuntimeError, ValueError, KeyError) as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise T2IError(f"checkpoint {path} does not fit this model/config: {first}") from None
        self.step, self.epoch, self.batch_in_epoch = state["step"], state["epoch"], state["batch_in_epoch"]
        rngs = state.get("rng_per_rank") or [state["rng"]]
        if len(rngs) == self.dist.world_size:
            set_rng_state(rngs[self.dist.rank])
        else:  # resumed with another number of processes: continue, but not bit-identically
            if self.dist.is_main:
                tqdm.write(f"warning: {path.name} was written by {len(rngs)} process(es), resuming with "
                           f"{self.dist.world_size}; random streams are re-seeded", file=sys.stderr)
            seed_everything(self.cfg.train.seed + self.dist.rank + 7919 * self.step)
        self.last_checkpoint, self.checkpoint_step = path, self.step

    def truncate_log(self) -> None:
        """Drop ``log.jsonl`` lines after ``self.step``: they belong to the part of an interrupted
        run that the resumed one repeats."""
        log = self.run_dir / "log.jsonl"
        if not log.is_file():
            return
        kept = []
        for line in log.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= self.step:
                    kept.append(line)
            except json.JSONDecodeError:  # a line cut by a kill
                pass
        atomic_write_bytes(log, "".join(f"{line}\n" for line in kept).encode())

    def resume(self) -> bool:
        """Continue from the newest readable checkpoint of ``run_dir``; a corrupt one is reported
        and the one before it used. False when there is no checkpoint; a T2IError when there are
        checkpoints but none can be read (rather than silently starting again)."""
        found = list_checkpoints(self.run_dir)
        for step, path in reversed(found):
            try:
                self.load_checkpoint(path)
                return True
            except T2IError as e:
                if self.dist.is_main:
                    tqdm.write(f"warning: skipping unreadable checkpoint {path.name}: {e}", file=sys.stderr)
        if found:
            raise T2IError(f"none of the {len(found)} checkpoints in {self.run_dir / 'checkpoints'} can be read")
        return False
