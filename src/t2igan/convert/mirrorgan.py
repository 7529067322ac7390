"""Official MirrorGAN checkpoints (github.com/qiaott/MirrorGAN ``model.py``, ``GLAttention.py``) -> t2igan
``mirrorgan`` run folders.

MirrorGAN saves AttnGAN's files (:mod:`.attngan`); its ``G_NET``'s attention stages are GLAM:
``h_net{2,3}.att.{conv_context, conv_sentence_vis, linear}`` (t2igan's ``word_attention.project``,
``sentence_attention.conv``, ``sentence_attention.project``) and ``h_net{2,3}.conv`` (the 1x1 fusion,
``fuse``). Its STREAM (a ResNet-152 captioner) has no t2igan counterpart and is not converted: pretrain
one (``t2igan pretrain stream``) for training on.
"""

from __future__ import annotations

from pathlib import Path

from .attngan import ATTNGAN_G_RULES, attngan_state, stage_index
from .common import load_official, write_converted

MIRRORGAN_G_RULES = [
    (r"h_net(\d)\.att\.conv_context\.weight", lambda m: f"generator.stages.{stage_index(m)}.word_attention.project.weight"),
    (r"h_net(\d)\.att\.conv_sentence_vis\.weight", lambda m: f"generator.stages.{stage_index(m)}.sentence_attention.conv.weight"),
    (r"h_net(\d)\.att\.linear\.(weight|bias)",
     lambda m: f"generator.stages.{stage_index(m)}.sentence_attention.project.{m.group(2)}"),
    (r"h_net(\d)\.conv\.weight", lambda m: f"generator.stages.{stage_index(m)}.fuse.weight"),
] + ATTNGAN_G_RULES


def convert_mirrorgan(checkpoint: str | Path, output: str | Path, discriminators: list[str | Path] = (),
                      text_encoder: str | Path | None = None, captions: str | Path | None = None,
                      vocab: str | Path | None = None, max_words: int = 18) -> Path:
    """Official MirrorGAN ``netG_epoch_N.pth`` (+ ``netD0/1/2.pth``, + the DAMSM ``text_encoder*.pth``)
    -> a t2igan ``mirrorgan`` run folder; its STREAM is left random (see the module docstring)."""
    source = str(checkpoint)
    netsD = [load_official(p) for p in discriminators]
    state, sizes = attngan_state(load_official(checkpoint), netsD, source, MIRRORGAN_G_RULES)
    return write_converted("mirrorgan", output, state, sizes, source, text_encoder, captions, vocab, max_words,
                           optional=("discriminator.", "text_encoder.", "stream."))
