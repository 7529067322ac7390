"""Official DF-GAN checkpoints (github.com/tobran/DF-GAN ``code/models/GAN.py``) -> t2igan ``dfgan`` run
folders.

A ``state_epoch_N.pth`` file holds ``{"model": {"netG", "netD", "netC"}, ...}`` (or a bare ``netG``
state dict):

* ``NetG``: ``fc``, ``GBlocks.i.{c1, c2, c_sc, fuse1, fuse2}`` with
  ``fuseK.affine{0,1}.fc_{gamma,beta}.linear{1,2}``, ``to_rgb.1``;
* ``NetD``: ``conv_img``, ``DBlocks.i.{conv_r.0, conv_r.2, conv_s, gamma}``;
* ``NetC``: ``joint_conv.{0,2}``.

``conv_s`` of a block whose widths are equal is unused by the official forward pass (t2igan has no
such layer there) and is dropped. The official 1x1 shortcut runs before the average pooling and
t2igan's after it; both are linear, so they are equal.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import T2IError
from .common import load_official, rename, strip_module_prefix, write_converted

DFGAN_RULES = [
    # NetG
    (r"netG\.fc\.(weight|bias)", r"generator.fc.\1"),
    (r"netG\.GBlocks\.(\d+)\.c1\.(weight|bias)", r"generator.blocks.\1.conv0.\2"),
    (r"netG\.GBlocks\.(\d+)\.c2\.(weight|bias)", r"generator.blocks.\1.conv1.\2"),
    (r"netG\.GBlocks\.(\d+)\.c_sc\.(weight|bias)", r"generator.blocks.\1.shortcut.\2"),
    (r"netG\.GBlocks\.(\d+)\.fuse1\.affine(\d)\.fc_(gamma|beta)\.linear1\.(weight|bias)",
     r"generator.blocks.\1.fuse0.affine\2.\3.0.\4"),
    (r"netG\.GBlocks\.(\d+)\.fuse1\.affine(\d)\.fc_(gamma|beta)\.linear2\.(weight|bias)",
     r"generator.blocks.\1.fuse0.affine\2.\3.2.\4"),
    (r"netG\.GBlocks\.(\d+)\.fuse2\.affine(\d)\.fc_(gamma|beta)\.linear1\.(weight|bias)",
     r"generator.blocks.\1.fuse1.affine\2.\3.0.\4"),
    (r"netG\.GBlocks\.(\d+)\.fuse2\.affine(\d)\.fc_(gamma|beta)\.linear2\.(weight|bias)",
     r"generator.blocks.\1.fuse1.affine\2.\3.2.\4"),
    (r"netG\.to_rgb\.1\.(weight|bias)", r"generator.to_rgb.1.\1"),
    # NetD
    (r"netD\.conv_img\.(weight|bias)", r"discriminator.from_rgb.\1"),
    (r"netD\.DBlocks\.(\d+)\.conv_r\.([02])\.weight", r"discriminator.blocks.\1.res.\2.weight"),
    (r"netD\.DBlocks\.(\d+)\.conv_s\.(weight|bias)", r"discriminator.blocks.\1.shortcut.\2"),
    (r"netD\.DBlocks\.(\d+)\.gamma", r"discriminator.blocks.\1.gamma"),
    # NetC
    (r"netC\.joint_conv\.([02])\.weight", r"discriminator.joint.\1.weight"),
]


def drop_unused_shortcuts(state: dict, prefix: str = "discriminator.blocks.") -> dict:
    """Without the official 1x1 shortcut convs of equal-width D blocks (DF-GAN / SSA-GAN ``conv_s``):
    the official forward pass never uses them and t2igan has no such layer."""
    equal = {k[len(prefix):].split(".")[0] for k, v in state.items()
             if k.startswith(prefix) and k.endswith(".res.0.weight") and v.shape[0] == v.shape[1]}
    return {k: v for k, v in state.items()
            if not (k.startswith(prefix) and ".shortcut." in k and k[len(prefix):].split(".")[0] in equal)}


def dfgan_parts(obj: dict, source: str) -> dict[str, dict]:
    """``{"netG": ..., "netD": ..., "netC": ...}`` from a DF-GAN ``state_epoch_N.pth`` or a bare
    ``netG`` state dict."""
    if isinstance(obj.get("model"), dict) and "netG" in obj["model"]:
        obj = obj["model"]
    if "netG" in obj:
        return {k: strip_module_prefix(obj[k]) for k in ("netG", "netD", "netC") if isinstance(obj.get(k), dict)}
    state = strip_module_prefix(obj)
    if "fc.weight" in state and any(k.startswith("GBlocks.") for k in state):
        return {"netG": state}
    raise T2IError(f"{source} is not a DF-GAN checkpoint (expected model.netG / netD / netC or a NetG state dict)")


def convert_dfgan(checkpoint: str | Path, output: str | Path, text_encoder: str | Path | None = None,
                  captions: str | Path | None = None, vocab: str | Path | None = None,
                  max_words: int = 18) -> Path:
    """Official DF-GAN checkpoint (+ the DAMSM ``text_encoder*.pth`` it was trained with) -> a t2igan
    ``dfgan`` run folder."""
    source = str(checkpoint)
    parts = dfgan_parts(load_official(checkpoint), source)
    flat = {f"{part}.{k}": v for part, state in parts.items() for k, v in state.items()}
    g = parts["netG"]
    if "fc.weight" not in g or g["fc.weight"].dim() != 2:
        raise T2IError(f"{source}: NetG has no 2-D fc.weight")
    fc_rows, z_dim = g["fc.weight"].shape  # (8 * nf * 4 * 4, z)
    nf = fc_rows // (8 * 16)
    n_blocks = len({k.split(".")[1] for k in g if k.startswith("GBlocks.")})
    first_affine = "GBlocks.0.fuse1.affine0.fc_gamma.linear1.weight"
    if first_affine not in g or g[first_affine].dim() != 2:
        raise T2IError(f"{source}: NetG has no 2-D {first_affine} (not a DF-GAN NetG)")
    cond_dim = g[first_affine].shape[1] - z_dim
    if cond_dim % 2 or fc_rows != nf * 128:
        raise T2IError(f"{source}: NetG sizes do not fit DF-GAN (fc {tuple(g['fc.weight'].shape)}, cond {cond_dim})")
    state = rename(flat, DFGAN_RULES, source)
    state = drop_unused_shortcuts(state)
    sizes = {"image_size": 2 ** (n_blocks + 2), "nf": int(nf), "z_dim": int(z_dim), "text_hidden_dim": int(cond_dim) // 2,
             "text_encoder_mode": "frozen"}
    return write_converted("dfgan", output, state, sizes, source, text_encoder, captions, vocab, max_words,
                           optional=("discriminator.", "text_encoder."))
