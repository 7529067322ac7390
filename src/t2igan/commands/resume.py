"""``t2igan resume RUN_DIR [section.key=value ...]``: continue a run from its newest checkpoint."""

from __future__ import annotations

HELP = "continue a run from its newest checkpoint"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("overrides", nargs="*", help="e.g. train.max_steps=20000")
    parser.add_argument("--no-progress", action="store_true")


def run(args) -> None:
    from ..training import resume_training

    print(f"run folder: {resume_training(args.run_dir, args.overrides, progress=not args.no_progress)}")
