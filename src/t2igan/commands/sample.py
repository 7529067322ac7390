"""``t2igan sample RUN_DIR "caption" ... [-o grid.png]``: a captioned grid of generated images, and on
request what the model shows besides: ``--attention`` (:mod:`.attention`), ``--masks`` (:mod:`.masks`),
``--mirror`` (STREAM captions, :mod:`.caption`), ``--style-transfer`` (:mod:`.style`);
``--interpolate A B`` writes a row walking from caption A to caption B instead.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import T2IError

HELP = "generate images for captions"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("captions", nargs="*")
    parser.add_argument("--n", type=int, default=8, help="images per caption")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=None, help="noise truncation (default: the model's)")
    parser.add_argument("--device", default=None)
    parser.add_argument("-o", "--output", default="samples.png")
    parser.add_argument("--interpolate", nargs=2, metavar=("CAPTION_A", "CAPTION_B"),
                        help="a row of images walking from caption A to caption B with fixed noise")
    parser.add_argument("--steps", type=int, default=8, help="images in an interpolation row")
    parser.add_argument("--attention", action="store_true",
                        help="also write <output>-attention.png: each word's attention map over the image (AttnGAN)")
    parser.add_argument("--masks", action="store_true",
                        help="also write <output>-masks.png: each generator block's predicted mask (SSA-GAN)")
    parser.add_argument("--mirror", action="store_true",
                        help="print the caption the STREAM regenerates from each generated image (MirrorGAN)")
    parser.add_argument("--stream", default=None,
                        help="with --mirror: the STREAM run to caption with (default: the MirrorGAN run's own)")
    parser.add_argument("--style-transfer", action="store_true",
                        help="also write <output>-style.png: rows = --n noise vectors, each shared by all "
                             "captions; columns = captions")


def run(args) -> None:
    from ..pipeline import Text2ImagePipeline
    from ..visualize import captioned_grid
    from .attention import write_attention
    from .caption import print_mirror
    from .masks import write_masks
    from .style import write_style_grid

    out_path = Path(args.output)
    check_image_path(out_path)
    pipe = Text2ImagePipeline.from_pretrained(args.run_dir, device=args.device)
    if args.interpolate:
        a, b = args.interpolate
        images = pipe.interpolate(a, b, steps=args.steps, seed=args.seed, truncation=args.truncation)
        labels = [f"t={i / (args.steps - 1):.2f}" for i in range(args.steps)]
        captioned_grid(images, labels, ncol=args.steps, caption_lines=1).save(out_path)
        print(f"wrote {out_path} ({args.steps} images from {a!r} to {b!r})")
        return
    if not args.captions:
        raise T2IError("give at least one caption, e.g. t2igan sample RUN_DIR \"a red circle\"")
    out = pipe(args.captions, n=args.n, seed=args.seed, truncation=args.truncation, return_output=True)
    captioned_grid(out.images, out.captions, ncol=args.n if len(args.captions) > 1 else min(8, args.n)).save(out_path)
    print(f"wrote {out_path} ({len(out.images)} images)")
    if args.attention:
        write_attention(pipe, out, out_path)
    if args.mirror:
        print_mirror(pipe, out, args.stream)
    if args.masks:
        write_masks(pipe, out, out_path)
    if args.style_transfer:
        write_style_grid(pipe, args.captions, args.n, args.seed, args.truncation, out_path)


def check_image_path(path: Path) -> None:
    """Refuse an output path PIL cannot write (unknown extension, missing folder) before any work."""
    from PIL import Image

    from ..errors import T2IError

    if path.suffix.lower() not in Image.registered_extensions():
        raise T2IError(f"cannot write {path}: unknown image extension {path.suffix!r} (use .png or .jpg)")
    if not path.parent.is_dir():
        problem = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise T2IError(f"cannot write {path}: folder {path.parent} {problem}")
    if path.is_dir():
        raise T2IError(f"cannot write {path}: it is a folder")
