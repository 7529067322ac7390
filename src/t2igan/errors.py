"""User-facing errors.

Every problem caused by the user's input (a caption, a file, a config value) is raised as
:class:`T2IError` with a one-line message that names the offending caption or file. The CLI prints
the message alone, without a traceback.
"""


class T2IError(ValueError):
    """A clear, one-line error about bad input (caption, file, config)."""
