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

from ..errors import T2IError

HELP = "caption images with a MirrorGAN STREAM"


def image_tensor(path, size: int):
    """An image file as a ``(3, size, size)`` tensor in [-1, 1]: the centre square, resized (bicubic)."""
    from PIL import Image

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
    parser.add_argument("run_dir", metavar="RUN", help="a STREAM run (`t2igan pretrain stream`), a MirrorGAN run, or "
                                                       "a bundled MirrorGAN's name (shapes-mirrorgan)")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files to caption")
    parser.add_argument("--beam", type=int, default=1, help="beam width (1: greedy decoding)")
    parser.add_argument("--max-len", type=int, default=None, help="at most this many words (default: the STREAM's)")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N, mps")


def run(args) -> None:
    import torch

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


def print_mirror(pipe, out, stream_and_vocab) -> None:
    """``sample --mirror``: each input caption next to the STREAM caption of its generated image, from the
    ``(STREAM, vocabulary)`` that ``sample`` loaded (``--stream RUN``, or the model's own STREAM)."""
    import torch

    from ..models.stream import caption_images
    from ..visualize import from_pil

    stream, vocab = stream_and_vocab
    if vocab.words != pipe.vocab.words:
        print("note: the STREAM has its own vocabulary; its captions use its words")
    images = torch.stack([from_pil(im) for im in out.images])
    regenerated = caption_images(stream, vocab, images)
    width = max(len(c) for c in out.captions)
    print(f"{'input caption':<{width}}  ->  STREAM caption of the generated image")
    for given, again in zip(out.captions, regenerated):
        print(f"{given:<{width}}  ->  {again}")
