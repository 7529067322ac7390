"""How images reach the Inception network for the Inception Score: the input protocols.

An IS is comparable only with another computed under the same protocol (network, resize, normalisation,
splits). t2igan offers two:

* ``torch``: t2igan's own. The generator's float images are resized to 299 x 299 by PyTorch's bilinear
  interpolation (``align_corners=False``: half-pixel centres) and fed in [-1, 1] (``p / 127.5 - 1``);
  images in the order they were generated, 10 splits.
* ``paper``: what the papers' evaluation code computed. Their images were PNG files, so the float image
  is first saved as 8-bit the way the official samplers save it (AttnGAN ``trainer.py``, DF-GAN,
  SSA-GAN: ``uint8((x + 1) * 127.5)``, truncation); then, by network:

  - the 2015 TensorFlow Inception (``fid``: ``openai/improved-gan`` ``inception_score/model.py``, the COCO
    scores): the graph's own preprocessing, TF1 ``ResizeBilinear`` to 299 (``align_corners=False`` without
    half-pixel centres: output pixel ``i`` samples the input at ``i * in / out``) and ``(p - 128) / 128``;
    softmax of ``pool3 W`` (no bias); the images in order, 10 splits.
  - StackGAN's CUB Inception (``cub``: ``hanzhanggit/StackGAN-inception-model`` ``inception_score.py``,
    the CUB scores): ``scipy.misc.imresize(img, (299, 299), interp="bilinear")``, i.e. Pillow's bilinear
    resize of the 8-bit image (rounded back to 8 bits), then ``p / 127.5 - 1``; softmax over the logits
    without the background class; the images shuffled, only whole batches of 64 scored, 10 splits.

The shuffle is seeded (the original one is not): :func:`stackgan_selection`.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ..errors import T2IError

PROTOCOLS = ("torch", "paper")
INPUT_SIZE = 299
STACKGAN_BATCH = 64


def to_pixels(images: torch.Tensor, input_range: str = "[-1,1]") -> torch.Tensor:
    """Float images -> their 8-bit values (as float32) as the official samplers save them:
    ``uint8((x + 1) * 127.5)`` for [-1, 1] (``uint8(x * 255)`` for [0, 1]), clamped to [0, 255]."""
    x = images.detach().float()
    scaled = (x + 1) * 127.5 if input_range == "[-1,1]" else x * 255
    return scaled.clamp(0, 255).floor()


def tf1_resize_bilinear(x: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """TensorFlow 1's ``ResizeBilinear`` with ``align_corners=False`` and ``half_pixel_centers=False``
    (``tensorflow/core/kernels/image/resize_bilinear_op.cc``) on (B, C, H, W): output row ``y`` samples
    input row ``y * H / out_h`` (float32 scale), between rows ``floor`` and ``min(floor + 1, H - 1)``;
    likewise for columns. Same float32 operation order as the kernel."""
    out_h, out_w = (size, size) if isinstance(size, int) else size
    in_h, in_w = x.shape[-2:]
    x = x.float()

    def axis(n_in: int, n_out: int):
        scale = np.float32(n_in) / np.float32(n_out)
        src = np.arange(n_out, dtype=np.float32) * scale
        lo = np.floor(src).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return (torch.from_numpy(lo).to(x.device), torch.from_numpy(hi).to(x.device),
                torch.from_numpy(src - lo.astype(np.float32)).to(x.device))

    y0, y1, dy = axis(in_h, out_h)
    x0, x1, dx = axis(in_w, out_w)
    top, bottom = x[..., y0, :], x[..., y1, :]
    top_left, top_right = top[..., x0], top[..., x1]
    bottom_left, bottom_right = bottom[..., x0], bottom[..., x1]
    top = top_left + (top_right - top_left) * dx
    bottom = bottom_left + (bottom_right - bottom_left) * dx
    return top + (bottom - top) * dy[:, None]


def improved_gan_input(images: torch.Tensor, input_range: str = "[-1,1]") -> torch.Tensor:
    """The 2015 TF graph's input for the ``paper`` protocol: 8-bit pixels, TF1 bilinear resize to 299,
    ``(p - 128) / 128``; (B, 3, 299, 299) float32."""
    return (tf1_resize_bilinear(to_pixels(images, input_range), INPUT_SIZE) - 128.0) / 128.0


def stackgan_input(images: torch.Tensor, input_range: str = "[-1,1]") -> torch.Tensor:
    """StackGAN's input for the ``paper`` protocol: 8-bit pixels, Pillow's bilinear resize to 299 x 299
    (what ``scipy.misc.imresize(..., interp="bilinear")`` calls), ``p / 127.5 - 1``; (B, 3, 299, 299)."""
    pixels = to_pixels(images, input_range).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, 3)
    out = np.stack([np.asarray(Image.fromarray(p, "RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.BILINEAR))
                    for p in pixels])
    return torch.from_numpy(out.astype(np.float32) / 127.5 - 1.0).permute(0, 3, 1, 2).contiguous()


def stackgan_selection(n: int, seed: int) -> np.ndarray:
    """Which of ``n`` images StackGAN's ``get_inception_score`` scores, in which order: a shuffle, then
    the first ``floor(n / 64)`` batches of 64 (all ``n`` when fewer than 64)."""
    order = np.random.default_rng(seed).permutation(n)
    keep = n // STACKGAN_BATCH * STACKGAN_BATCH
    return order[:keep] if keep else order


def check_protocol(protocol: str, network: str) -> None:
    if protocol not in PROTOCOLS:
        raise T2IError(f"unknown IS protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if protocol == "paper" and network not in ("fid", "cub"):
        raise T2IError(f"the paper IS protocol is defined for the fid (2015 TF graph, COCO papers) and cub "
                       f"(StackGAN, CUB papers) networks, not {network!r}; use --is-protocol torch")
