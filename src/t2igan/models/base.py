"""What every model family provides to the shared trainer and the inference pipeline.

A :class:`T2IModel` bundles the networks of one family (``text_encoder``, ``generator``,
``discriminator`` and any others) and the family's losses; it holds no optimizer and runs no loop.

The trainer, for each batch, runs the model's ``phases`` in order (``("d", "g")`` by default)::

    state = {}                                    # scratch space shared by the phases of one step
    for phase in model.phases:
        loss, logs = model.compute_loss(phase, batch, state)
        opt = optimizer[model.optimizer_name(phase)]
        opt.zero_grad(); loss.backward(); opt.step()

and keeps an exponential moving average of ``model.generator`` (when the model has one: DAMSM and
STREAM, trained by the same loop, have none). The pipeline calls :meth:`T2IModel.generate` with the
moving-average generator.

Optional hooks the trainer calls: ``lr_factor(epoch)`` (a per-epoch learning-rate schedule) and
:meth:`T2IModel.clipped_parameters` (gradient-norm clipping after a phase's backward).

A model reads no file and never changes its config: the pretrained parts its config names (a DAMSM,
a STREAM, ImageNet Inception weights) are loaded into it by :func:`t2igan.training.build.build_model`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from ..nn.text_encoder import RNNTextEncoder, TextFeatures


@dataclass
class SampleOutput:
    images: torch.Tensor  # (B, 3, H, W) in [-1, 1]
    extras: dict = field(default_factory=dict)  # e.g. "attention": [(B, T, h, w)], "masks": [(B, 1, h, w)]


TRUNCATION_FORMS = ("scaled", "clip")


def truncated_noise(shape, truncation: float | None = None, generator: torch.Generator | None = None,
                    form: str = "scaled") -> torch.Tensor:
    """Standard normal noise, optionally truncated (``truncation`` None or 0: plain ``N(0, I)``).

    * ``form="scaled"`` (the official DF-GAN sampler, ``code/lib/utils.py``): a standard normal
      truncated to ``[-2, 2]``, times ``truncation`` (DF-GAN's ``trunc_rate`` 0.88: std 0.77);
    * ``form="clip"``: a standard normal truncated to ``[-truncation, truncation]`` (BigGAN-style
      truncation; at 0.88 its std is 0.48, a narrower distribution).

    The truncated normal is sampled exactly by inverse CDF, so it is reproducible from a
    ``torch.Generator`` (no rejection loop).
    """
    if form not in TRUNCATION_FORMS:
        raise ValueError(f"truncation form must be one of {', '.join(TRUNCATION_FORMS)}, got {form!r}")
    if truncation is None or truncation <= 0:
        return torch.randn(shape, generator=generator)
    bound, scale = (2.0, float(truncation)) if form == "scaled" else (float(truncation), 1.0)
    lo = torch.special.ndtr(torch.tensor(-bound, dtype=torch.float64))
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    u = lo + u * (1 - 2 * lo)
    return (scale * torch.special.ndtri(u)).float()


class T2IModel(nn.Module):
    model_name: str = "base"  # set by register_model
    config_class: type = object
    phases: tuple[str, ...] = ("d", "g")
    # networks generation never uses: left out of inference-only weight files (bundled models)
    training_only_modules: tuple[str, ...] = ("discriminator",)
    # frozen submodules that come from their own files (the DAMSM critic): in the module tree, so
    # ``.to()``, ``.half()`` and DDP see them, but never in ``state_dict()`` (checkpoints, weight files)
    unsaved_modules: tuple[str, ...] = ()
    # submodules kept in eval mode whatever ``train()`` says (frozen encoders: no dropout, fixed BN)
    eval_modules: tuple[str, ...] = ()

    def __init__(self, config):
        super().__init__()
        self.config = config
        self._register_state_dict_hook(_drop_unsaved_keys)
        self.register_load_state_dict_post_hook(_ignore_unsaved_keys)

    def train(self, mode: bool = True):
        """Train mode for every network except the frozen ones (``eval_modules``, ``unsaved_modules``)."""
        super().train(mode)
        for name in self.eval_modules + self.unsaved_modules:
            module = getattr(self, name, None)
            if module is not None:
                module.eval()
        return self

    # -- shared pieces -------------------------------------------------------------------------
    def build_text_encoder(self) -> RNNTextEncoder:
        c = self.config
        return RNNTextEncoder(c.vocab_size, c.text_emb_dim, c.text_hidden_dim, c.text_dropout)

    @property
    def text_encoder_trainable(self) -> bool:
        return getattr(self.config, "text_encoder_mode", "frozen") != "frozen"

    def encode_text(self, tokens: torch.Tensor, lengths: torch.Tensor) -> TextFeatures:
        """Word and sentence features; without gradients when the encoder is frozen."""
        if self.text_encoder_trainable and self.training:
            return self.text_encoder(tokens, lengths)
        with torch.no_grad():
            was = self.text_encoder.training
            self.text_encoder.eval()
            feats = self.text_encoder(tokens, lengths)
            self.text_encoder.train(was)
        return feats

    def noise(self, batch_size: int, truncation: float | None = None, generator=None) -> torch.Tensor:
        """Sampling noise (B, z_dim), or (B, z_dim + c_dim) with conditioning augmentation's eps when a
        multi-stage model samples it (``ca_sample``)."""
        form = getattr(self.config, "truncation_form", "scaled")
        width = self.config.z_dim + (self.config.c_dim if getattr(self.config, "ca_sample", False) else 0)
        return truncated_noise((batch_size, width), truncation, generator, form)

    def draw_noise(self, batch: dict) -> torch.Tensor:
        """Training noise ``z ~ N(0, I)``, one row per image of the batch."""
        images = batch["image"]
        return torch.randn(images.shape[0], self.config.z_dim, device=images.device)

    def optimizer_name(self, phase: str) -> str:
        """The key of :meth:`optimizer_groups` whose optimizer a phase steps (default: its own
        name; SSA-GAN's ``d_gp`` phase steps D's optimizer again)."""
        return phase

    def config_dict(self) -> dict:
        return asdict(self.config)

    # -- optional trainer hooks ----------------------------------------------------------------
    def clipped_parameters(self, phase: str) -> tuple[list[nn.Parameter], float] | None:
        """``(parameters, max norm)`` whose gradient norm the trainer clips after ``phase``'s backward
        (and the all-reduce), or None for no clipping (the default)."""
        return None

    # -- to implement --------------------------------------------------------------------------
    def generate(self, tokens, lengths, noise, generator_module: nn.Module | None = None) -> SampleOutput:
        """Images for captions; ``generator_module`` replaces ``self.generator`` (the EMA copy)."""
        return self.generate_from_text(self.encode_text(tokens, lengths), noise, generator_module)

    def generate_from_text(self, text: TextFeatures, noise: torch.Tensor,
                           generator_module: nn.Module | None = None) -> SampleOutput:
        """Images from text features (used directly for interpolation between captions)."""
        raise NotImplementedError

    def compute_loss(self, phase: str, batch: dict, state: dict) -> tuple[torch.Tensor, dict]:
        """The loss of one phase: the method ``<phase>_loss(batch, state)`` (``d_loss``, ``g_loss``,
        SSA-GAN's ``d_gp_loss``), returning ``(scalar loss, {name: float})``."""
        if phase not in self.phases:
            raise ValueError(f"{self.model_name} has phases {', '.join(self.phases)}, not {phase!r}")
        return getattr(self, f"{phase}_loss")(batch, state)

    def optimizer_groups(self, train) -> dict[str, list[dict]]:
        """Parameter groups of each phase's Adam optimizer. Default: G for "g"; D (+ a text encoder
        trained by D's loss, ``text_encoder_mode="joint_d"``, at ``text_encoder_lr``) for "d"."""
        g = [{"params": list(self.generator.parameters()), "lr": train.lr_g, "betas": tuple(train.betas_g)}]
        d = [{"params": list(self.discriminator.parameters()), "lr": train.lr_d, "betas": tuple(train.betas_d)}]
        if self.text_encoder_trainable:
            lr = getattr(self.config, "text_encoder_lr", None) or train.lr_g
            d.append({"params": list(self.text_encoder.parameters()), "lr": lr, "betas": tuple(train.betas_g)})
        return {"g": g, "d": d}


def _drop_unsaved_keys(model: T2IModel, state_dict: dict, prefix: str, local_metadata) -> None:
    """State-dict hook: leave the keys of ``model.unsaved_modules`` out."""
    drop = tuple(f"{prefix}{name}." for name in model.unsaved_modules)
    if drop:
        for key in [k for k in state_dict if k.startswith(drop)]:
            del state_dict[key]


def _ignore_unsaved_keys(model: T2IModel, incompatible_keys) -> None:
    """Load post-hook: the keys of ``unsaved_modules`` are never expected in a state dict."""
    names = set(model.unsaved_modules)
    missing = incompatible_keys.missing_keys
    missing[:] = [k for k in missing if not names & set(k.split(".")[:-1])]
