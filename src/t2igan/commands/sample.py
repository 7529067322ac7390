"""``t2igan sample RUN "caption" ... [-o grid.png | -o DIR/]``: generated images for captions.

* ``-o FILE.png`` (default ``samples.png``): a grid, one row per caption (``--n`` seeds each), each image
  labelled with what the model read of its caption (the caption, or its words as read when some are
  unknown or past the model's length); and on request what the model shows besides: ``--attention``
  (:mod:`.attention`), ``--masks`` (:mod:`.masks`), ``--mirror`` (STREAM captions, :mod:`.caption`),
  ``--style-transfer`` (:mod:`.style`). ``--interpolate A B`` writes a row walking from caption A to B.
* ``-o DIR/`` (a trailing slash, or a folder that exists): one PNG per caption and seed, and
  ``manifest.json`` (written last) saying which caption and seed made each file, for tools that read
  a folder of images (torch-fidelity, clean-fid). In a folder, image ``k`` of a caption is drawn from
  seed ``--seed + k`` alone, so ``t2igan sample RUN "that caption" --n 1 --seed S -o x.png`` draws
  file ``...-seedS.png`` again.

``--captions-file F`` adds the captions of a text file, one per line (blank lines skipped). Every
option, caption and output path is checked before anything is generated or written; unknown words
are a one-line warning (a caption with no known word is an error).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..errors import T2IError

HELP = "generate images for captions: a grid, or one PNG per caption and seed in a folder"
MANIFEST = "manifest.json"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN",
                        help="a run folder, a checkpoint in it (RUN/checkpoints/step-N.safetensors: its moving-average "
                             "generator) or a bundled model's name (t2igan list-pretrained)")
    parser.add_argument("captions", nargs="*", metavar="CAPTION", help="captions to draw, one grid row each")
    parser.add_argument("--captions-file", metavar="FILE",
                        help="also draw the captions of this text file, one per line (blank lines skipped)")
    parser.add_argument("--n", type=int, default=8, help="images (seeds) per caption")
    parser.add_argument("--seed", type=int, default=0,
                        help="noise seed: the same seed draws the same images (with -o DIR/: seeds SEED .. SEED+n-1)")
    parser.add_argument("--truncation", type=float, default=None,
                        help="noise truncation, 0 = none (default: the model's own, e.g. DF-GAN's 0.88)")
    parser.add_argument("--device", default=None, help="torch device: cpu, cuda, cuda:N, mps (default: cuda if "
                                                       "available, else cpu)")
    parser.add_argument("-o", "--output", default="samples.png",
                        help="FILE.png (or .jpg): a captioned grid; DIR/ (trailing slash) or an existing folder: one "
                             "PNG per caption and seed plus manifest.json. A name without an extension is refused")
    parser.add_argument("--batch-size", type=int, default=32, help="images generated at a time")
    parser.add_argument("--interpolate", nargs=2, metavar=("CAPTION_A", "CAPTION_B"),
                        help="instead: a row of --steps images walking from caption A to caption B with fixed noise")
    parser.add_argument("--steps", type=int, default=8, help="images in an --interpolate row")
    parser.add_argument("--attention", action="store_true",
                        help="also write <output>-attention.png: each word's attention map over the image (models with "
                             "word attention: AttnGAN, MirrorGAN, DR-GAN)")
    parser.add_argument("--masks", action="store_true",
                        help="also write <output>-masks.png: each generator block's predicted mask (models that "
                             "predict masks: SSA-GAN, DR-GAN)")
    parser.add_argument("--mirror", action="store_true",
                        help="print the caption a STREAM regenerates from each generated image (MirrorGAN's own "
                             "STREAM, or any model's with --stream)")
    parser.add_argument("--stream", default=None, metavar="RUN",
                        help="with --mirror: the STREAM or MirrorGAN run (or bundled name) to caption with "
                             "(default: the model's own)")
    parser.add_argument("--style-transfer", action="store_true",
                        help="also write <output>-style.png: rows = --n noise vectors, each shared by all "
                             "captions; columns = captions")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (-o DIR/ with many images)")


# ---------------------------------------------------------------------------------------------------
# checks made before anything is loaded or written


def is_folder_output(output: str) -> bool:
    """``-o DIR/`` (a trailing slash) or ``-o DIR`` naming a folder that exists."""
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def check_image_path(path: Path) -> None:
    """Refuse an output path PIL cannot write (no or unknown extension, missing folder) before any work."""
    from PIL import Image

    if not path.suffix:
        raise T2IError(f"cannot write {path}: no image extension; give {path}.png for a grid, or {path}/ for a "
                       "folder of single images")
    if path.suffix.lower() not in Image.registered_extensions():
        raise T2IError(f"cannot write {path}: unknown image extension {path.suffix!r} (use .png or .jpg)")
    if not path.parent.is_dir():
        problem = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise T2IError(f"cannot write {path}: folder {path.parent} {problem}")


def check_output_folder(folder: Path) -> None:
    """A folder of single images must be new or hold no images yet (two calls' images would mix)."""
    if folder.exists() and not folder.is_dir():
        raise T2IError(f"cannot write into {folder}: it is a file, not a folder")
    if folder.is_dir():
        pngs = sum(1 for _ in folder.glob("*.png"))
        if pngs or (folder / MANIFEST).exists():
            raise T2IError(f"{folder} already holds {pngs} PNG file(s){' and a ' + MANIFEST if (folder / MANIFEST).exists() else ''}; "
                           "write into a new or empty folder, so that the images of two calls do not mix")
    for parent in folder.parents:  # the nearest folder that exists must be a folder
        if parent.exists():
            if not parent.is_dir():
                raise T2IError(f"cannot write into {folder}: {parent} is a file, not a folder")
            break


def read_captions_file(path: str) -> list[str]:
    """The non-blank lines of a UTF-8 text file."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise T2IError(f"captions file not found: {path}") from None
    except IsADirectoryError:
        raise T2IError(f"--captions-file {path} is a folder, not a text file") from None
    except UnicodeDecodeError as e:
        raise T2IError(f"captions file {path} is not UTF-8 text (byte {e.start})") from None
    captions = [line.strip() for line in text.splitlines() if line.strip()]
    if not captions:
        raise T2IError(f"captions file {path} holds no caption (one per line)")
    return captions


def check_options(args, folder: bool) -> None:
    """Option combinations that cannot work, refused before anything is loaded."""
    if args.n < 1:
        raise T2IError(f"n must be at least 1, got {args.n}")
    if args.batch_size < 1:
        raise T2IError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.stream and not args.mirror:
        raise T2IError("--stream names the STREAM of --mirror: add --mirror")
    figures = [f"--{name.replace('_', '-')}" for name in ("attention", "masks", "mirror", "style_transfer")
               if getattr(args, name)]
    if args.interpolate:
        if args.captions or args.captions_file:
            raise T2IError("--interpolate takes its two captions itself: leave out the other captions")
        if figures:
            raise T2IError(f"{', '.join(figures)} cannot be combined with --interpolate (it writes one row)")
        if folder:
            raise T2IError("--interpolate writes one row image: give -o FILE.png")
    elif folder and figures:
        raise T2IError(f"{', '.join(figures)} write or print figures beside a grid: give -o FILE.png (a folder gets "
                       "the single images and manifest.json only)")


def caption_warnings(pipe, captions: list[str]) -> list[str]:
    """At most two lines: the words the model does not know, and the captions longer than it reads."""
    unknown, long = {}, 0
    for caption in captions:
        for word in pipe.vocab.unknown_words(caption):
            unknown.setdefault(word, set()).add(caption)
        long += len(pipe.vocab.encode(caption)) > pipe.max_words
    lines = []
    if unknown:
        words = list(unknown)
        shown = ", ".join(repr(w) for w in words[:8]) + (f" and {len(words) - 8} more" if len(words) > 8 else "")
        hit = len(set().union(*unknown.values()))
        where = f" (in {hit} of {len(captions)} captions)" if len(captions) > 1 else ""
        read_as = "read as <unk>" if pipe.vocab.unk_token else "left out"
        lines.append(f"warning: the {pipe.model_name} model does not know {shown}{where}: {read_as}; "
                     "the labels show what it read")
    if long:
        lines.append(f"warning: {long} caption(s) longer than the model's {pipe.max_words} words: it reads the "
                     f"first {pipe.max_words}")
    return lines


def check_figures(pipe, args):
    """Refuse --attention / --masks / --mirror on a model that cannot give them; load --stream. Returns the
    (STREAM, vocabulary) of --mirror, or None."""
    if args.attention and not pipe.shows("attention"):
        raise T2IError(f"--attention: the {pipe.model_name} model has no word attention (AttnGAN, MirrorGAN and "
                       "DR-GAN have)")
    if args.masks and not pipe.shows("masks"):
        raise T2IError(f"--masks: the {pipe.model_name} model predicts no masks (SSA-GAN and DR-GAN do)")
    if not args.mirror:
        return None
    from ..runs import load_stream

    if args.stream:
        return load_stream(args.stream, pipe.device)
    if not pipe.shows("stream"):
        raise T2IError(f"--mirror: the {pipe.model_name} model has no STREAM captioner (MirrorGAN has); "
                       "give one with --stream <STREAM run>")
    return pipe.model.stream, pipe.vocab


# ---------------------------------------------------------------------------------------------------
# running


def run(args) -> None:
    from ..pipeline import Text2ImagePipeline

    folder = is_folder_output(args.output)
    out_path = Path(args.output)
    check_options(args, folder)
    if folder:
        check_output_folder(out_path)
    else:
        check_image_path(out_path)
    captions = list(args.captions) + (read_captions_file(args.captions_file) if args.captions_file else [])
    if not captions and not args.interpolate:
        raise T2IError("give at least one caption, e.g. t2igan sample RUN \"a red circle\" (or --captions-file FILE)")
    pipe = Text2ImagePipeline.from_pretrained(args.run_dir, device=args.device)
    if args.interpolate:
        return write_interpolation(pipe, args, out_path)
    pipe.check_captions(captions)
    pipe.noise(0, args.seed, args.truncation)  # checks the seed and truncation
    if not folder and len(captions) * args.n > pipe.max_images:
        raise T2IError(f"{len(captions) * args.n} images do not fit one grid (at most {pipe.max_images}); write them "
                       "to a folder instead: -o DIR/")
    stream = check_figures(pipe, args)
    for line in caption_warnings(pipe, captions):
        print(line, file=sys.stderr)
    if folder:
        return write_folder(pipe, args, captions, out_path)
    write_grid(pipe, args, captions, out_path, stream)


def write_interpolation(pipe, args, out_path: Path) -> None:
    from ..visualize import captioned_grid

    a, b = args.interpolate
    images = pipe.interpolate(a, b, steps=args.steps, seed=args.seed, truncation=args.truncation)
    labels = [f"t={i / (args.steps - 1):.2f}" for i in range(args.steps)]
    captioned_grid(images, labels, ncol=args.steps, caption_lines=1).save(out_path)
    print(f"wrote {out_path} ({args.steps} images from {a!r} to {b!r})")


def write_grid(pipe, args, captions: list[str], out_path: Path, stream) -> None:
    from ..visualize import captioned_grid
    from .attention import write_attention
    from .caption import print_mirror
    from .masks import write_masks
    from .style import write_style_grid

    out = pipe(captions, n=args.n, seed=args.seed, truncation=args.truncation, batch_size=args.batch_size,
               return_output=True)
    read = {c: pipe.read_caption(c) for c in captions}
    ncol = args.n if len(captions) > 1 else min(8, args.n)
    captioned_grid(out.images, [read[c] for c in out.captions], ncol=ncol).save(out_path)
    print(f"wrote {out_path} ({len(out.images)} images)")
    if args.attention:
        write_attention(pipe, out, out_path)
    if args.mirror:
        print_mirror(pipe, out, stream)
    if args.masks:
        write_masks(pipe, out, out_path)
    if args.style_transfer:
        write_style_grid(pipe, captions, args.n, args.seed, args.truncation, out_path)


def write_folder(pipe, args, captions: list[str], folder: Path) -> None:
    """One PNG per caption and seed, then ``manifest.json``: the run, the truncation and, per file, its
    caption, what the model read of it and its seed."""
    from tqdm.auto import tqdm

    from ..hub import atomic_write_bytes
    from ..pipeline import check_finite_images
    from ..visualize import to_pil

    seeds = [args.seed + k for k in range(args.n)]
    expanded = [(i, c, s) for i, c in enumerate(captions) for s in seeds]
    noise = pipe.seeded_noise([s for _, _, s in expanded], args.truncation)
    folder.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(len(captions) - 1)))
    read = {c: pipe.read_caption(c) for c in captions}
    records, size = [], None
    bar = tqdm(total=len(expanded), unit="img", desc="sample", disable=args.no_progress or len(expanded) <= args.batch_size)
    for batch in pipe.generate_batches([c for _, c, _ in expanded], noise, batch_size=args.batch_size, strict=True):
        check_finite_images(batch.images)
        for j, image in enumerate(to_pil(batch.images.cpu())):
            i, caption, seed = expanded[batch.start + j]
            name = f"{i:0{width}d}-seed{seed}.png"
            image.save(folder / name)
            size = image.width
            records.append({"file": name, "caption": caption, "read": read[caption], "seed": seed})
        bar.update(len(batch.images))
    bar.close()
    head = {"run": pipe.source, "model": pipe.model_name, "image_size": size,
            "truncation": pipe.default_truncation(args.truncation), "images_per_caption": args.n, "seeds": seeds}
    text = (json.dumps(head, ensure_ascii=False)[:-1] + ', "images": [\n'  # one image a line
            + ",\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n]}\n")
    atomic_write_bytes(folder / MANIFEST, text.encode())
    print(f"wrote {len(records)} images and {MANIFEST} to {folder}")

