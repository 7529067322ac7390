"""``t2igan report RUN [RUN ...] [-o DIR]``: an HTML page with the loss curves, sample strips, metrics
and attention/mask figures of one run, or of several overlaid (see :mod:`t2igan.report`)."""

from __future__ import annotations

from pathlib import Path

HELP = "an HTML report of training runs: loss curves, sample strips, metrics, attention / mask figures"


def add_arguments(parser) -> None:
    parser.add_argument("run_dirs", nargs="+", metavar="RUN", help="run folders; several are overlaid on one page")
    parser.add_argument("-o", "--output", default=None,
                        help="folder for index.html and the PNGs (default: RUN/report for one run, ./report for several)")
    parser.add_argument("--caption", action="append", default=None, dest="captions",
                        help="a caption for the final-weights figures (repeatable; default: examples the vocabulary knows)")
    parser.add_argument("--device", default=None, help="torch device for the figures (default: cpu)")


def run(args) -> None:
    from ..report import build_report

    out = Path(args.output) if args.output else (
        Path(args.run_dirs[0]) / "report" if len(args.run_dirs) == 1 else Path("report"))
    report = build_report(args.run_dirs, out, captions=args.captions, device=args.device)
    print(f"wrote {report.html} and {len(report.figures)} figures: " + ", ".join(p.name for p in report.figures))
