"""``t2igan`` command line: train | resume | sample | info | list-models | list-presets.

Every command is a thin layer over the Python API (``t2igan.trainer``, ``Text2ImagePipeline``).
Errors about user input print one line (``error: ...``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import T2IError

# other modules add sub-commands here: name -> (add_arguments(parser), run(args))
EXTRA_COMMANDS: dict = {}


def cmd_train(args) -> None:
    from .config import resolve_config
    from .trainer import Trainer

    cfg = resolve_config(args.preset, args.overrides)
    if args.dry_run:
        print(cfg.to_json())
        return
    run_dir = Trainer(cfg, args.run_dir, progress=not args.no_progress).fit(resume=args.resume)
    print(f"run folder: {run_dir}")


def cmd_resume(args) -> None:
    from .trainer import resume_training

    print(f"run folder: {resume_training(args.run_dir, args.overrides, progress=not args.no_progress)}")


def cmd_sample(args) -> None:
    from .pipeline import Text2ImagePipeline
    from .visualize import captioned_grid

    pipe = Text2ImagePipeline.from_pretrained(args.run_dir, device=args.device)
    out_path = Path(args.output)
    if args.interpolate:
        a, b = args.interpolate
        images = pipe.interpolate(a, b, steps=args.steps, seed=args.seed, truncation=args.truncation)
        labels = [f"t={i / (args.steps - 1):.2f}" for i in range(args.steps)]
        captioned_grid(images, labels, ncol=args.steps, caption_lines=1).save(out_path)
        print(f"wrote {out_path} ({args.steps} images from {a!r} to {b!r})")
        return
    if not args.captions:
        raise T2IError("give at least one caption, e.g. t2igan sample RUN_DIR \"a red circle\"")
    out = pipe(args.captions, n=args.n, seed=args.seed, truncation=args.truncation, return_output=True)
    captioned_grid(out.images, out.captions, ncol=args.n if len(args.captions) > 1 else min(8, args.n)).save(out_path)
    print(f"wrote {out_path} ({len(out.images)} images)")
    for hook in SAMPLE_HOOKS:
        hook(args, pipe, out, out_path)


# visualisation writers that model families add (attention maps, masks): f(args, pipe, out, out_path)
SAMPLE_HOOKS: list = []


def cmd_info(args) -> None:
    from .hub import read_run_config
    from .pretrained import resolve_run_dir
    from .trainer import list_checkpoints

    run_dir = resolve_run_dir(args.run_dir)
    config = read_run_config(run_dir)
    exp = config.get("experiment", {})
    ckpts = list_checkpoints(run_dir)
    print(f"run:         {run_dir}")
    print(f"model:       {config['model_name']}")
    print(f"dataset:     {exp.get('data', {}).get('dataset')} ({exp.get('data', {}).get('image_size')} px)")
    print(f"checkpoints: {len(ckpts)}" + (f" (last at step {ckpts[-1][0]})" if ckpts else ""))
    log = run_dir / "log.jsonl"
    if log.is_file():
        lines = log.read_text().strip().splitlines()
        if lines:
            last = json.loads(lines[-1])
            print("last log:    " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in last.items()))
    print("model config:")
    for k, v in config["model_config"].items():
        print(f"  {k}: {v}")


def cmd_list_models(args) -> None:
    from .registry import list_models

    print("\n".join(list_models()))


def cmd_list_pretrained(args) -> None:
    from .pretrained import bundled_card, bundled_names

    for name in bundled_names():
        card = bundled_card(name)
        scores = card.get("probe", {}).get("per_attribute", {})
        score_text = " ".join(f"{k} {100 * v:.0f}%" for k, v in scores.items())
        print(f"{name:<18} {card.get('model', '?'):<12} {card.get('image_size', '?')} px  "
              f"{card.get('steps', '?')} steps  {score_text}")


def cmd_list_presets(args) -> None:
    from .config import list_presets

    print("\n".join(list_presets()))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="t2igan", description="Text-to-image GANs: train, sample, evaluate.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a preset")
    t.add_argument("preset", help="preset name (see list-presets) or a YAML file")
    t.add_argument("overrides", nargs="*", help="section.key=value, e.g. train.batch_size=8 model.nf=16")
    t.add_argument("--run-dir", help="run folder (default: runs/NNNNN-<preset>)")
    t.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --run-dir")
    t.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    r = sub.add_parser("resume", help="continue a run from its newest checkpoint")
    r.add_argument("run_dir")
    r.add_argument("overrides", nargs="*", help="e.g. train.max_steps=20000")
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=cmd_resume)

    s = sub.add_parser("sample", help="generate images for captions")
    s.add_argument("run_dir")
    s.add_argument("captions", nargs="*")
    s.add_argument("--n", type=int, default=8, help="images per caption")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--truncation", type=float, default=None, help="noise truncation (default: the model's)")
    s.add_argument("--device", default=None)
    s.add_argument("-o", "--output", default="samples.png")
    s.add_argument("--interpolate", nargs=2, metavar=("CAPTION_A", "CAPTION_B"),
                   help="a row of images walking from caption A to caption B with fixed noise")
    s.add_argument("--steps", type=int, default=8, help="images in an interpolation row")
    for extra in SAMPLE_FLAGS:
        extra(s)
    s.set_defaults(func=cmd_sample)

    i = sub.add_parser("info", help="describe a run folder")
    i.add_argument("run_dir")
    i.set_defaults(func=cmd_info)

    sub.add_parser("list-models", help="registered model names").set_defaults(func=cmd_list_models)
    sub.add_parser("list-presets", help="built-in presets").set_defaults(func=cmd_list_presets)
    sub.add_parser("list-pretrained", help="models bundled with the package (usable offline by name)").set_defaults(
        func=cmd_list_pretrained)

    for name, (add_args, run, help_text) in EXTRA_COMMANDS.items():
        e = sub.add_parser(name, help=help_text)
        add_args(e)
        e.set_defaults(func=run)
    return p


# functions adding flags to `sample` (e.g. --attention, --masks): f(parser)
SAMPLE_FLAGS: list = []


def main(argv: list[str] | None = None) -> int:
    from . import plugins  # noqa: F401  (registers extra commands and sample flags)

    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `section.key=value` overrides may come after options (`train P --run-dir D a.b=1`)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        args.func(args)
    except T2IError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
