"""DAMSM: the Deep Attentional Multimodal Similarity Model of AttnGAN [Xu et al., CVPR 2018, Sec. 3.3],
and the frozen DAMSM critic that the GANs share.

Two encoders map a caption and an image into one 256-d space:

* the text encoder (:class:`t2igan.nn.text_encoder.RNNTextEncoder`, SPEC "Text encoder") gives word
  features ``e`` (D x T) and a sentence feature ``e_bar`` (D);
* the image encoder (:class:`t2igan.nn.image_encoder.ImageEncoder`, SPEC "Image encoder (DAMSM)")
  gives region features ``v`` (D x h x w) and a global feature ``v_bar`` (D).

The matching losses are pure functions in :mod:`t2igan.losses` (re-exported here):
:func:`word_region_attention` (Eq. 7-9), :func:`damsm_word_loss` (Eq. 10-13 on words, batched over
every (image, caption) pair), :func:`damsm_sentence_loss` and :func:`damsm_loss` (``L_DAMSM``, Eq. 14).

Paper vs. official code (SPEC "DAMSM loss"): Eq. 10 is ``R = log(sum_i exp(gamma2 cos))^(1/gamma2)``
(``paper_form=True``); the official code drops the ``1/gamma2`` (``paper_form=False``).
:data:`DAMSM_PAPER_FORM` (``False``, the official form) is the one default of every function, config
and ``-cub``/``-coco`` preset here and of the GANs' ``damsm_paper_form``; the ``-shapes`` presets
choose the paper's form (its word term is scaled like the sentence term). The official
YAMLs use ``gamma1 = 4`` (code default 5), ``gamma2 = 5``, ``gamma3 = 10``. On CUB, captions of other
images of the same class are not negatives: their scores are set to ``-inf`` (``class_ids``).

GANs (AttnGAN, MirrorGAN, DR-GAN, SSA-GAN) score their images with a :class:`DAMSMCritic`: the frozen
image encoder of a DAMSM run, a submodule (moved by ``.to()``, cast by ``.half()``) whose weights
are left out of the GAN's state dict (:attr:`t2igan.models.base.T2IModel.unsaved_modules`).
:class:`MultiStageConfig` holds the fields shared by the multi-stage GANs that such a DAMSM scores.

Pretraining (``t2igan pretrain damsm PRESET``, or ``t2igan train`` on a DAMSM preset) runs the shared
:class:`t2igan.trainer.Trainer` (resume, torchrun, AMP, non-finite stop) on :class:`DAMSM`, a
registered model with one phase (``encoders``) and the official schedule in its config: Adam (lr 0.002,
betas (0.5, 0.999)), lr x 0.98 per epoch down to lr / 10 (:meth:`DAMSM.lr_factor`), the text encoder's
gradient norm clipped at 0.25, batch 48; at the end the R-precision of the real test images goes to
``metrics.jsonl``. A run folder holds ``config.json``, ``vocab.json``, ``model.safetensors`` (keys
``text_encoder.*`` and ``image_encoder.*``), checkpoints and ``log.jsonl``; :func:`load_damsm` reads it back.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import T2IError
from ..losses import (  # noqa: F401 (the DAMSM losses, re-exported)
    DAMSM_PAPER_FORM,
    MISMATCH_FORMS,
    cosine_matrix,
    damsm_loss,
    damsm_sentence_loss,
    damsm_word_loss,
    kl_normal_loss,
    same_class_mask,
    word_region_attention,
    word_relevance,
)
from ..nn.image_encoder import BACKBONES, ImageEncoder, InceptionBackbone, SmallCNN  # noqa: F401
from ..nn.text_encoder import RNNTextEncoder, TextFeatures
from ..registry import register_model
from .base import T2IModel, load_network_run, with_imagenet_inception


# ---------------------------------------------------------------------------------------------------
# The critic the GANs share
# ---------------------------------------------------------------------------------------------------


def batch_class_ids(batch: dict) -> torch.Tensor | None:
    """Class labels for DAMSM's same-class masking, or None when the data has none (-1)."""
    ids = batch.get("class_id")
    if not torch.is_tensor(ids) or (ids < 0).any():
        return None
    return ids


class DAMSMCritic(nn.Module):
    """``L_DAMSM`` [AttnGAN, Eq. 14] of a generator's images against their captions, scored by a frozen
    DAMSM image encoder (``encoder``); gradients reach only the images (and whatever made them).

    The encoder comes from a DAMSM run (:meth:`load`, which also starts the GAN's text encoder from
    the run's); without one, a randomly initialised encoder is built on first use, with a warning
    (meaningful in tests only). It is in no optimizer and always in eval mode; the GAN lists the
    critic in ``unsaved_modules``, so it never enters checkpoints or ``model.safetensors``.
    """

    def __init__(self, owner: str, embed_dim: int, backbone: str = "inception", image_size: int = 299,
                 gamma1: float = 4.0, gamma2: float = 5.0, gamma3: float = 10.0,
                 paper_form: bool = DAMSM_PAPER_FORM, weight_field: str = "damsm_weight"):
        super().__init__()
        if backbone not in BACKBONES:
            raise T2IError(f"{owner}: damsm_backbone must be inception or small_cnn, got {backbone!r}")
        self.owner, self.weight_field = owner, weight_field  # for messages
        self.embed_dim, self.backbone, self.image_size = embed_dim, backbone, image_size
        self.gammas, self.paper_form = (gamma1, gamma2, gamma3), paper_form
        self.register_module("encoder", None)

    def train(self, mode: bool = True) -> "DAMSMCritic":
        return super().train(False)

    def adopt(self, damsm: "DAMSM", vocab, path: str, text_encoder: nn.Module, vocab_size: int) -> None:
        """Take the image encoder of ``damsm`` (the run at ``path``, frozen) and load its text encoder
        into ``text_encoder``; the run's vocabulary must be the data's."""
        if len(vocab) != vocab_size:
            raise T2IError(f"the DAMSM in {path} has a {len(vocab)}-word vocabulary but the data's has "
                           f"{vocab_size}; train with data.vocab=<DAMSM run>/vocab.json")
        try:
            text_encoder.load_state_dict(damsm.text_encoder.state_dict())
        except RuntimeError:
            raise T2IError(f"the text encoder in {path} does not fit model.text_emb_dim="
                           f"{text_encoder.embedding.embedding_dim}, model.text_hidden_dim="
                           f"{text_encoder.rnn.hidden_size}") from None
        self.encoder = damsm.image_encoder.requires_grad_(False).eval()

    def frozen_encoder(self, device: torch.device) -> nn.Module:
        """The image encoder on ``device`` (built on first use when no DAMSM run was loaded)."""
        if self.encoder is None:
            warnings.warn(f"{self.owner}: no damsm_weights given, so the DAMSM loss uses a randomly initialised "
                          "image encoder; pretrain one with `t2igan pretrain damsm ...` or set "
                          f"model.{self.weight_field}=0")
            self.encoder = ImageEncoder(self.embed_dim, self.backbone, self.image_size).requires_grad_(False)
        param = next(self.encoder.parameters(), None)
        if param is not None and param.device != device:
            self.encoder.to(device)
        return self.encoder.eval()

    def forward(self, images: torch.Tensor, text: TextFeatures,
                class_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        g1, g2, g3 = self.gammas
        return damsm_loss(self.frozen_encoder(images.device), images, text, class_ids,
                          gamma1=g1, gamma2=g2, gamma3=g3, paper_form=self.paper_form)

    def add_to(self, loss, logs: dict, weight: float, images: torch.Tensor, text: TextFeatures, batch: dict):
        """``loss + weight * L_DAMSM(images)`` (``loss`` unchanged when ``weight`` is 0), the terms logged."""
        if weight <= 0:
            return loss
        damsm, damsm_logs = self(images, text, batch_class_ids(batch))
        logs.update(damsm_logs, damsm=damsm.item())  # damsm_w, damsm_s: word and sentence terms
        return loss + weight * damsm


DAMSM_LOSS_SETTINGS = ("gamma1", "gamma2", "gamma3", "paper_form")  # a GAN config's damsm_<name> fields


def build_damsm_critic(owner: str, config, text_encoder: nn.Module, weight_field: str = "damsm_weight") -> DAMSMCritic:
    """The :class:`DAMSMCritic` of a GAN config's ``damsm_*`` fields. With ``damsm_weights`` it holds
    that run's frozen image encoder and ``text_encoder`` starts from the run's; the loss settings
    (``damsm_gamma1/2/3``, ``damsm_paper_form``) the config leaves ``None`` are the run's own (without a
    run: :class:`DAMSMConfig`'s defaults) and are written back into the config, so a saved GAN run
    records what its DAMSM term used. A value set in the config wins (the official SSA-GAN code, for
    one, trains G with gamma1 = 5 against a DAMSM pretrained with 4)."""
    run = load_damsm(config.damsm_weights) if config.damsm_weights else None
    source = run[0].config if run else DAMSMConfig()
    for name in DAMSM_LOSS_SETTINGS:
        if getattr(config, f"damsm_{name}") is None:
            setattr(config, f"damsm_{name}", getattr(source, name))
    critic = DAMSMCritic(owner, config.cond_dim, config.damsm_backbone, config.image_size, config.damsm_gamma1,
                         config.damsm_gamma2, config.damsm_gamma3, config.damsm_paper_form, weight_field)
    if run:
        critic.adopt(*run, config.damsm_weights, text_encoder, config.vocab_size)
    return critic


def add_kl_and_damsm(loss, logs: dict, critic: DAMSMCritic, config, mu: torch.Tensor, logvar: torch.Tensor,
                     images: torch.Tensor, text: TextFeatures, batch: dict):
    """The tail of a multi-stage generator's loss [AttnGAN, Eq. 2; StackGAN's CA term]:
    ``loss + kl_weight KL(N(mu, sigma^2) || N(0, I)) + damsm_weight L_DAMSM(last stage's images)``."""
    kl = kl_normal_loss(mu, logvar)
    loss = loss + config.kl_weight * kl
    logs["kl"] = kl.item()
    return critic.add_to(loss, logs, config.damsm_weight, images, text, batch)


def generate_for_step(model: nn.Module, batch: dict, state: dict):
    """A multi-stage GAN's images of one training step, made once in the D phase for both phases:
    the batch's text features (detached: the text encoder is frozen), noise, every stage's image
    (:class:`t2igan.nn.multistage.GeneratorOutput`). ``state`` gets ``gen``, its ``fakes``, ``mu``,
    ``logvar``, and ``text``."""
    text = model.encode_text(batch["tokens"], batch["lengths"]).detach()
    out = model.generator(model.draw_noise(batch), text.sent_emb, text.word_embs, text.mask)
    state.update(gen=out, fakes=out.images, mu=out.mu, logvar=out.logvar, text=text)
    return out


@dataclass
class MultiStageConfig:
    """Fields of the multi-stage GANs (AttnGAN, MirrorGAN, DR-GAN): sizes of
    :class:`t2igan.nn.multistage.MultiStageGenerator` and its stage discriminators, the frozen text
    encoder, and the DAMSM loss that scores the last stage."""

    vocab_size: int = 5000  # words in the vocabulary (set from the data)
    image_size: int = 256  # output side of the last stage = base_size * 2^(num_stages - 1)
    base_size: int = 64  # output side of the first stage (official 64; 16 or 32 for CPU presets)
    num_stages: int = 3  # generator stages / discriminators (official 3: 64, 128, 256 px)
    ngf: int = 32  # generator width (official CUB 32, COCO 48); F_0 starts at 2^k ngf channels
    ndf: int = 64  # discriminator width (official CUB 64, COCO 96)
    num_residual: int = 2  # GLU residual blocks per attention stage (official CUB 2, COCO 3)
    z_dim: int = 100  # noise size
    c_dim: int = 100  # conditioning-augmentation code size
    text_emb_dim: int = 300  # text encoder word embedding
    text_hidden_dim: int = 128  # per LSTM direction; word and sentence features are 2x this (256)
    text_dropout: float = 0.5
    uncond_logits: bool = True  # D's unconditional (real/fake) logit besides the conditional one
    d_batch_norm: bool = True  # official: batch norm in the stage Ds; False: none (convs get biases), so D sees a global colour shift
    damsm_weights: str | None = None  # DAMSM run folder (or its model.safetensors): text + image encoders
    damsm_backbone: str = "inception"  # image encoder built when damsm_weights is None: inception | small_cnn
    damsm_weight: float = 5.0  # weight of L_DAMSM in G's loss (official CUB 5, COCO 50); 0 disables it
    damsm_gamma1: float | None = None  # word-region attention sharpness (None: the DAMSM run's; official YAMLs 4)
    damsm_gamma2: float | None = None  # region-word relevance sharpness (None: the DAMSM run's, else 5)
    damsm_gamma3: float | None = None  # image-text matching sharpness (None: the DAMSM run's, else 10)
    damsm_paper_form: bool | None = None  # True: Eq. 10's ^(1/gamma2); False: the official code's (None: the run's)
    mismatch_pairs: str = "shift"  # D's (real, wrong caption) pairs: shift (official: B-1, i with i+1) | roll (B, j with j-1)
    kl_weight: float = 1.0  # weight of CA's KL term
    truncation: float = 0.0  # noise truncation at sampling (0 = none; AttnGAN samples plain N(0, I))

    @property
    def cond_dim(self) -> int:
        return 2 * self.text_hidden_dim

    @property
    def stage_sizes(self) -> list[int]:
        return [self.base_size * 2**i for i in range(self.num_stages)]

    def check(self, owner: str) -> None:
        """One ``error: owner: ...`` line for sizes that do not fit together."""
        if self.base_size < 16 or self.base_size & (self.base_size - 1):
            raise T2IError(f"{owner}: base_size must be a power of two >= 16, got {self.base_size}")
        if self.num_stages < 1:
            raise T2IError(f"{owner}: num_stages must be at least 1, got {self.num_stages}")
        if self.image_size != self.stage_sizes[-1]:
            raise T2IError(f"{owner}: image_size {self.image_size} must equal base_size * 2^(num_stages - 1) = "
                           f"{self.stage_sizes[-1]} (base_size={self.base_size}, num_stages={self.num_stages})")
        if self.mismatch_pairs not in MISMATCH_FORMS:
            raise T2IError(f"{owner}: mismatch_pairs must be one of {', '.join(MISMATCH_FORMS)}, "
                           f"got {self.mismatch_pairs!r}")



# ---------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------


@dataclass
class DAMSMConfig:
    """Architecture and loss of a DAMSM (what a run's ``config.json`` stores under ``model_config``)."""

    vocab_size: int = 0  # words incl. padding; set from the vocabulary by pretraining
    embed_dim: int = 256  # D, joint feature size (= 2 * text_hidden_dim)
    text_emb_dim: int = 300  # word embedding size
    text_hidden_dim: int = 128  # LSTM units per direction
    text_dropout: float = 0.5  # dropout on the word embeddings
    backbone: str = "inception"  # image encoder backbone: inception (frozen, 299 px) | small_cnn (trainable)
    image_size: int = 299  # side of the training images (small_cnn input size)
    cnn_channels: int = 32  # small_cnn: channels of its first conv (doubled at each down-sampling)
    inception_weights: str | None = None  # ImageNet Inception-v3 file (inception backbone); never needed to load a run
    gamma1: float = 4.0  # word-region attention sharpness (official YAMLs 4, code default 5)
    gamma2: float = 5.0  # region-word relevance sharpness
    gamma3: float = 10.0  # image-text matching sharpness
    paper_form: bool = DAMSM_PAPER_FORM  # True: Eq. 10's log(sum exp)^(1/gamma2); False: the official code's (no 1/gamma2)
    # pretraining (official AttnGAN DAMSM defaults; the batch size is train.batch_size, official 48)
    lr: float = 0.002  # Adam learning rate (both encoders)
    betas: tuple = (0.5, 0.999)  # Adam betas
    lr_decay: float = 0.98  # lr multiplied by this after every epoch ...
    lr_min_factor: float = 0.1  # ... but never below lr * lr_min_factor
    grad_clip: float | None = 0.25  # max gradient norm of the text encoder (the official code clips the RNN only)
    rprec_captions: int = 100  # R-precision at the end: true caption + (this - 1) mismatched
    rprec_splits: int = 10  # ... mean and std over this many splits


@register_model("damsm", DAMSMConfig, text_to_image=False)
class DAMSM(T2IModel):
    """Text encoder + image encoder of AttnGAN's DAMSM (state-dict prefixes ``text_encoder.`` and
    ``image_encoder.``, so a generator can load either part from a DAMSM run), trained by the shared
    trainer in one phase, ``encoders``."""

    phases = ("encoders",)
    training_only_modules = ()

    def __init__(self, config: DAMSMConfig):
        super().__init__(config)
        c = config
        if c.vocab_size < 2:
            raise T2IError(f"DAMSM needs vocab_size >= 2, got {c.vocab_size}")
        if c.embed_dim != 2 * c.text_hidden_dim:
            raise T2IError(f"DAMSM: embed_dim ({c.embed_dim}) must be 2 * text_hidden_dim ({c.text_hidden_dim}), "
                           "the bidirectional LSTM's feature size")
        self.text_encoder = RNNTextEncoder(c.vocab_size, c.text_emb_dim, c.text_hidden_dim, c.text_dropout)
        self.image_encoder = ImageEncoder(c.embed_dim, c.backbone, c.image_size, c.inception_weights, c.cnn_channels)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # -- the trainer's hooks ---------------------------------------------------------------------
    @classmethod
    def training_args(cls, args: dict) -> dict:
        return with_imagenet_inception(args, DAMSMConfig.backbone)

    def encoders_loss(self, batch: dict, state: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The one phase: :meth:`losses` of the batch's real pairs (same-class pairs masked on CUB)."""
        return self.losses(batch["image"], batch["tokens"], batch["lengths"], batch.get("class_id"))

    def optimizer_groups(self, train) -> dict[str, list[dict]]:
        """One Adam over both encoders' trainable parameters at ``lr``, ``betas`` of the config."""
        c = self.config
        return {"encoders": [{"params": self.trainable_parameters(), "lr": c.lr, "betas": tuple(c.betas)}]}

    def lr_factor(self, epoch: int) -> float:
        return epoch_lr(self.config, epoch) / self.config.lr

    def clipped_parameters(self, phase: str):
        """The text encoder's gradient norm at ``grad_clip`` (the official code clips the RNN only)."""
        return (list(self.text_encoder.parameters()), self.config.grad_clip) if self.config.grad_clip else None

    def end_of_run_metrics(self, test_set, vocab, cfg, run_dir, progress: bool = True):
        """R-precision of the real test images (:func:`t2igan.metrics.r_precision.dataset_r_precision`)."""
        from ..metrics.r_precision import dataset_r_precision

        c = self.config
        splits = min(c.rprec_splits, len(test_set))
        device = next(self.parameters()).device
        try:
            result = dataset_r_precision(self, vocab, test_set, max_words=cfg.data.max_words,
                                         num_captions=c.rprec_captions, splits=splits, seed=cfg.train.seed,
                                         device=device, damsm_name=str(run_dir), progress=progress)
        except T2IError as e:  # e.g. a test split too small for 99 mismatched captions: the weights are saved
            return [(None, f"R-precision of real test images not computed: {e}")]
        record = {"metric": "r_precision", "split": "test", "images": "real", **result}
        return [(record, f"R-precision of real test images: {100 * result['mean']:.2f} +- "
                         f"{100 * result['std']:.2f} % (chance {100 / c.rprec_captions:.0f}%, "
                         f"{result['num_images']} images, {splits} splits, DAMSM {run_dir})")]

    def losses(self, images: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor,
               class_ids: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, float]]:
        """Pretraining loss ``L_1^w + L_2^w + L_1^s + L_2^s`` of real (image, caption) pairs."""
        c = self.config
        text = self.text_encoder(tokens, lengths)
        region_feats, image_emb = self.image_encoder(images)
        w0, w1, _ = damsm_word_loss(region_feats, text.word_embs, text.mask, class_ids,
                                    c.gamma1, c.gamma2, c.gamma3, c.paper_form)
        s0, s1 = damsm_sentence_loss(image_emb, text.sent_emb, class_ids, c.gamma3)
        loss = w0 + w1 + s0 + s1
        return loss, {"loss": loss.item(), "w0": w0.item(), "w1": w1.item(), "s0": s0.item(), "s1": s1.item()}


def save_damsm(run_dir: str | Path, model: DAMSM, vocab, experiment: dict | None = None) -> None:
    """Write ``config.json`` (model_name "damsm"), ``vocab.json`` and ``model.safetensors``."""
    from ..hub import CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME, atomic_write_bytes, save_safetensors

    run_dir = Path(run_dir)
    config = {"experiment": experiment or {}, "model_name": "damsm", "model_config": model.config_dict()}
    atomic_write_bytes(run_dir / CONFIG_NAME, json.dumps(config, indent=2).encode())
    atomic_write_bytes(run_dir / VOCAB_NAME, json.dumps(vocab.to_dict(), ensure_ascii=False).encode())
    save_safetensors(model.state_dict(), run_dir / WEIGHTS_NAME, {"format": "pt"})


def damsm_run_dir(path_or_run_dir: str | Path) -> Path:
    """A DAMSM run folder from the folder itself, any file in it (``model.safetensors``) or the name of
    a bundled model (``shapes-damsm``)."""
    from ..pretrained import resolve_run_dir

    path = Path(path_or_run_dir).expanduser()
    if not path.exists():
        path = resolve_run_dir(path)
    run_dir = path.parent if path.is_file() else path
    if not run_dir.is_dir():
        raise T2IError(f"DAMSM run folder not found: {path}")
    return run_dir


def load_damsm(path_or_run_dir: str | Path, device: str | torch.device = "cpu"):
    """``(DAMSM in eval mode, Vocabulary)`` from a pretraining run folder (or its ``model.safetensors``)."""
    from ..hub import read_run_config

    run_dir = damsm_run_dir(path_or_run_dir)
    name = read_run_config(run_dir).get("model_name")
    if name != "damsm":
        raise T2IError(f"{run_dir} is not a DAMSM run (its config.json names model {name!r})")
    return load_network_run(run_dir, "DAMSM", device)


def epoch_lr(config: DAMSMConfig, epoch: int) -> float:
    """Official schedule: lr x ``lr_decay`` after each epoch while above lr * ``lr_min_factor``."""
    lr = config.lr
    for _ in range(epoch):
        if lr > config.lr * config.lr_min_factor:
            lr *= config.lr_decay
    return lr
