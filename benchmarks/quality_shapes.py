"""Quality on Shapes: every model trained on the same CPU budget and seed, then scored alike.

Protocol (one row per model, each its own ``<model>-shapes`` preset):

* one thread per run (``OMP_NUM_THREADS=1``), stopped after ``--budget-min`` minutes of the run's own
  CPU time (``train.time_limit_clock=cpu``): runs that share the cores with other work still get the
  same compute, so rows can be trained side by side (``--jobs``);
* the models that the papers train against a pretrained DAMSM (DF-GAN's frozen text encoder, AttnGAN,
  MirrorGAN, DR-GAN, SSA-GAN) get the same Shapes DAMSM (``--damsm``) and its vocabulary; MirrorGAN also
  a STREAM captioner (``--stream``) pretrained on that vocabulary; GAN-INT-CLS trains its text encoder
  with D (its preset);
* scored on ``--n`` images from the test captions (seed 0, each model's own sampling truncation):
  attribute accuracy of the Shapes probe (test captions and held-out colour-shape captions) and
  Shapes-FID, both read at ``--probe-size`` px (64 px outputs are shrunk, so every row is read at the
  same size); R-precision under a second DAMSM (``--eval-damsm``) that no model trained with.

Writes ``benchmarks/results/quality_shapes.json`` and the table in ``benchmarks/RESULTS.md`` (between
its ``quality_shapes`` markers), each row with the command that trained it.

    python benchmarks/quality_shapes.py --damsm runs/bench/damsm-shapes-seed0 \\
        --eval-damsm runs/bench/damsm-shapes-seed1 --stream runs/bench/stream-shapes \\
        --budget-min 12 --jobs 2 --models dfgan attngan ssagan mirrorgan drgan gan_int_cls

``--dry-run`` checks every training command (presets, overrides) and exits; ``--score-only`` scores the
run folders already in ``--runs``.
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


def relative(path: str) -> str:
    """``path`` relative to the repository when it lies inside it."""
    try:
        return str(Path(path).resolve().relative_to(HERE.parent))
    except ValueError:
        return path


def row_overrides(model: str, damsm: str, stream: str | None) -> list[str]:
    """Preset overrides that wire the pretrained parts in, as each paper does."""
    vocab = f"data.vocab={damsm}/vocab.json"
    if model == "dfgan":
        return ["model.text_encoder_mode=frozen", f"model.damsm_weights={damsm}", vocab]
    if model == "ssagan":
        return ["model.text_encoder_mode=frozen", f"model.damsm_weights={damsm}", "model.damsm_weight=null", vocab]
    if model in ("attngan", "drgan"):
        return [f"model.damsm_weights={damsm}", vocab]
    if model == "mirrorgan":
        if not stream:
            raise SystemExit("mirrorgan needs --stream (t2igan pretrain stream stream-shapes data.vocab=...)")
        return [f"model.damsm_weights={damsm}", f"model.stream_weights={stream}", vocab]
    if model == "gan_int_cls":
        return []
    raise SystemExit(f"no Shapes row defined for {model!r}")


def train_command(model: str, run_dir: Path, args) -> list[str]:
    overrides = row_overrides(model, args.damsm, args.stream)
    overrides += [f"train.time_limit_min={args.budget_min}", "train.time_limit_clock=cpu", "train.max_steps=1000000",
                  f"train.seed={args.seed}", "train.checkpoint_every=1000000", "train.sample_every=0"]
    return ["t2igan", "train", f"{model}-shapes", *overrides, "--run-dir", str(run_dir), "--no-progress"]


def last_step(run_dir: Path) -> int | None:
    """Training steps done: the newest checkpoint's step (the trainer saves one when the budget ends)."""
    from t2igan.training import list_checkpoints

    checkpoints = list_checkpoints(run_dir)
    return max(step for step, _ in checkpoints) if checkpoints else None


def score(run_dir: Path, args) -> dict:
    from t2igan.evaluate import evaluate

    records = evaluate(run_dir, metrics=["shapes", "rprec"], n=args.n, batch_size=50, seed=0, damsm=args.eval_damsm,
                       probe_size=args.probe_size, progress=False)
    by = {r["metric"]: r for r in records}
    return {
        "attr_acc": by["shapes_attr"]["value"],
        "attr_exact": by["shapes_attr"]["exact"],
        "attr_acc_heldout": by.get("shapes_attr_heldout", {}).get("value"),
        "per_attribute": by["shapes_attr"]["per_attribute"],
        "shapes_fid": by.get("shapes_fid", {}).get("value"),
        "rprec": by["rprec"]["value"],
        "rprec_std": by["rprec"]["std"],
    }


def format_table(rows: list[dict], budget: float, probe_size: int) -> str:
    lines = [f"CPU budget {budget:g} min per model, 1 thread, seed 0; probe at {probe_size} px",
             f"{'model':<12}{'px':>5}{'steps':>8}{'attr acc':>10}{'held-out':>10}{'exact':>8}{'S-FID':>9}"
             f"{'R-prec':>15}"]
    for r in rows:
        held = "-" if r["attr_acc_heldout"] is None else f"{100 * r['attr_acc_heldout']:.1f}%"
        lines.append(f"{r['model']:<12}{r['image_size']:>5}{r['steps']:>8}{100 * r['attr_acc']:>9.1f}%{held:>10}"
                     f"{100 * r['attr_exact']:>7.1f}%{r['shapes_fid']:>9.1f}"
                     f"{100 * r['rprec']:>9.1f} +- {100 * r['rprec_std']:.1f}")
    return "\n".join(lines)


def markdown_table(rows: list[dict], args) -> str:
    out = ["| model | px | steps | attr acc | held-out attr acc | exact | Shapes-FID | R-precision (eval DAMSM) | command |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        held = "-" if r["attr_acc_heldout"] is None else f"{100 * r['attr_acc_heldout']:.1f}%"
        out.append(f"| {r['model']} | {r['image_size']} | {r['steps']} | {100 * r['attr_acc']:.1f}% | {held} | "
                   f"{100 * r['attr_exact']:.1f}% | {r['shapes_fid']:.1f} | {100 * r['rprec']:.1f} +- "
                   f"{100 * r['rprec_std']:.1f}% | `{r['command']}` |")
    return "\n".join(out)


def score_command(args) -> str:
    """The command that scores the runs of this protocol again (the one that wrote the block)."""
    cmd = ["python", "benchmarks/quality_shapes.py", "--damsm", args.damsm, "--eval-damsm", args.eval_damsm]
    if args.stream:
        cmd += ["--stream", args.stream]
    cmd += ["--budget-min", f"{args.budget_min}"]
    for flag, value, default in (("--n", args.n, 2000), ("--probe-size", args.probe_size, 32),
                                 ("--runs", args.runs, "runs/bench/quality")):
        if value != default:
            cmd += [flag, str(value)]
    return shlex.join(cmd + ["--score-only"])


def update_results_md(table: str, args) -> None:
    scoring = (f"Scored with `{score_command(args)}` on {args.n} images from test "
               f"captions (seed 0); probe at {args.probe_size} px; R-precision under `{args.eval_damsm}` "
               f"(a DAMSM no model trained with).")
    write_block("quality_shapes", f"{scoring}\n\n{table}", "Quality on Shapes")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["dfgan", "attngan", "ssagan", "mirrorgan", "drgan", "gan_int_cls"])
    p.add_argument("--damsm", required=True, help="DAMSM run the models train with")
    p.add_argument("--eval-damsm", required=True, help="DAMSM run that scores R-precision (not used in training)")
    p.add_argument("--stream", help="STREAM run for MirrorGAN")
    p.add_argument("--budget-min", type=float, default=12.0, help="CPU minutes per model (default 12)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=2, help="runs trained side by side")
    p.add_argument("--n", type=int, default=2000, help="generated images per model for scoring")
    p.add_argument("--probe-size", type=int, default=32)
    p.add_argument("--runs", default="runs/bench/quality", help="folder for the run folders")
    p.add_argument("--score-only", action="store_true", help="score existing runs, train nothing")
    p.add_argument("--train-only", action="store_true", help="train, score nothing")
    p.add_argument("--out", default=str(HERE / "results" / "quality_shapes.json"))
    p.add_argument("--dry-run", action="store_true", help="check the training commands and exit")
    args = p.parse_args()

    runs = Path(args.runs)
    commands = {m: train_command(m, runs / m, args) for m in args.models}
    if args.dry_run:
        check_commands(commands.values())
        return
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    if not args.score_only:
        pending, active = list(args.models), {}
        while pending or active:
            while pending and len(active) < args.jobs:
                m = pending.pop(0)
                print(f"train {m}: {shlex.join(commands[m])}", flush=True)
                log = open(runs / f"{m}.train.log", "w")
                active[m] = (subprocess.Popen([sys.executable, "-m", "t2igan", *commands[m][1:]], env=env, stdout=log, stderr=subprocess.STDOUT), time.time())
            for m, (proc, t0) in list(active.items()):
                if proc.poll() is not None:
                    print(f"  {m} finished (exit {proc.returncode}) after {(time.time() - t0) / 60:.1f} wall min",
                          flush=True)
                    del active[m]
            time.sleep(5)
    if args.train_only:
        return

    import torch

    torch.set_num_threads(2)
    rows = []
    for m in args.models:
        run_dir = runs / m
        if not (run_dir / "model.safetensors").is_file():
            print(f"skip {m}: no trained run in {run_dir}", flush=True)
            continue
        t0 = time.time()
        cfg = json.loads((run_dir / "config.json").read_text())
        row = {"model": m, "image_size": cfg["experiment"]["data"]["image_size"], "steps": last_step(run_dir),
               "budget_cpu_min": args.budget_min, "command": "OMP_NUM_THREADS=1 " + shlex.join(commands[m]),
               **score(run_dir, args)}
        row["score_seconds"] = round(time.time() - t0, 1)
        rows.append(row)
        print(f"scored {m} in {row['score_seconds']} s", flush=True)
    print(format_table(rows, args.budget_min, args.probe_size))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    protocol = {**vars(args), "out": relative(args.out)}  # no machine path in the JSON
    Path(args.out).write_text(json.dumps({"protocol": protocol, "rows": rows}, indent=2))
    update_results_md(markdown_table(rows, args), args)
    print(f"wrote {args.out} and {HERE / 'RESULTS.md'}")


if __name__ == "__main__":
    sys.exit(main())
