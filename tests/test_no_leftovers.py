"""The repository speaks of the library alone: no absolute path of the machine a file was written on,
no wording of a work log (headings or notes that number work sessions or name tracker issues), and no
reference to design notes kept outside the repository (cite the paper's equation or the official
file and function instead).

Every text file under ``src/``, ``tests/``, ``benchmarks/`` and ``tools/``, and the top-level
``README.md``, ``CHANGELOG.md``, ``Makefile`` and ``pyproject.toml``, is read; each finding is reported
as ``path:line: what``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AREAS = {
    "src": ["src"],
    "tests": ["tests"],
    "benchmarks": ["benchmarks"],
    "tools": ["tools"],
    "top level": ["README.md", "CHANGELOG.md", "Makefile", "pyproject.toml"],
}
SKIP_DIRS = {"__pycache__", ".pytest_cache"}

RULES = {
    # an absolute path on a machine: under work, home, Users, root, mnt, scratch or tmp at the root
    "machine path": re.compile(r"(?<![\w.~/-])/(?:work|home|Users|root|mnt|scratch|tmp)/[\w.-]"),
    # a numbered work session, or a tracker issue by number
    "work-log wording": re.compile(r"\b(?:[Ss]essions?|[Ii]ssues?)\s+#?\d+|\b[Ii]ssue\s*#\d+"),
    # design notes outside the repository, cited by name
    "reference to notes outside the repository": re.compile(r"\bSPEC\b"),
}


def text_files(area: str):
    for name in AREAS[area]:
        path = REPO / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            if SKIP_DIRS.isdisjoint(file.relative_to(REPO).parts) and not file.name.endswith(".egg-info"):
                try:
                    yield file, file.read_text(encoding="utf-8")
                except UnicodeDecodeError:  # weights, images: no text
                    continue


def findings(text: str) -> list[tuple[int, str, str]]:
    """(line number, rule, matched text) for every rule broken in ``text``."""
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        for rule, pattern in RULES.items():
            found += [(number, rule, m.group(0)) for m in pattern.finditer(line)]
    return found


def test_the_rules_find_what_they_are_for():
    home, tmp = "/" + "home/ann/data", "/" + "tmp/cub"
    text = (f"data.root={home}\nsee {tmp}/x\n# " + "Session" + " 7: runs\nas in " + "issue" + " 15\n"
            "(" + "SP" + "EC" + " pitfall)\n")
    assert [rule for _, rule, _ in findings(text)] == ["machine path", "machine path", "work-log wording",
                                                      "work-log wording", "reference to notes outside the repository"]
    clean = ("runs/bench/cub, ../shared/data, ~/.cache/t2igan, https://example.org/" + "work/x, "
             '@pytest.fixture(scope="session"), inspect, respect, 30 CPU-min\n')
    assert findings(clean) == []


@pytest.mark.parametrize("area", list(AREAS))
def test_no_leftovers(area):
    problems = [f"{file.relative_to(REPO)}:{number}: {rule}: {match!r}"
                for file, text in text_files(area) for number, rule, match in findings(text)]
    assert not problems, "\n".join(problems)
