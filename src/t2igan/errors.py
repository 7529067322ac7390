"""User-facing errors and the command line's one error boundary.

Every problem caused by the user's input (a caption, a file, a config value) is raised as
:class:`T2IError` with a one-line message that names the offending caption or file. The CLI prints
the message alone, without a traceback (:func:`report_error`): expected failures (a T2IError, an
operating-system error such as a full disk, a read-only or missing folder) give one ``error: ...``
line and exit status 2; anything else is a bug, reported as one line plus the path of a file holding
its traceback, with exit status 1.
"""

from __future__ import annotations

import os
import sys


class T2IError(ValueError):
    """A clear, one-line error about bad input (caption, file, config)."""


def did_you_mean(word: str, choices, what: str = "") -> str:
    """``"; did you mean 'x'?"`` for the choices closest to a mistyped ``word`` (up to three), else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean {' or '.join(repr(c) for c in close)}{' ' + what if what else ''}?"


def one_line(text: str, limit: int = 400) -> str:
    """``text`` folded onto one line and shortened to ``limit`` characters."""
    text = " ".join(str(text).strip().splitlines())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_error(e: BaseException) -> str:
    """One line for an expected error: a T2IError's message, or an OSError as ``what: file``."""
    if isinstance(e, OSError) and not isinstance(e, T2IError):
        what = e.strerror or str(e) or type(e).__name__
        files = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
        return one_line(f"{what}: {files}" if files else what)
    return one_line(str(e) or type(e).__name__)


def is_expected(e: BaseException) -> bool:
    return isinstance(e, (T2IError, OSError))


def report_error(e: BaseException, stream=None) -> int:
    """Print one ``error: ...`` line for ``e`` and return the exit status (2 expected, 1 a bug)."""
    stream = stream or sys.stderr
    if is_expected(e):
        print(f"error: {describe_error(e)}", file=stream)
        return 2
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    try:
        fd, path = tempfile.mkstemp(prefix=f"t2igan-traceback-{time.strftime('%Y%m%d-%H%M%S')}-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text)
        where = f"traceback saved to {path}"
    except OSError:
        where = "the traceback could not be saved"
    print(f"error: internal error ({type(e).__name__}: {one_line(e, 200)}); {where}; please report it", file=stream)
    return 1
