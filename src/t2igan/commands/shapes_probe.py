"""``t2igan shapes-probe --image-size 64``: trains the Shapes probe (cached for ``eval --metrics
shapes``), prints its accuracy per attribute on held-out real images and the attribute accuracy real
images score (the ceiling for generated ones)."""

from __future__ import annotations

from pathlib import Path

HELP = "train (once) and measure the Shapes attribute probe"


def add_arguments(parser) -> None:
    parser.add_argument("--image-size", type=int, default=64, help="side of the images it reads (default 64)")
    parser.add_argument("-o", "--output", help="probe file (default: $T2IGAN_CACHE/shapes_probe-<size>.safetensors)")
    parser.add_argument("--steps", type=int, default=3000, help="training steps, 64 fresh images each (default 3000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the probe's weights and training images")
    parser.add_argument("--test-images", type=int, default=1000, help="held-out real images per test split")
    parser.add_argument("--force", action="store_true", help="retrain even if the file exists")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> None:
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
