"""The speed suite (``make bench``): DAMSM loss, training and sampling speed, then a summary.

Runs, one after the other, each in its own process with one torch thread (``OMP_NUM_THREADS=1``)
unless ``--threads`` says otherwise:

1. ``damsm_speed.py``  -- vectorised ``damsm_loss`` vs a per-caption loop (agreement and time ratio);
2. ``train_speed.py``  -- seconds per training iteration and peak memory, every model, CUB and Shapes
   configurations;
3. ``sample_speed.py`` -- images per second from the pipeline, every model, 64 / 256 px, batch 1 / 32;

and writes ``benchmarks/results/speed_summary.json`` (``--out``): each script's table, its wall time
and where its full JSON is. With ``--quick`` (what ``make bench`` uses) the CPU rows use few
iterations and the suite is held to ``--budget-min`` (13.5 minutes by default with ``--quick``): each
script gets a deadline (its share of the budget plus what the scripts before it left unused) and
starts no row after it; rows cut that way are listed as skipped. On a 2-core CPU shared with other
work (load average ~9) the quick suite took ~12 minutes with every row run.

    OMP_NUM_THREADS=1 python benchmarks/run_speed.py --quick        # CPU (make bench)
    python benchmarks/run_speed.py --device cuda                    # GPU: official batch sizes
    python benchmarks/run_speed.py --device cuda --variants fp32,bf16,bf16+cl
    python benchmarks/run_speed.py --quick --dry-run                 # each script's --dry-run, nothing timed
"""

from __future__ import annotations

import argparse
import json
import os
import runpy
import subprocess
import sys
import time
from pathlib import Path

from speed_common import RESULTS_DIR, environment, resolve_device, write_json

HERE = Path(__file__).resolve().parent
SCRIPTS = ("damsm_speed", "train_speed", "sample_speed")
BUDGET_SHARES = {"damsm_speed": 0.08, "train_speed": 0.44, "sample_speed": 0.48}  # of --budget-min


def relative(path: str) -> str:
    """``path`` relative to the repository when it lies inside it (for the JSON written)."""
    try:
        return str(Path(path).resolve().relative_to(HERE.parent))
    except ValueError:
        return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--quick", action="store_true", help="the short CPU settings of every script (make bench)")
    p.add_argument("--only", nargs="+", choices=SCRIPTS, default=list(SCRIPTS), help="run only these scripts")
    p.add_argument("--models", nargs="+", default=None, help="models for train_speed and sample_speed")
    p.add_argument("--variants", default=None, help="train_speed speed switches, e.g. fp32,bf16 (GPU)")
    p.add_argument("--budget-min", type=float, default=None,
                   help="minutes for the whole suite (default 13.5 with --quick, none without); the last "
                        "row a script starts may overrun its deadline by its own length (~1-2 min on a CPU)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of every measurement (CPU)")
    p.add_argument("--results-dir", default=str(RESULTS_DIR), help="where each script writes <name>.json")
    p.add_argument("--out", default=str(RESULTS_DIR / "speed_summary.json"))
    p.add_argument("--dry-run", action="store_true", help="run each script with --dry-run: check, time nothing")
    args = p.parse_args()
    device = resolve_device(args.device)
    budget_s = 60 * (args.budget_min if args.budget_min is not None else (13.5 if args.quick else 0)) or None
    results_dir = Path(args.results_dir)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if args.dry_run:  # each script's own --dry-run, in this process: nothing is built or timed
        for name in args.only:
            script = HERE / f"{name}.py"
            argv = ["--device", device, "--dry-run"] + (["--quick"] if args.quick else [])
            argv += ["--models", *args.models] if args.models and name != "damsm_speed" else []
            argv += ["--variants", args.variants] if args.variants and name == "train_speed" else []
            print(f"=== {name}: {relative(str(script))} {' '.join(argv)}", flush=True)
            sys.argv = [str(script), *argv]
            runpy.run_path(str(script), run_name="__main__")
        return
    machine = environment(device, args.threads)
    print(f"speed suite on {machine.get('gpu', machine.get('cpu'))} ({device}), {machine['cpu_count']} cores, "
          f"load average {machine['load_average_1m']}", flush=True)

    summary = {"benchmark": "speed_summary", "environment": machine, "quick": args.quick,
               "budget_s": budget_s, "scripts": {}}
    t_start = time.perf_counter()
    share_total = sum(BUDGET_SHARES[n] for n in args.only)
    deadline = 0.0  # seconds since t_start
    for name in args.only:
        out = results_dir / f"{name}.json"
        cmd = [sys.executable, str(HERE / f"{name}.py"), "--device", device, "--threads", str(args.threads),
               "--out", str(out)]
        if args.quick:
            cmd.append("--quick")
        if args.models and name != "damsm_speed":
            cmd += ["--models", *args.models]
        if args.variants and name == "train_speed":
            cmd += ["--variants", args.variants]
        if budget_s:
            deadline += budget_s * BUDGET_SHARES[name] / share_total
            cmd += ["--time-limit", f"{max(1.0, deadline - (time.perf_counter() - t_start)):.0f}"]
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, env=env)
        wall = time.perf_counter() - t0
        entry = {"command": " ".join(["python"] + [relative(c) for c in cmd[1:]]), "returncode": proc.returncode,
                 "wall_s": round(wall, 1), "json": relative(str(out))}
        if proc.returncode == 0 and out.is_file():
            result = json.loads(out.read_text())
            entry["table"] = result.get("table", "")
            entry["load_average_1m_at_start"] = result.get("environment", {}).get("load_average_1m")
            if name == "damsm_speed":
                entry["agree"] = result["agree"]
                entry["ratio_fwd_bwd"] = {r["case"]: round(r["ratio_fwd_bwd"], 2) for r in result["rows"]}
            if name == "train_speed":
                entry["s_per_iter"] = {f"{r['model']}-{r['config']}" + (f"[{r['variant']}]" if r["variant"] != "fp32" else ""):
                                       {"s_per_iter": round(r["s_per_iter"], 4), "batch": r["batch_size"],
                                        "peak_mem_mib": r["peak_mem_mib"]}
                                       for r in result["rows"] if "s_per_iter" in r}
                entry["skipped"] = {r["preset"]: r.get("skip") or r.get("error") for r in result["rows"]
                                    if "s_per_iter" not in r}
            if name == "sample_speed":
                entry["images_per_s"] = {f"{r['model']}@{r['image_size']}px/b{r['batch']}": round(r["images_per_s"], 3)
                                         for r in result["rows"] if "images_per_s" in r}
                entry["skipped"] = result.get("skipped", {})
        else:
            print(f"{name} failed (exit {proc.returncode})", flush=True)
        summary["scripts"][name] = entry
    summary["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(f"\nspeed suite: {summary['wall_s'] / 60:.1f} min", flush=True)
    for name, entry in summary["scripts"].items():
        print(f"  {name:13s} {entry['wall_s']:7.1f} s  exit {entry['returncode']}  -> {entry['json']}")
    write_json(args.out, summary)
    if any(e["returncode"] for e in summary["scripts"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
