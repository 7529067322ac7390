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

Pretraining (:func:`pretrain_damsm`, ``t2igan pretrain damsm PRESET``) follows the official schedule: Adam
(lr 0.002, betas (0.5, 0.999)), lr x 0.98 per epoch down to lr / 10, gradient norm clipped at 0.25,
batch 48. A run folder holds ``config.json``, ``vocab.json``, ``model.safetensors`` (keys
``text_encoder.*`` and ``image_encoder.*``) and ``log.jsonl``; :func:`load_damsm` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

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
                 paper_form: bool = DAMSM_PAPER_FORM, weight_field: str = "damsm_lambda"):
        super().__init__()
        if backbone not in BACKBONES:
            raise T2IError(f"{owner}: damsm_backbone must be inception or small_cnn, got {backbone!r}")
        self.owner, self.weight_field = owner, weight_field  # for messages
        self.embed_dim, self.backbone, self.image_size = embed_dim, backbone, image_size
        self.gammas, self.paper_form = (gamma1, gamma2, gamma3), paper_form
        self.register_module("encoder", None)

    def train(self, mode: bool = True) -> "DAMSMCritic":
        return super().train(False)

    def load(self, path: str, text_encoder: nn.Module, vocab_size: int) -> None:
        """Take the image encoder of the DAMSM run at ``path`` (frozen) and load its text encoder
        into ``text_encoder``; the run's vocabulary must be the data's."""
        damsm, vocab = load_damsm(path)
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


def add_kl_and_damsm(loss, logs: dict, critic: DAMSMCritic, config, mu: torch.Tensor, logvar: torch.Tensor,
                     images: torch.Tensor, text: TextFeatures, batch: dict):
    """The tail of a multi-stage generator's loss [AttnGAN, Eq. 2; StackGAN's CA term]:
    ``loss + kl_weight KL(N(mu, sigma^2) || N(0, I)) + damsm_lambda L_DAMSM(last stage's images)``."""
    kl = kl_normal_loss(mu, logvar)
    loss = loss + config.kl_weight * kl
    logs["kl"] = kl.item()
    return critic.add_to(loss, logs, config.damsm_lambda, images, text, batch)


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
    damsm_weights: str | None = None  # DAMSM run folder (or its model.safetensors): text + image encoders
    damsm_backbone: str = "inception"  # image encoder built when damsm_weights is None: inception | small_cnn
    damsm_lambda: float = 5.0  # weight of L_DAMSM in G's loss (official CUB 5, COCO 50); 0 disables it
    damsm_gamma1: float = 4.0  # word-region attention sharpness (official YAMLs 4)
    damsm_gamma2: float = 5.0  # region-word relevance sharpness
    damsm_gamma3: float = 10.0  # image-text matching sharpness
    damsm_paper_form: bool = DAMSM_PAPER_FORM  # True: Eq. 10's ^(1/gamma2); False: the official code's form
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

    def damsm_critic(self, owner: str) -> DAMSMCritic:
        return DAMSMCritic(owner, self.cond_dim, self.damsm_backbone, self.image_size, self.damsm_gamma1,
                           self.damsm_gamma2, self.damsm_gamma3, self.damsm_paper_form)


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


@dataclass
class DAMSMTrainConfig:
    """Pretraining schedule (official AttnGAN DAMSM defaults)."""

    batch_size: int = 48
    lr: float = 0.002  # Adam learning rate (both encoders)
    betas: tuple = (0.5, 0.999)  # Adam betas
    lr_decay: float = 0.98  # lr multiplied by this after every epoch ...
    lr_min_factor: float = 0.1  # ... but never below lr * lr_min_factor
    grad_clip: float = 0.25  # max gradient norm of the text encoder (the official code clips the RNN only)
    epochs: int = 600  # passes over the training split
    max_steps: int | None = None  # stop after this many steps (overrides epochs)
    time_limit_min: float | None = None  # stop after this many minutes
    time_limit_clock: str = "wall"  # wall | cpu (this process's CPU time: fair budgets on a shared machine)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    log_every: int = 50  # steps between log.jsonl lines
    rprec_captions: int = 100  # R-precision at the end: true caption + (this - 1) mismatched
    rprec_splits: int = 10  # ... mean and std over this many splits


class DAMSM(nn.Module):
    """Text encoder + image encoder of AttnGAN's DAMSM (state-dict prefixes ``text_encoder.`` and
    ``image_encoder.``, so a generator can load either part from a DAMSM run)."""

    def __init__(self, config: DAMSMConfig):
        super().__init__()
        c = self.config = config
        if c.vocab_size < 2:
            raise T2IError(f"DAMSM needs vocab_size >= 2, got {c.vocab_size}")
        if c.embed_dim != 2 * c.text_hidden_dim:
            raise T2IError(f"DAMSM: embed_dim ({c.embed_dim}) must be 2 * text_hidden_dim ({c.text_hidden_dim}), "
                           "the bidirectional LSTM's feature size")
        self.text_encoder = RNNTextEncoder(c.vocab_size, c.text_emb_dim, c.text_hidden_dim, c.text_dropout)
        self.image_encoder = ImageEncoder(c.embed_dim, c.backbone, c.image_size, c.inception_weights, c.cnn_channels)

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

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
    """A DAMSM run folder from the folder itself or any file in it (``model.safetensors``)."""
    path = Path(path_or_run_dir).expanduser()
    run_dir = path.parent if path.is_file() else path
    if not run_dir.is_dir():
        raise T2IError(f"DAMSM run folder not found: {path}")
    return run_dir


def load_damsm(path_or_run_dir: str | Path, device: str | torch.device = "cpu"):
    """``(DAMSM in eval mode, Vocabulary)`` from a pretraining run folder (or its ``model.safetensors``)."""
    from ..data.text import Vocabulary
    from ..hub import VOCAB_NAME, WEIGHTS_NAME, load_safetensors_into, read_run_config

    run_dir = damsm_run_dir(path_or_run_dir)
    config = read_run_config(run_dir)
    if config.get("model_name") != "damsm":
        raise T2IError(f"{run_dir} is not a DAMSM run (its config.json names model {config.get('model_name')!r})")
    values = dict(config.get("model_config", {}))
    values["inception_weights"] = None  # the run's own weights hold the backbone
    try:
        model = DAMSM(build_config(DAMSMConfig, values, f"{run_dir}/config.json model_config"))
    except TypeError as err:
        raise T2IError(f"{run_dir}/config.json: bad DAMSM config ({err})") from None
    load_safetensors_into(model, run_dir / WEIGHTS_NAME)
    vocab = Vocabulary.load(run_dir / VOCAB_NAME)
    if len(vocab) != model.config.vocab_size:
        raise T2IError(f"{run_dir}: vocab.json has {len(vocab)} words but the DAMSM was built for "
                       f"{model.config.vocab_size}")
    return model.to(device).eval(), vocab


def build_config(cls, values: dict, what: str):
    """``cls(**values)`` with a one-line error for unknown keys."""
    from ..config import build_dataclass

    return build_dataclass(cls, values, what)


# ---------------------------------------------------------------------------------------------------
# Pretraining
# ---------------------------------------------------------------------------------------------------


@dataclass
class PretrainSetup:
    """What a pretraining loop starts from (:meth:`PretrainExperiment.prepare`)."""

    data: object  # DataConfig
    train: object  # the experiment's train config
    device: torch.device
    train_set: object
    test_set: object
    vocab: object
    model: nn.Module  # on ``device``
    loader: object  # shuffled training batches
    params: list  # the trainable parameters ...
    optimizer: torch.optim.Optimizer  # ... and their Adam
    total: int  # steps to run
    run_dir: Path  # created
    log_path: Path


@dataclass
class PretrainExperiment:
    """A pretraining preset of a network the GANs load (DAMSM, STREAM): ``model`` (its name),
    ``model_args`` (the network's config), ``data`` (:class:`t2igan.config.DataConfig`) and ``train``
    (its schedule). Subclasses name the network (``kind``), its class (``network``), its config and
    train config classes."""

    kind: ClassVar[str] = ""
    network: ClassVar[type] = nn.Module
    model_class: ClassVar[type] = object
    train_class: ClassVar[type] = object

    model: str = ""
    model_args: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    name: str = ""
    runs_dir: str = "runs"

    def data_config(self):
        from ..config import DataConfig

        return build_config(DataConfig, self.data, "data")

    def train_config(self):
        return build_config(self.train_class, self.train, "train")

    def model_config(self, vocab_size: int = 0):
        values = dict(self.model_args, vocab_size=vocab_size)
        values.setdefault("image_size", self.data_config().image_size)
        return build_config(self.model_class, values, "model_args")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def resolve(cls, preset: str, overrides: list[str] | None = None) -> "PretrainExperiment":
        """A preset (``damsm-shapes``) or YAML file plus ``section.key=value`` overrides, validated."""
        from ..config import apply_overrides, load_preset

        d = apply_overrides(load_preset(preset), overrides or [])
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise T2IError(f"unknown top-level keys in {cls.kind.upper()} preset {preset!r}: {sorted(unknown)}")
        if d.get("model", cls.kind) != cls.kind:
            raise T2IError(f"preset {preset!r} is for model {d['model']!r}, not {cls.kind} (use `t2igan train`)")
        exp = cls(**d)
        exp.data_config(), exp.model_config()  # unknown keys fail here, in one line
        if exp.train_config().time_limit_clock not in ("wall", "cpu"):
            raise T2IError(f"train.time_limit_clock must be wall or cpu, got {exp.train_config().time_limit_clock!r}")
        return exp

    def prepare(self, run_dir: str | Path | None = None) -> PretrainSetup:
        """Seeds, device, data, vocabulary, the network (with ImageNet Inception weights when its
        backbone is Inception: required, so this fails before loading data), its Adam and the run folder."""
        import random
        from types import SimpleNamespace

        from ..data.text import CaptionCollator
        from ..trainer import build_datasets, build_vocab, new_run_dir

        data, train = self.data_config(), self.train_config()
        torch.manual_seed(train.seed)
        random.seed(train.seed)
        device = resolve_device(train.device)
        inception_weights = self.model_config().inception_weights
        if self.model_config().backbone == "inception":
            from ..metrics.inception import resolve_weights_path

            inception_weights = str(resolve_weights_path("imagenet", inception_weights))
        data_only = SimpleNamespace(data=data)  # what the trainer's data helpers read
        train_set, test_set = build_datasets(data_only)
        vocab = build_vocab(data_only, train_set)
        config = dataclasses.replace(self.model_config(len(vocab)), inception_weights=inception_weights)
        model = self.network(config).to(device)
        loader = torch.utils.data.DataLoader(
            train_set, batch_size=train.batch_size, shuffle=True, drop_last=len(train_set) >= train.batch_size,
            num_workers=data.num_workers, collate_fn=CaptionCollator(vocab, data.max_words, data.shorten, train=True),
            generator=torch.Generator().manual_seed(train.seed),
        )
        params = model.trainable_parameters()
        optimizer = torch.optim.Adam(params, lr=train.lr, betas=tuple(train.betas))
        total = train.max_steps if train.max_steps is not None else train.epochs * len(loader)
        run_dir = Path(run_dir) if run_dir is not None else new_run_dir(self.runs_dir, self.name)
        run_dir.mkdir(parents=True, exist_ok=True)
        return PretrainSetup(data, train, device, train_set, test_set, vocab, model, loader, params, optimizer,
                             total, run_dir, run_dir / "log.jsonl")


@dataclass
class DAMSMExperiment(PretrainExperiment):
    """A DAMSM pretraining preset: ``model: damsm``, ``model_args`` (:class:`DAMSMConfig`), ``data``
    and ``train`` (:class:`DAMSMTrainConfig`)."""

    kind: ClassVar[str] = "damsm"
    network: ClassVar[type] = DAMSM
    model_class: ClassVar[type] = DAMSMConfig
    train_class: ClassVar[type] = DAMSMTrainConfig

    model: str = "damsm"
    name: str = "damsm"


def resolve_damsm_config(preset: str, overrides: list[str] | None = None) -> DAMSMExperiment:
    """A DAMSM preset (``damsm-shapes``) or YAML file plus ``section.key=value`` overrides, validated."""
    return DAMSMExperiment.resolve(preset, overrides)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def epoch_lr(train: DAMSMTrainConfig, epoch: int) -> float:
    """Official schedule: lr x ``lr_decay`` after each epoch while above lr * ``lr_min_factor``."""
    lr = train.lr
    for _ in range(epoch):
        if lr > train.lr * train.lr_min_factor:
            lr *= train.lr_decay
    return lr


def pretrain_damsm(exp: DAMSMExperiment, run_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Pretrain a DAMSM on real (image, caption) pairs; returns the run folder.

    Adam over the text encoder and the trainable part of the image encoder, lr decayed per epoch
    (:func:`epoch_lr`), the text encoder's gradient norm clipped at ``grad_clip`` (the official code
    clips the RNN only). Same-class pairs are masked on data sets with class ids (CUB). At the end the
    run folder gets the weights and R-precision of the real test images is printed and logged.
    """
    from tqdm import tqdm

    from ..metrics.r_precision import dataset_r_precision
    from ..trainer import elapsed_seconds

    run = exp.prepare(run_dir)
    data, train, device, model, optimizer = run.data, run.train, run.device, run.model, run.optimizer
    total, run_dir, log_path, vocab, test_set = run.total, run.run_dir, run.log_path, run.vocab, run.test_set
    start, cpu_start, step, epoch, running, lr = time.time(), time.process_time(), 0, 0, [], train.lr
    bar = tqdm(total=total, desc=f"damsm {exp.name}", unit="step", disable=not progress)
    model.train()
    done = False
    try:
        while not done:
            lr = epoch_lr(train, epoch)
            for group in optimizer.param_groups:
                group["lr"] = lr
            for batch in run.loader:
                images = batch["image"].to(device)
                class_ids = batch.get("class_id")
                loss, logs = model.losses(images, batch["tokens"].to(device), batch["lengths"].to(device),
                                          None if class_ids is None else class_ids.to(device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.text_encoder.parameters(), train.grad_clip)
                optimizer.step()
                step += 1
                running.append(logs)
                bar.update(1)
                bar.set_postfix(loss=f"{logs['loss']:.3f}", lr=f"{lr:.2g}")
                if step % train.log_every == 0 or step == total:
                    mean = {k: sum(r[k] for r in running) / len(running) for k in running[0]}
                    append_jsonl(log_path, {"step": step, "epoch": epoch, "lr": lr,
                                             "time_s": round(time.time() - start, 1), **mean})
                    running = []
                out_of_time = (train.time_limit_min is not None
                               and elapsed_seconds(train.time_limit_clock, start, cpu_start) > 60 * train.time_limit_min)
                if step >= total or out_of_time:
                    done = True
                    break
            else:
                epoch += 1
    except KeyboardInterrupt:
        print("interrupted: saving the DAMSM as it is", flush=True)
    finally:
        bar.close()
    if running:
        mean = {k: sum(r[k] for r in running) / len(running) for k in running[0]}
        append_jsonl(log_path, {"step": step, "epoch": epoch, "lr": lr,
                                 "time_s": round(time.time() - start, 1), **mean})
    model.eval()
    save_damsm(run_dir, model, vocab, exp.to_dict())
    splits = min(train.rprec_splits, len(test_set))
    try:
        result = dataset_r_precision(model, vocab, test_set, max_words=data.max_words,
                                     num_captions=train.rprec_captions, splits=splits, seed=train.seed,
                                     device=device, damsm_name=str(run_dir), progress=progress)
    except T2IError as e:  # e.g. a test split too small for 99 mismatched captions: the weights are saved
        print(f"R-precision of real test images not computed: {e}", flush=True)
        return run_dir
    append_jsonl(log_path, {"step": step, "epoch": epoch, "test_r_precision": result["mean"],
                             "test_r_precision_std": result["std"]})
    append_jsonl(run_dir / "metrics.jsonl", {"metric": "r_precision", "split": "test", "images": "real", **result})
    print(f"R-precision of real test images: {100 * result['mean']:.2f} +- {100 * result['std']:.2f} % "
          f"(chance {100 / train.rprec_captions:.0f}%, {result['num_images']} images, {splits} splits, "
          f"DAMSM {run_dir})")
    return run_dir


def append_jsonl(path: Path, record: dict) -> None:
    """Add one JSON line to a log file."""
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")
