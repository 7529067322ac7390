"""Sampling speed: images per second from ``Text2ImagePipeline`` for every model, at 64 and 256 px,
one caption per call (batch 1) and 32 captions per call (batch 32).

Each model is built with random weights from its ``<model>-cub`` preset's arguments (the official
CUB architecture) at the output size of the row: ``image_size`` set, and for staged generators
(AttnGAN, MirrorGAN, DR-GAN: ``base_size`` / ``num_stages``) the stages that end at that size (64 px:
the first stage only). GAN-INT-CLS's CUB preset reads precomputed char-CNN-RNN embeddings, which
cannot be made from caption text, so its rows use its RNN text encoder (``text_source=encoder``).
The model and a CUB-sized (5,450-word) vocabulary are written with ``t2igan.hub.save_run`` to a
temporary run folder and loaded back with ``Text2ImagePipeline.from_pretrained``, so a row times
exactly what ``t2igan sample`` runs: tokenising, noise, the generator (weights as a run stores them),
and the conversion to PIL images. Captions are made-up 12-word sentences over the vocabulary.

Timing: one untimed batch-1 call first (and one untimed batch-32 call on a GPU), then the median of
up to ``--reps`` timed calls, stopping once ``--row-budget`` seconds are spent (at least one). The
64 px rows of every model run before the 256 px ones; with ``--time-limit`` no row starts after that
many seconds, and the rows left out are listed with the reason.

    OMP_NUM_THREADS=1 python benchmarks/sample_speed.py --quick     # CPU, ~6 min
    python benchmarks/sample_speed.py --device cuda                 # GPU
    python benchmarks/sample_speed.py --dry-run                     # check every row's model arguments

Writes ``benchmarks/results/sample_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import warnings

import torch

from speed_common import (MODELS, RESULTS_DIR, environment, median, model_unavailable, preset_unavailable,
                          print_table, resolve_device, sized_model_args, synthetic_caption, synthetic_vocab,
                          timed, write_json)

SIZES = (64, 256)
BATCHES = (1, 32)


def build_pipeline(model_name: str, image_size: int, device: str, run_dir: str):
    """A random-weight model at ``image_size`` saved as a run folder and loaded as a pipeline."""
    from t2igan.config import resolve_config
    from t2igan.runs import save_run
    from t2igan.pipeline import Text2ImagePipeline
    from t2igan.models import create_model

    args = row_model_args(model_name, image_size)
    vocab = synthetic_vocab()
    exp = resolve_config(f"{model_name}-cub", [f"data.image_size={image_size}"]).to_dict()
    exp["model_args"] = args
    torch.manual_seed(0)
    model = create_model(model_name, vocab_size=len(vocab), **args)
    save_run(run_dir, exp, model, vocab)
    del model
    t0 = time.perf_counter()
    pipe = Text2ImagePipeline.from_pretrained(run_dir, device=device)
    load_s = time.perf_counter() - t0
    return pipe, args, load_s


def row_model_args(model_name: str, image_size: int) -> dict:
    """The model arguments of a row: the ``-cub`` preset's at ``image_size``, reading caption text."""
    from t2igan.config import load_preset

    args = sized_model_args(model_name, load_preset(f"{model_name}-cub").get("model_args", {}), image_size)
    if args.get("text_source") == "embeddings":  # sampling from caption text needs the text encoder
        args["text_source"] = "encoder"
    return args


def dry_run(args) -> None:
    """Resolve every row's model arguments as a config (what ``build_pipeline`` builds), build nothing."""
    from dry_run import check_overrides, model_overrides

    for name in args.models:
        reason = model_unavailable(name) or preset_unavailable(f"{name}-cub")
        if reason:
            print(f"skip  {name}: {reason}")
            continue
        for size in args.sizes:
            check_overrides(f"{name}-cub", [f"data.image_size={size}", *model_overrides(row_model_args(name, size))],
                            label=f"{name} @ {size}px")


def measure_model(model_name: str, size: int, device: str, args, time_left) -> list[dict]:
    """The rows (one per batch size) of one model at one size; ``time_left()`` is the number of
    seconds the time limit leaves, or None."""
    row_base = {"model": model_name, "image_size": size}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            pipe, model_args, load_s = build_pipeline(model_name, size, device, tmp)
    except Exception as e:
        msg = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
        print(f"error {model_name} @ {size}px: {msg}", flush=True)
        return [{**row_base, "error": msg}]
    dev = pipe.device
    params_g = sum(p.numel() for p in pipe.model.generator.parameters()) / 1e6
    captions = [synthetic_caption(12, seed=k) for k in range(max(args.batches))]
    pipe(captions[:1], seed=0)  # warm-up
    rows = []
    for batch in args.batches:
        caps = captions[:batch]
        left = time_left()
        if left is not None and left <= 0:
            rows.append({**row_base, "batch": batch, "skip": "not run: the time limit was spent"})
            print(f"skip {model_name} @ {size}px batch {batch}: the time limit was spent", flush=True)
            continue
        if dev.type == "cuda" and batch > 1:
            pipe(caps, seed=0, batch_size=batch)
        times: list[float] = []
        while len(times) < args.reps and (not times or sum(times) < args.row_budget):
            seed = len(times) + 1
            times.append(timed(lambda: pipe(caps, seed=seed, batch_size=batch), dev))
        sec = median(times)
        row = {**row_base, "batch": batch, "s_per_call": sec, "images_per_s": batch / sec,
               "calls_timed": len(times), "times_s": [round(t, 4) for t in times],
               "load_s": round(load_s, 2), "params_g_m": round(params_g, 2), "device": str(dev),
               "model_args": {k: v for k, v in model_args.items() if k in (
                   "image_size", "base_size", "num_stages", "nf", "ngf", "ndf", "text_source")}}
        print(f"{model_name:12s} {size:4d}px  batch {batch:3d}  {row['images_per_s']:8.2f} img/s  "
              f"({len(times)} call(s), {sec:.3f} s/call)", flush=True)
        rows.append(row)
    del pipe
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--sizes", nargs="+", type=int, default=list(SIZES))
    p.add_argument("--batches", nargs="+", type=int, default=list(BATCHES))
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--reps", type=int, default=None, help="most timed calls per row (default CPU 3 quick / 5, GPU 20)")
    p.add_argument("--row-budget", type=float, default=None,
                   help="stop timing a row after this many seconds (default CPU 10 quick / 30, GPU 10)")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds for the whole script: rows not started by then are skipped")
    p.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    p.add_argument("--quick", action="store_true", help="fewer timed calls")
    p.add_argument("--out", default=str(RESULTS_DIR / "sample_speed.json"))
    p.add_argument("--dry-run", action="store_true", help="check every row's model arguments and exit")
    args = p.parse_args()
    if args.dry_run:
        dry_run(args)
        return
    device = resolve_device(args.device)
    on_gpu = device.startswith("cuda")
    args.reps = args.reps or (20 if on_gpu else (3 if args.quick else 5))
    args.row_budget = args.row_budget or (10.0 if on_gpu or args.quick else 30.0)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    env = environment(device, args.threads)
    print(f"sampling speed on {env.get('gpu', env.get('cpu'))} ({device}), {args.threads} thread(s), "
          f"load average {env['load_average_1m']}", flush=True)
    t_start = time.perf_counter()

    def time_left():
        return None if args.time_limit is None else args.time_limit - (time.perf_counter() - t_start)

    rows, skipped = [], {}
    models = []
    for name in args.models:
        reason = model_unavailable(name) or preset_unavailable(f"{name}-cub")
        if reason:
            print(f"skip {name}: {reason}", flush=True)
            skipped[name] = reason
        else:
            models.append(name)
    for size in sorted(args.sizes):  # small sizes first, so that a time limit cuts the costly rows
        for name in models:
            left = time_left()
            if left is not None and left <= 0:
                rows += [{"model": name, "image_size": size, "batch": b, "skip": "not run: the time limit was spent"}
                         for b in args.batches]
                continue
            rows.extend(measure_model(name, size, device, args, time_left))
    rows.sort(key=lambda r: (args.models.index(r["model"]), r["image_size"], r.get("batch", 0)))
    for r in rows:
        if "skip" in r or "error" in r:
            skipped[f"{r['model']}@{r['image_size']}px" + (f"/b{r['batch']}" if "batch" in r else "")] = \
                r.get("skip") or r.get("error")
    print()
    table = print_table([r for r in rows if "images_per_s" in r], [
        ("model", "model", ""), ("image_size", "px", "d"), ("batch", "batch", "d"),
        ("images_per_s", "img/s", ".2f"), ("s_per_call", "s/call", ".3f"), ("calls_timed", "n", "d"),
        ("params_g_m", "G M", ".2f")])
    for name, reason in skipped.items():
        print(f"  {name}: {reason}")
    write_json(args.out, {
        "benchmark": "sample_speed",
        "what": "images per second from Text2ImagePipeline.__call__ (tokenise, noise, EMA generator, PIL), "
                "random-weight models with the CUB presets' architecture at each size; median of timed calls",
        "environment": env,
        "settings": {"reps": args.reps, "row_budget_s": args.row_budget, "threads": args.threads, "quick": args.quick,
                     "time_limit_s": args.time_limit},
        "wall_s": round(time.perf_counter() - t_start, 1),
        "skipped": skipped, "rows": rows, "table": table,
    })


if __name__ == "__main__":
    main()
