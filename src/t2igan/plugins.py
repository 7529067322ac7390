"""Imports every module of :mod:`t2igan.commands`, which add CLI commands and ``sample`` flags."""

import importlib
import pkgutil

from . import commands

for _info in pkgutil.iter_modules(commands.__path__):
    importlib.import_module(f"{commands.__name__}.{_info.name}")
