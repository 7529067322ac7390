"""``t2igan eval RUN_DIR --metrics fid,is,rprec,shapes --n 30000``, ``t2igan eval-stats PRESET -o stats.npz``
and ``t2igan shapes-probe --image-size 64``.

``eval`` generates ``--n`` images from the run's test captions, computes the metrics, appends one JSON
line per metric to ``RUN_DIR/metrics.jsonl`` and prints a table (see :mod:`t2igan.evaluate`).
``eval-stats`` writes FID reference statistics (pytorch-fid ``.npz``: ``mu``, ``sigma``) of a data
set's real images, for ``eval --fid-stats``. ``shapes-probe`` trains the Shapes probe (cached for
``eval --metrics shapes``), prints its accuracy per attribute on held-out real images and the attribute
accuracy real images score (the ceiling for generated ones).
"""

from __future__ import annotations

from pathlib import Path

from .. import cli
from ..errors import T2IError


def add_eval_arguments(parser) -> None:
    parser.add_argument("run_dir", help="a training run folder or a bundled model's name (t2igan list-pretrained)")
    parser.add_argument("--metrics", default="fid,is,rprec,shapes",
                        help="comma-separated: fid, is, rprec, shapes (default: all)")
    parser.add_argument("--n", type=int, default=30000, help="images to generate from test captions (default 30000)")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--damsm", help="DAMSM run folder scoring R-precision (default: the one the run trained with)")
    parser.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth for FID / IS")
    parser.add_argument("--is-network", choices=("fid", "imagenet"), default="fid",
                        help="IS classifier: fid = the 2015 TF Inception as the original IS code (default), "
                             "imagenet = torchvision's ImageNet Inception-v3")
    parser.add_argument("--fid-stats", help="reference statistics .npz (default: computed from the real test images)")
    parser.add_argument("--probe", help="Shapes probe file (default: the cached one, trained on first use)")
    parser.add_argument("--probe-size", type=int, default=None,
                        help="side at which the Shapes probe reads images (default: the run's image size)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-progress", action="store_true")


def run_eval(args) -> None:
    from ..evaluate import METRICS_FILE, evaluate, format_table

    records = evaluate(args.run_dir, metrics=args.metrics, n=args.n, batch_size=args.batch_size, seed=args.seed,
                       damsm=args.damsm, inception_weights=args.inception_weights, is_network=args.is_network,
                       fid_stats=args.fid_stats, probe=args.probe, device=args.device,
                       progress=not args.no_progress, probe_size=args.probe_size)
    from ..pretrained import is_bundled, resolve_run_dir

    print(format_table(records))
    run_dir = resolve_run_dir(args.run_dir)
    if not is_bundled(run_dir):
        print(f"appended {len(records)} lines to {run_dir / METRICS_FILE}")


def add_stats_arguments(parser) -> None:
    parser.add_argument("preset", help="preset name or YAML file (its data section is used)")
    parser.add_argument("overrides", nargs="*", help="e.g. data.root=data/birds data.image_size=256")
    parser.add_argument("-o", "--output", required=True, help="statistics file to write (.npz)")
    parser.add_argument("--split", default="test", help="data split (default test)")
    parser.add_argument("--n", type=int, default=None, help="use at most this many images (default: all)")
    parser.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-progress", action="store_true")


def run_stats(args) -> None:
    from ..config import DataConfig, apply_overrides, build_dataclass, load_preset
    from ..evaluate import dataset_statistics
    from ..metrics.fid import save_statistics

    d = apply_overrides(load_preset(args.preset), args.overrides)
    data = build_dataclass(DataConfig, d.get("data", {}), "data")
    if args.n is not None and args.n < 2:
        raise T2IError(f"--n must be at least 2, got {args.n}")
    mu, sigma, count = dataset_statistics(vars(data), args.split, args.inception_weights, args.batch_size,
                                          args.n, args.device, progress=not args.no_progress)
    save_statistics(args.output, mu, sigma)
    print(f"wrote {args.output} (FID statistics of {count} {data.dataset} {args.split} images at {data.image_size} px)")


def add_probe_arguments(parser) -> None:
    parser.add_argument("--image-size", type=int, default=64, help="side of the images it reads (default 64)")
    parser.add_argument("-o", "--output", help="probe file (default: $T2IGAN_CACHE/shapes_probe-<size>.safetensors)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps, 64 fresh images each (default 3000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-images", type=int, default=1000, help="held-out real images per test split")
    parser.add_argument("--force", action="store_true", help="retrain even if the file exists")
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-progress", action="store_true")


def run_probe(args) -> None:
    import torch

    from ..metrics.shapes_probe import default_probe_path, evaluate_probe, load_or_train_probe

    path = Path(args.output) if args.output else default_probe_path(args.image_size)
    if args.force and path.is_file():
        path.unlink()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    probe, info, path = load_or_train_probe(args.image_size, path, device=device, steps=args.steps, seed=args.seed,
                                            progress=not args.no_progress)
    accuracy = evaluate_probe(probe, args.image_size, num_images=args.test_images, device=device)
    groups = list(accuracy["test"]["per_attribute"])
    print(f"Shapes probe {path} ({args.image_size} px, {info.get('steps')} steps, seed {info.get('seed')}, "
          f"trained in {info.get('train_time_s')} s)")
    print(f"{'real images':<14}" + "".join(f"{g:>10}" for g in groups) + f"{'attr acc':>10}{'exact':>8}")
    for split, acc in accuracy.items():
        cells = "".join(f"{100 * acc['per_attribute'][g]:>9.2f}%" for g in groups)
        print(f"{split:<14}{cells}{100 * acc['mean']:>9.2f}%{100 * acc['exact']:>7.1f}%")


cli.EXTRA_COMMANDS["shapes-probe"] = (add_probe_arguments, run_probe,
                                      "train (once) and measure the Shapes attribute probe")
cli.EXTRA_COMMANDS["eval"] = (add_eval_arguments, run_eval, "score a run: FID, IS, R-precision, Shapes attributes")
cli.EXTRA_COMMANDS["eval-stats"] = (add_stats_arguments, run_stats, "FID reference statistics of a data set")
