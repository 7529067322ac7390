"""``t2igan list-models``: the registered model families."""

from __future__ import annotations

HELP = "registered model names"


def add_arguments(parser) -> None:
    pass


def run(args) -> None:
    from ..models import list_models

    print("\n".join(list_models()))
