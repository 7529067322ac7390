"""How many torch threads `make demo` should use: seconds per step of the demo's training with 1 and 2
threads, on an otherwise idle machine and beside one busy process (a spinning Python loop), all in
one command so the rows share the machine's state.

    python benchmarks/demo_threads.py --steps 150
    python benchmarks/demo_threads.py --steps 150 --dry-run    # check the training command only

Prints a table and writes ``benchmarks/results/demo_threads.json``. The step time is read from the
training log's ``time_s`` between the first logged step and the last, so start-up is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPIN = "import time\nend = time.time() + 600\nwhile time.time() < end:\n    pass\n"


def train_command(steps: int, run: Path) -> list[str]:
    """`make demo`'s training, timed."""
    return ["t2igan", "train", "dfgan-shapes", f"train.max_steps={steps}", "train.log_every=25", "train.sample_every=0",
            "train.checkpoint_every=100000", "--run-dir", str(run), "--no-progress"]


def seconds_per_step(threads: int, steps: int, busy: bool) -> float:
    spinner = subprocess.Popen([sys.executable, "-c", SPIN]) if busy else None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / "run"
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            subprocess.run([sys.executable, "-m", "t2igan", *train_command(steps, run)[1:]], env=env, check=True,
                           capture_output=True)
            log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    finally:
        if spinner:
            spinner.kill()
    first, last = log[0], log[-1]
    return (last["time_s"] - first["time_s"]) / (last["step"] - first["step"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--out", default=str(HERE / "results" / "demo_threads.json"))
    p.add_argument("--dry-run", action="store_true", help="check the training command and exit")
    args = p.parse_args()
    if args.dry_run:
        from dry_run import check_commands

        check_commands([train_command(args.steps, Path("runs/demo-threads"))])
        return
    rows = []
    for busy in (False, True):
        for threads in (1, 2):
            s = seconds_per_step(threads, args.steps, busy)
            rows.append({"threads": threads, "other_busy_process": busy, "s_per_step": s})
            print(f"threads {threads}  {'one busy process' if busy else 'idle':<17} {s:.3f} s/step", flush=True)
    base = {r["other_busy_process"]: r["s_per_step"] for r in rows if r["threads"] == 1}
    for r in rows:
        r["vs_1_thread"] = r["s_per_step"] / base[r["other_busy_process"]]
    print(f"\n| machine | 1 thread s/step | 2 threads s/step | 2 / 1 |\n|---|---|---|---|")
    for busy in (False, True):
        one, two = (next(r for r in rows if r["threads"] == t and r["other_busy_process"] == busy) for t in (1, 2))
        print(f"| {'one other busy process' if busy else 'idle'} | {one['s_per_step']:.3f} | {two['s_per_step']:.3f} | "
              f"{two['vs_1_thread']:.2f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
