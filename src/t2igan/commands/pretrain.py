"""``t2igan pretrain damsm PRESET [section.key=value ...]``: pretrain a DAMSM (text + image encoders).

Writes ``runs/NNNNN-<preset>/`` with ``config.json``, ``vocab.json``, ``model.safetensors`` and
``log.jsonl``, and prints the R-precision of the real test images at the end. Give the folder to a GAN
as ``model.damsm_weights`` / ``model.text_encoder_weights`` together with ``data.vocab=<run>/vocab.json``.
"""

from __future__ import annotations

import json

from .. import cli
from ..errors import T2IError

WHAT = ("damsm",)


def add_arguments(parser) -> None:
    parser.add_argument("what", choices=WHAT, help="what to pretrain")
    parser.add_argument("preset", help="preset name (damsm-shapes, damsm-cub, damsm-coco) or a YAML file")
    parser.add_argument("overrides", nargs="*",
                        help="section.key=value, e.g. train.max_steps=500 model.backbone=small_cnn")
    parser.add_argument("--run-dir", help="run folder (default: runs/NNNNN-<preset>)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> None:
    from ..models.damsm import pretrain_damsm, resolve_damsm_config

    if args.what != "damsm":
        raise T2IError(f"cannot pretrain {args.what!r}")
    exp = resolve_damsm_config(args.preset, args.overrides)
    if args.dry_run:
        print(json.dumps(exp.to_dict(), indent=2))
        return
    run_dir = pretrain_damsm(exp, args.run_dir, progress=not args.no_progress)
    print(f"run folder: {run_dir}")


cli.EXTRA_COMMANDS["pretrain"] = (add_arguments, run, "pretrain a DAMSM text/image encoder pair")
