"""``t2igan sample RUN_DIR "caption" ... [-o grid.png]``: a captioned grid of generated images, and on
request what the model shows besides: ``--attention`` (:mod:`.attention`), ``--masks`` (:mod:`.masks`),
``--mirror`` (STREAM captions, :mod:`.caption`), ``--style-transfer`` (:mod:`.style`);
``--interpolate A B`` writes a row walking from caption A to caption B instead.

``-o DIR/`` (a path ending in ``/``, or an existing folder) writes one PNG per caption and seed instead
of a grid, with ``manifest.json`` (file, caption, seed of each image) written last: the folder that
clean-fid or torch-fidelity read. ``--captions-file F`` adds F's lines (one caption each) to the captions.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import T2IError

HELP = "generate images for captions"


def add_arguments(parser) -> None:
    parser.add_argument("run_dir")
    parser.add_argument("captions", nargs="*")
    parser.add_argument("--captions-file", default=None,
                        help="a text file of captions, one a line (blank lines skipped), after any given as arguments")
    parser.add_argument("--n", type=int, default=8,
                        help="images per caption (into a folder: seeds --seed, --seed+1, ...)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--truncation", type=float, default=None, help="noise truncation (default: the model's)")
    parser.add_argument("--device", default=None)
    parser.add_argument("-o", "--output", default="samples.png",
                        help="a grid image (.png, .jpg), or a new folder DIR/ for one PNG per caption and seed "
                             "and a manifest.json (for clean-fid, torch-fidelity)")
    parser.add_argument("--batch-size", type=int, default=32, help="images generated at once")
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

    captions = list(args.captions) + (read_captions_file(Path(args.captions_file)) if args.captions_file else [])
    if is_folder_output(args.output):
        if args.interpolate or args.attention or args.masks or args.mirror or args.style_transfer:
            raise T2IError("-o DIR/ writes plain images; --interpolate, --attention, --masks, --mirror and "
                           "--style-transfer write a grid: give -o FILE.png")
        out_dir = Path(args.output)
        check_new_folder(out_dir)
        if not captions:
            raise T2IError("give captions (as arguments or --captions-file F) to write into a folder")
        if args.n < 1 or args.batch_size < 1:
            raise T2IError(f"--n and --batch-size must be at least 1, got {args.n} and {args.batch_size}")
        pipe = Text2ImagePipeline.from_pretrained(args.run_dir, device=args.device)
        write_folder(pipe, captions, out_dir, n=args.n, seed=args.seed, truncation=args.truncation,
                     batch_size=args.batch_size, run=args.run_dir)
        return
    out_path = Path(args.output)
    check_image_path(out_path)
    args.captions = captions
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
        raise T2IError(f"cannot write {path}: unknown image extension {path.suffix!r} "
                       "(use .png or .jpg; sample -o DIR/ writes a folder of images)")
    if not path.parent.is_dir():
        problem = "is a file, not a folder" if path.parent.exists() else "does not exist"
        raise T2IError(f"cannot write {path}: folder {path.parent} {problem}")
    if path.is_dir():
        raise T2IError(f"cannot write {path}: it is a folder")


def is_folder_output(output: str) -> bool:
    """``-o DIR/`` (ending in a path separator) or ``-o DIR`` naming an existing folder."""
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def read_captions_file(path: Path) -> list[str]:
    """The non-blank lines of ``path`` (UTF-8), stripped; one ``error:`` line if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise T2IError(f"captions file {path} does not exist") from None
    except IsADirectoryError:
        raise T2IError(f"captions file {path} is a folder") from None
    except UnicodeDecodeError:
        raise T2IError(f"captions file {path} is not UTF-8 text") from None
    captions = [line.strip() for line in text.splitlines() if line.strip()]
    if not captions:
        raise T2IError(f"captions file {path} holds no captions (one a line)")
    return captions


def check_new_folder(path: Path) -> None:
    """Refuse a folder that already holds files (nothing there is overwritten) or a path that is a file."""
    if path.is_file():
        raise T2IError(f"cannot write images into {path}: it is a file")
    if path.is_dir() and any(path.iterdir()):
        raise T2IError(f"{path} is not empty; give a new or empty folder (nothing in it is overwritten)")
    if not path.parent.is_dir():
        raise T2IError(f"cannot write images into {path}: folder {path.parent} does not exist")


def write_folder(pipe, captions: list[str], out_dir: Path, n: int, seed: int, truncation: float | None,
                 batch_size: int, run: str) -> None:
    """One PNG per caption and seed, ``{caption index}_{seed}.png``, then ``manifest.json``.

    The image of caption ``c`` and seed ``s`` is the one ``t2igan sample RUN "c" --n 1 --seed s`` draws: its
    noise is the first row of a generator seeded ``s``, so each image can be redrawn alone. Every caption
    is checked before any image is written; the manifest comes last, so a folder without one is an
    interrupted export."""
    import torch
    from tqdm.auto import tqdm

    from ..pipeline import check_finite_images
    from ..visualize import to_pil

    for i, caption in enumerate(captions):
        try:
            pipe.check_captions([caption])
        except T2IError as e:
            raise T2IError(f"caption {i + 1} of {len(captions)}: {e}") from None
    seeds = list(range(seed, seed + n))
    noise_by_seed = torch.cat([pipe.noise(1, s, truncation) for s in seeds])
    pairs = [(i, j) for i in range(len(captions)) for j in range(n)]
    noise = noise_by_seed[[j for _, j in pairs]]
    digits = max(5, len(str(len(captions) - 1)))
    out_dir.mkdir(exist_ok=True)
    records = []
    with tqdm(total=len(pairs), desc="images", unit="img") as bar:
        for batch in pipe.generate_batches([captions[i] for i, _ in pairs], noise, batch_size=batch_size,
                                           strict=True):
            images = batch.images.cpu()
            check_finite_images(images)
            for k, image in enumerate(to_pil(images)):
                i, j = pairs[batch.start + k]
                name = f"{i:0{digits}d}_{seeds[j]}.png"
                image.save(out_dir / name)
                records.append({"file": name, "caption": captions[i], "seed": seeds[j]})
            bar.update(len(images))
    manifest = {"run": str(run), "model": pipe.model_name, "truncation": pipe.default_truncation(truncation),
                "images": records}
    tmp = out_dir / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(out_dir / "manifest.json")
    print(f"wrote {len(records)} images ({len(captions)} captions x {n} seeds) and manifest.json to {out_dir}")
