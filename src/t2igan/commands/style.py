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

from ..visualize import captioned_grid, to_pil


def style_transfer(pipe, captions: list[str], n: int = 4, seed: int = 0, truncation: float | None = None,
                   batch_size: int = 32) -> list[list[Image.Image]]:
    """``n`` rows of ``len(captions)`` images: row ``r`` uses noise vector ``r`` (of ``n`` drawn from
    ``seed``) for every caption. The same seed gives the same grid."""
    pipe.check_captions(captions)
    pipe.check_count(n * len(captions), n)
    cols = len(captions)
    noise = pipe.noise(n, seed, truncation).repeat_interleave(cols, dim=0)  # (n * cols, z), row-major
    pil = [im for batch in pipe.generate_batches(captions * n, noise, batch_size=batch_size, strict=True)
           for im in to_pil(batch.images)]
    return [pil[r * cols: (r + 1) * cols] for r in range(n)]


def style_output_path(out_path: str | Path) -> Path:
    out_path = Path(out_path)
    return out_path.with_name(f"{out_path.stem}-style{out_path.suffix or '.png'}")


def write_style_grid(pipe, captions: list[str], n: int, seed: int, truncation: float | None, out_path) -> None:
    """``<output stem>-style.png`` next to ``out_path``: :func:`style_transfer` as a captioned grid."""
    rows = style_transfer(pipe, captions, n=n, seed=seed, truncation=truncation)
    cols = len(captions)
    path = style_output_path(out_path)
    captioned_grid([im for row in rows for im in row], list(captions) * len(rows), ncol=cols).save(path)
    print(f"wrote {path} (style transfer: {len(rows)} noise vectors x {cols} captions)")

