"""``t2igan`` command line: every command is in :data:`COMMANDS`, one module each under
:mod:`t2igan.commands` (``HELP``, ``add_arguments(parser)``, ``run(args)``).

Every command is a thin layer over the Python API (``t2igan.training``, ``Text2ImagePipeline``,
``t2igan.evaluate``, ...). Errors about user input (and OS errors: a full disk, a read-only folder)
print one line (``error: ...``) and exit with status 2; an unexpected exception prints one line and
the path of its saved traceback, status 1 (:func:`t2igan.errors.report_error`).
"""

from __future__ import annotations

import argparse
import sys

from .commands import (caption, convert, data, eval_stats, info, list_models, list_presets, list_pretrained, pretrain,
                       report, resume, sample, serve)
from .commands import eval as eval_command  # not to shadow the built-in eval
from .commands import shapes_probe, train, undo_overwrite
from .errors import report_error

# name -> module, in the order of `t2igan --help`
COMMANDS = {
    "train": train,
    "resume": resume,
    "undo-overwrite": undo_overwrite,
    "sample": sample,
    "info": info,
    "list-models": list_models,
    "list-presets": list_presets,
    "list-pretrained": list_pretrained,
    "pretrain": pretrain,
    "eval": eval_command,
    "eval-stats": eval_stats,
    "shapes-probe": shapes_probe,
    "caption": caption,
    "convert": convert,
    "serve": serve,
    "report": report,
    "data": data,
}


class Parser(argparse.ArgumentParser):
    """Usage errors as one ``error: ...`` line too (status 2), pointing at ``--help``."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="t2igan", description="Text-to-image GANs: train, sample, evaluate.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP, description=module.HELP))
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `section.key=value` overrides may come after options (`train P --run-dir D a.b=1`)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one error boundary: one line, never a traceback
        return report_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
