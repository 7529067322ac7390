"""``t2igan eval RUN_DIR [--metrics fid,is,rprec,shapes] --n 30000``: generates ``--n`` images from the
run's test captions, computes the metrics (by default the ones that apply to the run, each one left out
named with the reason), appends one JSON line per metric to ``RUN_DIR/metrics.jsonl`` and prints a
table (see :mod:`t2igan.evaluate`). FID reference statistics: ``t2igan eval-stats``
(:mod:`.eval_stats`); the Shapes probe: ``t2igan shapes-probe`` (:mod:`.shapes_probe`).
"""

from __future__ import annotations

HELP = "score a run: FID, IS, R-precision, Shapes attributes, diversity"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="a training run folder or a bundled model's name (t2igan list-pretrained)")
    parser.add_argument("--metrics", default=None,
                        help="comma-separated: fid, is, rprec, shapes, diversity (default: the ones that apply: shapes and "
                             "rprec on Shapes runs, fid, is and rprec elsewhere, each one left out named with the reason; "
                             "diversity only when asked)")
    parser.add_argument("--n", type=int, default=30000,
                        help="images to generate (default 30000; on Shapes the shapes metric gives half of them to "
                             "held-out colour-shape pairs); FID needs 10000, Shapes-FID 1000 (fewer: reliable: false)")
    parser.add_argument("--batch-size", type=int, default=50, help="images generated and scored at a time")
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument("--truncation", type=float, default=None,
                        help="noise truncation, 0 = none (default: the model's own, e.g. DF-GAN's 0.88)")
    parser.add_argument("--truncation-form", default=None,
                        help="DF-GAN / SSA-GAN: scaled (official: T x N(0,1) cut at +-2) or clip (N(0,1) cut at +-T); "
                             "default: the model's own")
    parser.add_argument("--damsm", help="DAMSM run folder or bundled name scoring R-precision (default: the one the "
                                        "run trained with; on Shapes runs shapes-damsm)")
    parser.add_argument("--inception-weights", help="pt_inception-2015-12-05-6726825d.pth for FID / IS")
    parser.add_argument("--is-network", nargs="+", metavar=("NAME", "PATH"), default=None,
                        help="IS classifier NAME and optionally its weights file PATH: fid = the 2015 TF Inception "
                             "of the original IS code, imagenet = torchvision's ImageNet Inception-v3, cub = "
                             "StackGAN's CUB-fine-tuned Inception (`t2igan convert inception-cub`); default: cub "
                             "on CUB runs, fid otherwise")
    parser.add_argument("--is-protocol", choices=("torch", "paper"), default=None,
                        help="IS input protocol: paper = the papers' evaluation code (8-bit images; improved-gan's "
                             "TF resize for fid, StackGAN's for cub), torch = t2igan's float bilinear resize; "
                             "default: paper on CUB and COCO runs, torch otherwise")
    parser.add_argument("--fid-stats", help="reference statistics .npz (default: computed from the real test images)")
    parser.add_argument("--probe", help="Shapes probe file (default: the one shipped for the image size, 32 or 64 px; "
                                          "other sizes: the cached one, trained on first use)")
    parser.add_argument("--probe-size", type=int, default=None,
                        help="side at which the Shapes probe reads images (default: the run's image size)")
    parser.add_argument("--k", type=int, default=32, help="diversity: seeds per caption (default 32)")
    parser.add_argument("--diversity-captions", type=int, default=8,
                        help="diversity: test captions given --k seeds each, and on Shapes as many captions of "
                             "each form that leaves size or place unsaid (default 8)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args) -> None:
    from ..errors import T2IError
    from ..evaluate import IS_NETWORKS, METRICS_FILE, evaluate, format_table

    given = args.is_network or []
    if given and (len(given) > 2 or given[0] not in IS_NETWORKS):
        raise T2IError(f"--is-network takes NAME [PATH] with NAME one of {', '.join(IS_NETWORKS)}, "
                       f"got {' '.join(given)!r}")
    is_network, is_weights = (given + [None, None])[:2]
    records = evaluate(args.run_dir, metrics=args.metrics, n=args.n, batch_size=args.batch_size, seed=args.seed,
                       damsm=args.damsm, inception_weights=args.inception_weights, is_network=is_network,
                       is_protocol=args.is_protocol, is_weights=is_weights,
                       fid_stats=args.fid_stats, probe=args.probe, device=args.device,
                       progress=not args.no_progress, probe_size=args.probe_size,
                       truncation=args.truncation, truncation_form=args.truncation_form, k=args.k,
                       diversity_captions=args.diversity_captions)
    from ..runs import is_bundled, resolve_run_dir

    print(format_table(records))
    run_dir = resolve_run_dir(args.run_dir)
    if not is_bundled(run_dir):
        print(f"appended {len(records)} line{'s' if len(records) != 1 else ''} to {run_dir / METRICS_FILE}")
