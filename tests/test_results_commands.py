"""Every command quoted in ``benchmarks/RESULTS.md`` still runs from the repository root.

The commands are read from the file's code spans and code blocks (a span is a command when its first
word, after ``VAR=value`` assignments, is ``t2igan``, ``python`` or ``make``) and checked without
training, timing or scoring anything, so that a renamed preset, option, command or bundled model
breaks this test instead of the results' commands going stale silently:

* ``t2igan train|pretrain ...``: the CLI itself with ``--dry-run`` (the preset, every override and
  its value resolved as training would);
* any other ``t2igan`` command: parsed by the CLI's own argument parser; a bundled model it names is
  described (``t2igan info NAME``) and ``eval --metrics`` names known metrics;
* ``python benchmarks/X.py ...``: the script's own ``--dry-run``;
* ``make X``: the Makefile has the target.

Placeholders: ``RUN`` and ``NAME`` stand for a run folder (a benchmark script's dry run reads the bundled
``shapes-dfgan`` in their place), ``<change>`` for a table row's change (left out).
"""

from __future__ import annotations

import contextlib
import io
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

from t2igan import cli

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "RESULTS.md"
PLACEHOLDERS = {"RUN", "NAME"}  # a run folder; what a benchmark script's dry run reads instead:
PLACEHOLDER_RUN = "shapes-dfgan"
PROGRAMS = ("t2igan", "python", "make")


def quoted_commands(markdown: str) -> list[str]:
    """The commands among the code blocks' lines and the inline code spans of ``markdown``, in order,
    each once, with runs of white space (a span wrapped over lines) as one space."""
    texts = []
    for block in re.findall(r"^```[^\n]*\n(.*?)^```", markdown, flags=re.S | re.M):
        lines = re.sub(r"\\\n", " ", block).splitlines()  # backslash continuations joined
        texts += [line.split(" #")[0] for line in lines]  # without comments
    prose = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    texts += re.findall(r"`([^`]+)`", prose)
    commands = []
    for text in texts:
        text = " ".join(text.split())
        words = text.split()
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # OMP_NUM_THREADS=1 ...
            words.pop(0)
        if words and words[0] in PROGRAMS and text not in commands:
            commands.append(text)
    return commands


def argv_of(command: str) -> list[str]:
    words = shlex.split(command)
    while re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)
    return words


def run_cli(argv: list[str]) -> tuple[int, str]:
    """``t2igan argv`` in this process: (exit status, what it printed on stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            status = cli.main(argv)
        except SystemExit as e:  # argparse usage errors
            status = e.code
    return status, err.getvalue().strip()


def check_t2igan(argv: list[str]) -> None:
    args = [a for a in argv[1:] if not re.fullmatch(r"<[^>]*>", a)]
    if args and args[0] in ("train", "pretrain"):
        status, err = run_cli(args + ["--dry-run"])
        assert status == 0, err
        return
    parser = cli.build_parser()
    try:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            parsed, extra = parser.parse_known_args(args)
    except SystemExit:
        pytest.fail(f"t2igan cannot parse it: {err.getvalue().strip()}")
    assert not extra or (hasattr(parsed, "overrides") and all("=" in e for e in extra)), f"unknown arguments {extra}"
    run = getattr(parsed, "run_dir", None)
    if run and run not in PLACEHOLDERS and "/" not in run:  # a bundled model's name
        status, err = run_cli(["info", run])
        assert status == 0, err
    if parsed.command == "eval":
        from t2igan.evaluate import parse_metrics

        parse_metrics(parsed.metrics)


def check_benchmark(argv: list[str], monkeypatch) -> None:
    script = REPO / argv[1]
    assert script.parent == REPO / "benchmarks" and script.is_file(), f"{argv[1]}: not a benchmark script"
    args = [PLACEHOLDER_RUN if a in PLACEHOLDERS else a for a in argv[2:]]
    monkeypatch.chdir(REPO)
    monkeypatch.syspath_prepend(str(script.parent))
    monkeypatch.setattr(sys, "argv", [str(script), *args, "--dry-run"])
    err = io.StringIO()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            runpy.run_path(str(script), run_name="__main__")
    except SystemExit as e:
        assert e.code in (None, 0), err.getvalue().strip()


def check_make(argv: list[str]) -> None:
    targets = re.findall(r"^([\w.-]+):", (REPO / "Makefile").read_text(), flags=re.M)
    for target in argv[1:]:
        assert target in targets, f"the Makefile has no target {target!r}"


COMMANDS = quoted_commands(RESULTS.read_text(encoding="utf-8"))


def test_results_quote_commands_of_every_kind():
    """The reader below finds the commands (the file quotes dozens), so the test over them is not empty."""
    kinds = {argv_of(c)[0] + (" " + argv_of(c)[1] if argv_of(c)[0] == "t2igan" else "") for c in COMMANDS}
    assert {"t2igan train", "t2igan pretrain", "t2igan eval", "python", "make"} <= kinds
    assert len(COMMANDS) > 40


def test_the_reader_finds_wrapped_spans_blocks_and_prefixes():
    markdown = ("Run `OMP_NUM_THREADS=1 t2igan train dfgan-shapes\ntrain.seed=0` then `make demo`, not `--dry-run` "
                "or `model.nf=8`.\n\n```bash\npython benchmarks/damsm_speed.py \\\n  --quick  # fast\n```\n")
    assert quoted_commands(markdown) == ["python benchmarks/damsm_speed.py --quick",
                                         "OMP_NUM_THREADS=1 t2igan train dfgan-shapes train.seed=0", "make demo"]


@pytest.mark.parametrize("command", COMMANDS, ids=[c[:70] for c in COMMANDS])
def test_results_command_dry_runs(command, monkeypatch):
    assert "..." not in command, "write the command out in full"
    argv = argv_of(command)
    if argv[0] == "t2igan":
        check_t2igan(argv)
    elif argv[0] == "python":
        check_benchmark(argv, monkeypatch)
    else:
        check_make(argv)


def test_a_renamed_option_fails_the_dry_run():
    """What the test is for: the command that named the old DAMSM option fails."""
    status, err = run_cli(["train", "dfgan-cub", "model.text_encoder_weights=runs/bench/cub/damsm/model.safetensors",
                           "--dry-run"])
    assert status == 2 and "text_encoder_weights" in err


def test_a_benchmark_dry_run_refuses_a_missing_bundle(monkeypatch):
    with pytest.raises(AssertionError, match="shapes-attngan"):
        check_benchmark(["python", "benchmarks/shapes_errors.py", "shapes-attngan"], monkeypatch)
