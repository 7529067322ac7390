"""``t2igan sample RUN "caption" ... --attention``: where each word is attended (AttnGAN, MirrorGAN, DR-GAN).

Writes ``<output stem>-attention.png`` next to the ordinary grid: one row per generated image (a
row per caption with ``--n 1``), as in AttnGAN's figures: the image, then one map per word of the
caption, the last attention stage's ``beta`` [AttnGAN, Eq. 2] up-sampled and laid over the image
as a heat map, labelled with the word (see :func:`t2igan.visualize.attention_figure`).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from ..errors import T2IError
from ..visualize import stack_rows


def attention_rows(pipe, out) -> list[Image.Image]:
    """One :func:`attention_figure` row per image of a pipeline output (``return_output=True``),
    from its last attention stage."""
    rows = pipe.attention_figures(out)
    if rows is None:
        raise T2IError(f"--attention: the {pipe.model_name} model has no word attention "
                       "(AttnGAN, MirrorGAN and DR-GAN with num_stages >= 2 have)")
    return rows


def write_attention(pipe, out, out_path) -> None:
    """``<output stem>-attention.png`` next to ``out_path``."""
    rows = attention_rows(pipe, out)
    path = Path(out_path)
    path = path.with_name(f"{path.stem}-attention.png")
    stack_rows(rows).save(path)
    print(f"wrote {path} ({len(rows)} rows of per-word attention maps)")
