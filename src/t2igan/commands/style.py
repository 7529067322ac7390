"""``t2igan sample RUN "caption A" "caption B" ... --style-transfer``: one noise vector per row, shared
by every caption of that row, so a row shows the captions rendered in one "style" (pose, background:
what the noise encodes), and a column shows one caption under different noise [Reed et al. 2016,
Sec. 5.3 / Fig. 6, with the noise drawn rather than inferred from an image].

Writes ``<output stem>-style.png`` next to the ordinary grid: rows = ``--n`` noise vectors drawn from
``--seed``, columns = captions.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from .. import cli
from ..errors import T2IError
from ..visualize import captioned_grid, to_pil


def style_transfer(pipe, captions: list[str], n: int = 4, seed: int = 0, truncation: float | None = None,
                   batch_size: int = 32) -> list[list[Image.Image]]:
    """``n`` rows of ``len(captions)`` images: row ``r`` uses noise vector ``r`` (of ``n`` drawn from
    ``seed``) for every caption. The same seed gives the same grid."""
    pipe.check_captions(captions)
    if n < 1:
        raise T2IError(f"n must be at least 1, got {n}")
    if n * len(captions) > pipe.max_images:
        raise T2IError(f"{n * len(captions)} images requested; at most {pipe.max_images} per call")
    if truncation is None:
        truncation = getattr(pipe.model.config, "truncation", None)
    noise = pipe.noise(n, seed, truncation)  # (n, z)
    cols = len(captions)
    images, _ = pipe.generate(captions * n, noise.repeat_interleave(cols, dim=0), batch_size)  # row-major
    pil = to_pil(images)
    return [pil[r * cols: (r + 1) * cols] for r in range(n)]


def style_output_path(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}-style{out_path.suffix or '.png'}")


def add_flags(parser) -> None:
    parser.add_argument("--style-transfer", action="store_true",
                        help="also write <output>-style.png: rows = --n noise vectors, each shared by all "
                             "captions; columns = captions")


def write_style_grid(args, pipe, out, out_path) -> None:
    if not getattr(args, "style_transfer", False):
        return
    rows = style_transfer(pipe, args.captions, n=args.n, seed=args.seed, truncation=args.truncation)
    cols = len(args.captions)
    path = style_output_path(out_path)
    captioned_grid([im for row in rows for im in row], list(args.captions) * len(rows), ncol=cols).save(path)
    print(f"wrote {path} (style transfer: {len(rows)} noise vectors x {cols} captions)")


cli.SAMPLE_FLAGS.append(add_flags)
cli.SAMPLE_HOOKS.append(write_style_grid)
