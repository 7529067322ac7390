"""``t2igan report RUN [RUN ...] [-o DIR]``: an HTML page with the loss curves, sample strips, metrics
and attention/mask figures of one run, or of several overlaid (see :mod:`t2igan.report`)."""

from __future__ import annotations

from pathlib import Path

HELP = "an HTML report of training runs: loss curves, sample strips, metrics, attention / mask figures"


def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN",
                        help="run folders or bundled model names; several are overlaid on one page")
    parser.add_argument("-o", "--output", default=None,
                        help="folder for index.html and the PNGs (default: RUN/report for one run folder, "
                             "./report-NAME for a bundled model, ./report for several)")
    parser.add_argument("--caption", action="append", default=None, dest="captions",
                        help="a caption for the final-weights figures (repeatable; default: examples the vocabulary knows)")
    parser.add_argument("--device", default=None, help="torch device for the figures (default: cpu)")


def default_output(run_dirs: list[str]) -> Path:
    """RUN/report for one run folder; ./report-NAME for a bundled model (the package is read-only);
    ./report for several runs."""
    from ..runs import is_bundled, resolve_run_dir

    if len(run_dirs) > 1:
        return Path("report")
    run = resolve_run_dir(run_dirs[0])
    return Path(f"report-{run.name}") if is_bundled(run) else run / "report"


def run(args) -> None:
    from ..report import build_report

    out = Path(args.output) if args.output else default_output(args.run_dirs)
    report = build_report(args.run_dirs, out, captions=args.captions, device=args.device)
    print(f"wrote {report.html} and {len(report.figures)} figures: " + ", ".join(p.name for p in report.figures))
