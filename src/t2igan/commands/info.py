"""``t2igan info RUN_DIR``: the model, data set, checkpoints and last log line of a run folder."""

from __future__ import annotations

import json

HELP = "describe a run folder"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="a run folder or a bundled model's name (t2igan list-pretrained)")


def run(args) -> None:
    from ..runs import read_config, resolve_run_dir
    from ..training.checkpoints import list_checkpoints

    run_dir = resolve_run_dir(args.run_dir)
    config = read_config(run_dir)
    exp = config.get("experiment", {})
    ckpts = list_checkpoints(run_dir)
    print(f"run:         {run_dir}")
    print(f"model:       {config['model_name']}")
    print(f"dataset:     {exp.get('data', {}).get('dataset')} ({exp.get('data', {}).get('image_size')} px)")
    print(f"checkpoints: {len(ckpts)}" + (f" (last at step {ckpts[-1][0]})" if ckpts else ""))
    log = run_dir / "log.jsonl"
    if log.is_file():
        last = None
        for line in reversed(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()):
            try:  # the last complete line (a killed run may leave a cut one)
                last = json.loads(line)
                break
            except json.JSONDecodeError:
                continue
        if isinstance(last, dict):
            print("last log:    " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last.items()))
    print("model config:")
    for k, v in config["model_config"].items():
        print(f"  {k}: {v}")
