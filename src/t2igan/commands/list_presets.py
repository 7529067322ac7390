"""``t2igan list-presets``: the built-in presets (``<model>-<dataset>``), each with its one-line description."""

from __future__ import annotations

HELP = "built-in presets, with what each one is"


def add_arguments(parser) -> None:
    pass


def run(args) -> None:
    from ..config import list_presets, preset_description

    names = list_presets()
    width = max(map(len, names))
    for name in names:
        print(f"{name:<{width}}  {preset_description(name)}".rstrip())
