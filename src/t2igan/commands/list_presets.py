"""``t2igan list-presets``: the built-in presets (``<model>-<dataset>``)."""

from __future__ import annotations

HELP = "built-in presets"


def add_arguments(parser) -> None:
    pass


def run(args) -> None:
    from ..config import list_presets

    print("\n".join(list_presets()))
