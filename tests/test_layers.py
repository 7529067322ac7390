"""The package's layers point one way: ``nn/`` imports nothing above it (no model, data set, metric or
run folder); a model family imports only shared layers (``nn/``, ``losses``, ``fields``, ``models.base``,
``models.damsm``, ``models.stream``) and the module of the family group it builds on (SSA-GAN: DF-GAN's;
MirrorGAN, DR-GAN: AttnGAN's), never another family, and never a module that reads files or scores
images (``hub``, ``runs``, ``pretrained``, ``metrics``, ``config``, ``training``); no module imports
itself through others, lazily or not. Every model subclasses T2IModel itself."""

import ast
from pathlib import Path

import pytest

from t2igan import list_models
from t2igan.models.base import T2IModel
from t2igan.registry import MODELS

SRC = Path(__file__).resolve().parents[1] / "src" / "t2igan"
MODULES = {".".join(("t2igan", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__"): p
           for p in SRC.rglob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """The t2igan modules a file imports, at any depth of the file (``from x import y`` counts as ``x.y``
    when that is a module, else ``x``)."""
    package = ["t2igan", *path.relative_to(SRC).parent.parts]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            subs = {f"{module}.{a.name}" for a in node.names} & set(MODULES)
            names |= subs or {module}
    return {n for n in names if n.startswith("t2igan")}


@pytest.mark.parametrize("path", sorted((SRC / "nn").glob("*.py")), ids=lambda p: p.name)
def test_nn_imports_nothing_above_it(path):
    bad = {m for m in imported_modules(path) if not m.startswith(("t2igan.nn", "t2igan.errors"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


# a family -> the module of its group that it builds on
GROUP_BASE = {"ssagan": "dfgan", "mirrorgan": "attngan", "drgan": "attngan"}


@pytest.mark.parametrize("name", list_models())
def test_a_family_imports_only_shared_layers(name):
    allowed = ("t2igan.nn", "t2igan.losses", "t2igan.errors", "t2igan.fields", "t2igan.registry",
               "t2igan.data.text", "t2igan.models.base", "t2igan.models.damsm", "t2igan.models.stream")
    if name in GROUP_BASE:
        allowed += (f"t2igan.models.{GROUP_BASE[name]}",)
    bad = {m for m in imported_modules(SRC / "models" / f"{name}.py") if not m.startswith(allowed)}
    assert not bad, f"{name} imports {sorted(bad)}"
    cls = MODELS[name][0]
    assert cls.__bases__ == (T2IModel,), f"{cls.__name__} subclasses {cls.__bases__}"


@pytest.mark.parametrize("path", sorted((SRC / "models").glob("*.py")), ids=lambda p: p.name)
def test_models_read_no_files_and_score_no_images(path):
    forbidden = ("t2igan.hub", "t2igan.runs", "t2igan.pretrained", "t2igan.metrics", "t2igan.config",
                 "t2igan.training", "t2igan.pipeline", "t2igan.evaluate")
    bad = {m for m in imported_modules(path) if m.startswith(forbidden)}
    assert not bad, f"models/{path.name} imports {sorted(bad)}"


def test_no_import_cycles():
    graph = {name: {m if m in MODULES else m.rsplit(".", 1)[0] for m in imported_modules(path)} - {name}
             for name, path in MODULES.items()}
    state, stack = {}, []

    def visit(node):  # depth-first search: a grey node met again closes a cycle
        state[node] = "grey"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "grey":
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "black"

    for name in sorted(graph):
        if name not in state:
            visit(name)
