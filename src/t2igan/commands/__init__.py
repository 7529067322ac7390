"""The CLI's commands, one module each, listed in :data:`t2igan.cli.COMMANDS`.

A command module has ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args)``; it imports
what it runs inside ``run``, so ``t2igan --help`` stays fast. Besides the commands, ``attention``,
``masks`` and ``style`` write the extra figures of ``t2igan sample`` (``--attention``, ``--masks``,
``--style-transfer``); ``caption`` also prints ``sample --mirror``.
"""
