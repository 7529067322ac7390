"""``t2igan pretrain damsm|stream PRESET [section.key=value ...]``: pretrain a DAMSM (text + image
encoders) or a MirrorGAN STREAM (image captioner): ``t2igan train`` on a DAMSM or STREAM preset (the
same trainer, so ``--resume``, ``--overwrite``, torchrun and AMP work alike), refusing a preset of
another model.

Writes ``runs/NNNNN-<preset>/`` with ``config.json``, ``vocab.json``, ``model.safetensors``, checkpoints
and ``log.jsonl``, and at the end appends to ``metrics.jsonl`` and prints the R-precision (DAMSM) or the
caption scores (STREAM: BLEU-4, and on Shapes the attributes the captions name) of the real test images.
Give a DAMSM folder to a GAN as ``model.damsm_weights`` together with ``data.vocab=<run>/vocab.json``,
a STREAM folder to MirrorGAN as ``model.stream_weights`` (pretrain it with the DAMSM's
``data.vocab=<DAMSM run>/vocab.json`` so that both share one vocabulary).
"""

from __future__ import annotations

from ..errors import T2IError
from . import train

HELP = "pretrain a DAMSM text/image encoder pair or a MirrorGAN STREAM"

WHAT = ("damsm", "stream")


def add_arguments(parser) -> None:
    parser.add_argument("what", choices=WHAT, help="what to pretrain")
    train.add_arguments(parser)


def run(args) -> None:
    from ..config import apply_overrides, load_preset

    model = apply_overrides(load_preset(args.preset), args.overrides).get("model")
    if model != args.what:
        raise T2IError(f"preset {args.preset!r} is for model {model!r}, not {args.what} "
                       f"(presets: {args.what}-shapes, {args.what}-cub{', damsm-coco' if args.what == 'damsm' else ''})")
    train.run(args)
