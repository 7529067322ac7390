"""Why Shapes learns slowly: one change at a time from ``dfgan-shapes`` with DF-GAN's own networks and
the text encoder trained by D (``BEFORE``), same step budget.

Each row is the preset plus ``BEFORE`` plus its own overrides, trained for ``--steps`` iterations on one thread
(seed 0) and scored with the shipped Shapes probe on ``--n`` test captions (seed 0): mean attribute
accuracy, each attribute group, the held-out (colour, shape) captions and Shapes-FID. The CPU seconds
of each training process are recorded too, so a row's cost is visible next to its score. Rows can be
trained side by side (``--jobs``): step budgets do not depend on the load.

    python benchmarks/shapes_ablation.py --steps 1500 --rows base contrastive_sum contrastive
    python benchmarks/shapes_ablation.py --steps 1500 --score-only     # re-read existing run folders
    python benchmarks/shapes_ablation.py --steps 1500 --dry-run        # check every row's command

Writes ``benchmarks/results/shapes_ablation.json`` and the table between the ``shapes_ablation``
markers of ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from dry_run import check_commands
from results_md import write_block

HERE = Path(__file__).resolve().parent

# dfgan-shapes without the options the rows below measure (text encoder trained by D, DF-GAN's networks,
# no omitted-word captions); every row starts here and adds its own overrides
BEFORE = ["model.text_encoder_mode=joint_d", "model.text_encoder_lr=0.001", "model.damsm_weights=null",
          "model.sentence_in_fc=false", "model.d_gamma_init=0", "data.train_args={}"]
DAMSM = ["model.text_encoder_mode=frozen", "model.damsm_weights=runs/damsm-shapes",
         "data.vocab=runs/damsm-shapes/vocab.json"]  # `t2igan pretrain damsm damsm-shapes ...` = shapes-damsm

# name -> (what changes, overrides of the dfgan-shapes preset)
ROWS = {
    "base": ("DF-GAN objective alone: text encoder trained by D's matching-aware hinge, EMA 0.999",
             BEFORE + ["model.contrastive_weight=0"]),
    "contrastive_sum": ("+ image-sentence contrastive term in D and G (weight 1) on summed D features",
                        BEFORE + ["model.contrastive_pool=sum"]),
    "contrastive": ("+ contrastive term on flattened D features", BEFORE),
    "contrastive_no_ema": ("contrastive, no moving average of G", BEFORE + ["train.ema_decay=0"]),
    "contrastive_lr_x2": ("contrastive, learning rates x2 (G 4e-4, D 8e-4)",
                          BEFORE + ["train.lr_g=0.0004", "train.lr_d=0.0008"]),
    "contrastive_64px": ("contrastive at 64 px", BEFORE + ["data.image_size=64"]),
    "sentence_in_fc": ("contrastive + G's first FC reads the sentence (the 4x4 layout follows the caption)",
                       BEFORE + ["model.sentence_in_fc=true"]),
    "d_gamma_init": ("contrastive + D's residual gates start at 1 (official 0: D starts linear in the pixels)",
                     BEFORE + ["model.d_gamma_init=1.0"]),
    "fc_gamma": ("contrastive + sentence_in_fc + d_gamma_init 1",
                 BEFORE + ["model.sentence_in_fc=true", "model.d_gamma_init=1.0"]),
    "fc_gamma_translate": ("contrastive + sentence_in_fc + d_gamma_init 1 + DiffAugment translation 1/8 in D",
                           BEFORE + ["model.sentence_in_fc=true", "model.d_gamma_init=1.0", "model.d_translate=0.125"]),
    "fc_gamma_damsm": ("contrastive + sentence_in_fc + d_gamma_init 1 + the frozen Shapes DAMSM text encoder "
                       "(the dfgan-shapes preset's options; the preset names the bundled copy, shapes-damsm)",
                       BEFORE + ["model.sentence_in_fc=true", "model.d_gamma_init=1.0"] + DAMSM),
}


def train_command(name: str, run_dir: Path, steps: int) -> list[str]:
    overrides = {}  # key -> override; a row's own value replaces BEFORE's
    for item in ROWS[name][1]:
        overrides.pop(item.split("=")[0], None)
        overrides[item.split("=")[0]] = item
    return ["t2igan", "train", "dfgan-shapes", "train.seed=0", "train.sample_every=500", "train.checkpoint_every=500",
            f"train.max_steps={steps}", *overrides.values(), "--run-dir", str(run_dir), "--no-progress"]


def score(run_dir: Path, n: int) -> dict:
    from t2igan.evaluate import evaluate

    records = evaluate(run_dir, metrics=["shapes"], n=n, seed=0, probe_size=32, progress=False, device="cpu")
    by = {r["metric"]: r for r in records}
    return {"attr_acc": by["shapes_attr"]["value"], "per_attribute": by["shapes_attr"]["per_attribute"],
            "heldout": by.get("shapes_attr_heldout", {}).get("value"), "shapes_fid": by["shapes_fid"]["value"]}


GROUPS = ("colour", "shape", "position", "size", "count", "relation")


def markdown_table(rows: list[dict], steps: int, n: int) -> str:
    out = [f"| row | change | steps | CPU s | mean | {' | '.join(GROUPS)} | held-out mean | Shapes-FID | command |",
           "|---|---|---|---|---|" + "---|" * len(GROUPS) + "---|---|---|"]
    for r in rows:
        s = r["score"]
        cells = " | ".join(f"{100 * s['per_attribute'].get(g, float('nan')):.1f}" for g in GROUPS)
        held = "-" if s["heldout"] is None else f"{100 * s['heldout']:.1f}"
        cpu = "-" if r.get("cpu_s") is None else f"{r['cpu_s']:.0f}"
        out.append(f"| {r['name']} | {r['change']} | {steps} | {cpu} | {100 * s['attr_acc']:.1f} | {cells} | {held} | "
                   f"{s['shapes_fid']:.0f} | `OMP_NUM_THREADS=1 {shlex.join(r['command'])}` |")
    return "\n".join(out) + (f"\n\nScored by `t2igan eval RUN --metrics shapes --n {n}` (shipped 32 px probe, seed 0); "
                             "percentages of test-caption attributes the probe reads back.")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--runs", default="runs/bench/ablation")
    p.add_argument("--score-only", action="store_true")
    p.add_argument("--out", default=str(HERE / "results" / "shapes_ablation.json"))
    p.add_argument("--dry-run", action="store_true", help="check every row's training command and exit")
    args = p.parse_args()

    runs = Path(args.runs)
    if args.dry_run:
        check_commands(train_command(name, runs / name, args.steps) for name in args.rows)
        return
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cpu = {}
    if not args.score_only:
        pending, active = list(args.rows), {}
        while pending or active:
            while pending and len(active) < args.jobs:
                name = pending.pop(0)
                cmd = train_command(name, runs / name, args.steps)
                print("train", shlex.join(cmd), flush=True)
                log = open(runs / f"{name}.train.log", "w")
                active[name] = subprocess.Popen([sys.executable, "-m", "t2igan", *cmd[1:]], env=env, stdout=log,
                                                stderr=subprocess.STDOUT)
            pid, status, usage = os.wait4(-1, 0)
            for name, proc in list(active.items()):
                if proc.pid == pid:
                    proc.returncode = os.waitstatus_to_exitcode(status)
                    cpu[name] = usage.ru_utime + usage.ru_stime
                    print(f"  {name}: exit {proc.returncode}, {cpu[name]:.0f} CPU s", flush=True)
                    del active[name]
    previous = {}
    if Path(args.out).is_file():
        previous = {r["name"]: r for r in json.loads(Path(args.out).read_text()).get("rows", [])}
    rows = []
    for name in args.rows:
        run_dir = runs / name
        if not (run_dir / "model.safetensors").is_file():
            if name in previous:  # scored before; its run folder is gone
                rows.append(previous[name])
                print(f"  {name}: no run in {run_dir}, kept its earlier score")
            else:
                print(f"  {name}: no trained run in {run_dir}, skipped")
            continue
        rows.append({"name": name, "change": ROWS[name][0], "command": train_command(name, run_dir, args.steps),
                     "cpu_s": cpu.get(name, previous.get(name, {}).get("cpu_s")), "score": score(run_dir, args.n)})
        print(f"  {name}: mean {100 * rows[-1]['score']['attr_acc']:.1f}%", flush=True)
    table = markdown_table(rows, args.steps, args.n)
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"steps": args.steps, "n": args.n, "rows": rows}, indent=2))
    write_block("shapes_ablation", table, "Shapes ablations: one change at a time")


if __name__ == "__main__":
    main()
