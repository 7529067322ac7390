"""Seconds per training iteration (D step + G step) and peak memory, per speed switch.

Each configuration is timed in the same process against the fp32 baseline, so the ratio column is
meaningful on a noisy machine. Prints a table and writes JSON.

    python benchmarks/train_speed.py dfgan-shapes data.image_size=256 model.nf=32 train.batch_size=32 \
        --variants fp32,bf16,bf16+cl --iters 20 -o speed.json
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from t2igan.config import resolve_config
from t2igan.trainer import Trainer

VARIANTS = {
    "fp32": [],
    "bf16": ["train.amp=bf16"],
    "bf16+cl": ["train.amp=bf16", "train.channels_last=true"],
    "fp32+cl": ["train.channels_last=true"],
}


def time_variant(preset: str, overrides: list[str], iters: int, warmup: int, tmp: str) -> dict:
    cfg = resolve_config(preset, overrides + ["train.sample_every=0", "train.ema_decay=0.999"])
    trainer = Trainer(cfg, tmp, progress=False)
    batches = trainer.batches()
    batch = next(batches)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        trainer.train_step(batch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        trainer.train_step(batch)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    sec = (time.perf_counter() - t0) / iters
    mem = torch.cuda.max_memory_allocated() / 2**20 if trainer.device.type == "cuda" else float("nan")
    return {"s_per_iter": sec, "peak_mem_mib": mem, "device": str(trainer.device),
            "batch_size": cfg.train.batch_size, "image_size": cfg.data.image_size}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("preset")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--variants", default="fp32,bf16")
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("-o", "--output", default="train_speed.json")
    args = p.parse_args()
    import tempfile

    rows = []
    for name in args.variants.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            r = time_variant(args.preset, args.overrides + VARIANTS[name], args.iters, args.warmup, tmp)
        r.update(variant=name, preset=args.preset, overrides=args.overrides)
        rows.append(r)
    base = rows[0]["s_per_iter"]
    print(f"{'variant':10s} {'s/iter':>9s} {'vs ' + rows[0]['variant']:>9s} {'peak MiB':>9s}  device")
    for r in rows:
        r["ratio_vs_first"] = r["s_per_iter"] / base
        print(f"{r['variant']:10s} {r['s_per_iter']:9.4f} {r['ratio_vs_first']:9.2f} {r['peak_mem_mib']:9.0f}  {r['device']}")
    with open(args.output, "w") as f:
        json.dump(rows, f, indent=2)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
