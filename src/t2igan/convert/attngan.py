"""Official AttnGAN checkpoints (github.com/taoxugit/AttnGAN ``code/model.py``) -> t2igan run folders:
the DAMSM (``t2igan convert damsm``) and AttnGAN (``t2igan convert attngan``).

DAMSM: ``RNN_ENCODER`` (``text_encoder*.pth``, see :mod:`.common`) and ``CNN_ENCODER``
(``image_encoder*.pth``): torchvision Inception-v3 modules ``Conv2d_1a_3x3`` ... ``Mixed_7c``,
``emb_features.weight`` (1x1 conv), ``emb_cnn_code.{weight,bias}`` (linear). The vocabulary comes from
AttnGAN's ``captions.pickle`` (read with the restricted unpickler); its word indices are the ones the
official text encoder was trained with.

AttnGAN saves ``netG_epoch_N.pth`` (``G_NET``, the moving average of G) and ``netD{0,1,2}.pth``
(``D_NET64/128/256``):

* ``G_NET``: ``ca_net.fc``; ``h_net1.fc.{0,1}`` (linear, BN1d), ``h_net1.upsampleK.{1,2}`` (conv, BN);
  ``h_net{2,3}.att.conv_context`` (a 1x1 Conv2d; t2igan's ``attention.project`` is the same weight
  as a 1x1 Conv1d), ``.residual.R.block.{0,1,3,4}`` (conv, BN, conv, BN), ``.upsample.{1,2}``;
  ``img_netK.img.0``.
* ``D_NETxx``: ``img_code_s16.{0,2,3,5,6,8,9}`` (four stride-2 convs and their BNs), then in order
  ``img_code_s32`` (128, 256 px), ``img_code_s32_1`` (128) or ``img_code_s64``, ``img_code_s64_1``,
  ``img_code_s64_2`` (256); ``COND_DNET.jointConv.{0,1}``, ``COND_DNET.outlogits.0`` and
  ``UNCOND_DNET.outlogits.0`` (t2igan's ``cond_out``/``uncond_out``: logits, the official code
  applies a sigmoid after them).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ..errors import T2IError
from .common import (convert_text_encoder, load_into, load_official, read_vocabulary, rename, strip_module_prefix,
                     write_converted)

IMAGE_ENCODER_RULES = [
    (r"emb_features\.weight", "emb_features.weight"),
    (r"emb_cnn_code\.(weight|bias)", r"emb_code.\1"),
    (r"((Conv2d|Mixed)_\w+\..*)", r"backbone.net.\1"),
]


def convert_image_encoder(state: dict, source: str) -> dict:
    """Official ``CNN_ENCODER`` state -> t2igan ``ImageEncoder`` state (Inception backbone)."""
    return rename(strip_module_prefix(state), IMAGE_ENCODER_RULES, source)


def convert_damsm(text_encoder: str | Path, output: str | Path, image_encoder: str | Path | None = None,
                  captions: str | Path | None = None, vocab: str | Path | None = None) -> Path:
    """Official DAMSM ``text_encoder*.pth`` (+ ``image_encoder*.pth``) -> a t2igan DAMSM run folder,
    usable as ``model.damsm_weights`` of the GANs."""
    from ..models.damsm import DAMSM, DAMSMConfig
    from ..runs import save_run

    text_state, sizes = convert_text_encoder(load_official(text_encoder), str(text_encoder))
    voc = read_vocabulary(captions, vocab, sizes["vocab_size"], str(text_encoder))
    state = {f"text_encoder.{k}": v for k, v in text_state.items()}
    embed_dim = 2 * sizes["text_hidden_dim"]
    if image_encoder:
        image_state = convert_image_encoder(load_official(image_encoder), str(image_encoder))
        if "emb_code.weight" in image_state and image_state["emb_code.weight"].shape[0] != embed_dim:
            raise T2IError(f"{image_encoder}: image features have {image_state['emb_code.weight'].shape[0]} "
                           f"dimensions, the text encoder {embed_dim}")
        state.update({f"image_encoder.{k}": v for k, v in image_state.items()})
    model = DAMSM(DAMSMConfig(embed_dim=embed_dim, backbone="inception", image_size=299, **sizes))
    left = load_into(model, state, str(image_encoder or text_encoder), optional_prefixes=("image_encoder.",))
    if left:
        print(f"warning: no image encoder given: the DAMSM's {', '.join(left)} is random "
              "(its text encoder is usable, its image encoder and R-precision are not)", file=sys.stderr)
    output = Path(output)
    save_run(output, {"converted_from": [str(text_encoder), str(image_encoder or "")]}, model, voc)
    return output


# D_NETxx's feature layers after img_code_s16, in order, per image side
ATTNGAN_D_EXTRA = {64: [], 128: ["img_code_s32", "img_code_s32_1"],
                   256: ["img_code_s32", "img_code_s64", "img_code_s64_1", "img_code_s64_2"]}
S16_LAYERS = {"0": "0.0", "2": "1.0", "3": "1.1", "5": "2.0", "6": "2.1", "8": "3.0", "9": "3.1"}
RES_LAYERS = {"0": "conv0", "1": "norm0", "3": "conv1", "4": "norm1"}  # ResBlock.block -> ResidualBlock


def stage_index(m: re.Match, group: int = 1, offset: int = 2) -> str:
    return str(int(m.group(group)) - offset)


ATTNGAN_G_RULES = [
    (r"ca_net\.fc\.(weight|bias)", r"generator.ca.fc.\1"),
    (r"h_net1\.fc\.0\.weight", "generator.initial.fc.weight"),
    (r"h_net1\.fc\.1\.(.*)", r"generator.initial.norm.\1"),
    (r"h_net1\.upsample(\d)\.1\.weight", lambda m: f"generator.initial.ups.{stage_index(m, 1, 1)}.conv.weight"),
    (r"h_net1\.upsample(\d)\.2\.(.*)", lambda m: f"generator.initial.ups.{stage_index(m, 1, 1)}.norm.{m.group(2)}"),
    (r"h_net(\d)\.att\.conv_context\.weight", lambda m: f"generator.stages.{stage_index(m)}.attention.project.weight"),
    (r"h_net(\d)\.residual\.(\d+)\.block\.([0134])\.(.*)",
     lambda m: f"generator.stages.{stage_index(m)}.residual.{m.group(2)}.{RES_LAYERS[m.group(3)]}.{m.group(4)}"),
    (r"h_net(\d)\.upsample\.1\.weight", lambda m: f"generator.stages.{stage_index(m)}.up.conv.weight"),
    (r"h_net(\d)\.upsample\.2\.(.*)", lambda m: f"generator.stages.{stage_index(m)}.up.norm.{m.group(2)}"),
    (r"img_net(\d)\.img\.0\.weight", lambda m: f"generator.to_rgb.{stage_index(m, 1, 1)}.0.weight"),
]


def attngan_g_state(netG: dict, source: str, rules: list = ATTNGAN_G_RULES) -> tuple[dict, dict]:
    """Official ``G_NET`` state -> (t2igan ``generator.*`` state, model sizes); ``rules``:
    :data:`MIRRORGAN_G_RULES` for MirrorGAN's GLAM generator."""
    g = strip_module_prefix(netG)
    if "ca_net.fc.weight" not in g or "h_net1.fc.0.weight" not in g:
        raise T2IError(f"{source} is not an AttnGAN/MirrorGAN G_NET state dict (no ca_net.fc.weight / h_net1.fc.0.weight)")
    state = rename(g, rules, source)
    for key in [k for k in state if k.endswith("attention.project.weight")]:
        state[key] = state[key].squeeze(-1)  # (idf, cdf, 1, 1) Conv2d -> (idf, cdf, 1) Conv1d
    ca_rows, sent_dim = g["ca_net.fc.weight"].shape  # (4 c_dim, D)
    c_dim = ca_rows // 4
    n_stages = len({k.split(".")[0] for k in g if k.startswith("img_net")})
    n_up = len({k.split(".")[1] for k in g if re.match(r"h_net1\.upsample\d\.", k)})
    sizes = {"ngf": int(g["img_net1.img.0.weight"].shape[1]), "c_dim": int(c_dim),
             "z_dim": int(g["h_net1.fc.0.weight"].shape[1] - c_dim), "text_hidden_dim": int(sent_dim) // 2,
             "num_stages": n_stages, "base_size": 4 * 2**n_up, "image_size": 4 * 2**n_up * 2 ** (n_stages - 1),
             "num_residual": len({k.split(".")[2] for k in g if k.startswith("h_net2.residual.")}) or 1}
    return state, sizes


def attngan_d_state(netD: dict, stage: int, image_size: int, source: str) -> tuple[dict, int, bool]:
    """Official ``D_NET64/128/256`` state -> (t2igan ``discriminator.stages.<stage>.*`` state, ndf,
    whether it has the unconditional logit)."""
    d = strip_module_prefix(netD)
    if image_size not in ATTNGAN_D_EXTRA or "img_code_s16.0.weight" not in d:
        raise T2IError(f"{source} is not an AttnGAN D_NET64/128/256 state dict for {image_size} px images")
    extra = {name: 4 + j for j, name in enumerate(ATTNGAN_D_EXTRA[image_size])}
    rules = [(r"img_code_s16\.(\d)\.(.*)", lambda m: f"features.{S16_LAYERS[m.group(1)]}.{m.group(2)}")]
    rules += [(rf"{name}\.([01])\.(.*)", lambda m, i=i: f"features.{i}.{m.group(1)}.{m.group(2)}")
              for name, i in extra.items()]
    rules += [(r"COND_DNET\.jointConv\.([01])\.(.*)", r"joint.\1.\2"),
              (r"COND_DNET\.outlogits\.0\.(weight|bias)", r"cond_out.\1"),
              (r"UNCOND_DNET\.outlogits\.0\.(weight|bias)", r"uncond_out.\1")]
    state = {f"discriminator.stages.{stage}.{k}": v for k, v in rename(d, rules, source).items()}
    return state, int(d["img_code_s16.0.weight"].shape[0]), any(k.startswith("UNCOND_DNET.") for k in d)


def attngan_state(netG: dict, netsD: list[dict], source: str, rules: list = ATTNGAN_G_RULES) -> tuple[dict, dict]:
    """``G_NET`` (+ every stage's ``D_NET``) -> (t2igan ``attngan`` / ``mirrorgan`` state without
    the text encoder, model arguments)."""
    state, sizes = attngan_g_state(netG, source, rules)
    if netsD:
        if len(netsD) != sizes["num_stages"]:
            raise T2IError(f"{source}: G has {sizes['num_stages']} stages but {len(netsD)} discriminators were given")
        for i, netD in enumerate(netsD):
            d_state, ndf, uncond = attngan_d_state(netD, i, sizes["base_size"] * 2**i, f"{source} (netD{i})")
            state.update(d_state)
            sizes.update(ndf=ndf, uncond_logits=uncond)
    return state, sizes


def convert_attngan(checkpoint: str | Path, output: str | Path, discriminators: list[str | Path] = (),
                    text_encoder: str | Path | None = None, captions: str | Path | None = None,
                    vocab: str | Path | None = None, max_words: int = 18) -> Path:
    """Official AttnGAN ``netG_epoch_N.pth`` (+ ``netD0/1/2.pth``, + the DAMSM ``text_encoder*.pth``)
    -> a t2igan ``attngan`` run folder. For training on, convert the DAMSM too (``t2igan convert
    damsm``) and give it as ``model.damsm_weights``."""
    source = str(checkpoint)
    netsD = [load_official(p) for p in discriminators]
    state, sizes = attngan_state(load_official(checkpoint), netsD, source)
    return write_converted("attngan", output, state, sizes, source, text_encoder, captions, vocab, max_words,
                           optional=("discriminator.", "text_encoder."))
