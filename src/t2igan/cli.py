"""``t2igan`` command line: every command is in :data:`COMMANDS`, one module each under
:mod:`t2igan.commands` (``HELP``, ``add_arguments(parser)``, ``run(args)``).

Every command is a thin layer over the Python API (``t2igan.training``, ``Text2ImagePipeline``,
``t2igan.evaluate``, ...). Errors about user input (and OS errors: a full disk, a read-only folder)
print one line (``error: ...``) and exit with status 2; an unexpected exception prints one line and
the path of its saved traceback, status 1 (:func:`t2igan.errors.report_error`). A closed output pipe
(``t2igan info RUN | head -3``) ends the command quietly.

A command module imports torch (and anything else heavy) inside ``run`` only, so ``t2igan --help``,
``--version`` and the ``list-*`` commands start in a fraction of a second (``benchmarks/cli_speed.py``).
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from . import __version__
from .commands import (caption, convert, data, eval_stats, info, list_models, list_presets, list_pretrained, pretrain,
                       report, resume, sample, serve)
from .commands import eval as eval_command  # not to shadow the built-in eval
from .commands import shapes_probe, train, undo_overwrite
from .errors import did_you_mean, report_error

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


class HelpFormatter(argparse.HelpFormatter):
    """Every argument's help ends with its default, unless the help already names it (or there is none
    to name: no default, a flag)."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text.lower() or default is None or default is False or default == argparse.SUPPRESS
                or default == []
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            shown = " ".join(map(str, default)) if isinstance(default, (list, tuple)) else "%(default)s"
            return f"{text} (default: {shown})"
        return text


class Parser(argparse.ArgumentParser):
    """Usage errors as one ``error: ...`` line too (status 2), pointing at ``--help``; a mistyped choice
    (a command, a model family, ...) gets a "did you mean"."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        m = re.search(r"invalid choice: '?(.*?)'? \(choose from (.*)\)$", message)
        if m:
            choices = [c.strip().strip("'\"") for c in m.group(2).split(",")]
            hint = did_you_mean(m.group(1), choices)
            if hint:
                message = f"{message[:m.start()]}invalid choice: {m.group(1)!r}{hint}"
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> Parser:
    p = Parser(prog="t2igan", description="Text-to-image GANs: train, sample, evaluate. "
                                          "'t2igan COMMAND --help' describes a command.")
    p.add_argument("--version", action="version", version=f"t2igan {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p.command_parsers = {}
    for name, module in COMMANDS.items():
        parser = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(parser)
        p.command_parsers[name] = parser
    return p


def unknown_arguments(parser: Parser, command: str, extra: list[str]) -> str:
    """``unrecognized arguments: ...``, with a "did you mean" for a mistyped option."""
    options = [o for a in parser.command_parsers[command]._actions for o in a.option_strings]
    hints = [did_you_mean(e.split("=")[0], options) for e in extra if e.startswith("-")]
    return f"unrecognized arguments: {' '.join(extra)}" + "".join(h for h in hints if h)


def main(argv: list[str] | None = None) -> int:
    try:
        try:
            return run_command(argv)
        finally:  # --help and --version exit through here too
            sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as a killed-by-SIGPIPE program
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # nothing more reaches the closed pipe, not even the final flush
        except (OSError, ValueError):  # stdout is not a file (a test's capture)
            pass
        return 141


def run_command(argv: list[str] | None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `section.key=value` overrides may come after options (`train P --run-dir D a.b=1`)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(unknown_arguments(parser, args.command, extra))
    try:
        COMMANDS[args.command].run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as e:  # the one error boundary: one line, never a traceback
        return report_error(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
