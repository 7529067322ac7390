"""``t2igan report RUN [RUN ...]``: one self-contained HTML page about training runs (needs the
``report`` extra, matplotlib).

The page (``index.html``, every image inlined as a PNG data URL) and its figures as PNG files beside it:

* ``losses.png``: every quantity of ``log.jsonl`` against the step, raw (thin) and smoothed (an
  exponential moving average, thick); several runs are overlaid in the same panels, one colour each.
* ``samples-<run>.png``: the sample grids the trainer wrote (``samples/step-*.png``), a strip over time.
* ``captions-<run>.png``: the final weights on a few test captions, plus ``attention-<run>.png``
  (AttnGAN, MirrorGAN, DR-GAN) and ``masks-<run>.png`` (SSA-GAN, DR-GAN) for models that have them.
* a table of the latest ``metrics.jsonl`` row of each metric (``t2igan eval``), with what it means.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from .errors import T2IError

NOT_PLOTTED = {"step", "epoch", "time_s"}
METRIC_MEANINGS = {
    "fid": "Frechet Inception Distance between generated and real test images (Inception pool3 features); lower is better.",
    "is": "Inception Score: confident and varied ImageNet classes over the generated images; higher is better.",
    "rprec": "R-precision: how often a DAMSM ranks the image's own caption first among 100 (1 true, 99 random); higher is better.",
    "r_precision": "R-precision of the DAMSM itself on real test images (its own retrieval skill); higher is better.",
    "shapes_attr": "Shapes probe: fraction of caption attributes (count, shape, colour, size, position, relation) a classifier trained on real images reads in the generated image; higher is better.",
    "shapes_attr_heldout": "The same attribute accuracy on held-out colour-shape pairs never seen in training: compositional generalisation.",
    "shapes_fid": "Frechet distance of Shapes-probe features (domain-specific, not comparable with Inception FID); lower is better.",
    "stream_captions": "STREAM captioner on real test images: BLEU-4 and attribute accuracy of its captions; higher is better.",
}


@dataclass
class RunData:
    path: Path
    name: str
    log: list[dict]
    samples: list[tuple[int, Path]]  # (step, grid)
    metrics: list[dict]  # the latest record of each metric
    model: str = ""


@dataclass
class Report:
    html: Path
    figures: list[Path] = field(default_factory=list)
    quantities: list[str] = field(default_factory=list)


def require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise T2IError('t2igan report needs matplotlib: pip install "t2igan[report]"') from None
    return plt


def read_jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise T2IError(f"{path}: line {n} is not JSON") from None
    return rows


def read_run(path: str | Path) -> RunData:
    path = Path(path)
    if not (path / "log.jsonl").is_file() and not (path / "config.json").is_file():
        raise T2IError(f"{path} is not a run folder (no log.jsonl or config.json)")
    latest: dict[str, dict] = {}
    for record in read_jsonl(path / "metrics.jsonl"):
        if "metric" in record:
            latest[record["metric"]] = record
    samples = sorted((int(p.stem.split("-")[-1]), p) for p in (path / "samples").glob("step-*.png")
                     if p.stem.split("-")[-1].isdigit())
    config = json.loads((path / "config.json").read_text()) if (path / "config.json").is_file() else {}
    return RunData(path, path.resolve().name, read_jsonl(path / "log.jsonl"), samples, list(latest.values()),
                   config.get("model_name", ""))


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing): the first points
    are not pulled towards 0."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


def loss_figure(plt, runs: list[RunData], path: Path, weight: float = 0.9) -> list[str]:
    """Panels of every logged quantity (union over runs), runs overlaid; returns the quantities."""
    quantities = sorted({k for r in runs for row in r.log for k, v in row.items()
                         if k not in NOT_PLOTTED and isinstance(v, (int, float)) and not isinstance(v, bool)})
    if not quantities:
        return []
    ncol = min(3, len(quantities))
    nrow = math.ceil(len(quantities) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 3.2 * nrow), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, q in zip(axes.flat, quantities):
        for i, run in enumerate(runs):
            points = [(row["step"], row[q]) for row in run.log
                      if isinstance(row.get(q), (int, float)) and math.isfinite(row[q])]
            if not points:
                continue
            steps, values = zip(*points)
            colour = colours[i % len(colours)]
            ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
            ax.plot(steps, smooth(list(values), weight), color=colour, linewidth=1.8, label=run.name,
                    marker="o" if len(steps) == 1 else None)
        ax.set_title(q)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(quantities):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=min(6, len(runs)), frameon=False)
    fig.suptitle(f"thin: raw, thick: smoothed (EMA {weight})", y=0.005, va="bottom", fontsize=9, color="#555")
    fig.tight_layout(rect=(0, 0.02, 1, 0.95 if len(runs) > 0 else 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return quantities


def samples_strip(plt, run: RunData, path: Path, most: int = 6) -> bool:
    """Up to ``most`` of the run's sample grids, evenly spaced over training, one row each."""
    if not run.samples:
        return False
    picks = sorted({round(i * (len(run.samples) - 1) / max(1, most - 1)) for i in range(min(most, len(run.samples)))})
    grids = [(run.samples[i][0], Image.open(run.samples[i][1]).convert("RGB")) for i in picks]
    width = max(g.width for _, g in grids)
    height = sum(g.height for _, g in grids)
    fig, axes = plt.subplots(len(grids), 1, figsize=(10, 10 * height / width + 0.3 * len(grids)), squeeze=False)
    for ax, (step, grid) in zip(axes[:, 0], grids):
        ax.imshow(grid, interpolation="nearest")
        ax.set_title(f"step {step}", loc="left", fontsize=10)
        ax.axis("off")
    fig.suptitle(f"{run.name}: the sample grids written during training", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def model_figures(run: RunData, out_dir: Path, captions: list[str] | None, device: str | None) -> list[tuple[str, Path]]:
    """The final weights on a few captions: a captioned grid, and attention / mask rows when the
    model has them. Nothing for a folder without weights."""
    if not (run.path / "model.safetensors").is_file():
        return []
    from .pipeline import Text2ImagePipeline
    from .visualize import captioned_grid, stack_rows

    pipe = Text2ImagePipeline.from_pretrained(run.path, device=device or "cpu")
    captions = captions or pipe.example_captions(4)
    if not captions:
        return []
    out = pipe(captions, n=1, seed=0, return_output=True)
    figures = [("Final weights on these captions", captioned_grid(out.images, out.captions, ncol=len(captions)), "captions")]
    for title, rows, stem in (("Per-word attention (last stage)", pipe.attention_figures(out), "attention"),
                              ("Masks of each generator block", pipe.mask_figures(out), "masks")):
        if rows:
            figures.append((title, stack_rows(rows), stem))
    written = []
    for title, image, stem in figures:
        path = out_dir / f"{stem}-{run.name}.png"
        image.save(path)
        written.append((title, path))
    return written


def metric_value(record: dict) -> str:
    value = record.get("value")
    if not isinstance(value, (int, float)):
        return html.escape(str(value))
    percent = record["metric"] in ("rprec", "shapes_attr", "shapes_attr_heldout", "r_precision")
    text = f"{100 * value:.2f}%" if percent else f"{value:.4g}"
    if isinstance(record.get("std"), (int, float)):
        text += f" ± {100 * record['std']:.2f}%" if percent else f" ± {record['std']:.3g}"
    return text


def metrics_table(runs: list[RunData]) -> str:
    names = sorted({m["metric"] for r in runs for m in r.metrics})
    if not names:
        return ("<p>No <code>metrics.jsonl</code> yet: score a run with <code>t2igan eval RUN</code> "
                "(e.g. <code>--metrics shapes,rprec</code> on Shapes).</p>")
    head = "".join(f"<th>{html.escape(r.name)}</th>" for r in runs)
    rows = []
    for name in names:
        cells = []
        for r in runs:
            record = next((m for m in r.metrics if m["metric"] == name), None)
            note = f" <small>(n={record['n']})</small>" if record and "n" in record else ""
            cells.append(f"<td>{metric_value(record)}{note}</td>" if record else "<td>–</td>")
        meaning = html.escape(METRIC_MEANINGS.get(name, ""))
        rows.append(f"<tr><th>{html.escape(name)}</th>{''.join(cells)}<td class=meaning>{meaning}</td></tr>")
    return (f"<table><tr><th>metric</th>{head}<th>what it means</th></tr>{''.join(rows)}</table>"
            "<p><small>The latest row of each metric in each run's <code>metrics.jsonl</code>.</small></p>")


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def figure_html(title: str, path: Path) -> str:
    """A figure with the PNG inlined; narrow ones (small generated images) shown at twice their size."""
    width = Image.open(path).width
    size = f" style=\"width:min(100%,{2 * width}px)\"" if width < 550 else ""
    return (f"<figure><figcaption>{html.escape(title)} <small>({html.escape(path.name)})</small></figcaption>"
            f"<img src=\"{data_url(path)}\" alt=\"{html.escape(title)}\"{size}></figure>")


def run_summary(run: RunData) -> str:
    last = run.log[-1] if run.log else {}
    parts = [f"model <b>{html.escape(run.model or '?')}</b>", f"{last.get('step', 0)} steps logged"]
    if "time_s" in last:
        parts.append(f"{last['time_s'] / 60:.1f} min")
    parts.append(f"{len(run.samples)} sample grids")
    return f"<p>{' · '.join(parts)} · <code>{html.escape(str(run.path))}</code></p>"


STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:1.5rem auto;padding:0 1rem;color:#222}
h1{font-size:1.5rem}h2{font-size:1.2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}
td.meaning{color:#555;font-size:.85rem;max-width:28rem}figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
img{max-width:100%;image-rendering:pixelated;border:1px solid #eee}small{color:#777;font-weight:normal}"""


def build_report(run_dirs: list[str | Path], out_dir: str | Path, captions: list[str] | None = None,
                 device: str | None = None) -> Report:
    """Write ``out_dir/index.html`` and its PNG figures for one or several runs."""
    if not run_dirs:
        raise T2IError("give at least one run folder")
    plt = require_matplotlib()
    runs = [read_run(p) for p in run_dirs]
    if len({r.name for r in runs}) < len(runs):  # two runs with one folder name: tell them apart
        for i, r in enumerate(runs):
            r.name = f"{i + 1}-{r.name}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir / "index.html")
    title = runs[0].name if len(runs) == 1 else f"{len(runs)} runs: " + ", ".join(r.name for r in runs)
    body = [f"<h1>t2igan report: {html.escape(title)}</h1>"]
    body += [f"<h3>{html.escape(r.name)}</h3>{run_summary(r)}" for r in runs] if len(runs) > 1 else [run_summary(runs[0])]
    body.append("<h2>Metrics</h2>" + metrics_table(runs))
    body.append("<h2>Training curves</h2>")
    report.quantities = loss_figure(plt, runs, out_dir / "losses.png")
    if report.quantities:
        report.figures.append(out_dir / "losses.png")
        body.append(figure_html("Every logged quantity against the step", out_dir / "losses.png"))
    else:
        body.append("<p>No <code>log.jsonl</code> rows to plot.</p>")
    for run in runs:
        body.append(f"<h2>{html.escape(run.name)}: samples</h2>")
        strip = out_dir / f"samples-{run.name}.png"
        if samples_strip(plt, run, strip):
            report.figures.append(strip)
            body.append(figure_html("Sample grids over training (fixed test captions and noise)", strip))
        for fig_title, path in model_figures(run, out_dir, captions, device):
            report.figures.append(path)
            body.append(figure_html(fig_title, path))
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
    report.html.write_text(page, encoding="utf-8")
    return report
