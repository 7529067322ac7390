"""``t2igan list-models``: the registered model families."""

from __future__ import annotations

HELP = "registered model names"


def add_arguments(parser) -> None:
    pass


def run(args) -> None:
    from ..registry import declared_models  # read from the family modules' source: no torch to import

    print("\n".join(declared_models()))
