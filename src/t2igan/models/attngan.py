"""AttnGAN [Xu et al., "AttnGAN: Fine-Grained Text to Image Generation with Attentional Generative
Adversarial Networks", CVPR 2018]: a multi-stage generator that attends to words, per-stage
discriminators, and the DAMSM image-text matching loss; and the multi-stage machinery that MirrorGAN
(:mod:`.mirrorgan`, GLAM stages) and DR-GAN (:mod:`.drgan`, SDM stages) configure with their own
stage kinds.

Paper equation -> function:

* Eq. 1, the generator ``h_0 = F_0(z, F_ca(e_bar)), h_i = F_i(h_{i-1}, F_attn(e, h_{i-1})),
  x_i = G_i(h_i)``: :class:`MultiStageGenerator` (F_ca: :class:`t2igan.nn.blocks.ConditioningAugmentation`,
  F_0: :class:`InitialStage`, F_i: :class:`AttentionStage`, G_i: :func:`t2igan.nn.blocks.rgb_head`);
* Eq. 2, word attention ``c_j = sum_i beta_ji e'_i``: :class:`t2igan.nn.attention.WordAttention`;
* Eq. 3-4, G's loss ``sum_i L_G_i + lambda L_DAMSM``: :func:`stage_generator_loss`,
  :func:`multistage_generator_loss`, :func:`add_kl_and_damsm` (with StackGAN's CA term ``KL``);
* Eq. 5, D_i's loss: :func:`stage_discriminator_loss`, :func:`multistage_discriminator_loss`;
* Eq. 6-14, DAMSM and ``L_DAMSM``: :mod:`t2igan.models.damsm`.

Generator details:

* CA: ``FC(e_bar) -> 4 c_dim``, GLU -> ``2 c_dim`` split into ``mu`` and ``log sigma^2``,
  ``c = mu + sigma * eps`` (as the official code; the KL term keeps it near N(0, I)). At inference
  (eval mode) ``c = mu``, so a seed alone fixes an image.
* F_0: ``FC([c, z]) -> 2 * (2^k ngf) x 4 x 4``, BN, GLU, then ``k`` up-blocks (nearest x2, conv3x3,
  BN, GLU), each halving the channels, to ``ngf x base_size x base_size`` (official: 16 ngf at 4x4,
  four up-blocks, 64 px).
* F_i: any module ``stage(h, c_code, word_embs, mask) -> (h', attn, parts)`` doubling the side
  (``parts``: what a family's losses need from inside the stage, else None). AttnGAN's: word
  attention gives a word-context feature per pixel; it is concatenated with ``h``, passed through
  ``num_residual`` GLU residual blocks and one up-block (``2 ngf -> ngf``).

Discriminators: one per stage (:class:`StageDiscriminator`), down-sampling the stage's image to
``4 x 4``; an unconditional logit and a sentence-conditional logit (the sentence replicated
spatially, concatenated, conv3x3 + BN + leaky ReLU, then a 4x4 conv). Logits, never sigmoids.

Losses, per stage ``i``, in the official code's weighting:

* D_i: ``(BCE(D(x), 1) + BCE(D(x, e), 1)) / 2 + (BCE(D(x_hat), 0) + BCE(D(x_hat, e), 0)
  + BCE(D(x, e_wrong), 0)) / 3``: the official code also shows D real images with another
  caption of the batch (``e_wrong``, :func:`t2igan.losses.mismatched_pairs`);
* G: ``sum_i [BCE(D_i(x_hat_i), 1) + BCE(D_i(x_hat_i, e), 1)] + lambda L_DAMSM(x_hat_{m-1})
  + KL(N(mu, sigma^2) || N(0, I))``. The DAMSM loss scores the last stage only, with a frozen,
  pretrained DAMSM; lambda = 5 on CUB, 50 on COCO.

Where the official code (github.com/taoxugit/AttnGAN) and the paper differ:

* ``damsm_paper_form``: the paper's region-word relevance is ``log(sum exp(gamma2 R))^(1/gamma2)``
  (Eq. 10); the official code drops the ``1/gamma2`` (``False``, the default and the presets).
* The official attention mask is laid out batch-major against query-major scores (``mask.repeat``),
  so in a batch of captions of different lengths some pixels mask the wrong words. Here each
  caption's own padding is masked, so a padded word never receives attention.
* ``mismatch_pairs``: the official code pairs image ``i`` with caption ``i + 1`` (``B - 1`` pairs,
  ``"shift"``, the default and the ``-cub``/``-coco`` presets); ``"roll"`` uses all ``B`` images,
  image ``j`` with caption ``j - 1`` (DF-GAN's pairing, the ``-shapes`` presets).
* The official G loss has no 1/2 on the uncond + cond terms (Eq. 4 has); the code's form is used.

Frozen parts: the text encoder (saved with the model: the generator needs it at inference) is always
frozen and kept in eval mode; the DAMSM image encoder is the :class:`~t2igan.models.damsm.DAMSMCritic`
submodule ``damsm_critic`` (in no optimizer, never in train mode, not written to checkpoints; it
comes from ``damsm_weights``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError
from ..fields import Backbone, Config, Count, Fraction, PowerOfTwo
from ..losses import bce_logits_loss, kl_normal_loss, mismatched_pairs
from ..nn.attention import WordAttention
from ..nn.blocks import (ConditioningAugmentation, ResidualBlock, UpBlock, down_block, glu, init_weights, rgb_head,
                         same_block, strip_batch_norm)
from ..nn.text_encoder import TextFeatures
from ..registry import register_model
from .base import SampleOutput, T2IModel
from .damsm import DAMSMCritic, build_damsm_critic


@dataclass
class MultiStageConfig(Config):
    """Fields of the multi-stage GANs (AttnGAN, MirrorGAN, DR-GAN): sizes of
    :class:`MultiStageGenerator` and its stage discriminators, the frozen text encoder, and the DAMSM
    loss that scores the last stage."""

    vocab_size: int = 5000  # words in the vocabulary (set from the data)
    image_size: Count = 256  # output side of the last stage = base_size * 2^(num_stages - 1)
    base_size: PowerOfTwo = 64  # output side of the first stage (official 64; 16 or 32 for CPU presets)
    num_stages: Count = 3  # generator stages / discriminators (official 3: 64, 128, 256 px)
    ngf: Count = 32  # generator width (official CUB 32, COCO 48); F_0 starts at 2^k ngf channels
    ndf: Count = 64  # discriminator width (official CUB 64, COCO 96)
    num_residual: int = 2  # GLU residual blocks per attention stage (official CUB 2, COCO 3)
    z_dim: Count = 100  # noise size
    c_dim: Count = 100  # conditioning-augmentation code size
    text_emb_dim: Count = 300  # text encoder word embedding
    text_hidden_dim: Count = 128  # per LSTM direction; word and sentence features are 2x this (256)
    text_dropout: Fraction = 0.5
    uncond_logits: bool = True  # D's unconditional (real/fake) logit besides the conditional one
    d_batch_norm: bool = True  # official: batch norm in the stage Ds; False: none (convs get biases), so D sees a global colour shift
    damsm_weights: str | None = None  # DAMSM run folder (or its model.safetensors): text + image encoders
    damsm_backbone: Backbone = "inception"  # image encoder built when damsm_weights is None: inception | small_cnn
    damsm_weight: float = 5.0  # weight of L_DAMSM in G's loss (official CUB 5, COCO 50); 0 disables it
    damsm_gamma1: float | None = None  # word-region attention sharpness (None: the DAMSM run's; official YAMLs 4)
    damsm_gamma2: float | None = None  # region-word relevance sharpness (None: the DAMSM run's, else 5)
    damsm_gamma3: float | None = None  # image-text matching sharpness (None: the DAMSM run's, else 10)
    damsm_paper_form: bool | None = None  # True: Eq. 10's ^(1/gamma2); False: the official code's (None: the run's)
    mismatch_pairs: Literal["shift", "roll"] = "shift"  # D's (real, wrong caption) pairs: shift (official: B-1, i with i+1) | roll (B, j with j-1)
    kl_weight: float = 1.0  # weight of CA's KL term
    truncation: float = 0.0  # noise truncation at sampling (0 = none; AttnGAN samples plain N(0, I))
    ca_sample: bool = False  # sampling: c = mu + sigma * eps with eps from the seeded noise (official: sampled), or c = mu

    @property
    def cond_dim(self) -> int:
        return 2 * self.text_hidden_dim

    @property
    def stage_sizes(self) -> list[int]:
        return [self.base_size * 2**i for i in range(self.num_stages)]

    def problem(self) -> str | None:
        if self.image_size != self.stage_sizes[-1]:
            return (f"image_size {self.image_size} must equal base_size * 2^(num_stages - 1) = {self.stage_sizes[-1]} "
                    f"(base_size={self.base_size}, num_stages={self.num_stages})")
        return None


@dataclass
class AttnGANConfig(MultiStageConfig):
    """AttnGAN's fields: those of every multi-stage GAN (:class:`MultiStageConfig`)."""


# ---------------------------------------------------------------------------------------------
# generator [AttnGAN, Eq. 1]


class InitialStage(nn.Module):
    """F_0: ``[c, z] -> ngf x base_size x base_size``."""

    def __init__(self, ngf: int, in_dim: int, base_size: int):
        super().__init__()
        num_up = int(math.log2(base_size // 4))
        self.ch0 = ngf * 2**num_up  # official: 16 ngf for 64 px
        self.fc = nn.Linear(in_dim, 2 * self.ch0 * 4 * 4, bias=False)
        self.norm = nn.BatchNorm1d(2 * self.ch0 * 4 * 4)
        self.ups = nn.Sequential(*(UpBlock(self.ch0 // 2**k, self.ch0 // 2 ** (k + 1)) for k in range(num_up)))

    def forward(self, noise, c_code):
        h = glu(self.norm(self.fc(torch.cat([c_code, noise], dim=1))))  # (B, ch0 * 16)
        return self.ups(h.view(h.shape[0], self.ch0, 4, 4))  # (B, ngf, base, base)


class AttentionStage(nn.Module):
    """AttnGAN's F_i: ``[h, F_attn(e, h)]`` -> residual blocks -> up x2: ``ngf x s x s -> ngf x 2s x 2s``."""

    def __init__(self, ngf: int, word_dim: int, num_residual: int):
        super().__init__()
        self.attention = WordAttention(ngf, word_dim)
        self.residual = nn.Sequential(*(ResidualBlock(2 * ngf) for _ in range(num_residual)))
        self.up = UpBlock(2 * ngf, ngf)

    def forward(self, h, c_code, word_embs, mask):
        context, attn = self.attention(h, word_embs, mask)
        return self.up(self.residual(torch.cat([h, context], dim=1))), attn, None


@dataclass
class GeneratorOutput:
    """What :class:`MultiStageGenerator` returns; unpacks as ``images, attention, mu, logvar``."""

    images: list  # per stage (B, 3, s, s)
    attention: list  # per attention stage (B, T, s, s)
    mu: torch.Tensor  # CA (B, c_dim)
    logvar: torch.Tensor
    parts: list  # per attention stage: what the stage exposes for the losses (DR-GAN's SDM parts), or None

    def __iter__(self):
        return iter((self.images, self.attention, self.mu, self.logvar))


class MultiStageGenerator(nn.Module):
    """CA, F_0, ``num_stages - 1`` attention stages made by ``make_stage()`` and an image head per stage."""

    def __init__(self, ngf: int, z_dim: int, c_dim: int, sent_dim: int, base_size: int, num_stages: int,
                 make_stage: Callable[[], nn.Module]):
        super().__init__()
        self.z_dim, self.c_dim = z_dim, c_dim
        self.ca = ConditioningAugmentation(sent_dim, c_dim)
        self.initial = InitialStage(ngf, z_dim + c_dim, base_size)
        self.stages = nn.ModuleList(make_stage() for _ in range(num_stages - 1))
        self.to_rgb = nn.ModuleList(rgb_head(ngf) for _ in range(num_stages))

    def forward(self, noise, sent_emb, word_embs, mask) -> GeneratorOutput:
        """``noise``: z (B, z_dim), or z and CA's eps (B, z_dim + c_dim) to sample CA at inference."""
        eps = None
        if noise.shape[1] == self.z_dim + self.c_dim:
            noise, eps = noise.split([self.z_dim, self.c_dim], dim=1)
        c_code, mu, logvar = self.ca(sent_emb, eps)
        h = self.initial(noise, c_code)
        images, attention, parts = [self.to_rgb[0](h)], [], []
        for stage, to_rgb in zip(self.stages, self.to_rgb[1:]):
            h, attn, part = stage(h, c_code, word_embs, mask)
            images.append(to_rgb(h))
            attention.append(attn)
            parts.append(part)
        return GeneratorOutput(images, attention, mu, logvar, parts)


# ---------------------------------------------------------------------------------------------
# discriminators


class StageDiscriminator(nn.Module):
    """D_i for ``image_size`` images: features ``(B, out_ch, 4, 4)``, then an unconditional and a
    sentence-conditional logit.

    Official layout, generalised to any power-of-two side >= 8: up to four stride-2 convs
    ``3 -> ndf -> 2ndf -> 4ndf -> 8ndf`` (a 64 px image reaches 4x4 there); each further halving
    doubles the channels (128 px: ``16 ndf``, 256 px: ``32 ndf``) and 3x3 blocks then halve them
    back to ``8 ndf``. Images under 64 px stop earlier, at ``2^(n-1) ndf`` channels.

    ``batch_norm=False`` drops the batch norms (the convs get biases). D sees the real and the fake
    images in separate batches, so with batch norm it normalises away a colour shift that every fake
    shares: on Shapes (one flat background colour) the multi-stage Gs drift to a white background.
    """

    def __init__(self, ndf: int, cond_dim: int, image_size: int, uncond_logits: bool = True,
                 batch_norm: bool = True):
        super().__init__()
        n_down = int(math.log2(image_size // 4))
        if n_down < 1 or 4 * 2**n_down != image_size:
            raise T2IError(f"discriminator image size must be a power of two >= 8, got {image_size}")
        chs = [ndf * 2**k for k in range(n_down)]  # after each halving
        layers = [down_block(3, chs[0], norm=False)]
        layers += [down_block(i, o) for i, o in zip(chs[:-1], chs[1:])]
        ch = chs[-1]
        while ch > 8 * ndf:  # >= 128 px: back down to 8 ndf
            layers.append(same_block(ch, ch // 2))
            ch //= 2
        self.features = nn.Sequential(*layers)
        self.out_ch = ch
        self.joint = same_block(ch + cond_dim, ch)
        self.cond_out = nn.Conv2d(ch, 1, 4, 4)
        self.uncond_out = nn.Conv2d(ch, 1, 4, 4) if uncond_logits else None
        if not batch_norm:
            strip_batch_norm(self.features)
            strip_batch_norm(self.joint)

    def cond_logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        cond = sent_emb[:, :, None, None].expand(-1, -1, features.shape[2], features.shape[3])
        return self.cond_out(self.joint(torch.cat([features, cond], dim=1))).flatten()  # (B,)

    def uncond_logits(self, features: torch.Tensor) -> torch.Tensor | None:
        return None if self.uncond_out is None else self.uncond_out(features).flatten()  # (B,)


class StageDiscriminators(nn.Module):
    """The per-stage discriminators, one module so that one optimizer trains them all (they share
    no parameters, so this equals the official one Adam per D)."""

    def __init__(self, stages: list[nn.Module]):
        super().__init__()
        self.stages = nn.ModuleList(stages)

    def __getitem__(self, i: int) -> StageDiscriminator:
        return self.stages[i]

    def __iter__(self):
        return iter(self.stages)

    def __len__(self) -> int:
        return len(self.stages)


def image_pyramid(images: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Real images at each stage's side (antialiased bilinear down-sampling, like PIL's resize
    in the official loader)."""
    out = []
    for s in sizes:
        if images.shape[-1] == s:
            out.append(images)
        else:
            out.append(F.interpolate(images, size=(s, s), mode="bilinear", align_corners=False, antialias=True))
    return out


# ---------------------------------------------------------------------------------------------
# losses (D_i with features(x), cond_logits(features, e), uncond_logits(features), uncond_out)


def stage_discriminator_loss(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                             sent_emb: torch.Tensor, mismatch: str = "shift") -> tuple[torch.Tensor, dict]:
    """[AttnGAN, Eq. 5] as the official code weights it:
    ``(L(x, 1) + L(x, e, 1)) / 2 + (L(x_hat, 0) + L(x_hat, e, 0) + L(x, e_wrong, 0)) / 3``
    with ``L`` = BCE with logits; without the unconditional logit, ``L(x, e, 1) + (L(x_hat, e, 0)
    + L(x, e_wrong, 0)) / 2``. ``mismatch`` chooses the ``(x, e_wrong)`` pairs (:func:`mismatched_pairs`)."""
    return discriminator_loss_from_features(D, D.features(real), D.features(fake.detach()), sent_emb, mismatch)


def discriminator_loss_from_features(D: nn.Module, real_feats: torch.Tensor, fake_feats: torch.Tensor,
                                     sent_emb: torch.Tensor, mismatch: str = "shift") -> tuple[torch.Tensor, dict]:
    """:func:`stage_discriminator_loss` from D's features of the real and the (detached) fake images,
    for models that read the same features again (DR-GAN's DNM)."""
    cond_real = D.cond_logits(real_feats, sent_emb)
    cond_fake = D.cond_logits(fake_feats, sent_emb)
    cond_wrong = D.cond_logits(*mismatched_pairs(real_feats, sent_emb, mismatch))
    real_terms = [bce_logits_loss(cond_real, True)]
    fake_terms = [bce_logits_loss(cond_fake, False), bce_logits_loss(cond_wrong, False)]
    logs = {"cond_real": cond_real.mean().item(), "cond_fake": cond_fake.mean().item(),
            "cond_wrong": cond_wrong.mean().item()}
    if D.uncond_out is not None:
        uncond_real, uncond_fake = D.uncond_logits(real_feats), D.uncond_logits(fake_feats)
        real_terms.append(bce_logits_loss(uncond_real, True))
        fake_terms.append(bce_logits_loss(uncond_fake, False))
        logs.update(uncond_real=uncond_real.mean().item(), uncond_fake=uncond_fake.mean().item())
    loss = sum(real_terms) / len(real_terms) + sum(fake_terms) / len(fake_terms)
    return loss, logs


def stage_generator_loss(D: nn.Module, fake: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
    """[AttnGAN, Eq. 4] as the official code weights it: ``L(x_hat, 1) + L(x_hat, e, 1)``."""
    return generator_loss_from_features(D, D.features(fake), sent_emb)


def generator_loss_from_features(D: nn.Module, fake_feats: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
    """:func:`stage_generator_loss` from D's features of the fake images."""
    loss = bce_logits_loss(D.cond_logits(fake_feats, sent_emb), True)
    if D.uncond_out is not None:
        loss = loss + bce_logits_loss(D.uncond_logits(fake_feats), True)
    return loss


def multistage_discriminator_loss(discriminators, real: torch.Tensor, fakes: list, sent_emb: torch.Tensor,
                                  mismatch: str = "shift") -> tuple[torch.Tensor, dict]:
    """``sum_i`` :func:`stage_discriminator_loss` of D_i on stage ``i``'s fake images and the real
    images down-sampled to their side (:func:`image_pyramid`), with each stage's loss and logits in
    the logs (``d_loss{i}``, ``d{i}_*``)."""
    reals = image_pyramid(real, [fake.shape[-1] for fake in fakes])
    loss, logs = 0.0, {}
    for i, (D, real_i, fake_i) in enumerate(zip(discriminators, reals, fakes)):
        loss_i, logs_i = stage_discriminator_loss(D, real_i, fake_i, sent_emb, mismatch)
        loss = loss + loss_i
        logs[f"d_loss{i}"] = loss_i.item()
        logs.update({f"d{i}_{k}": v for k, v in logs_i.items()})
    logs["d_loss"] = loss.item()
    return loss, logs


def multistage_generator_loss(discriminators, fakes: list, sent_emb: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """``sum_i`` :func:`stage_generator_loss` [AttnGAN, Eq. 3], each stage's term logged as ``g_adv{i}``."""
    loss, logs = 0.0, {}
    for i, (D, fake_i) in enumerate(zip(discriminators, fakes)):
        adv = stage_generator_loss(D, fake_i, sent_emb)
        loss = loss + adv
        logs[f"g_adv{i}"] = adv.item()
    return loss, logs


def add_kl_and_damsm(loss, logs: dict, critic: DAMSMCritic, config, mu: torch.Tensor, logvar: torch.Tensor,
                     images: torch.Tensor, text: TextFeatures, batch: dict):
    """The tail of a multi-stage generator's loss [AttnGAN, Eq. 3; StackGAN's CA term]:
    ``loss + kl_weight KL(N(mu, sigma^2) || N(0, I)) + damsm_weight L_DAMSM(last stage's images)``."""
    kl = kl_normal_loss(mu, logvar)
    loss = loss + config.kl_weight * kl
    logs["kl"] = kl.item()
    return critic.add_to(loss, logs, config.damsm_weight, images, text, batch)


def generate_for_step(model: nn.Module, batch: dict, state: dict) -> GeneratorOutput:
    """A multi-stage GAN's images of one training step, made once in the D phase for both phases:
    the batch's text features (detached: the text encoder is frozen), noise, every stage's image.
    ``state`` gets ``gen``, its ``fakes``, ``mu``, ``logvar``, and ``text``."""
    text = model.encode_text(batch["tokens"], batch["lengths"]).detach()
    out = model.generator(model.draw_noise(batch), text.sent_emb, text.word_embs, text.mask)
    state.update(gen=out, fakes=out.images, mu=out.mu, logvar=out.logvar, text=text)
    return out


# ---------------------------------------------------------------------------------------------
# the model


@register_model("attngan", AttnGANConfig)
class AttnGAN(T2IModel):
    """Networks: ``text_encoder`` (frozen DAMSM), ``generator`` (a :class:`MultiStageGenerator` of
    :class:`AttentionStage`), ``discriminator`` (one :class:`StageDiscriminator` per stage) and the
    unsaved ``damsm_critic``."""

    eval_modules = ("text_encoder",)
    unsaved_modules = ("damsm_critic",)

    def __init__(self, config: AttnGANConfig):
        super().__init__(config)
        c = config
        self.text_encoder = self.build_text_encoder().requires_grad_(False)
        self.damsm_critic = build_damsm_critic("attngan", c)
        self.generator = MultiStageGenerator(c.ngf, c.z_dim, c.c_dim, c.cond_dim, c.base_size, c.num_stages,
                                             lambda: AttentionStage(c.ngf, c.cond_dim, c.num_residual))
        self.discriminator = StageDiscriminators(
            [StageDiscriminator(c.ndf, c.cond_dim, s, c.uncond_logits, c.d_batch_norm) for s in c.stage_sizes])
        init_weights(self.generator)
        init_weights(self.discriminator)
        self.train()

    # -- inference -------------------------------------------------------------------------------
    def generate_from_text(self, text, noise, generator_module=None) -> SampleOutput:
        G = generator_module or self.generator
        out = G(noise, text.sent_emb, text.word_embs, text.mask)
        return SampleOutput(out.images[-1], {"attention": out.attention, "stage_images": out.images})

    # -- training --------------------------------------------------------------------------------
    def d_loss(self, batch, state):
        """Generate every stage's image once (reused by the G phase), then sum the stage losses
        of :func:`stage_discriminator_loss`."""
        out = generate_for_step(self, batch, state)
        return multistage_discriminator_loss(self.discriminator, batch["image"], out.images, state["text"].sent_emb,
                                             self.config.mismatch_pairs)

    def g_loss(self, batch, state):
        """``sum_i L_G_i + lambda L_DAMSM(last stage) + KL`` [AttnGAN, Eq. 3; StackGAN CA]."""
        fakes, text = state["fakes"], state["text"]
        loss, logs = multistage_generator_loss(self.discriminator, fakes, text.sent_emb)
        loss = add_kl_and_damsm(loss, logs, self.damsm_critic, self.config, state["mu"], state["logvar"],
                                fakes[-1], text, batch)
        logs["g_loss"] = loss.item()
        return loss, logs
