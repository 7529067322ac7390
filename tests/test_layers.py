"""The package's layers: ``nn/`` imports neither ``models/`` nor ``data/``; a model family imports only
``nn/``, ``losses``, ``models.base``, ``models.damsm``, ``models.stream`` and the module of the family
group it builds on (SSA-GAN: DF-GAN's; MirrorGAN, DR-GAN: AttnGAN's), never another family; every
model subclasses T2IModel itself."""

import ast
from pathlib import Path

import pytest

from t2igan import list_models
from t2igan.models.base import T2IModel
from t2igan.registry import _lookup

SRC = Path(__file__).resolve().parents[1] / "src" / "t2igan"


def imported_modules(path: Path) -> set[str]:
    """Absolute names (``t2igan.x.y``) of every module a file imports, at any depth of the file."""
    package = ["t2igan", *path.relative_to(SRC).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names.add(module)
            names |= {f"{module}.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("t2igan")}


@pytest.mark.parametrize("path", sorted((SRC / "nn").glob("*.py")), ids=lambda p: p.name)
def test_nn_imports_neither_models_nor_data(path):
    bad = {m for m in imported_modules(path) if m.startswith(("t2igan.models", "t2igan.data"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


# a family -> the module of its group that it builds on
GROUP_BASE = {"ssagan": "dfgan", "mirrorgan": "attngan", "drgan": "attngan"}


@pytest.mark.parametrize("name", list_models())
def test_a_family_imports_only_shared_layers(name):
    allowed = ("t2igan.nn", "t2igan.losses", "t2igan.errors", "t2igan.registry", "t2igan.models.base",
               "t2igan.models.damsm", "t2igan.models.stream")
    if name in GROUP_BASE:
        allowed += (f"t2igan.models.{GROUP_BASE[name]}",)
    path = SRC / "models" / f"{name}.py"
    bad = {m for m in imported_modules(path) if not m.startswith(allowed) and m != "t2igan.models"}
    assert not bad, f"{name} imports {sorted(bad)}"
    cls = _lookup(name)[0]
    assert cls.__bases__ == (T2IModel,), f"{cls.__name__} subclasses {cls.__bases__}"
