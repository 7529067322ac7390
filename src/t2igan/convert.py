"""Official checkpoints -> t2igan run folders.

The official repositories save ``torch.save`` pickles of state dicts. They are read with
``torch.load(weights_only=True)`` (tensors and plain containers only, no code runs), their keys are
renamed to t2igan's module layout, and a normal run folder (``config.json``, ``vocab.json``,
``model.safetensors``) is written, so ``t2igan sample`` and ``Text2ImagePipeline`` work on it.

Layouts (read from the official model code, not copied):

* DF-GAN (tobran/DF-GAN ``code/models/GAN.py``), a ``state_epoch_N.pth`` file holding
  ``{"model": {"netG", "netD", "netC"}, ...}`` (or a bare ``netG`` state dict):
  ``NetG``: ``fc``, ``GBlocks.i.{c1, c2, c_sc, fuse1, fuse2}`` with
  ``fuseK.affine{0,1}.fc_{gamma,beta}.linear{1,2}``, ``to_rgb.1``;
  ``NetD``: ``conv_img``, ``DBlocks.i.{conv_r.0, conv_r.2, conv_s, gamma}``;
  ``NetC``: ``joint_conv.{0,2}``. ``conv_s`` of a block whose widths are equal is unused by the
  official forward pass (t2igan has no such layer there) and is dropped. The official 1x1 shortcut
  runs before the average pooling and t2igan's after it; both are linear, so they are equal.
* DAMSM (taoxugit/AttnGAN ``code/model.py``): ``RNN_ENCODER`` (``text_encoder*.pth``):
  ``encoder.weight`` (embedding), ``rnn.*`` (bidirectional LSTM, same names as t2igan's);
  ``CNN_ENCODER`` (``image_encoder*.pth``): torchvision Inception-v3 modules ``Conv2d_1a_3x3`` ...
  ``Mixed_7c``, ``emb_features.weight`` (1x1 conv), ``emb_cnn_code.{weight,bias}`` (linear).

The vocabulary comes from AttnGAN's ``captions.pickle`` (read with the restricted unpickler); its
word indices are the ones the official text encoder was trained with.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

from .errors import T2IError

MODULE_PREFIX = "module."  # added by nn.DataParallel / DistributedDataParallel


def load_official(path: str | Path) -> dict:
    """An official ``.pth`` file, read with ``torch.load(weights_only=True)``; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise T2IError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a pickle naming code, a truncated file, not a torch file
        raise T2IError(f"cannot read {path} as a weights-only torch file: {type(e).__name__}: {str(e)[:200]}") from None
    if not isinstance(obj, dict):
        raise T2IError(f"{path} does not hold a state dict (found {type(obj).__name__})")
    return obj


def strip_module_prefix(state: dict) -> dict:
    return {(k[len(MODULE_PREFIX):] if k.startswith(MODULE_PREFIX) else k): v for k, v in state.items()}


def rename(state: dict, rules: list[tuple[str, str]], source: str) -> dict:
    """Rename every key with the first matching ``(regex, replacement)`` rule; an unmatched key is
    an error naming ``source``."""
    out = {}
    for key, value in state.items():
        for pattern, repl in rules:
            new, n = re.subn(f"^{pattern}$", repl, key)
            if n:
                out[new] = value
                break
        else:
            raise T2IError(f"{source}: unexpected key {key!r} (not an official layout t2igan knows)")
    return out


# ---------------------------------------------------------------------------------------------
# DAMSM (AttnGAN)

TEXT_ENCODER_RULES = [(r"encoder\.weight", "embedding.weight"), (r"(rnn\..*)", r"\1")]
IMAGE_ENCODER_RULES = [
    (r"emb_features\.weight", "emb_features.weight"),
    (r"emb_cnn_code\.(weight|bias)", r"emb_code.\1"),
    (r"((Conv2d|Mixed)_\w+\..*)", r"backbone.net.\1"),
]


def convert_text_encoder(state: dict, source: str) -> tuple[dict, dict]:
    """Official ``RNN_ENCODER`` state -> (t2igan ``RNNTextEncoder`` state, its sizes)."""
    state = rename(strip_module_prefix(state), TEXT_ENCODER_RULES, source)
    if "embedding.weight" not in state or "rnn.weight_hh_l0" not in state:
        raise T2IError(f"{source} is not an AttnGAN RNN_ENCODER state dict (no encoder.weight / rnn.weight_hh_l0)")
    if "rnn.weight_hh_l0_reverse" not in state:
        raise T2IError(f"{source}: only bidirectional text encoders are supported")
    vocab_size, emb_dim = state["embedding.weight"].shape
    hidden = state["rnn.weight_hh_l0"].shape[1]
    if any(k.startswith("rnn.weight_ih_l1") for k in state):
        raise T2IError(f"{source}: only one-layer text encoders are supported")
    return state, {"vocab_size": int(vocab_size), "text_emb_dim": int(emb_dim), "text_hidden_dim": int(hidden)}


def convert_image_encoder(state: dict, source: str) -> dict:
    """Official ``CNN_ENCODER`` state -> t2igan ``ImageEncoder`` state (Inception backbone)."""
    return rename(strip_module_prefix(state), IMAGE_ENCODER_RULES, source)


def read_vocabulary(captions: str | Path | None, vocab: str | Path | None, vocab_size: int | None, source: str):
    """The vocabulary the official text encoder was trained with; its size must match the embedding
    (``vocab_size``; None: not checked)."""
    from .data.text import Vocabulary

    if captions:
        from .data.datasets import read_attngan_captions, vocabulary_from_attngan

        voc = vocabulary_from_attngan(read_attngan_captions(captions)[2])
    elif vocab:
        voc = Vocabulary.load(vocab)
    else:
        raise T2IError("give the vocabulary the model was trained with: --captions captions.pickle (AttnGAN/DF-GAN "
                       "data folder) or --vocab vocab.json")
    if vocab_size is not None and len(voc) != vocab_size:
        raise T2IError(f"the vocabulary has {len(voc)} words but {source}'s embedding has {vocab_size} rows; "
                       "use the captions.pickle of the data set it was trained on")
    return voc


def load_into(module: torch.nn.Module, state: dict, source: str, optional_prefixes: tuple[str, ...] = ()) -> list[str]:
    """Load ``state`` strictly, except keys under ``optional_prefixes`` may be missing (returned)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if unexpected:
        raise T2IError(f"{source}: {len(unexpected)} keys have no place in t2igan's model, e.g. {unexpected[0]!r}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(own[k].shape):
            raise T2IError(f"{source}: {k} has shape {tuple(v.shape)}, t2igan's model needs {tuple(own[k].shape)}")
    left = [k for k in missing if not k.endswith("num_batches_tracked")]
    required = [k for k in left if not k.startswith(optional_prefixes)]
    if required:
        raise T2IError(f"{source}: {len(required)} weights are missing, e.g. {required[0]!r}")
    module.load_state_dict({**own, **state})
    return sorted({k.split(".")[0] for k in left})


def convert_damsm(text_encoder: str | Path, output: str | Path, image_encoder: str | Path | None = None,
                  captions: str | Path | None = None, vocab: str | Path | None = None) -> Path:
    """Official DAMSM ``text_encoder*.pth`` (+ ``image_encoder*.pth``) -> a t2igan DAMSM run folder,
    usable as ``model.damsm_weights`` of the GANs."""
    from .models.damsm import DAMSM, DAMSMConfig, save_damsm

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
    output.mkdir(parents=True, exist_ok=True)
    save_damsm(output, model, voc, {"converted_from": [str(text_encoder), str(image_encoder or "")]})
    return output


# ---------------------------------------------------------------------------------------------
# DF-GAN

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
    return _write_converted("dfgan", output, state, sizes, source, text_encoder, captions, vocab, max_words,
                            optional=("discriminator.", "text_encoder."))


# ---------------------------------------------------------------------------------------------
# SSA-GAN

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
    return _write_converted("ssagan", output, state, sizes, source, text_encoder, captions, vocab, max_words,
                            optional=("discriminator.", "text_encoder."),
                            extra_args={"damsm_gamma1": 5.0, "damsm_paper_form": False})  # the official G's DAMSM term


def official_train_config(model_name: str):
    """The official optimiser and schedule of a family (learning rates, Adam betas, batch size, steps,
    moving average of G): the ``<family>-cub`` preset's ``train`` section, which follows the official
    configuration files (AttnGAN ``bird_attn2.yml`` and MirrorGAN ``train_bird.yml``: 2e-4, (0.5, 0.999);
    DF-GAN and SSA-GAN: G 1e-4, D 4e-4, (0.0, 0.9)). A converted run resumed with ``t2igan resume``
    trains on with them."""
    from .config import resolve_config

    return resolve_config(f"{model_name}-cub").train


def _write_converted(model_name: str, output: str | Path, state: dict, sizes: dict, source: str, text_encoder, captions, vocab,
                     max_words: int, optional: tuple[str, ...], extra_args: dict | None = None) -> Path:
    """Add the DAMSM text encoder, build the t2igan model, load ``state`` and write the run folder."""
    from .config import DataConfig, ExperimentConfig
    from .hub import save_run
    from .registry import create_model

    cond_dim = 2 * sizes["text_hidden_dim"]
    if text_encoder:
        text_state, text_sizes = convert_text_encoder(load_official(text_encoder), str(text_encoder))
        if 2 * text_sizes["text_hidden_dim"] != cond_dim:
            raise T2IError(f"{text_encoder}: sentence features have {2 * text_sizes['text_hidden_dim']} dimensions, "
                           f"{source} expects {cond_dim}")
        state.update({f"text_encoder.{k}": v for k, v in text_state.items()})
        voc = read_vocabulary(captions, vocab, text_sizes["vocab_size"], str(text_encoder))
        sizes = {**sizes, "text_emb_dim": text_sizes["text_emb_dim"]}
    else:
        voc = read_vocabulary(captions, vocab, None, source)
    model_args = {**sizes, **(extra_args or {})}
    model = create_model(model_name, vocab_size=len(voc), **model_args)
    left = load_into(model, state, source, optional_prefixes=optional)
    if left:
        print(f"warning: {source}: {', '.join(left)} not in the given files and left random"
              f"{' (give --text-encoder)' if 'text_encoder' in left else ''}", file=sys.stderr)
    exp = ExperimentConfig(model=model_name, model_args=model_args,
                           data=DataConfig(dataset="cub", image_size=model.config.image_size, max_words=max_words),
                           train=official_train_config(model_name), name=f"{model_name}-converted-{Path(source).stem}")
    output = Path(output)
    save_run(output, exp.to_dict(), model, voc)
    return output


CONVERTERS = {"dfgan": convert_dfgan, "damsm": convert_damsm, "ssagan": convert_ssagan}
