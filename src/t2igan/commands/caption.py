"""MirrorGAN's STREAM on the command line.

* ``t2igan caption RUN_DIR image.png [more.png ...] [--beam K]``: print the STREAM caption of each
  image (greedy, or beam search with ``--beam K``). ``RUN_DIR`` is a ``t2igan pretrain stream`` run
  or a MirrorGAN run (which carries its STREAM).
* ``t2igan sample RUN "caption" ... --mirror``: after generating, print next to each input caption the
  caption the STREAM regenerates from the generated image (MirrorGAN's redescription). The STREAM is
  the MirrorGAN run's own, or any STREAM run given with ``--stream RUN`` (e.g. to redescribe what an
  AttnGAN drew). The generated images are captioned as saved (8-bit), so ``t2igan caption`` on the
  written grid cells gives the same captions.
"""

from __future__ import annotations

import torch
from PIL import Image

from ..errors import T2IError

HELP = "caption images with a MirrorGAN STREAM"


def image_tensor(path, size: int) -> torch.Tensor:
    """An image file as ``(3, size, size)`` in [-1, 1]: the centre square, resized (bicubic)."""
    from ..data.images import load_rgb
    from ..visualize import from_pil

    img = load_rgb(path)
    side = min(img.size)
    left, top = (img.width - side) // 2, (img.height - side) // 2
    img = img.crop((left, top, left + side, top + side))
    if img.size != (size, size):
        img = img.resize((size, size), Image.BICUBIC)
    return from_pil(img)


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", help="a STREAM run (`t2igan pretrain stream`) or a MirrorGAN run")
    parser.add_argument("images", nargs="+", help="image files to caption")
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy decoding)")
    parser.add_argument("--max-len", type=int, default=None, help="at most this many words (default: the STREAM's)")
    parser.add_argument("--device", default="cpu")


def run(args) -> None:
    from ..models.stream import caption_images
    from ..runs import load_stream

    if args.beam < 1:
        raise T2IError(f"--beam must be at least 1, got {args.beam}")
    stream, vocab = load_stream(args.run_dir, args.device)
    size = stream.encoder.input_size
    images = torch.stack([image_tensor(p, size) for p in args.images])
    captions = caption_images(stream, vocab, images, beam=args.beam, max_len=args.max_len)
    for path, caption in zip(args.images, captions):
        print(f"{path}: {caption}")


def print_mirror(pipe, out, stream_run: str | None = None) -> None:
    """``sample --mirror``: each input caption next to the STREAM caption of its generated image, from
    ``stream_run`` (a STREAM run folder) or else the pipeline's model's own STREAM."""
    from ..models.stream import caption_images
    from ..runs import load_stream
    from ..visualize import from_pil

    if stream_run:
        stream, vocab = load_stream(stream_run, pipe.device)
        if vocab.words != pipe.vocab.words:
            print(f"note: the STREAM in {stream_run} has its own vocabulary; captions use its words")
    elif getattr(pipe.model, "stream", None) is not None:
        stream, vocab = pipe.model.stream, pipe.vocab
    else:
        raise T2IError(f"--mirror: the {pipe.model_name} model has no STREAM captioner (MirrorGAN has); "
                       "give one with --stream <STREAM run>")
    images = torch.stack([from_pil(im) for im in out.images])
    regenerated = caption_images(stream, vocab, images)
    width = max(len(c) for c in out.captions)
    print(f"{'input caption':<{width}}  ->  STREAM caption of the generated image")
    for given, again in zip(out.captions, regenerated):
        print(f"{given:<{width}}  ->  {again}")
