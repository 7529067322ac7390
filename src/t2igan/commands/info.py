"""``t2igan info RUN``: the model, data set, checkpoints and last log line of a run folder; for a
bundled model's name, its model card (training command, steps, hardware, time, scores) instead of
checkpoints it does not ship."""

from __future__ import annotations

import json

HELP = "describe a run folder or a bundled model (its model card)"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN",
                        help="a run folder or a bundled model's name (t2igan list-pretrained)")


def last_log_line(run_dir) -> dict | None:
    """The last complete line of ``log.jsonl`` (a killed run may leave a cut one), or None."""
    log = run_dir / "log.jsonl"
    if not log.is_file():
        return None
    for line in reversed(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()):
        try:
            last = json.loads(line)
        except json.JSONDecodeError:
            continue
        return last if isinstance(last, dict) else None
    return None


def run(args) -> None:
    from ..runs import bundled_card, is_bundled, read_config, resolve_run_dir
    from .list_pretrained import card_scores

    run_dir = resolve_run_dir(args.run_dir)
    config = read_config(run_dir)
    exp = config.get("experiment", {})
    data = exp.get("data", {}) if isinstance(exp.get("data"), dict) else {}
    bundled = is_bundled(run_dir)
    print(f"{'bundled:' if bundled else 'run:':<13}{run_dir.name if bundled else run_dir}"
          + (f" ({run_dir}, read-only)" if bundled else ""))
    print(f"model:       {config['model_name']}")
    print(f"dataset:     {data.get('dataset')} ({data.get('image_size')} px)")
    if bundled:
        card = bundled_card(run_dir.name)
        for label, key in (("steps", "steps"), ("command", "command"), ("hardware", "hardware"),
                           ("train time", "train_time")):
            if card.get(key) is not None:
                print(f"{label + ':':<13}{card[key]:,}" if isinstance(card[key], int) else f"{label + ':':<13}{card[key]}")
        if card_scores(card):
            print(f"scores:      {card_scores(card)}")
        if (run_dir / "MODEL_CARD.md").is_file():
            print(f"model card:  {run_dir / 'MODEL_CARD.md'}")
    else:
        from ..training.checkpoints import list_checkpoints

        ckpts = list_checkpoints(run_dir)
        print(f"checkpoints: {len(ckpts)}" + (f" (last at step {ckpts[-1][0]})" if ckpts else ""))
        last = last_log_line(run_dir)
        if last:
            print("last log:    " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                              for k, v in last.items()))
    print("model config:")
    for k, v in config["model_config"].items():
        print(f"  {k}: {v}")
