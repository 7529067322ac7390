"""StackGAN's Inception-v3 fine-tuned on CUB birds: the classifier behind every CUB Inception Score in
the text-to-image papers (StackGAN, AttnGAN, MirrorGAN, SSA-GAN, DR-GAN).

The network is TF-Slim's ``inception_v3`` as StackGAN's ``inception_score.py``
(``hanzhanggit/StackGAN-inception-model``) builds it from ``inception/slim`` of ``tensorflow/models``:
the layers of :class:`~t2igan.metrics.inception.InceptionV3` (BatchNorm eps 0.001 without a scale, so
``bn.weight`` is 1), TensorFlow's average pools (padding left out of the mean) in every block including
the last (``mixed_8x8x2048b``; the 2015 FID graph max-pools there), and a ``1 + classes`` logits layer:
logit 0 is a background class that the score leaves out (``softmax(logits[:, 1:])``). The released
birds model has 50 classes, the CUB test classes it was fine-tuned on (51 logits).

Weights: ``t2igan convert inception-cub model.ckpt`` (:mod:`t2igan.convert.inception_cub`) turns the released
TensorFlow checkpoint into ``inception_cub-<sha256[:8]>.safetensors``. :func:`resolve_cub_weights` finds
it: an explicit path, else ``T2IGAN_INCEPTION_CUB_WEIGHTS``, else the one ``inception_cub-*.safetensors``
in the cache folder (:func:`~t2igan.metrics.inception.cache_dir`). No converted copy is published, so
nothing is downloaded: a missing file is a one-line error saying where the checkpoint comes from.
Loading checks the file's sha256 against the prefix in its name (``torch.hub``'s convention) and the
tensors against the ``tensors_sha256`` the converter stored in the file's metadata.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..errors import T2IError
from ..nn.inception import CUBInceptionV3
from .inception import cache_dir, check_file_hash

CUB_ENV = "T2IGAN_INCEPTION_CUB_WEIGHTS"
CUB_STEM = "inception_cub"
CUB_SOURCE = ("StackGAN's fine-tuned Inception (github.com/hanzhanggit/StackGAN-inception-model: "
              "inception_finetuned_models/birds_valid299/model.ckpt)")


def tensors_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor (sorted by name: name, dtype, shape, little-endian bytes): what the
    converter stores in the file's metadata and the loader checks."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().contiguous().cpu()
        h.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _missing(where: str) -> T2IError:
    return T2IError(f"CUB Inception weights not found ({where}); they come from {CUB_SOURCE}: convert that "
                    f"checkpoint with `t2igan convert inception-cub model.ckpt` (writes {CUB_STEM}-<hash>.safetensors "
                    f"into {cache_dir()}), or give the converted file: --is-network cub PATH or {CUB_ENV}=PATH "
                    f"(another network, not the papers' CUB protocol: --is-network fid)")


def resolve_cub_weights(path: str | Path | None = None) -> Path:
    """The converted weights file: ``path``, else ``$T2IGAN_INCEPTION_CUB_WEIGHTS``, else the single
    ``inception_cub-*.safetensors`` in the cache folder."""
    for given, origin in ((path, "path"), (os.environ.get(CUB_ENV), CUB_ENV)):
        if given:
            given = Path(given).expanduser()
            if not given.is_file():
                raise _missing(f"{given} given by {origin} is not a file")
            return given
    found = sorted(cache_dir().glob(f"{CUB_STEM}-*.safetensors"))
    if len(found) > 1:
        raise T2IError(f"{len(found)} converted CUB Inceptions in {cache_dir()} ({', '.join(p.name for p in found)}): "
                       f"keep one or choose with --is-network cub PATH")
    if not found:
        raise _missing(f"none in {cache_dir()}")
    return found[0]


def load_cub_inception(path: str | Path | None = None, input_range: str = "[-1,1]",
                       device: str | torch.device = "cpu") -> tuple[CUBInceptionV3, Path]:
    """``(network, weights file)``: the converted StackGAN CUB Inception, hash-checked, in eval mode."""
    from safetensors import SafetensorError, safe_open

    file = resolve_cub_weights(path)
    check_file_hash(file)
    try:
        with safe_open(str(file), "pt") as f:
            metadata = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise T2IError(f"{file}: not a readable safetensors file ({str(e)[:200]})") from None
    expected = metadata.get("tensors_sha256")
    if expected is None:
        raise T2IError(f"{file} has no tensors_sha256 in its metadata: not written by `t2igan convert inception-cub`")
    if tensors_sha256(state) != expected:
        raise T2IError(f"{file}: its tensors do not match the sha256 recorded when it was converted (corrupt file)")
    if "fc.weight" not in state or state["fc.weight"].dim() != 2:
        raise T2IError(f"{file} has no 2-D fc.weight: not a converted Inception")
    model = CUBInceptionV3(num_classes=int(state["fc.weight"].shape[0]), input_range=input_range)
    model.load_official_state_dict(state, source=str(file))
    return model.to(device), file
