"""Official SSA-GAN checkpoints (github.com/wtliao/text2image ``model.py``) -> t2igan ``ssagan`` run
folders (see :func:`ssagan_state` for the layout)."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import T2IError
from .common import load_official, rename, strip_module_prefix, write_converted
from .dfgan import drop_unused_shortcuts

SSAGAN_G_RULES = [
    (r"fc\.(weight|bias)", r"generator.fc.\1"),
    (r"conv_mask\.(\d)\.(.*)", r"generator.blocks.0.mask_predictor.net.\1.\2"),
    (r"block(\d+)\.c([12])\.(weight|bias)", lambda m: f"generator.blocks.{m[1]}.conv{int(m[2]) - 1}.{m[3]}"),
    (r"block(\d+)\.c_sc\.(weight|bias)", r"generator.blocks.\1.shortcut.\2"),
    (r"block(\d+)\.gamma", r"generator.blocks.\1.gate"),
    (r"block(\d+)\.affine([02])\.batch_norm2d\.(.*)", lambda m: f"generator.blocks.{m[1]}.norm{int(m[2]) // 2}.norm.{m[3]}"),
    (r"block(\d+)\.affine([02])\.fc_(gamma|beta)\.linear([12])\.(weight|bias)",  # linear1, linear2: MLP layers 0, 2
     lambda m: f"generator.blocks.{m[1]}.norm{int(m[2]) // 2}.affine.{m[3]}.{2 * int(m[4]) - 2}.{m[5]}"),
    (r"block(\d+)\.conv_mask\.(\d)\.(.*)", r"generator.MASK\1.\2.\3"),  # moved one block later below
    (r"conv_img\.(0|2)\.(.*)", r"generator.to_rgb.\1.\2"),
]
SSAGAN_D_RULES = [
    (r"conv_img\.(weight|bias)", r"discriminator.from_rgb.\1"),
    (r"block(\d+)\.conv_r\.([02])\.weight", r"discriminator.blocks.\1.res.\2.weight"),
    (r"block(\d+)\.conv_s\.(weight|bias)", r"discriminator.blocks.\1.shortcut.\2"),
    (r"block(\d+)\.gamma", r"discriminator.blocks.\1.gamma"),
    (r"COND_DNET\.joint_conv\.([02])\.weight", r"discriminator.joint.\1.weight"),
]


def ssagan_state(netG: dict, netD: dict | None, source: str) -> tuple[dict, dict]:
    """Official SSA-GAN ``NetG`` (+ ``NetD``) state dicts (wtliao/text2image ``model.py``) ->
    (t2igan ``ssagan`` state without the text encoder, model sizes).

    * ``affine``'s text MLPs ``fc_gamma``/``fc_beta`` (``linear1``, ``linear2``) are SSCBN's
      ``affine.gamma``/``affine.beta``; the official scale is ``fc_gamma(e) * m + 1`` and t2igan's
      ``m * (g(e) - 1) + 1`` (DF-GAN's Affine, ``g`` starting at 1), so ``gamma.2.bias`` is the
      official ``linear2.bias + 1``.
    * The official ``blockK.conv_mask`` predicts the mask of the *next* block from block K's output;
      in t2igan each block owns the predictor of its own mask, so it is ``blocks[K+1].mask_predictor``
      (the top-level ``conv_mask``, on the FC output, is ``blocks[0]``'s).
    * ``NetD`` is DF-GAN's 2021 discriminator (``d_max_mult`` 16); ``conv_s`` of equal-width blocks
      is unused by the official forward pass and dropped.
    """
    g = strip_module_prefix(netG)
    if "fc.weight" not in g or "conv_mask.0.weight" not in g:
        raise T2IError(f"{source} is not an SSA-GAN NetG state dict (no fc.weight / conv_mask.0.weight)")
    state = rename(g, SSAGAN_G_RULES, source)
    for key in list(state):
        m = re.match(r"generator\.MASK(\d+)\.(.*)", key)
        if m:
            state[f"generator.blocks.{int(m.group(1)) + 1}.mask_predictor.net.{m.group(2)}"] = state.pop(key)
        elif re.match(r"generator\.blocks\.\d+\.norm[01]\.affine\.gamma\.2\.bias", key):
            state[key] = state[key] + 1
    fc_rows, z_dim = g["fc.weight"].shape  # (8 nf * 4 * 4, z)
    n_blocks = len({k.split(".")[0] for k in g if re.match(r"block\d+\.", k)})
    sizes = {"nf": int(fc_rows // 128), "z_dim": int(z_dim), "image_size": 2 ** (n_blocks + 1),
             "text_hidden_dim": int(g["block0.affine0.fc_gamma.linear1.weight"].shape[1]) // 2,
             "mask_hidden": int(g["conv_mask.0.weight"].shape[0])}
    if netD is not None:
        d = strip_module_prefix(netD)
        if "COND_DNET.joint_conv.0.weight" not in d:
            raise T2IError(f"{source}: the NetD state dict has no COND_DNET.joint_conv.0.weight")
        widest = d["COND_DNET.joint_conv.0.weight"].shape[1] - 2 * sizes["text_hidden_dim"]
        sizes["d_max_mult"] = int(widest // d["conv_img.weight"].shape[0])
        state.update(drop_unused_shortcuts(rename(d, SSAGAN_D_RULES, source)))
    return state, sizes


def convert_ssagan(checkpoint: str | Path, output: str | Path, discriminator: str | Path | None = None,
                   text_encoder: str | Path | None = None, captions: str | Path | None = None,
                   vocab: str | Path | None = None, max_words: int = 18) -> Path:
    """Official SSA-GAN ``netG_XXX.pth`` (+ ``netD_XXX.pth``, + the DAMSM ``text_encoder*.pth``) ->
    a t2igan ``ssagan`` run folder (official settings: ``damsm_paper_form`` False, no truncation)."""
    source = str(checkpoint)
    netD = load_official(discriminator) if discriminator else None
    state, sizes = ssagan_state(load_official(checkpoint), netD, source)
    sizes.setdefault("d_max_mult", 16)
    return write_converted("ssagan", output, state, sizes, source, text_encoder, captions, vocab, max_words,
                           optional=("discriminator.", "text_encoder."),
                            extra_args={"damsm_gamma1": 5.0, "damsm_paper_form": False})  # the official G's DAMSM term
