"""``t2igan train PRESET [section.key=value ...]``: train a model from a preset (see :mod:`t2igan.training`)."""

from __future__ import annotations

HELP = "train a model from a preset"


def add_arguments(parser) -> None:
    parser.add_argument("preset", metavar="PRESET", help="preset name (see list-presets) or a YAML file")
    parser.add_argument("overrides", nargs="*", metavar="section.key=value",
                        help="settings over the preset's, e.g. train.batch_size=8 model.nf=16 (values are YAML)")
    parser.add_argument("--run-dir", help="run folder (default: runs/NNNNN-<preset>)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --run-dir")
    parser.add_argument("--overwrite", action="store_true", help="discard the run --run-dir holds and start again")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> None:
    from ..config import resolve_config
    from ..errors import T2IError
    from ..training import Trainer, missing_damsm

    cfg = resolve_config(args.preset, args.overrides)
    if not args.resume and (problem := missing_damsm(cfg)):  # before anything is loaded, and in a dry run
        raise T2IError(problem)
    if args.dry_run:
        print(cfg.to_json())
        return
    trainer = Trainer(cfg, args.run_dir, progress=not args.no_progress)
    run_dir = trainer.fit(resume=args.resume, overwrite=args.overwrite)
    print(f"run folder: {run_dir}")
