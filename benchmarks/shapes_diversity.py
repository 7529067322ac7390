"""Does each caption give a distribution? What kills the noise of the Shapes models, and what brings it back.

Each row trains one model on Shapes for ``--steps`` iterations (one torch thread, seed 0, `make demo`'s
learning rates) and scores it with ``t2igan eval RUN --metrics shapes,diversity --n 1000``: the mean
attribute accuracy on the fully specified test captions beside the diversity numbers on captions that
leave size or place unsaid (:mod:`t2igan.metrics.diversity`). Rows that share a model with another
row (``EVAL_ONLY``) only score it another way (another truncation). Trainings run one at a time.

    python benchmarks/shapes_diversity.py --rows paper paper_omit contrastive        # train + score
    python benchmarks/shapes_diversity.py --rows demo --steps 8000                  # a longer budget
    python benchmarks/shapes_diversity.py --score-only                              # re-read run folders
    python benchmarks/shapes_diversity.py --rows shapes-dfgan                       # a bundled model
    python benchmarks/shapes_diversity.py --table                                   # rewrite the table from the JSON
    python benchmarks/shapes_diversity.py --dry-run                                 # check every row's command

Runs go to ``--runs`` (default ``runs/diversity``; ``NAME`` at 2,000 steps, ``NAME-STEPS`` otherwise).
Writes ``benchmarks/results/shapes_diversity.json`` (every row ever scored, by name and steps) and the
table between the ``shapes_diversity`` markers of ``benchmarks/RESULTS.md``.
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

from dry_run import check_commands, check_runs
from results_md import write_block

HERE = Path(__file__).resolve().parent
SHOWN_RUNS = "runs/diversity"  # where the table's commands put their runs (relative to the repository)
DEMO_LR = ["train.lr_g=0.0004", "train.lr_d=0.0008"]  # make demo's learning rates, every DF-GAN row
# DF-GAN's own objective and networks at Shapes size (dfgan-cub's objective on dfgan-shapes' data and
# sizes): no contrastive term, z alone in G's first layer, D's gates closed, no moving average, the
# official truncation, captions that name everything; the frozen Shapes DAMSM text encoder (the paper's
# frozen DAMSM)
PAPER = ["model.contrastive_weight=0", "model.sentence_in_fc=false", "model.d_gamma_init=0", "train.ema_decay=0",
         "model.truncation_form=scaled", "data.train_args={}"]
OMIT = ["data.train_args={omit_prob: 0.25}"]
ATTNGAN_32 = ["model.base_size=16", "data.image_size=32", "data.train_args={omit_prob: 0.25}"]

# name -> (what changes, preset, overrides); every DF-GAN row has make demo's learning rates
ROWS = {
    "paper": ("DF-GAN's objective at Shapes size (frozen DAMSM text encoder, no EMA, scaled truncation)",
              "dfgan-shapes", PAPER),
    "paper_omit": ("+ omitted-word captions (a quarter of the training captions leave size and/or place out)",
                   "dfgan-shapes", PAPER + OMIT),
    "contrastive": ("+ image-sentence contrastive term (weight 1, flattened 4x4 D features)",
                    "dfgan-shapes", PAPER + OMIT + ["model.contrastive_weight=1"]),
    "sentence_fc": ("+ the sentence in G's first layer", "dfgan-shapes",
                    PAPER + OMIT + ["model.contrastive_weight=1", "model.sentence_in_fc=true"]),
    "open_gates": ("+ D's residual gates start open", "dfgan-shapes",
                   PAPER + OMIT + ["model.contrastive_weight=1", "model.sentence_in_fc=true", "model.d_gamma_init=1"]),
    "demo": ("+ EMA 0.999 and the clipped truncation: `make demo` (the dfgan-shapes preset)", "dfgan-shapes", []),
    "demo_no_contrastive": ("`make demo` without the contrastive term", "dfgan-shapes",
                            ["model.contrastive_weight=0"]),
    "demo_joint_text": ("`make demo` with the text encoder trained by D (the bundled shapes-dfgan's recipe)",
                        "dfgan-shapes", ["model.text_encoder_mode=joint_d", "model.text_encoder_lr=0.001",
                                         "model.damsm_weights=null"]),
    # levers from the literature, each on top of `make demo`
    "mode_seeking": ("`make demo` + MSGAN's mode-seeking term, weight 1 [Mao et al. 2019]", "dfgan-shapes",
                     ["model.mode_seeking_weight=1"]),
    "diversity_sensitive": ("`make demo` + DSGAN's diversity-sensitive term, weight 10, tau 0.1 [Yang et al. 2019]",
                            "dfgan-shapes", ["model.diversity_sensitive_weight=10", "model.diversity_sensitive_tau=0.1"]),
    "minibatch_std": ("`make demo` + minibatch standard deviation in D, groups of 4 [ProGAN]", "dfgan-shapes",
                      ["model.d_minibatch_std=4"]),
    "noise_injection": ("`make demo` + per-pixel noise after every conv of G [StyleGAN]", "dfgan-shapes",
                        ["model.g_noise_injection=true"]),
    "contrastive_floor": ("`make demo` + G's contrastive term flooded at 0.5 [Ishida et al. 2020]", "dfgan-shapes",
                          ["model.contrastive_floor=0.5"]),
    "attngan": ("AttnGAN at 32 px (attngan-shapes, first stage 16 px) with omitted-word captions", "attngan-shapes",
                ATTNGAN_32),
}
# name -> (what changes, the row whose model it scores, extra `t2igan eval` arguments)
EVAL_ONLY = {
    "demo_scaled": ("`make demo`'s model sampled with the official truncation (0.88 x N(0,1) cut at +-2)", "demo",
                    ["--truncation-form", "scaled"]),
    "demo_untruncated": ("`make demo`'s model sampled without truncation (N(0,1))", "demo", ["--truncation", "0"]),
}
BUNDLED = ("shapes-dfgan", "shapes-ssagan", "shapes-mirrorgan")


def run_name(name: str, steps: int) -> str:
    return name if steps == 2000 else f"{name}-{steps}"


def train_command(name: str, steps: int, runs: str) -> list[str]:
    _, preset, overrides = ROWS[name]
    lr = DEMO_LR if preset.startswith("dfgan") else []
    by_key = {}  # a later override of the same key replaces an earlier one
    for item in overrides:
        by_key.pop(item.split("=")[0], None)
        by_key[item.split("=")[0]] = item
    return ["t2igan", "train", preset, "train.seed=0", f"train.max_steps={steps}", *lr, *by_key.values(),
            "--run-dir", f"{runs}/{run_name(name, steps)}", "--no-progress"]


def eval_args(name: str) -> list[str]:
    return EVAL_ONLY[name][2] if name in EVAL_ONLY else []


def eval_command(name: str, steps: int, runs: str) -> list[str]:
    target = name if name in BUNDLED else f"{runs}/{run_name(EVAL_ONLY[name][1] if name in EVAL_ONLY else name, steps)}"
    return ["t2igan", "eval", target, "--metrics", "shapes,diversity", "--n", "1000", *eval_args(name)]


def score(name: str, steps: int, runs: Path) -> dict:
    from t2igan.evaluate import evaluate

    cmd = eval_command(name, steps, str(runs))
    kwargs = {"truncation": None, "truncation_form": None}
    extra = eval_args(name)
    for flag, value in zip(extra[::2], extra[1::2]):
        kwargs[flag.lstrip("-").replace("-", "_")] = float(value) if flag == "--truncation" else value
    records = evaluate(cmd[2], metrics=["shapes", "diversity"], n=1000, seed=0, progress=False, device="cpu",
                       **kwargs)
    by = {r["metric"]: r for r in records}
    return {
        "attr_acc": by["shapes_attr"]["value"], "per_attribute": by["shapes_attr"]["per_attribute"],
        "heldout": by.get("shapes_attr_heldout", {}).get("value"), "shapes_fid": by["shapes_fid"]["value"],
        "entropy": by["diversity_entropy"]["per_attribute"], "entropy_mean": by["diversity_entropy"]["value"],
        "entropy_per_form": by["diversity_entropy"]["per_form"],
        "coverage": by["diversity_coverage"]["per_attribute"], "features": by["diversity_features"]["value"],
        "faithfulness": by["diversity_faithfulness"]["value"], "open_recall": by["open_prdc_recall"]["value"],
        "open_precision": by["open_prdc_precision"]["value"], "caption_diversity": by["caption_diversity"]["value"],
    }


ORDER = list(ROWS) + list(EVAL_ONLY) + list(BUNDLED)


def markdown_table(rows: list[dict]) -> str:
    rows = sorted(rows, key=lambda r: (r["steps"] if r["name"] not in BUNDLED else 10**9,
                                       ORDER.index(r["name"]) if r["name"] in ORDER else len(ORDER)))
    out = ["| row | change | steps | CPU min | attributes | size entropy | place entropy | size / place coverage | "
           "features vs real | faithfulness | open recall | commands |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["score"]
        cpu = "-" if r.get("cpu_s") is None else f"{r['cpu_s'] / 60:.0f}"
        commands = " ; ".join(f"`{shlex.join(c)}`" for c in r["commands"])
        steps = "bundled" if r["name"] in BUNDLED else r["steps"]
        out.append(f"| {r['name']} | {r['change']} | {steps} | {cpu} | {100 * s['attr_acc']:.1f} | "
                   f"{s['entropy']['size']:.2f} | {s['entropy']['position']:.2f} | "
                   f"{s['coverage']['size']:.2f} / {s['coverage']['position']:.2f} | {s['features']:.2f} | "
                   f"{100 * s['faithfulness']:.1f} | {s['open_recall']:.2f} | {commands} |")
    return "\n".join(out) + (
        "\n\nattributes: `shapes_attr`, % of the fully specified test captions' attributes the probe reads back. "
        "Entropy: of the size / place the probe reads over 32 seeds of a caption that leaves it out, as a fraction "
        "of the data's (real renders: 0.99 / 0.99); coverage: the share of the allowed sizes / places that appear; "
        "features vs real: mean pairwise probe-feature distance of the 32 seeds over that of 32 real renders; "
        "faithfulness: % of the named attributes right on the same images; open recall: the share of real renders "
        "inside the generated images' 5-NN balls. Every command runs from the repository root, one torch thread "
        "(`OMP_NUM_THREADS=1`).")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", nargs="+", default=list(ROWS) + list(EVAL_ONLY),
                   choices=list(ROWS) + list(EVAL_ONLY) + list(BUNDLED))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--runs", default=SHOWN_RUNS)
    p.add_argument("--score-only", action="store_true")
    p.add_argument("--out", default=str(HERE / "results" / "shapes_diversity.json"))
    p.add_argument("--table", action="store_true", help="write the table of --out's rows into RESULTS.md and exit")
    p.add_argument("--dry-run", action="store_true", help="check every row's training command and exit")
    args = p.parse_args()

    if args.dry_run:
        check_commands(train_command(name, args.steps, args.runs) for name in args.rows if name in ROWS)
        check_runs(name for name in args.rows if name in BUNDLED)
        return
    out = Path(args.out)
    if args.table:
        table = json.loads(out.read_text())["rows"]
        for row in table:  # each row's commands as the script writes them today
            row["commands"] = ([train_command(row["name"], row["steps"], SHOWN_RUNS)] if row["name"] in ROWS else []) \
                + [eval_command(row["name"], row["steps"], SHOWN_RUNS)]
        print(markdown_table(table))
        write_block("shapes_diversity", markdown_table(table), "Does each caption give a distribution?")
        return
    runs = Path(args.runs)
    runs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    table = json.loads(out.read_text()).get("rows", []) if out.is_file() else []
    for name in args.rows:
        steps = 0 if name in BUNDLED else args.steps
        cpu_s, commands = None, []
        if name in ROWS:
            cmd = train_command(name, steps, str(runs))
            commands.append(train_command(name, steps, SHOWN_RUNS))
            done = runs / run_name(name, steps) / "checkpoints" / f"step-{steps:08d}.safetensors"
            if not args.score_only and not done.is_file():
                print("train", shlex.join(cmd), flush=True)
                start = time.time()
                with open(runs / f"{run_name(name, steps)}.train.log", "w") as log:
                    proc = subprocess.Popen([sys.executable, "-m", "t2igan", *cmd[1:]], env=env, stdout=log,
                                            stderr=subprocess.STDOUT)
                    _, status, usage = os.wait4(proc.pid, 0)
                cpu_s = usage.ru_utime + usage.ru_stime
                print(f"  {name}: exit {os.waitstatus_to_exitcode(status)}, {cpu_s:.0f} CPU s, "
                      f"{time.time() - start:.0f} s", flush=True)
            if not done.is_file():
                print(f"  {name}: no trained run at {done.parent.parent}, skipped", flush=True)
                continue
        commands.append(eval_command(name, steps, SHOWN_RUNS))
        previous = next((r for r in table if r["name"] == name and r["steps"] == steps), {})
        row = {"name": name, "steps": steps, "commands": commands,
               "change": (ROWS.get(name) or EVAL_ONLY.get(name) or (f"the bundled `{name}`",))[0],
               "cpu_s": cpu_s if cpu_s is not None else previous.get("cpu_s"), "score": score(name, steps, runs)}
        table = [r for r in table if not (r["name"] == name and r["steps"] == steps)] + [row]
        s = row["score"]
        print(f"  {name} ({steps}): attributes {100 * s['attr_acc']:.1f}%, entropy size {s['entropy']['size']:.2f} "
              f"place {s['entropy']['position']:.2f}, features {s['features']:.2f}", flush=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({"rows": table}, indent=2))
    print(markdown_table(table))
    write_block("shapes_diversity", markdown_table(table), "Does each caption give a distribution?")


if __name__ == "__main__":
    main()
