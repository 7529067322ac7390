"""What a training run says about itself: :func:`introduction` before the first step (run folder, data
set and its size per split, device and dtype, parameter counts) and :class:`Pace` after the first few
steps (seconds per step and the time to ``train.max_steps``; on a CPU, a run that would take more
than :data:`CPU_WARN_HOURS` gets a warning with the smaller settings that fit a CPU)."""

from __future__ import annotations

import time

import torch

TIMING_STEPS = 10  # the pace is measured over this many steps after the first one ...
TIMING_S = 30.0  # ... or over this many seconds, whichever comes first
CPU_WARN_HOURS = 24.0  # on a CPU, a longer run (to max_steps, or to the time limit) is warned about
SMALLER = ("data.image_size=64, fewer channels (model.nf=16; AttnGAN family: model.base_size=32 model.num_stages=2 "
           "model.ngf=16 model.ndf=32), train.batch_size=16 and a budget: train.time_limit_min=N "
           "train.time_limit_clock=cpu (README, 'Train on CUB')")


def introduction(trainer, resumed: bool) -> list[str]:
    """The lines a run starts with."""
    cfg, t = trainer.cfg, trainer.cfg.train
    d = cfg.data
    where = f" at {d.root}" if d.root else " (built in)" if d.dataset == "shapes" else ""
    lines = [f"run folder: {trainer.run_dir}" + (f" (resumed at step {trainer.step})" if resumed else ""),
             f"data: {d.dataset}{where}, {d.image_size} px: {len(trainer.train_set):,} training images, "
             f"{len(trainer.test_set):,} test images; a vocabulary of {len(trainer.vocab):,} words",
             f"device: {device_words(trainer.device, t.amp, trainer.dist.world_size, t.batch_size)}",
             f"parameters: {parameter_counts(trainer.model, trainer.optimizers)}"]
    return lines


def device_words(device: torch.device, amp: str, world_size: int, batch_size: int) -> str:
    """``cpu (2 threads), float32`` / ``cuda:0 (NVIDIA H100), float32 weights, bf16 autocast``."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        words = f"{device} ({name}), float32 weights" + (f", {amp} autocast" if amp != "none" else "")
    else:
        threads = torch.get_num_threads()
        words = f"{device} ({threads} thread{'s' * (threads != 1)}), float32"
        if amp != "none":
            words += f" (train.amp={amp} acts on CUDA only)"
    if world_size > 1:
        words += f"; {world_size} processes, global batch {world_size * batch_size}"
    return words


def millions(n: int) -> str:
    return f"{n / 1e6:.2f} M" if n >= 10_000 else f"{n:,}"


def parameter_counts(model: torch.nn.Module, optimizers: dict) -> str:
    """``G 0.52 M, D 1.10 M, text encoder 1.40 M (frozen); 3.02 M in all, 1.62 M trained``: each top-level
    part of the model, with what its optimizers do not train."""
    trained = {id(p) for opt in optimizers.values() for group in opt.param_groups for p in group["params"]}
    names = {"generator": "G", "discriminator": "D"}
    parts, total, total_trained = [], 0, 0
    children = sorted(model.named_children(), key=lambda child: child[0] not in names)  # G and D first
    for name, module in children:
        params = list(module.parameters())
        n = sum(p.numel() for p in params)
        if not n:
            continue
        n_trained = sum(p.numel() for p in params if id(p) in trained)
        note = "" if n_trained == n else " (frozen)" if not n_trained else f" ({millions(n_trained)} trained)"
        parts.append(f"{names.get(name, name.replace('_', ' '))} {millions(n)}{note}")
        total, total_trained = total + n, total_trained + n_trained
    return f"{', '.join(parts)}; {millions(total)} in all, {millions(total_trained)} trained"


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3 h 20 min``, ``5 d 4 h``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = seconds / 60
    if minutes < 60:
        return f"{minutes:.0f} min"
    hours = minutes / 60
    if hours < 24:
        return f"{int(hours)} h {int(minutes % 60)} min"
    return f"{int(hours // 24)} d {int(hours % 24)} h"


class Pace:
    """Measures the seconds per step once, from the end of the first step (which also pays for
    warming up) over :data:`TIMING_STEPS` steps or :data:`TIMING_S` seconds; when the first step alone
    takes that long, from the start. :meth:`after_step` returns the lines to print, once."""

    def __init__(self, train_config, device: torch.device, step: int):
        self.t, self.device = train_config, device
        self.start = (step, time.time(), time.process_time())
        self.mark = None  # (step, wall, cpu) where the measurement starts
        self.done = False

    def after_step(self, step: int) -> list[str]:
        if self.done or step >= self.t.max_steps:  # nothing left to estimate
            return []
        now = (step, time.time(), time.process_time())
        if self.mark is None:
            self.mark = now if now[1] - self.start[1] < TIMING_S else self.start
            if self.mark is now:
                return []
        steps, wall, cpu = (a - b for a, b in zip(now, self.mark))
        if steps < TIMING_STEPS and wall < TIMING_S:
            return []
        self.done = True
        return pace_lines(wall / steps, cpu / steps, self.mark[0] + 1, step, self.t, self.device)


def pace_lines(wall_per_step: float, cpu_per_step: float, first: int, last: int, t, device: torch.device) -> list[str]:
    """The speed line (and on a CPU, for a run of more than :data:`CPU_WARN_HOURS`, the warning)."""
    left = t.max_steps - last
    line = (f"speed: {wall_per_step:.3g} s/step (steps {first}-{last}; {cpu_per_step:.3g} s of CPU time); "
            f"train.max_steps={t.max_steps:,} is {left:,} step{'s' * (left != 1)} away: about {duration(left * wall_per_step)}")
    run_s = left * wall_per_step
    if t.time_limit_min:
        per_step = cpu_per_step if t.time_limit_clock == "cpu" else wall_per_step
        steps = int(60 * t.time_limit_min / per_step) if per_step > 0 else left
        if steps < left:
            line += f"; train.time_limit_min={t.time_limit_min:g} ({t.time_limit_clock} clock) stops it after about {steps:,} steps"
            run_s = min(run_s, 60 * t.time_limit_min * wall_per_step / per_step)
    lines = [line]
    if device.type == "cpu" and run_s > 3600 * CPU_WARN_HOURS:
        lines.append(f"warning: this run takes about {duration(run_s)} on this CPU ({wall_per_step:.3g} s/step); "
                     f"the presets' paper sizes are for GPUs; on a CPU train smaller: {SMALLER}")
    return lines
