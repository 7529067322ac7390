"""What every converter shares: weights-only loading of an official ``.pth``, key renaming, strict
loading, the vocabulary, AttnGAN's DAMSM text encoder (which every official code base here loads:
``RNN_ENCODER`` of taoxugit/AttnGAN ``code/model.py``: ``encoder.weight`` (embedding), ``rnn.*``
(bidirectional LSTM, same names as t2igan's)) and writing the run folder."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import torch

from ..errors import T2IError

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


TEXT_ENCODER_RULES = [(r"encoder\.weight", "embedding.weight"), (r"(rnn\..*)", r"\1")]


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


def read_vocabulary(captions: str | Path | None, vocab: str | Path | None, vocab_size: int | None, source: str):
    """The vocabulary the official text encoder was trained with; its size must match the embedding
    (``vocab_size``; None: not checked)."""
    from ..data.text import Vocabulary

    if captions:
        from ..data.datasets import read_attngan_captions, vocabulary_from_attngan

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


def official_train_config(model_name: str):
    """The official optimiser and schedule of a family (learning rates, Adam betas, batch size, steps,
    moving average of G): the ``<family>-cub`` preset's ``train`` section, which follows the official
    configuration files (AttnGAN ``bird_attn2.yml`` and MirrorGAN ``train_bird.yml``: 2e-4, (0.5, 0.999);
    DF-GAN and SSA-GAN: G 1e-4, D 4e-4, (0.0, 0.9)). A converted run resumed with ``t2igan resume``
    trains on with them."""
    from ..config import resolve_config

    return resolve_config(f"{model_name}-cub").train


def write_converted(model_name: str, output: str | Path, state: dict, sizes: dict, source: str, text_encoder, captions, vocab,
                     max_words: int, optional: tuple[str, ...], extra_args: dict | None = None) -> Path:
    """Add the DAMSM text encoder, build the t2igan model, load ``state`` and write the run folder."""
    from ..config import DataConfig, ExperimentConfig
    from ..runs import save_run
    from ..training.build import build_model

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
    model = build_model(model_name, vocab_size=len(voc), **model_args)  # records the DAMSM term's settings
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

