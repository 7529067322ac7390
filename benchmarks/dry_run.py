"""``--dry-run`` of the benchmark scripts: check what a script would run without training, timing or
scoring anything, so that a renamed preset, option or bundled model breaks the script's dry run (and
``tests/test_results_commands.py``, which dry-runs every command of ``benchmarks/RESULTS.md``) at once.

Each check prints one line per item (``ok ...``) and ends the script with status 2 after the first
failing item, whose ``error: ...`` line says why.
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
import sys


def check_commands(commands) -> None:
    """Run ``t2igan train|pretrain ... --dry-run`` in this process for every command (a list of
    arguments starting with ``t2igan``): the preset, every override and its value are resolved
    exactly as training would."""
    from t2igan import cli

    for cmd in commands:
        cmd = list(cmd)
        if cmd[:1] != ["t2igan"] or len(cmd) < 2 or cmd[1] not in ("train", "pretrain"):
            fail(f"not a t2igan train|pretrain command: {shlex.join(cmd)}")
        with contextlib.redirect_stdout(io.StringIO()):  # the resolved config; errors go to stderr
            status = cli.main(cmd[1:] + ["--dry-run"])
        if status != 0:  # t2igan printed its `error: ...` line
            print(f"  in: {shlex.join(cmd)}", file=sys.stderr, flush=True)
            raise SystemExit(2)
        print(f"ok    {shlex.join(cmd)}", flush=True)


def check_overrides(preset: str, overrides: list[str], label: str = "") -> None:
    """Resolve ``preset`` with ``overrides`` (``section.key=value``) as ``t2igan train`` would."""
    from t2igan.config import resolve_config

    try:
        resolve_config(preset, list(overrides))
    except Exception as e:  # T2IError for bad input; anything else is a broken script
        fail(f"{label or preset}: {e}")
    print(f"ok    {label or preset}: {preset} {' '.join(overrides)}".rstrip(), flush=True)


def model_overrides(model_args: dict) -> list[str]:
    """``model.key=value`` overrides (YAML values) that set ``model_args``."""
    return [f"model.{k}={json.dumps(v)}" for k, v in model_args.items()]


def check_runs(runs) -> None:
    """Every run is a run folder here or a bundled model's name, with a readable ``config.json``."""
    from t2igan.runs import read_config

    for run in runs:
        try:
            config = read_config(run)
        except Exception as e:
            fail(f"{run}: {e}")
        print(f"ok    {run}: a {config['model_name']} run", flush=True)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)
