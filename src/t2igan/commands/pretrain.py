"""``t2igan pretrain damsm|stream PRESET [section.key=value ...]``: pretrain a DAMSM (text + image
encoders) or a MirrorGAN STREAM (image captioner).

Writes ``runs/NNNNN-<preset>/`` with ``config.json``, ``vocab.json``, ``model.safetensors`` and
``log.jsonl``, and prints at the end the R-precision (DAMSM) or the caption scores (STREAM: BLEU-4, and
on Shapes the attributes the captions name) of the real test images. Give a DAMSM folder to a GAN as
``model.damsm_weights`` / ``model.text_encoder_weights`` together with ``data.vocab=<run>/vocab.json``,
a STREAM folder to MirrorGAN as ``model.stream_weights`` (pretrain it with the DAMSM's
``data.vocab=<DAMSM run>/vocab.json`` so that both share one vocabulary).
"""

from __future__ import annotations

import json

from ..errors import T2IError

HELP = "pretrain a DAMSM text/image encoder pair or a MirrorGAN STREAM"

WHAT = ("damsm", "stream")


def add_arguments(parser) -> None:
    parser.add_argument("what", choices=WHAT, help="what to pretrain")
    parser.add_argument("preset", help="preset name (damsm-shapes, damsm-cub, damsm-coco, stream-shapes, "
                                       "stream-cub) or a YAML file")
    parser.add_argument("overrides", nargs="*",
                        help="section.key=value, e.g. train.max_steps=500 model.backbone=small_cnn")
    parser.add_argument("--run-dir", help="run folder (default: runs/NNNNN-<preset>)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> None:
    if args.what == "damsm":
        from ..models.damsm import pretrain_damsm as pretrain, resolve_damsm_config as resolve
    elif args.what == "stream":
        from ..models.stream import pretrain_stream as pretrain, resolve_stream_config as resolve
    else:
        raise T2IError(f"cannot pretrain {args.what!r}")
    exp = resolve(args.preset, args.overrides)
    if args.dry_run:
        print(json.dumps(exp.to_dict(), indent=2))
        return
    run_dir = pretrain(exp, args.run_dir, progress=not args.no_progress)
    print(f"run folder: {run_dir}")
