"""``t2igan undo-overwrite RUN_DIR``: put back the run that an interrupted ``train --overwrite`` set
aside (see :func:`t2igan.runs.undo_overwrite`); what the unfinished new run wrote is deleted."""

from __future__ import annotations

HELP = "put back the run an interrupted --overwrite set aside"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir")


def run(args) -> None:
    from pathlib import Path

    from ..errors import T2IError
    from ..runs import RunLock, remove_leftovers, undo_overwrite

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise T2IError(f"run folder not found: {run_dir}")
    with RunLock(run_dir):
        remove_leftovers(run_dir)  # a temporary file the killed overwrite was writing
        if not undo_overwrite(run_dir):
            raise T2IError(f"{run_dir} holds no interrupted --overwrite: nothing to undo")
    print(f"put the old run back in {run_dir}")
