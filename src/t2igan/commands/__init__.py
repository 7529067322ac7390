"""Extra CLI commands and ``sample`` flags, one module each (eval, pretrain, convert, serve, ...).

Each module here is imported by :mod:`t2igan.plugins` and registers itself in
``t2igan.cli.EXTRA_COMMANDS`` (``name -> (add_arguments, run, help)``), ``t2igan.cli.SAMPLE_FLAGS``
(``f(parser)``) or ``t2igan.cli.SAMPLE_HOOKS`` (``f(args, pipe, output, out_path)``).
"""
