"""Start-up time of the ``t2igan`` command line: ``--help``, ``--version`` and the ``list-*`` commands
should answer in well under half a second because they import no torch.

Each row runs the command in a fresh ``python -m t2igan`` process ``--reps`` times and takes the median
of the child's CPU time (user + system, from ``getrusage``: a fair clock on a shared machine) and of
its wall time. The baseline, run in the same command, is a bare ``python -c pass``; ``ratio`` is a
row's CPU time over the baseline's. ``import torch`` is a row of its own, to show what the lazy imports
avoid. Each command is also run once under ``python -X importtime``, and the row records whether torch
was imported (``torch``: yes / no).

    OMP_NUM_THREADS=1 python benchmarks/cli_speed.py          # ~20 s
    python benchmarks/cli_speed.py --dry-run                  # check that every command exits 0, time nothing

Writes ``benchmarks/results/cli_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"

# label -> argv after the interpreter
ROWS = {
    "python -c pass (baseline)": ["-c", "pass"],
    "python -c 'import torch'": ["-c", "import torch"],
    "t2igan --help": ["-m", "t2igan", "--help"],
    "t2igan --version": ["-m", "t2igan", "--version"],
    "t2igan sample --help": ["-m", "t2igan", "sample", "--help"],
    "t2igan list-presets": ["-m", "t2igan", "list-presets"],
    "t2igan list-pretrained": ["-m", "t2igan", "list-pretrained"],
    "t2igan list-models": ["-m", "t2igan", "list-models"],
}


def child_run(argv: list[str], env: dict) -> tuple[float, float, int]:
    """``(cpu seconds, wall seconds, exit status)`` of ``python argv``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall, proc.returncode


def imports_torch(argv: list[str], env: dict) -> bool:
    """Whether ``python -X importtime argv`` lists a torch import."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    return any(line.rsplit("|", 1)[-1].strip().split(".")[0] == "torch"
               for line in proc.stderr.splitlines() if line.startswith("import time:"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=5, help="runs per row; the median is reported (default 5)")
    p.add_argument("--quick", action="store_true", help="3 runs per row")
    p.add_argument("--device", default="cpu", help="ignored (the command line runs on the CPU); for run_speed.py")
    p.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the children (default 1)")
    p.add_argument("--time-limit", type=float, default=None, help="start no row after this many seconds")
    p.add_argument("--out", default=str(RESULTS_DIR / "cli_speed.json"))
    p.add_argument("--dry-run", action="store_true", help="run every command once, check it exits 0, time nothing")
    args = p.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    src = HERE.parent / "src"
    if src.is_dir():  # the checkout's package first, as the tests run it
        env["PYTHONPATH"] = os.pathsep.join([str(src), *filter(None, [env.get("PYTHONPATH")])])
    if args.dry_run:
        for label, argv in ROWS.items():
            _, _, status = child_run(argv, env)
            print(f"{label}: exit {status}")
            if status:
                sys.exit(1)
        return
    reps = 3 if args.quick else args.reps
    t_start = time.perf_counter()
    rows, skipped = [], {}
    for label, argv in ROWS.items():
        if args.time_limit and time.perf_counter() - t_start > args.time_limit:
            skipped[label] = "time limit"
            continue
        runs = [child_run(argv, env) for _ in range(reps)]
        rows.append({"command": label, "exit": max(status for _, _, status in runs),
                     "cpu_s": statistics.median(c for c, _, _ in runs),
                     "wall_s": statistics.median(w for _, w, _ in runs),
                     "torch": "-" if "-c" in argv else ("yes" if imports_torch(argv, env) else "no")})
    base = rows[0]["cpu_s"]
    for row in rows:
        row["ratio"] = row["cpu_s"] / base
    lines = [f"{'command':<28} {'cpu s':>7} {'wall s':>7} {'x baseline':>10}  torch imported",
             *(f"{r['command']:<28} {r['cpu_s']:>7.3f} {r['wall_s']:>7.3f} {r['ratio']:>10.1f}  {r['torch']}"
               + (f"  (exit {r['exit']})" if r["exit"] else "") for r in rows)]
    table = "\n".join(lines)
    print(table)
    result = {"benchmark": "cli_speed", "table": table, "rows": rows, "skipped": skipped, "reps": reps,
              "environment": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                              "load_average_1m": round(os.getloadavg()[0], 2),
                              "time": time.strftime("%Y-%m-%d %H:%M:%S")}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    if any(r["exit"] for r in rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
