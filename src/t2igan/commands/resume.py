"""``t2igan resume RUN_DIR [section.key=value ...]``: continue a run from its newest checkpoint."""

from __future__ import annotations

HELP = "continue a run from its newest checkpoint"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN", help="the run folder to continue (e.g. runs/00000-dfgan-shapes)")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="settings that may change on resume, e.g. train.max_steps=20000 (learning rates, "
                             "betas, time limits, logging, device, data.root)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> None:
    from ..training import resume_training

    print(f"run folder: {resume_training(args.run_dir, args.overrides, progress=not args.no_progress)}")
