"""Every command quoted in ``README.md`` and ``benchmarks/RESULTS.md`` still runs from the repository root.

The commands are read from the files' code spans and code blocks (a span is a command when its first
word, after ``VAR=value`` assignments, is ``t2igan``, ``python``, ``make`` or ``torchrun``) and checked
without training, timing or scoring anything, so that a renamed preset, option, command or bundled model
breaks this test instead of the documentation going stale silently:

* ``t2igan train|pretrain ...`` (also under ``torchrun ... -m t2igan``): the CLI itself with ``--dry-run``
  (the preset, every override and its value resolved as training would);
* any other ``t2igan`` command: parsed by the CLI's own argument parser; a bundled model it names is
  described (``t2igan info NAME``) and ``eval --metrics`` names known metrics; a command named alone in
  prose (``t2igan data prepare``) answers ``--help``;
* ``python benchmarks/X.py ...``: the script's own ``--dry-run``;
* ``make X``: the Makefile has the target.

Placeholders: a word in capitals (``RUN``, ``RUN_DIR``, ``DAMSM_RUN``, ``NAME``) stands for a run folder
(a benchmark script's dry run reads the bundled ``shapes-dfgan`` in its place), ``<change>`` for a table
row's change (left out).
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
README = REPO / "README.md"
PLACEHOLDER_RUN = "shapes-dfgan"  # what a benchmark script's dry run reads in place of a run folder
PROGRAMS = ("t2igan", "python", "make", "torchrun")


def is_placeholder(word: str) -> bool:
    """``RUN``, ``RUN_DIR``, ``DAMSM_RUN``: a word in capitals stands for a run folder."""
    return re.fullmatch(r"[A-Z][A-Z_]*[A-Z]", word) is not None


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
        if len(words) > 1 and words[0] in PROGRAMS and text not in commands:  # not a bare program name
            commands.append(text)
    return commands


def argv_of(command: str) -> list[str]:
    words = shlex.split(command.split(" | ")[0])  # a command piped into another (`| head -3`): the first
    while re.fullmatch(r"[A-Z_]+=\S*", words[0]):
        words.pop(0)
    if words[0] == "torchrun":  # torchrun [its options] -m t2igan ARGS: the t2igan command
        assert "-m" in words and words[words.index("-m") + 1] == "t2igan", "torchrun runs t2igan with -m t2igan"
        words = ["t2igan", *words[words.index("-m") + 2:]]
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
    parser = cli.build_parser()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            parsed, extra = parser.parse_known_args(args)
    except SystemExit as e:
        if e.code == 0:  # --help, --version
            return
        if len(args) <= 2 and all(re.fullmatch(r"[a-z][a-z-]*", a) for a in args):  # a command named in prose
            status, help_err = run_cli(args + ["--help"])
            assert status == 0, help_err
            return
        pytest.fail(f"t2igan cannot parse it: {err.getvalue().strip()}")
    if args[0] in ("train", "pretrain"):
        status, err = run_cli(args + ["--dry-run"])
        assert status == 0, err
        return
    assert not extra or (hasattr(parsed, "overrides") and all("=" in e for e in extra)), f"unknown arguments {extra}"
    run = getattr(parsed, "run_dir", None)
    if isinstance(run, str) and not is_placeholder(run) and "/" not in run:  # a bundled model's name
        status, err = run_cli(["info", run])
        assert status == 0, err
    if parsed.command == "eval":
        from t2igan.evaluate import parse_metrics

        parse_metrics(parsed.metrics)


def check_benchmark(argv: list[str], monkeypatch) -> None:
    script = REPO / argv[1]
    assert script.parent == REPO / "benchmarks" and script.is_file(), f"{argv[1]}: not a benchmark script"
    args = [PLACEHOLDER_RUN if is_placeholder(a) else a for a in argv[2:]]
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
README_COMMANDS = quoted_commands(README.read_text(encoding="utf-8"))


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


def check_command(command: str, monkeypatch) -> None:
    assert "..." not in command, "write the command out in full"
    argv = argv_of(command)
    if argv[0] == "t2igan":
        check_t2igan(argv)
    elif argv[0] == "python":
        check_benchmark(argv, monkeypatch)
    else:
        check_make(argv)


@pytest.mark.parametrize("command", COMMANDS, ids=[c[:70] for c in COMMANDS])
def test_results_command_dry_runs(command, monkeypatch):
    check_command(command, monkeypatch)


def test_readme_quotes_every_command():
    """The README shows every command of the CLI, so that help and README cannot disagree on what exists."""
    quoted = {argv_of(c)[1] for c in README_COMMANDS if argv_of(c)[0] == "t2igan" and len(argv_of(c)) > 1}
    assert set(cli.COMMANDS) <= quoted, f"not in the README: {sorted(set(cli.COMMANDS) - quoted)}"
    options = " ".join(README_COMMANDS)
    for option in ("--style-transfer", "--attention", "--masks", "--mirror", "--captions-file", "--version"):
        assert option in options, option


@pytest.mark.parametrize("command", README_COMMANDS, ids=[c[:70] for c in README_COMMANDS])
def test_readme_command_dry_runs(command, monkeypatch):
    check_command(command, monkeypatch)


def test_a_renamed_option_fails_the_dry_run():
    """What the test is for: the command that named the old DAMSM option fails."""
    status, err = run_cli(["train", "dfgan-cub", "model.text_encoder_weights=runs/bench/cub/damsm/model.safetensors",
                           "--dry-run"])
    assert status == 2 and "text_encoder_weights" in err


def test_a_benchmark_dry_run_refuses_a_missing_bundle(monkeypatch):
    with pytest.raises(AssertionError, match="shapes-attngan"):
        check_benchmark(["python", "benchmarks/shapes_errors.py", "shapes-attngan"], monkeypatch)
