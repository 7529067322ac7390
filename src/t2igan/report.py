"""``t2igan report RUN [RUN ...]``: one self-contained HTML page about training runs (needs the
``report`` extra, matplotlib).

The page (``index.html``, every image inlined as a PNG data URL) and its figures as PNG files beside it:

* ``losses.png``: every quantity of ``log.jsonl`` against the step, raw (thin) and smoothed (an
  exponential moving average, thick); several runs are overlaid in the same panels, one colour each.
* ``samples-<run>.png``: the sample grids the trainer wrote (``samples/step-*.png``), a strip over
  time, the newest always included; for several runs ``samples-by-step.png`` puts them side by side,
  a row per step.
* ``captions-<run>.png``: the final weights on the first captions of the run's own test split (those
  of its sample grids), plus ``attention-<run>.png`` (AttnGAN, MirrorGAN, DR-GAN) and
  ``masks-<run>.png`` (SSA-GAN, DR-GAN) for models that have them.
* a table of the latest ``metrics.jsonl`` row of each metric (``t2igan eval``), with what it means.
* each run's ``config.json``; for several runs, a table of the settings that differ between them;
  for a bundled model (``t2igan report shapes-dfgan -o DIR``) its model card's facts and scores
  (``card.json``) and its sample grid (``grid.png``).

The training time adds up the sessions of a resumed run: ``time_s`` in ``log.jsonl`` counts from the
start of the process that wrote the row, so where it goes down a new session began.

Everything read from a run folder (names, log keys and values, metrics, config and card values) is
data: it is escaped in the page, the page carries a policy that runs no script at all, and images are
decoded and written again as PNGs. A file that cannot be read as what it should be (not UTF-8, a line
that is not a JSON object, a log row without a whole-number ``step``, a number too large for a float,
an image that is not a PNG or too large to decode) is a :class:`~t2igan.errors.T2IError` naming it.
A ``config.json`` that is a JSON object but not a complete run config is shown, with what it lacks.
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

from .errors import T2IError, one_line

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
    "diversity_entropy": "Shapes captions that leave size or place unsaid, 32 seeds each: entropy of the sizes / places drawn, as a fraction of the data's (1 = as varied as the data, 0 = one picture per caption).",
    "diversity_coverage": "The same images: share of the allowed sizes / places that appear at all (1 / |values| for one picture per caption).",
    "diversity_features": "The same images: mean pairwise Shapes-probe feature distance of one caption's seeds over that of real renders of the caption (1 = as varied as the data).",
    "diversity_faithfulness": "The same images: fraction of the attributes the caption does name that the probe reads back (variety must not cost correctness).",
    "prdc_precision": "Share of generated test images inside the real images' k-NN manifold (Kynkaanniemi et al. 2019): realism; higher is better.",
    "prdc_recall": "Share of real test images inside the generated images' k-NN manifold: how much of the data is drawn; higher is better.",
    "prdc_density": "How many real k-NN balls hold each generated image, over k (Naeem et al. 2020); about 1 for a model like the data.",
    "prdc_coverage": "Share of real k-NN balls that hold at least one generated image (Naeem et al. 2020); higher is better.",
    "open_prdc_precision": "Precision of the open-caption seeds against real renders of the same captions (Shapes).",
    "open_prdc_recall": "Recall of the open-caption seeds against real renders of the same captions: low when each caption gives one picture.",
    "open_prdc_density": "Density of the open-caption seeds against real renders of the same captions.",
    "open_prdc_coverage": "Coverage of the open-caption seeds against real renders of the same captions.",
    "caption_diversity": "Mean pairwise feature distance of 32 seeds of one test caption (0 = the noise changes nothing).",
}


@dataclass
class RunData:
    path: Path
    name: str
    log: list[dict]
    samples: list[tuple[int, Path]]  # (step, grid)
    metrics: list[dict]  # the latest record of each metric
    model: str = ""
    config: dict = field(default_factory=dict)
    card: dict = field(default_factory=dict)  # a bundled model's card.json
    grid: Path | None = None  # a bundled model's grid.png
    config_problem: str | None = None  # why config.json is not a complete run config

    @property
    def experiment(self) -> dict:
        """The experiment config the run was trained with ({} when config.json has none)."""
        exp = self.config.get("experiment")
        return exp if isinstance(exp, dict) else {}


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


MAX_IMAGE_PIXELS = 50_000_000  # a sample grid is at most a few million pixels; more is not a grid


def read_text(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise T2IError(f"{path}: line {line} is not valid UTF-8 (byte 0x{data[e.start]:02x})") from None


def describe(value) -> str:
    """A value from a file, for a one-line message."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**24:
        return f"a {len(str(abs(value)))}-digit number"
    return one_line(json.dumps(value), 60)


def check_number(value, where: str) -> None:
    """Numbers must fit a float (``10**400`` does not); NaN and infinities pass (not plotted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            raise T2IError(f"{where} is {describe(value)}, too large for a float") from None


def read_jsonl(path: Path, check=None) -> list[dict]:
    """The JSON objects of a ``.jsonl`` file, one a line, each passed to ``check(row, where)``. A
    last line cut short (a writer killed mid-line, no newline after it) is left out; any other line
    that is not a JSON object is an error."""
    if not path.is_file():
        return []
    lines = read_text(path).split("\n")
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):  # the unfinished last line of a running or killed writer
                break
            raise T2IError(f"{path}: line {n} is not JSON") from None
        except (ValueError, RecursionError) as e:  # e.g. an integer of more digits than Python converts
            raise T2IError(f"{path}: line {n} cannot be read ({one_line(e, 80)})") from None
        where = f"{path}: line {n}"
        if not isinstance(row, dict):
            raise T2IError(f"{where} is a JSON {type(row).__name__}, not an object")
        for key, value in row.items():
            check_number(value, f"{where}: {key!r}")
        if check is not None:
            check(row, where)
        rows.append(row)
    return rows


def check_log_row(row: dict, where: str) -> None:
    step = row.get("step")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise T2IError(f"{where} has no whole-number 'step' (got {describe(step)})")
    time_s = row.get("time_s", 0)
    if isinstance(time_s, bool) or not isinstance(time_s, (int, float)) or not math.isfinite(time_s):
        raise T2IError(f"{where}: 'time_s' must be a number of seconds, got {describe(time_s)}")


def check_metric_row(row: dict, where: str) -> None:
    if "metric" in row and not isinstance(row["metric"], str):
        raise T2IError(f"{where}: 'metric' must be a name, got {describe(row['metric'])}")


def read_metrics(path: Path) -> list[dict]:
    """The latest record of each metric in ``metrics.jsonl``."""
    latest = {row["metric"]: row for row in read_jsonl(path, check_metric_row) if "metric" in row}
    return list(latest.values())


def read_json_object(path: Path) -> dict:
    """A JSON object file (``config.json``, ``card.json``); {} when there is none."""
    if not path.is_file():
        return {}
    text = read_text(path)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise T2IError(f"{path} is not valid JSON ({one_line(e, 80)})") from None
    if not isinstance(value, dict):
        raise T2IError(f"{path} must hold a JSON object, got a {type(value).__name__}")
    return value


def open_image(path: Path) -> Image.Image:
    """A PNG from a run folder, decoded (RGB), or a T2IError: not an image, or too large to decode."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise T2IError(f"{path}: an image of {image.width} x {image.height} pixels is too large to "
                               f"be a sample grid (at most {MAX_IMAGE_PIXELS:,} pixels)")
            return image.convert("RGB")
    except T2IError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise T2IError(f"{path}: an image too large to decode safely ({one_line(e, 120)})") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise T2IError(f"{path}: not a readable image ({one_line(e, 120)})") from None


def read_run(path: str | Path) -> RunData:
    """A run folder, or a bundled model's name (:mod:`t2igan.pretrained`), read and checked."""
    from .runs import CONFIG_NAME, resolve_run_dir, run_config_problem

    path = resolve_run_dir(path)
    if not (path / "log.jsonl").is_file() and not (path / CONFIG_NAME).is_file():
        raise T2IError(f"{path} is not a run folder (no log.jsonl or {CONFIG_NAME})")
    samples = sorted((int(p.stem.split("-")[-1]), p) for p in (path / "samples").glob("step-*.png")
                     if p.stem.split("-")[-1].isdigit())
    config = read_json_object(path / CONFIG_NAME)
    model = config.get("model_name", "")
    if not isinstance(model, str):
        raise T2IError(f"{path / CONFIG_NAME}: 'model_name' must be a name, got {describe(model)}")
    card = read_json_object(path / "card.json")
    grid = path / "grid.png"
    return RunData(path, path.resolve().name, read_jsonl(path / "log.jsonl", check_log_row), samples,
                   read_metrics(path / "metrics.jsonl"), model, config, card, grid if grid.is_file() else None,
                   run_config_problem(config) if config else None)


def training_time(log: list[dict]) -> tuple[float, int]:
    """``(seconds, sessions)`` of training in ``log``: each process that trained the run (the first,
    then one per resume) counts ``time_s`` from its own start, so a row whose ``time_s`` is below the
    previous row's begins a new session; the time is the sum of each session's last ``time_s``."""
    total, sessions, last = 0.0, 0, None
    for row in log:
        t = row.get("time_s")
        if not is_number(t) or not math.isfinite(t):
            continue
        if last is None or t < last:
            total += last or 0.0
            sessions += 1
        last = t
    return total + (last or 0.0), sessions


def duration_text(seconds: float, sessions: int = 1) -> str:
    """``7.3 min``, ``2.4 h``; ``... in 3 sessions`` for a resumed run."""
    text = f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
    return text + (f" in {sessions} sessions (resumed {sessions - 1}x)" if sessions > 1 else "")


def strip_picks(count: int, most: int) -> list[int]:
    """Indices of at most ``most`` of ``count`` sample grids, evenly spaced, the first and the newest
    always among them."""
    k = min(most, count)
    if k <= 1:
        return [count - 1] if count else []
    return sorted({round(i * (count - 1) / (k - 1)) for i in range(k)})


FILELESS_DATASETS = ("shapes",)  # built in code: reading their split opens no file


def split_captions(run: RunData, most: int = 4) -> tuple[list[str], str | None]:
    """``(captions, None)``: the first caption of each of the first ``most`` images of the run's own
    test split (as its config builds it: the captions of its sample grids), or ``([], why not)``.
    Only a data set built in code (Shapes) is read: a path in a run folder's config is data, never
    a file the report opens, so a run on files (CUB, COCO, a folder) gets a note instead, and never
    another data set's captions."""
    data = run.experiment.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("dataset"), str):
        return [], "config.json names no data set"
    if data["dataset"] not in FILELESS_DATASETS:
        return [], (f"its test split is in files its config names ({data['dataset']} data), and a report "
                    "opens no path a run folder gives")
    from .data.datasets import build_dataset

    args = data.get("test_args") if isinstance(data.get("test_args"), dict) else {}
    if not all(isinstance(v, (int, float, bool)) or v is None for v in args.values()):
        return [], "its test split's arguments are not plain numbers"
    try:
        test_set = build_dataset(data["dataset"], split="test", image_size=data.get("image_size", 64), **args)
        return [test_set.captions(i)[0] for i in range(min(most, len(test_set)))], None
    except (T2IError, OSError, TypeError, ValueError, KeyError, OverflowError) as e:
        return [], f"its test split cannot be built here ({one_line(e, 160)})"


def smooth(values: list[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing): the first points
    are not pulled towards 0."""
    out, avg = [], 0.0
    for i, v in enumerate(values, 1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight ** i))
    return out


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# figures are drawn at the width the page shows them (FIGURE_WIDTH_IN * DPI px, within the page's
# column), so these font sizes are the sizes the reader sees
DPI = 100
FIGURE_WIDTH_IN = 10.5
FIGURE_STYLE = {"text.parse_math": False, "font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12,
                "xtick.labelsize": 11, "ytick.labelsize": 11, "legend.fontsize": 12, "figure.titlesize": 13}


def loss_figure(plt, runs: list[RunData], path: Path, weight: float = 0.9) -> list[str]:
    """Panels of every logged quantity (union over runs), runs overlaid; returns the quantities.
    Names are drawn as plain text (a ``$`` in a log key is not TeX). The legend sits in its own strip
    above the panels, as tall as it needs."""
    quantities = sorted({k for r in runs for row in r.log for k, v in row.items() if k not in NOT_PLOTTED and is_number(v)})
    if not quantities:
        return []
    ncol = min(3, len(quantities))
    nrow = math.ceil(len(quantities) / ncol)
    with plt.rc_context(FIGURE_STYLE):
        fig, axes = plt.subplots(nrow, ncol, figsize=(FIGURE_WIDTH_IN, 2.9 * nrow + 0.4), squeeze=False,
                                 layout="constrained")
        colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        for ax, q in zip(axes.flat, quantities):
            for i, run in enumerate(runs):
                points = [(row["step"], row[q]) for row in run.log if is_number(row.get(q)) and math.isfinite(row[q])]
                if not points:
                    continue
                steps, values = zip(*points)
                colour = colours[i % len(colours)]
                ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
                ax.plot(steps, smooth([float(v) for v in values], weight), color=colour, linewidth=1.8, label=run.name,
                        marker="o" if len(steps) == 1 else None)
            ax.set_title(q)
            ax.set_xlabel("step")
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(quantities):]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        if handles:
            fig.legend(handles, labels, loc="outside upper center", ncol=min(4, len(runs)), frameon=False)
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
    return quantities


def grid_at(run: RunData, step: int) -> tuple[int, Path] | None:
    """The run's newest sample grid at or before ``step``."""
    earlier = [(s, p) for s, p in run.samples if s <= step]
    return earlier[-1] if earlier else None


def samples_figure(plt, runs: list[RunData], path: Path, most: int = 6) -> list[int]:
    """The runs' sample grids in one figure, a column per run and a row per step: up to ``most``
    steps evenly spaced over the steps with a grid (the first and the newest always), each run showing
    its newest grid at or before that step (so the last row holds every run's newest grid). Returns
    the steps of the rows, or [] when no run has a grid."""
    steps_with_grids = sorted({step for r in runs for step, _ in r.samples})
    if not steps_with_grids:
        return []
    rows = [steps_with_grids[i] for i in strip_picks(len(steps_with_grids), most)]
    cells = [[grid_at(run, step) for run in runs] for step in rows]
    opened = {p: open_image(p) for row in cells for cell in row if cell for p in [cell[1]]}
    aspect = max(g.height / g.width for g in opened.values())
    ncol = len(runs)
    cell_w = FIGURE_WIDTH_IN / ncol
    with plt.rc_context(FIGURE_STYLE):
        fig, axes = plt.subplots(len(rows), ncol, figsize=(FIGURE_WIDTH_IN, len(rows) * (cell_w * aspect + 0.35)),
                                 squeeze=False, layout="constrained")
        for r, (step, row) in enumerate(zip(rows, cells)):
            for c, (run, cell) in enumerate(zip(runs, row)):
                ax = axes[r, c]
                ax.axis("off")
                if cell is None:
                    ax.set_title(f"step {step}: no grid yet", loc="left", color="#777")
                    continue
                ax.imshow(opened[cell[1]], interpolation="nearest")
                ax.set_title((f"{run.name}, " if ncol > 1 else "") + f"step {cell[0]}", loc="left")
        fig.savefig(path, dpi=DPI)
        plt.close(fig)
    return rows


def model_figures(run: RunData, out_dir: Path, captions: list[str] | None, device: str | None
                  ) -> tuple[list[tuple[str, Path]], str | None]:
    """The final weights on a few captions (``captions``, else the run's own test captions,
    :func:`split_captions`): a captioned grid, and attention / mask rows when the model has them.
    Returns ``(figures, note)``; nothing for a folder without weights, and a note saying why when the
    captions cannot be had."""
    if not (run.path / "model.safetensors").is_file():
        return [], None
    if not captions:
        captions, why_not = split_captions(run)
        if not captions:
            return [], (f"No final-weights figure: {esc(why_not)}. Give captions with "
                        "<code>--caption &quot;...&quot;</code>.")
    from .pipeline import Text2ImagePipeline
    from .visualize import captioned_grid, stack_rows

    pipe = Text2ImagePipeline.from_pretrained(run.path, device=device or "cpu")
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
    return written, None


def esc(value) -> str:
    """Any value from a run folder as HTML text."""
    return html.escape(plain_value(value), quote=True)


def plain_value(value) -> str:
    """A value from a run folder as text: numbers readable (``26,344``, ``0.8417``), text as it is,
    anything else as JSON."""
    if is_number(value):
        return number_text(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def number_text(value, percent: bool = False, digits: str = ".4g") -> str:
    if percent:
        return f"{100 * value:.2f}%"
    return f"{value:,}" if isinstance(value, int) else f"{value:{digits}}"


def metric_text(record: dict) -> str:
    """A ``metrics.jsonl`` record's value as text (percentages for the fractions, ``± std``)."""
    value = record.get("value")
    if not is_number(value):
        return plain_value(value)
    percent = record.get("metric") in ("rprec", "shapes_attr", "shapes_attr_heldout", "r_precision",
                                       "diversity_entropy", "diversity_coverage", "diversity_features",
                                       "diversity_faithfulness", "prdc_precision", "prdc_recall", "prdc_coverage",
                                       "open_prdc_precision", "open_prdc_recall", "open_prdc_coverage")
    text = number_text(value, percent)
    if is_number(record.get("std")):
        text += " ± " + number_text(record["std"], percent, ".3g")
    return text


def metrics_table(runs: list[RunData]) -> str:
    names = sorted({m["metric"] for r in runs for m in r.metrics})
    if not names:
        return ("<p>No <code>metrics.jsonl</code> yet: score a run with <code>t2igan eval RUN</code> "
                "(e.g. <code>--metrics shapes,rprec</code> on Shapes).</p>")
    head = "".join(f"<th>{esc(r.name)}</th>" for r in runs)
    rows = []
    for name in names:
        cells = []
        for r in runs:
            record = next((m for m in r.metrics if m["metric"] == name), None)
            note = f" <small>(n={esc(record['n'])})</small>" if record and "n" in record else ""
            cells.append(f"<td>{esc(metric_text(record))}{note}</td>" if record else "<td>–</td>")
        meaning = esc(METRIC_MEANINGS.get(name, ""))
        rows.append(f"<tr><th>{esc(name)}</th>{''.join(cells)}<td class=meaning>{meaning}</td></tr>")
    return (f"<table><tr><th>metric</th>{head}<th>what it means</th></tr>{''.join(rows)}</table>"
            "<p><small>The latest row of each metric in each run's <code>metrics.jsonl</code>.</small></p>")


def flat_items(value, prefix: str = "") -> list[tuple[str, object]]:
    """``{"probe": {"mean": 0.99}}`` -> ``[("probe.mean", 0.99)]`` (lists stay whole)."""
    if isinstance(value, dict) and value:
        return [item for k, v in value.items() for item in flat_items(v, f"{prefix}{k}.")]
    return [(prefix[:-1], value)]


def card_table(run: RunData) -> str:
    """A bundled model's card facts, one row each; scores as numbers, everything escaped."""
    rows = "".join(f"<tr><th>{esc(key)}</th><td>{esc(value)}</td></tr>" for key, value in flat_items(run.card) if key)
    return f"<table>{rows}</table><p><small>From the model's <code>card.json</code>.</small></p>"


def config_html(run: RunData) -> str:
    text = json.dumps(run.config, indent=2, ensure_ascii=False)
    note = (f" <small>(not a complete run config: {esc(run.config_problem)})</small>" if run.config_problem else "")
    return (f"<details><summary><code>config.json</code> of {esc(run.name)}{note}</summary>"
            f"<pre>{html.escape(text)}</pre></details>")


MISSING = object()


def config_differences(runs: list[RunData]) -> list[tuple[str, list]]:
    """The settings (``model`` and the experiment config's keys, flattened: ``train.lr_g``) whose
    values are not the same in every run, with each run's value (:data:`MISSING` where it has none)."""
    flats = [{"model": r.model or MISSING, **dict(flat_items(r.experiment))} for r in runs]
    keys = sorted({k for f in flats for k in f if k}, key=lambda k: (k != "model", k))
    out = []
    for key in keys:
        values = [f.get(key, MISSING) for f in flats]
        texts = {"\0missing" if v is MISSING else json.dumps(v, sort_keys=True, default=str) for v in values}
        if len(texts) > 1:
            out.append((key, values))
    return out


def differences_table(runs: list[RunData]) -> str:
    rows = config_differences(runs)
    if not rows:
        return "<p>The runs' configs are the same (apart from the folder).</p>"
    head = "".join(f"<th>{esc(r.name)}</th>" for r in runs)
    body = "".join(f"<tr><th>{esc(key)}</th>" + "".join("<td>–</td>" if v is MISSING else f"<td>{esc(v)}</td>"
                                                        for v in values) + "</tr>" for key, values in rows)
    return (f"<table class=wide><tr><th>setting</th>{head}</tr>{body}</table>"
            "<p><small>From each run's <code>config.json</code> (its experiment config); – : not set.</small></p>")


def data_url(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def figure_html(title: str, path: Path, note: str = "") -> str:
    """A figure with the PNG inlined; narrow ones (small generated images) shown at twice their size,
    with sharp pixels."""
    width = Image.open(path).width
    size = f" style=\"width:min(100%,{2 * width}px)\"" if width < 550 else ""
    note = f" <small>{note}</small>" if note else ""
    return (f"<figure><figcaption>{esc(title)} <small>({esc(path.name)})</small>{note}</figcaption>"
            f"<img src=\"{data_url(path)}\" alt=\"{esc(title)}\"{size}></figure>")


def steps_text(run: RunData) -> str:
    last = run.log[-1] if run.log else {}
    if not run.log and "steps" in run.card:  # a bundled model ships its card, not its log
        return f"{esc(run.card['steps'])} steps (model card)"
    return f"{esc(last.get('step', 0))} steps logged"


def time_text(run: RunData) -> str:
    seconds, sessions = training_time(run.log)
    return duration_text(seconds, sessions) if sessions else "–"


def run_summary(run: RunData) -> str:
    parts = [f"model <b>{esc(run.model or '?')}</b>", steps_text(run)]
    if training_time(run.log)[1]:
        parts.append(time_text(run))
    parts.append(f"{len(run.samples)} sample grids")
    return f"<p>{' · '.join(parts)} · <code>{esc(str(run.path))}</code></p>"


def runs_table(runs: list[RunData]) -> str:
    """Several runs side by side: a column each."""
    rows = [("model", lambda r: f"<b>{esc(r.model or '?')}</b>"), ("steps", steps_text),
            ("training time", time_text), ("sample grids", lambda r: str(len(r.samples))),
            ("folder", lambda r: f"<code>{esc(str(r.path))}</code>")]
    head = "".join(f"<th>{esc(r.name)}</th>" for r in runs)
    body = "".join(f"<tr><th>{name}</th>" + "".join(f"<td>{cell(r)}</td>" for r in runs) + "</tr>" for name, cell in rows)
    return f"<table class=wide><tr><th></th>{head}</tr>{body}</table>"


STYLE = """body{font-family:system-ui,sans-serif;font-size:16px;line-height:1.45;max-width:1100px;margin:1.5rem auto;
padding:0 1rem;color:#222}h1{font-size:1.6rem}h2{font-size:1.3rem;border-bottom:1px solid #ddd;padding-bottom:.2rem;
margin-top:2rem}h3{font-size:1.1rem}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;vertical-align:top}table.wide{width:100%}
table.side{width:100%;table-layout:fixed}table.side td{text-align:center}
td.meaning{color:#444;font-size:.95rem;max-width:28rem}figure{margin:1rem 0}figcaption{font-weight:600;margin-bottom:.3rem}
img{max-width:100%;image-rendering:pixelated;border:1px solid #eee}small{color:#555;font-weight:normal;font-size:.9rem}
pre{background:#f6f6f6;padding:.5rem;overflow:auto;font-size:.9rem}"""
# the page runs no script and loads nothing: only its own inline style and inlined PNGs
POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def build_report(run_dirs: list[str | Path], out_dir: str | Path, captions: list[str] | None = None,
                 device: str | None = None) -> Report:
    """Write ``out_dir/index.html`` and its PNG figures for one or several runs (folders or
    bundled names); nothing is written into the package's bundled models."""
    from .runs import is_bundled

    if not run_dirs:
        raise T2IError("give at least one run folder")
    out_dir = Path(out_dir)
    if is_bundled(out_dir):
        raise T2IError(f"the report cannot be written into the package's bundled models ({out_dir}): "
                       "give another folder with -o DIR")
    plt = require_matplotlib()
    runs = [read_run(p) for p in run_dirs]
    if len({r.name for r in runs}) < len(runs):  # two runs with one folder name: tell them apart
        for i, r in enumerate(runs):
            r.name = f"{i + 1}-{r.name}"
    out_dir.mkdir(parents=True, exist_ok=True)
    report = Report(out_dir / "index.html")
    several = len(runs) > 1
    title = f"{len(runs)} runs: " + ", ".join(r.name for r in runs) if several else runs[0].name
    body = [f"<h1>t2igan report: {esc(title)}</h1>"]
    body.append(runs_table(runs) if several else run_summary(runs[0]))
    if several:
        body.append("<h2>Settings that differ</h2>" + differences_table(runs))
    for run in runs:
        if run.card:
            body.append(f"<h2>{esc(run.name)}: model card</h2>" + card_table(run))
    body.append("<h2>Metrics</h2>" + metrics_table(runs))
    body.append("<h2>Training curves</h2>")
    report.quantities = loss_figure(plt, runs, out_dir / "losses.png")
    if report.quantities:
        report.figures.append(out_dir / "losses.png")
        body.append(figure_html("Every logged quantity against the step", out_dir / "losses.png",
                                "thin: raw, thick: smoothed (EMA 0.9)" + ("; a colour per run" if several else "")))
    else:
        body.append("<p>No <code>log.jsonl</code> rows to plot.</p>")
    body.append("<h2>Samples</h2>")
    for run in runs:
        if run.grid is not None:  # a bundled model's grid, decoded and written again
            grid = out_dir / f"grid-{run.name}.png"
            open_image(run.grid).save(grid)
            report.figures.append(grid)
            body.append(figure_html(f"{run.name}: the model card's sample grid" if several
                                    else "The model card's sample grid", grid))
    strip = out_dir / ("samples-by-step.png" if several else f"samples-{runs[0].name}.png")
    shown = samples_figure(plt, runs, strip)
    if shown:
        report.figures.append(strip)
        what = "side by side, a row per step" if several else "over training"
        body.append(figure_html(f"Sample grids {what} (fixed test captions and noise)", strip,
                                f"steps {', '.join(f'{s:,}' for s in shown)}; the newest last"))
    finals = []
    for run in runs:
        figures, note = model_figures(run, out_dir, captions, device)
        report.figures += [path for _, path in figures]
        finals.append((run, figures, note))
    if any(figures or note for _, figures, note in finals):
        body.append("<h2>Final weights</h2>")
        if several:
            body.append("<table class=side><tr>" + "".join(f"<th>{esc(run.name)}</th>" for run, _, _ in finals)
                        + "</tr><tr>" + "".join("<td>" + "".join(figure_html(t, p) for t, p in figures)
                                               + (f"<p>{note}</p>" if note else "") + "</td>" for _, figures, note in finals)
                        + "</tr></table>")
        else:
            _, figures, note = finals[0]
            body += [figure_html(t, p) for t, p in figures] + ([f"<p>{note}</p>"] if note else [])
    body.append("<h2>Configs</h2>" + "".join(config_html(run) for run in runs if run.config))
    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8>"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{POLICY}\"><title>{esc(title)}</title>"
            f"<style>{STYLE}</style></head><body>{''.join(body)}</body></html>")
    report.html.write_text(page, encoding="utf-8")
    return report
