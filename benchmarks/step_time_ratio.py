"""Time per training step of a preset under several sets of overrides, as a ratio to the first set,
measured in one process: the sets take turns (rounds x steps each), so a busy or noisy machine slows
them all alike. Times are CPU seconds of the process (use OMP_NUM_THREADS=1).

    OMP_NUM_THREADS=1 python benchmarks/step_time_ratio.py dfgan-shapes "nf8=model.nf=8" \\
        "b8=train.batch_size=8,train.lr_g=0.0001"

Each set is NAME=OVERRIDE,OVERRIDE,...; the preset itself, unchanged, is always the first set
(``base``). Prints a table and writes ``benchmarks/results/step_time_ratio.json``; ``--dry-run`` checks
that every set resolves and exits.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from dry_run import check_overrides
from speed_common import RESULTS_DIR, environment, median, print_table, write_json

from t2igan.config import resolve_config
from t2igan.training.trainer import Trainer


def parse_set(text: str) -> tuple[str, list[str]]:
    name, sep, overrides = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"a set is NAME=OVERRIDE,OVERRIDE,...; got {text!r}")
    return name, [o for o in overrides.split(",") if o]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset")
    ap.add_argument("sets", nargs="*", help="NAME=OVERRIDE,OVERRIDE,...")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=25, help="timed steps per set and round")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps before each timed stretch")
    ap.add_argument("--dry-run", action="store_true", help="check that every set resolves and exit")
    args = ap.parse_args()
    sets = dict([("base", [])] + [parse_set(s) for s in args.sets])
    if args.dry_run:
        for name, overrides in sets.items():
            check_overrides(args.preset, overrides + ["train.seed=0"], label=name)
        return

    with tempfile.TemporaryDirectory() as tmp:
        runs = {}
        for name, overrides in sets.items():
            torch.manual_seed(0)
            trainer = Trainer(resolve_config(args.preset, overrides + ["train.seed=0"]), Path(tmp) / name,
                              progress=False)
            runs[name] = (trainer, trainer.batches())
        ms = {name: [] for name in sets}
        for _ in range(args.rounds):
            for name, (trainer, batches) in runs.items():
                for _ in range(args.warmup):
                    trainer.train_step(next(batches))
                start = time.process_time()
                for _ in range(args.steps):
                    trainer.train_step(next(batches))
                ms[name].append((time.process_time() - start) / args.steps * 1000)

    base = median(ms["base"])
    rows = [{"set": name, "overrides": " ".join(sets[name]), "median_ms_per_step": median(v),
             "min_ms_per_step": min(v), "ratio": median(v) / base} for name, v in ms.items()]
    print(f"{args.preset}: {args.rounds} rounds x {args.steps} steps per set, CPU ms per step")
    print_table(rows, [("set", "set", ""), ("median_ms_per_step", "median", ".1f"),
                       ("min_ms_per_step", "min", ".1f"), ("ratio", "ratio", ".2f"), ("overrides", "overrides", "")])
    write_json(RESULTS_DIR / "step_time_ratio.json",
               {"preset": args.preset, "rounds": args.rounds, "steps": args.steps, "env": environment("cpu"),
                "rows": rows})


if __name__ == "__main__":
    main()
