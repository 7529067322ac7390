"""Training speed: seconds per training iteration (one D step + one G step, as ``Trainer.train_step``
runs it, moving average of G included) and peak memory, for every model of the library.

Two configurations per model:

* ``cub``: the model exactly as its ``<model>-cub`` preset (the official CUB configuration: 256 px for
  AttnGAN / MirrorGAN / DF-GAN / SSA-GAN / DR-GAN, 64 px for GAN-INT-CLS) on synthetic CUB-sized
  batches: random images, random captions over a CUB-sized (5,450-word) vocabulary, random class ids
  (and random 1024-d char-CNN-RNN embeddings for GAN-INT-CLS). Pretrained parts (DAMSM text and image
  encoders, MirrorGAN's STREAM captioner) have random weights; their cost is the same. On a GPU the
  preset's own batch size is used; on a CPU a batch of 2 (``--quick``) or 4, recorded in each row.
* ``shapes``: the ``<model>-shapes`` CPU preset as it is (its batch and size) on the built-in Shapes data.

Each row is measured in a fresh subprocess: the median over ``--iters`` timed iterations after
``--warmup`` untimed ones, on one batch reused (data loading is not timed); a row stops timing once
``--row-budget`` seconds of timed iterations are spent (at least one is timed: ``iters_timed``).
Peak memory: on a CPU the child's peak resident set (``ru_maxrss``) minus its resident set after the
imports (model weights, optimizer state, activations, allocator slack); on a GPU
``torch.cuda.max_memory_allocated`` (weights, optimizer state, activations). A model whose module is
not written yet, or fails to build, is skipped with the reason printed. The cheap ``shapes`` rows run
first; with ``--time-limit`` no row starts after that many seconds (one in flight is stopped at the
limit) and the rows left out are listed with the reason.

    OMP_NUM_THREADS=1 python benchmarks/train_speed.py --quick                      # CPU, ~5 min
    python benchmarks/train_speed.py --device cuda --variants fp32,bf16,bf16+cl    # GPU, official batches
    python benchmarks/train_speed.py --models dfgan --configs cub --batch 8
    python benchmarks/train_speed.py --preset dfgan-shapes data.image_size=64 --variants fp32,bf16
    python benchmarks/train_speed.py --quick --dry-run     # resolve every row's config, time nothing

Writes ``benchmarks/results/train_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from speed_common import (MODELS, RESULTS_DIR, environment, median, model_unavailable, preset_unavailable,
                          print_table, resolve_device, write_json)

VARIANTS = {  # speed switches of the trainer (amp and channels_last act on CUDA only)
    "fp32": [],
    "bf16": ["train.amp=bf16"],
    "bf16+cl": ["train.amp=bf16", "train.channels_last=true"],
    "fp32+cl": ["train.channels_last=true"],
}
CHILD_TIMEOUT_S = 600


# ---------------------------------------------------------------------------------------------
# one measurement, in a child process


def measure(spec: dict) -> dict:
    """Build the trainer of ``spec`` and time ``train_step`` on one batch (runs in the child)."""
    import resource

    import torch

    import t2igan.training.trainer as trainer_module
    from t2igan.config import resolve_config
    from speed_common import SyntheticCaptions, sync

    torch.set_num_threads(spec["threads"])
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # after the imports
    cfg = resolve_config(spec["preset"], spec["overrides"])
    if spec["data"] == "synthetic":
        # the trainer's data sets replaced by random CUB-shaped items (no CUB download needed)
        uses_embeddings = cfg.model_args.get("text_source") == "embeddings"
        emb_dim = cfg.model_args.get("embedding_dim", 1024) if uses_embeddings else None
        data = SyntheticCaptions(cfg.data.image_size, max(cfg.train.batch_size, 8), emb_dim)
        trainer_module.build_datasets = lambda cfg: (data, data)
    trainer = trainer_module.Trainer(cfg, None, progress=False)
    device = trainer.device
    batch = next(trainer.batches())
    model = trainer.model
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        trainer.train_step(batch)
        trainer.step += 1

    for _ in range(spec["warmup"]):
        step()
    times = []  # at most `iters` timed iterations, fewer once `budget_s` is spent (at least one)
    while len(times) < spec["iters"] and (not times or sum(times) < spec["budget_s"]):
        sync(device)
        t0 = time.perf_counter()
        step()
        sync(device)
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib) / 1024
    def millions(module) -> float:
        return round(sum(p.numel() for p in module.parameters()) / 1e6, 2) if module is not None else 0.0

    return {
        "s_per_iter": median(times),
        "s_per_iter_min": min(times),
        "iters_timed": len(times),
        "times_s": [round(t, 4) for t in times],
        "peak_mem_mib": round(peak_mib, 1),
        "mem_kind": "cuda max_memory_allocated" if device.type == "cuda" else "peak RSS - RSS after imports",
        "device": str(device),
        "batch_size": cfg.train.batch_size,
        "image_size": cfg.data.image_size,
        "vocab_size": len(trainer.vocab),
        "params_g_m": millions(model.generator),
        "params_d_m": millions(model.discriminator),
        "params_total_m": millions(model),  # with text encoder, STREAM, ... (not the lazy DAMSM image encoder)
        "phases": list(model.phases),
    }


def child_main(spec_json: str) -> None:
    import warnings

    warnings.simplefilter("ignore")  # "random DAMSM" warnings: expected here
    try:
        result = measure(json.loads(spec_json))
    except Exception as e:  # reported as a row, the other rows still run
        result = {"error": f"{type(e).__name__}: {str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}"}
    print("RESULT " + json.dumps(result), flush=True)


def run_child(spec: dict, timeout: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]), MKL_NUM_THREADS=str(spec["threads"]))
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    wall = time.perf_counter() - t0
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return {**json.loads(line[7:]), "child_wall_s": round(wall, 1)}
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": f"child exited {proc.returncode}: {tail[0][:300]}"}


# ---------------------------------------------------------------------------------------------
# the table


def plan(args, device: str) -> list[dict]:
    """One spec per (model, configuration, variant), or a row with ``skip`` (the reason)."""
    from t2igan.config import load_preset

    from speed_common import without_pretrained

    on_gpu = device.startswith("cuda")
    common = [f"train.device={device}", "train.sample_every=0", "data.vocab=null", "data.num_workers=0"]
    jobs = []
    targets = [(args.preset, "custom")] if args.preset else [
        (f"{m}-{c}", c) for m in args.models for c in args.configs]
    for preset, config in targets:
        model = load_preset(preset)["model"] if preset_unavailable(preset) is None else preset.rsplit("-", 1)[0]
        row = {"model": model, "config": config, "preset": preset}
        reason = model_unavailable(model) or preset_unavailable(preset)
        if reason:
            jobs.append({**row, "skip": reason})
            continue
        overrides = common + without_pretrained(load_preset(preset).get("model_args", {}))
        if config == "cub":
            data = "synthetic"
            batch = args.batch or (None if on_gpu else (2 if args.quick else 4))
            overrides += ["data.train_args={}", "data.test_args={}"]
            if batch:
                overrides.append(f"train.batch_size={batch}")
            warmup, iters = args.warmup, args.iters
        elif load_preset(preset).get("data", {}).get("dataset", "shapes") == "shapes":
            data = "preset"  # the built-in Shapes data, a few images of it
            overrides += ["data.train_args={num_images: 64}", "data.test_args={num_images: 8}"]
            warmup, iters = args.warmup, args.iters_shapes or args.iters
        else:  # --preset naming another data set: synthetic items of its image size
            data = "synthetic"
            overrides += ["data.train_args={}", "data.test_args={}"]
            warmup, iters = args.warmup, args.iters
        for variant in args.variants:
            jobs.append({**row, "variant": variant, "spec": {
                "preset": preset, "overrides": overrides + VARIANTS[variant] + args.overrides, "data": data,
                "warmup": warmup, "iters": iters, "budget_s": args.row_budget, "threads": args.threads}})
    return jobs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("overrides", nargs="*", help="extra section.key=value overrides for every row")
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--configs", nargs="+", default=["cub", "shapes"], choices=["cub", "shapes"])
    p.add_argument("--preset", default=None, help="time this one preset (+ overrides) instead of the models")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--batch", type=int, default=None,
                   help="batch of the cub rows (default: the preset's on a GPU, 2 --quick / 4 on a CPU)")
    p.add_argument("--variants", default="fp32", help=f"comma-separated: {', '.join(VARIANTS)}")
    p.add_argument("--warmup", type=int, default=None, help="untimed iterations (default 1 CPU, 3 GPU)")
    p.add_argument("--iters", type=int, default=None, help="timed iterations (default CPU 2 quick / 4, GPU 10)")
    p.add_argument("--iters-shapes", type=int, default=None, help="timed iterations of the shapes rows")
    p.add_argument("--row-budget", type=float, default=None,
                   help="stop timing a row after this many seconds of timed iterations (default CPU 10 "
                        "quick / 60, GPU 30)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds for the whole script: rows not started by then are skipped")
    p.add_argument("--threads", type=int, default=1, help="torch threads per child (CPU)")
    p.add_argument("--timeout", type=float, default=CHILD_TIMEOUT_S, help="seconds per row")
    p.add_argument("--quick", action="store_true", help="fewest iterations and batch 2 on a CPU")
    p.add_argument("--out", default=str(RESULTS_DIR / "train_speed.json"))
    p.add_argument("--dry-run", action="store_true", help="resolve every row's preset and overrides, then exit")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child is not None:
        child_main(args.child)
        return
    args.variants = args.variants.split(",")
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; use {', '.join(VARIANTS)}")
    device = resolve_device(args.device)
    on_gpu = device.startswith("cuda")
    if args.warmup is None:
        args.warmup = 3 if on_gpu else 1
    if args.iters is None:
        args.iters = 10 if on_gpu else (2 if args.quick else 4)
    if args.row_budget is None:
        args.row_budget = 30.0 if on_gpu else (10.0 if args.quick else 60.0)
    if args.iters_shapes is None and not on_gpu:
        args.iters_shapes = 3 if args.quick else 8

    if args.dry_run:
        from dry_run import check_overrides

        for job in plan(args, device):
            if "skip" in job:
                print(f"skip  {job['preset']}: {job['skip']}")
            else:
                check_overrides(job["preset"], job["spec"]["overrides"], label=f"{job['preset']} [{job['variant']}]")
        return
    env = environment(device, args.threads)
    print(f"train speed on {env.get('gpu', env.get('cpu'))} ({device}), {args.threads} thread(s) per row, "
          f"load average {env['load_average_1m']} on {env['cpu_count']} cores", flush=True)
    t_start = time.perf_counter()
    jobs = plan(args, device)
    rows: list[dict] = [{k: v for k, v in job.items() if k != "spec"} for job in jobs]  # table order
    # cheap rows first, so that a time limit cuts the costly ones
    for i in sorted(range(len(jobs)), key=lambda i: jobs[i]["config"] == "cub"):
        job, row = jobs[i], rows[i]
        left = args.time_limit - (time.perf_counter() - t_start) if args.time_limit else None
        if "skip" in job:
            print(f"skip {job['preset']}: {job['skip']}", flush=True)
        elif left is not None and left <= 0:
            row["skip"] = f"not run: the time limit ({args.time_limit:.0f} s) was spent"
            print(f"skip {job['preset']}: {row['skip']}", flush=True)
        else:
            timeout = args.timeout if left is None else min(args.timeout, left)
            row.update(run_child(job["spec"], timeout), overrides=job["spec"]["overrides"])
            if row.get("error", "").startswith("timed out") and timeout < args.timeout:
                row["skip"] = f"stopped: the time limit ({args.time_limit:.0f} s) was spent"
                del row["error"]
            if "skip" in row:
                print(f"skip {job['preset']}: {row['skip']}", flush=True)
            elif "error" in row:
                print(f"error {job['preset']} [{job['variant']}]: {row['error']}", flush=True)
            else:
                row["images_per_s"] = row["batch_size"] / row["s_per_iter"]
                print(f"{job['preset']:22s} {job['variant']:8s} {row['s_per_iter']:8.3f} s/iter  "
                      f"batch {row['batch_size']}  {row['peak_mem_mib']:.0f} MiB  ({row['child_wall_s']} s)",
                      flush=True)
    for r in rows:  # each variant relative to the first variant of its (model, config)
        first = next((o for o in rows if o["preset"] == r["preset"] and "s_per_iter" in o), None)
        if first and "s_per_iter" in r:
            r["ratio_vs_first_variant"] = r["s_per_iter"] / first["s_per_iter"]
    print()
    columns = [("model", "model", ""), ("config", "config", ""), ("variant", "variant", ""),
               ("image_size", "px", "d"), ("batch_size", "batch", "d"), ("s_per_iter", "s/iter", ".3f"),
               ("iters_timed", "n", "d"),
               ("images_per_s", "img/s", ".1f"), ("peak_mem_mib", "peak MiB", ".0f"),
               ("params_g_m", "G M", ".2f"), ("params_d_m", "D M", ".2f"), ("params_total_m", "all M", ".2f")]
    if len(args.variants) > 1:
        columns.insert(6, ("ratio_vs_first_variant", f"vs {args.variants[0]}", ".2f"))
    table = print_table([r for r in rows if "s_per_iter" in r], columns)
    for r in rows:
        if "s_per_iter" not in r:
            print(f"  {r['preset']}: {r.get('skip') or r.get('error')}")
    payload = {
        "benchmark": "train_speed",
        "what": "seconds per training iteration (D step + G step, Trainer.train_step), median of timed "
                "iterations after warm-up; peak memory per row in a fresh subprocess",
        "environment": env,
        "settings": {"warmup": args.warmup, "iters": args.iters, "iters_shapes": args.iters_shapes,
                     "row_budget_s": args.row_budget, "time_limit_s": args.time_limit,
                     "threads": args.threads, "quick": args.quick, "variants": args.variants},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "rows": rows,
        "table": table,
    }
    write_json(args.out, payload)


if __name__ == "__main__":
    main()
