"""``t2igan convert inception-cub model.ckpt``: StackGAN's CUB-fine-tuned Inception-v3 (a TensorFlow
checkpoint of TF-Slim's ``inception_v3``) -> ``inception_cub-<sha256[:8]>.safetensors`` for
:class:`t2igan.nn.inception.CUBInceptionV3`.

The checkpoint is read by :mod:`t2igan.convert.tf_checkpoint` (V1 file or V2 prefix, no TensorFlow needed).
Variable names follow ``inception/slim/inception_model.py`` of ``tensorflow/models`` (read, not copied):
``conv0`` ... ``conv4``, then ``mixed_35x35x256a``, ``mixed_35x35x288a/b``, ``mixed_17x17x768a`` ... ``e``,
``mixed_17x17x1280a`` (the 8x8 reduction keeps its old name), ``mixed_8x8x2048a/b``, each with branch
scopes whose convolutions are named ``Conv``, ``Conv_1``, ... in the order the code creates them, and
``logits/logits``. A convolution holds ``weights`` (kh, kw, in, out) and ``BatchNorm/{beta, moving_mean,
moving_variance}`` (slim's batch norm has no scale unless ``BatchNorm/gamma`` is present); the logits
layer ``weights`` (2048, classes) and ``biases``.

StackGAN's ``inception_score.py`` restores the variables through
``ExponentialMovingAverage(0.9999).variables_to_restore()``: wherever the checkpoint holds
``NAME/ExponentialMovingAverage`` (the trainable variables and, as slim puts them in the moving-average
collection, the batch-norm statistics), that average is what the network uses, so it is what is
converted here. Optimiser slots, ``global_step`` and the auxiliary head (``aux_logits/*``, training only)
are left out.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..errors import T2IError

EMA_SUFFIX = "/ExponentialMovingAverage"


def _convs(scope: str, branch: str, modules: list[str]) -> list[tuple[str, str]]:
    """slim names its unnamed convolutions ``Conv``, ``Conv_1``, ... within a branch scope."""
    return [(f"{scope}/{branch}/{'Conv' if i == 0 else f'Conv_{i}'}", m) for i, m in enumerate(modules)]


def slim_inception_v3_layers() -> list[tuple[str, str]]:
    """``[(slim scope, t2igan module)]`` for the 94 convolutions (conv + batch norm) of Inception-v3."""
    layers = [("conv0", "Conv2d_1a_3x3"), ("conv1", "Conv2d_2a_3x3"), ("conv2", "Conv2d_2b_3x3"),
              ("conv3", "Conv2d_3b_1x1"), ("conv4", "Conv2d_4a_3x3")]
    for scope, m in (("mixed_35x35x256a", "Mixed_5b"), ("mixed_35x35x288a", "Mixed_5c"), ("mixed_35x35x288b", "Mixed_5d")):
        layers += _convs(scope, "branch1x1", [f"{m}.branch1x1"])
        layers += _convs(scope, "branch5x5", [f"{m}.branch5x5_1", f"{m}.branch5x5_2"])
        layers += _convs(scope, "branch3x3dbl", [f"{m}.branch3x3dbl_{k}" for k in (1, 2, 3)])
        layers += _convs(scope, "branch_pool", [f"{m}.branch_pool"])
    layers += _convs("mixed_17x17x768a", "branch3x3", ["Mixed_6a.branch3x3"])
    layers += _convs("mixed_17x17x768a", "branch3x3dbl", [f"Mixed_6a.branch3x3dbl_{k}" for k in (1, 2, 3)])
    for scope, m in zip(("mixed_17x17x768b", "mixed_17x17x768c", "mixed_17x17x768d", "mixed_17x17x768e"),
                        ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e")):
        layers += _convs(scope, "branch1x1", [f"{m}.branch1x1"])
        layers += _convs(scope, "branch7x7", [f"{m}.branch7x7_{k}" for k in (1, 2, 3)])  # 1x1, 1x7, 7x1
        layers += _convs(scope, "branch7x7dbl", [f"{m}.branch7x7dbl_{k}" for k in (1, 2, 3, 4, 5)])  # 1x1, 7x1, 1x7, ...
        layers += _convs(scope, "branch_pool", [f"{m}.branch_pool"])
    layers += _convs("mixed_17x17x1280a", "branch3x3", ["Mixed_7a.branch3x3_1", "Mixed_7a.branch3x3_2"])
    layers += _convs("mixed_17x17x1280a", "branch7x7x3", [f"Mixed_7a.branch7x7x3_{k}" for k in (1, 2, 3, 4)])
    for scope, m in (("mixed_8x8x2048a", "Mixed_7b"), ("mixed_8x8x2048b", "Mixed_7c")):
        layers += _convs(scope, "branch1x1", [f"{m}.branch1x1"])
        # the 1x3 conv is created before the 3x1 one: Conv_1, Conv_2 (and Conv_2, Conv_3 after 1x1, 3x3)
        layers += _convs(scope, "branch3x3", [f"{m}.branch3x3_1", f"{m}.branch3x3_2a", f"{m}.branch3x3_2b"])
        layers += _convs(scope, "branch3x3dbl", [f"{m}.branch3x3dbl_1", f"{m}.branch3x3dbl_2",
                                                 f"{m}.branch3x3dbl_3a", f"{m}.branch3x3dbl_3b"])
        layers += _convs(scope, "branch_pool", [f"{m}.branch_pool"])
    return layers


LOGITS = "logits/logits"


def slim_to_state_dict(read, names: set[str], source: str) -> tuple[dict[str, torch.Tensor], dict]:
    """slim Inception-v3 tensors -> t2igan ``InceptionV3`` state dict (+ what was used).

    ``read(name)`` returns a variable as a numpy array, ``names`` is every name in the checkpoint. Each
    variable is taken from ``NAME/ExponentialMovingAverage`` when present, else from ``NAME``.
    """
    used_ema = used_raw = 0

    def get(name: str, required: bool = True):
        nonlocal used_ema, used_raw
        if name + EMA_SUFFIX in names:
            used_ema += 1
            return torch.from_numpy(np.array(read(name + EMA_SUFFIX), dtype=np.float32))
        if name in names:
            used_raw += 1
            return torch.from_numpy(np.array(read(name), dtype=np.float32))
        if required:
            raise T2IError(f"{source} has no {name!r}: not TF-Slim's inception_v3 (StackGAN's fine-tuned Inception)")
        return None

    state = {}
    for scope, module in slim_inception_v3_layers():
        w = get(f"{scope}/weights")
        if w.dim() != 4:
            raise T2IError(f"{source}: {scope}/weights has shape {tuple(w.shape)}, expected (kh, kw, in, out)")
        out_channels = w.shape[3]
        state[f"{module}.conv.weight"] = w.permute(3, 2, 0, 1).contiguous()  # (out, in, kh, kw)
        gamma = get(f"{scope}/BatchNorm/gamma", required=False)
        state[f"{module}.bn.weight"] = gamma if gamma is not None else torch.ones(out_channels)
        state[f"{module}.bn.bias"] = get(f"{scope}/BatchNorm/beta")
        state[f"{module}.bn.running_mean"] = get(f"{scope}/BatchNorm/moving_mean")
        state[f"{module}.bn.running_var"] = get(f"{scope}/BatchNorm/moving_variance")
    w = get(f"{LOGITS}/weights")
    if w.dim() != 2:
        raise T2IError(f"{source}: {LOGITS}/weights has shape {tuple(w.shape)}, expected (2048, classes)")
    state["fc.weight"] = w.t().contiguous()  # (classes, 2048)
    state["fc.bias"] = get(f"{LOGITS}/biases")
    return state, {"ema_variables": used_ema, "plain_variables": used_raw}


def file_sha256(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def convert_inception_cub(checkpoint: str | Path, output: str | Path | None = None) -> Path:
    """StackGAN's ``birds_valid299/model.ckpt`` (V1 file or V2 prefix) -> ``OUTPUT/inception_cub-<sha8>.safetensors``
    (``output``: a folder, default the cache folder that ``--is-network cub`` searches)."""
    from ..hub import save_safetensors
    from ..metrics.inception import cache_dir
    from ..metrics.inception_cub import CUB_STEM, tensors_sha256
    from ..nn.inception import CUBInceptionV3
    from .tf_checkpoint import TFCheckpoint

    out_dir = Path(output).expanduser() if output else cache_dir()
    if out_dir.exists() and not out_dir.is_dir():
        raise T2IError(f"-o {out_dir}: give a folder (the file is named {CUB_STEM}-<sha256 prefix>.safetensors)")
    with TFCheckpoint(checkpoint) as ckpt:
        source = str(ckpt.path)
        state, used = slim_to_state_dict(ckpt.read, set(ckpt.variables()), source)
        source_files = ckpt.files()
        source_format = ckpt.format
    num_classes = state["fc.weight"].shape[0]
    model = CUBInceptionV3(num_classes=num_classes)
    model.load_official_state_dict(state, source=source)  # every name and shape checked
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    metadata = {"format": "pt", "network": "stackgan-cub-inception-v3", "num_classes": str(num_classes),
                "background_class": "0", "source": Path(source).name, "source_format": source_format,
                "source_sha256": file_sha256(source_files), "ema_variables": str(used["ema_variables"]),
                "plain_variables": str(used["plain_variables"]), "tensors_sha256": tensors_sha256(state)}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{CUB_STEM}.safetensors.tmp"
    save_safetensors(state, tmp, metadata)
    digest = file_sha256([tmp])
    final = out_dir / f"{CUB_STEM}-{digest[:8]}.safetensors"
    tmp.replace(final)
    return final


def describe(path: Path) -> str:
    """A one-line summary of a converted file, from its metadata."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    return (f"({int(meta['num_classes']) - 1} classes + background, from the {meta['source_format']} checkpoint "
            f"{meta['source']}, {meta['ema_variables']} moving-average and {meta['plain_variables']} plain variables)")
