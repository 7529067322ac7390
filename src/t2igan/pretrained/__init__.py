"""Pretrained models that ship inside the package, usable offline by name.

Each bundled model is a run folder under this package (``shapes-dfgan/``, ...): ``config.json``,
``vocab.json``, ``model.safetensors`` (fp16), ``card.json`` (command, steps, hardware, time, probe
scores) and ``MODEL_CARD.md`` with a sample grid ``grid.png``. Anything that takes a run folder
(``Text2ImagePipeline.from_pretrained``, ``t2igan sample|eval|serve|info``) also takes a bundled name;
``t2igan list-pretrained`` lists them. They are written by ``tools/bundle_pretrained.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import T2IError

BUNDLED_DIR = Path(__file__).parent


def bundled_names() -> list[str]:
    """Names of the models shipped with the package, sorted."""
    return sorted(p.name for p in BUNDLED_DIR.iterdir() if (p / "config.json").is_file())


def bundled_card(name: str) -> dict:
    """The model card's facts (``card.json``) of a bundled model."""
    path = BUNDLED_DIR / name / "card.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def is_bundled(path: str | Path) -> bool:
    """True when ``path`` is (inside) the package's folder of bundled models: nothing is written there."""
    try:
        return Path(path).resolve().is_relative_to(BUNDLED_DIR.resolve())
    except OSError:
        return False


def resolve_run_dir(name_or_path: str | Path) -> Path:
    """A run folder on disk, or the folder of the bundled model of that name.

    A folder on disk wins over a bundled name; a name that is neither is an error listing the
    bundled models.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    name = str(name_or_path)
    if name in bundled_names():
        return BUNDLED_DIR / name
    if "/" not in name and "\\" not in name and not path.exists():
        known = ", ".join(bundled_names()) or "none"
        raise T2IError(f"no run folder and no bundled model named {name!r} (bundled: {known})")
    return path
