"""Real data: DF-GAN and AttnGAN trained briefly at 64 px on the CUB subset, scored by a subset DAMSM.

The subset (AttnGAN's ``data/birds`` layout, not part of the repository; ``--root``, by default
``data/cub_birds_subset``) holds 1,258 real CUB images: 275 of the official train split (5 classes) and 983 of the test split (17 classes). Too
few train images for a GAN, so every model here trains on **all 1,258** (train + test lists) and the
scores below are on the 983 test-split images, which the models have seen: they show what a short
CPU run learns, not generalisation.

Steps (each one thread, stopped on its own CPU-time budget, ``train.time_limit_clock=cpu``):

1. a DAMSM with the small CNN image encoder at 64 px (no Inception weights here) on the 1,258 images;
2. DF-GAN (``dfgan-cub`` at 64 px: nf 16, batch 16) with that DAMSM's frozen text encoder;
3. AttnGAN (``attngan-cub`` at 64 px: 32 -> 64, ngf 16, ndf 32, batch 16) with that DAMSM; with
   ``--models ... dfgan-projected`` also DF-GAN whose D reads that DAMSM's frozen image encoder
   (``model.d_backbone=damsm``);
4. per model: a captioned grid of test captions and R-precision of ``--n`` images under the same DAMSM
   (the one both trained with, which favours them; there is no independent CUB DAMSM here).

Writes ``benchmarks/results/cub_subset.json``, ``benchmarks/results/cub_subset_<model>.png`` and the
``cub_subset`` block of ``benchmarks/RESULTS.md``.

    python benchmarks/cub_subset.py --root data/cub_birds_subset --damsm-min 6 --gan-min 10
    python benchmarks/cub_subset.py --dry-run      # check the three commands, train nothing
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from dry_run import check_commands
from results_md import write_block

HERE = Path(__file__).resolve().parent
CAPTIONS = [
    "this bird has a red head and a black body",
    "a small yellow bird with black wings and a short beak",
    "this bird is white with a long neck and an orange bill",
    "a blue bird with white belly perched on a branch",
]


def run(cmd: list[str], log: Path, env: dict) -> float:
    print("$ " + shlex.join(cmd), flush=True)
    t0 = time.time()
    with open(log, "w") as f:
        rc = subprocess.call([sys.executable, "-m", "t2igan", *cmd[1:]], env=env, stdout=f, stderr=subprocess.STDOUT)
    if rc != 0:
        raise SystemExit(f"failed (exit {rc}); see {log}")
    return time.time() - t0


def train_commands(root: Path, runs: Path, all_keys: Path, args) -> dict[str, list[str]]:
    """The DAMSM pretraining and GAN training commands, by name."""
    data = [f"data.root={root}", "data.image_size=64",
            f"data.train_args={{filenames: {all_keys}, cache: true}}",
            f"data.test_args={{filenames: {root / 'subset_test_filenames.txt'}}}"]
    budget = ["train.time_limit_clock=cpu", "train.seed=0"]
    damsm = runs / "damsm"
    return {
        "damsm": ["t2igan", "pretrain", "damsm", "damsm-cub", *data, "model.backbone=small_cnn", "model.cnn_channels=32",
                  "train.max_steps=1000000", f"train.time_limit_min={args.damsm_min}", *budget, "--run-dir", str(damsm),
                  "--no-progress"],
        "dfgan": ["t2igan", "train", "dfgan-cub", *data, f"data.vocab={damsm}/vocab.json", "model.nf=16",
                  f"model.damsm_weights={damsm}", "train.batch_size=16",
                  "train.max_steps=1000000", f"train.time_limit_min={args.gan_min}", *budget,
                  "train.sample_every=0", "train.checkpoint_every=1000000", "--run-dir", str(runs / "dfgan"),
                  "--no-progress"],
        # DF-GAN whose D reads the DAMSM's frozen image encoder (Projected GAN; model.d_backbone)
        "dfgan-projected": ["t2igan", "train", "dfgan-cub", *data, f"data.vocab={damsm}/vocab.json", "model.nf=16",
                            f"model.damsm_weights={damsm}", "model.d_backbone=damsm", "train.batch_size=16",
                            "train.max_steps=1000000", f"train.time_limit_min={args.gan_min}", *budget,
                            "train.sample_every=0", "train.checkpoint_every=1000000",
                            "--run-dir", str(runs / "dfgan-projected"), "--no-progress"],
        "attngan": ["t2igan", "train", "attngan-cub", *data, f"data.vocab={damsm}/vocab.json", "model.base_size=32",
                    "model.num_stages=2", "model.ngf=16", "model.ndf=32", f"model.damsm_weights={damsm}",
                    "train.batch_size=16", "train.max_steps=1000000", f"train.time_limit_min={args.gan_min}",
                    *budget, "train.sample_every=0", "train.checkpoint_every=1000000",
                    "--run-dir", str(runs / "attngan"), "--no-progress"],
    }


def results_block(result: dict, n: int) -> str:
    """The ``cub_subset`` block of ``benchmarks/RESULTS.md`` for ``result`` (as ``cub_subset.json`` holds it)."""
    real = result["damsm"]
    lines = ["| model | steps | R-precision (subset DAMSM, trained with) | grid | command |", "|---|---|---|---|---|",
             f"| real test-split images | - | {100 * real['real_rprec']:.1f} +- {100 * real['real_rprec_std']:.1f}% | - | "
             f"`{real['command']}` |"]
    lines += [f"| {r['model']} | {r['steps']} | {100 * r['rprec']:.1f} +- {100 * r['rprec_std']:.1f}% | "
              f"[{r['grid']}]({r['grid']}) | `{r['command']}` |" for r in result["rows"]]
    return (f"Trained on all 1,258 subset images (train + test lists), scored on the 983 test-split "
            f"images ({n} generated), so these show what a short CPU run learns, not generalisation.\n\n"
            + "\n".join(lines))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="data/cub_birds_subset", help="the CUB subset (AttnGAN data/birds layout)")
    p.add_argument("--runs", default="runs/bench/cub")
    p.add_argument("--damsm-min", type=float, default=6.0, help="CPU minutes of DAMSM pretraining")
    p.add_argument("--gan-min", type=float, default=10.0, help="CPU minutes per GAN")
    p.add_argument("--n", type=int, default=983, help="generated images scored for R-precision")
    p.add_argument("--models", nargs="+", default=["dfgan", "attngan"], choices=["dfgan", "dfgan-projected", "attngan"])
    p.add_argument("--skip-training", action="store_true", help="score the runs already in --runs")
    p.add_argument("--dry-run", action="store_true", help="check the training commands and exit")
    args = p.parse_args()

    root, runs = Path(args.root), Path(args.runs)  # as given: the commands recorded stay relative
    all_keys = runs / "train_and_test_filenames.txt"
    commands = train_commands(root, runs, all_keys, args)
    if args.dry_run:
        check_commands(commands[m] for m in ["damsm", *args.models])
        return
    runs.mkdir(parents=True, exist_ok=True)
    keys = (root / "subset_train_filenames.txt").read_text().split() + (root / "subset_test_filenames.txt").read_text().split()
    all_keys.write_text("\n".join(keys) + "\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    damsm = runs / "damsm"
    if not args.skip_training:
        run(commands["damsm"], runs / "damsm.log", env)
        procs = {}
        for m in args.models:  # the GANs train side by side, each on its own CPU budget
            print("$ " + shlex.join(commands[m]), flush=True)
            log = open(runs / f"{m}.log", "w")
            procs[m] = subprocess.Popen([sys.executable, "-m", "t2igan", *commands[m][1:]], env=env, stdout=log,
                                        stderr=subprocess.STDOUT)
        for m, proc in procs.items():
            if proc.wait() != 0:
                raise SystemExit(f"{m} failed; see {runs / (m + '.log')}")

    import torch

    from t2igan import Text2ImagePipeline
    from t2igan.evaluate import evaluate
    from t2igan.training import list_checkpoints
    from t2igan.visualize import captioned_grid

    damsm_metrics = [json.loads(line) for line in (damsm / "metrics.jsonl").read_text().splitlines()]
    rows = []
    for m in args.models:
        run_dir = runs / m
        records = evaluate(run_dir, metrics=["rprec"], n=args.n, seed=0, damsm=str(damsm), progress=False)
        pipe = Text2ImagePipeline.from_pretrained(run_dir)
        images = pipe(CAPTIONS, n=6, seed=0)  # caption-major: one row per caption
        grid = captioned_grid(images, [c for c in CAPTIONS for _ in range(6)], ncol=6)
        grid_path = HERE / "results" / f"cub_subset_{m}.png"
        grid_path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(grid_path)
        rows.append({"model": m, "steps": max(s for s, _ in list_checkpoints(run_dir)), "cpu_min": args.gan_min,
                     "rprec": records[0]["value"], "rprec_std": records[0]["std"], "grid": str(grid_path.relative_to(HERE)),
                     "command": "OMP_NUM_THREADS=1 " + shlex.join(commands[m])})
    real = damsm_metrics[-1]
    print(f"DAMSM (small CNN, 64 px, {args.damsm_min:g} CPU min): R-precision of real test-split images "
          f"{100 * real['mean']:.1f} +- {100 * real['std']:.1f}%")
    for r in rows:
        print(f"{r['model']:<8} {r['steps']:>6} steps  R-precision {100 * r['rprec']:.1f} +- {100 * r['rprec_std']:.1f}%  "
              f"grid {r['grid']}")
    result = {"damsm": {"command": "OMP_NUM_THREADS=1 " + shlex.join(commands["damsm"]), "real_rprec": real["mean"],
                        "real_rprec_std": real["std"]}, "rows": rows, "torch_threads": torch.get_num_threads()}
    (HERE / "results" / "cub_subset.json").write_text(json.dumps(result, indent=2))
    body = results_block(result, args.n)
    path = write_block("cub_subset", body, "Real data: the CUB subset at 64 px")
    print(f"wrote {HERE / 'results' / 'cub_subset.json'} and {path}")


if __name__ == "__main__":
    sys.exit(main())
