"""``t2igan eval-stats PRESET -o stats.npz``: FID reference statistics (pytorch-fid ``.npz``: ``mu``,
``sigma``) of a data set's real images, for ``t2igan eval --fid-stats``."""

from __future__ import annotations

from ..errors import T2IError

HELP = "FID reference statistics of a data set"


def add_arguments(parser) -> None:
    parser.add_argument("preset", help="preset name or YAML file (its data section is used)")
    parser.add_argument("overrides", nargs="*", help="e.g. data.root=data/birds data.image_size=256")
    parser.add_argument("-o", "--output", required=True, help="statistics file to write (.npz)")
    parser.add_argument("--split", default="test", help="data split (default test)")
    parser.add_argument("--n", type=int, default=None, help="use at most this many images (default: all)")
    parser.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth")
    parser.add_argument("--batch-size", type=int, default=50, help="images read by the Inception at a time")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> None:
    from ..config import DataConfig, apply_overrides, load_preset
    from ..evaluate import dataset_statistics
    from ..fields import build_config
    from ..metrics.fid import save_statistics

    d = apply_overrides(load_preset(args.preset), args.overrides)
    data = build_config(DataConfig, d.get("data") or {})
    if args.n is not None and args.n < 2:
        raise T2IError(f"--n must be at least 2, got {args.n}")
    mu, sigma, count = dataset_statistics(vars(data), args.split, args.inception_weights, args.batch_size,
                                          args.n, args.device, progress=not args.no_progress)
    save_statistics(args.output, mu, sigma)
    print(f"wrote {args.output} (FID statistics of {count} {data.dataset} {args.split} images at {data.image_size} px)")
