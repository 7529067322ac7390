"""GAN-INT-CLS [Reed et al., "Generative Adversarial Text to Image Synthesis", ICML 2016].

Paper -> function:

* Sec. 4.1, the text-conditional DCGAN: :class:`Generator`, :class:`Discriminator`;
* Sec. 4.2 and Alg. 1, GAN-CLS (D also sees real images with wrong text): :func:`d_cls_loss`;
* Sec. 4.3 and Eq. 5, GAN-INT (G also trained on interpolated embeddings): :func:`interpolate_embeddings`,
  :func:`g_interp_loss`.

A text-conditional DCGAN. G projects the sentence embedding ``phi(t)`` with an FC layer + leaky ReLU
to 128 dimensions, concatenates it with ``z`` (100) and up-samples from 4x4 with stride-2 transposed
convolutions to ``image_size``. D down-samples the image with stride-2 convolutions (+ BN + leaky
ReLU) to 4x4, projects the sentence to 128, replicates it spatially, concatenates, and ends with a
1x1 conv and a 4x4 conv giving one logit.

Four variants (``variant``):

* ``gan``: D sees (real, right text) and (fake, right text);
* ``gan_cls``: D also sees (real, wrong text) as fake [Alg. 1]:
  ``L_D = log D(x, h) + w log(1 - D(x, h_wrong)) + (1 - w) log(1 - D(G(z, h), h))``, ``w`` =
  ``cls_weight`` (0.5 gives the paper's ``(log(1 - s_w) + log(1 - s_f)) / 2``);
* ``gan_int``: G is also trained on interpolated embeddings ``beta t1 + (1 - beta) t2`` [Eq. 5],
  ``beta = interp_beta`` (0.5); D never sees the interpolated fakes;
* ``gan_int_cls``: both.

Text comes either from the project's text encoder (``text_source="encoder"``: a frozen DAMSM text
encoder, or one trained by D's loss with ``text_encoder_mode="joint_d"``) or from precomputed
per-caption embeddings carried by the batch as ``sent_emb`` (``text_source="embeddings"``: Reed's
1024-d char-CNN-RNN embeddings, see :mod:`t2igan.data.embeddings`).

Paper and official code (``reedscot/icml2016``, ``main_cls_int.lua``) differ in places; both forms
are options:

* ``architecture="paper"``: plain DCGAN G and D as described in the paper. ``"official"``: G adds
  a bottleneck residual block (1x1 to c/4, 3x3, 3x3 back to c, identity shortcut) at 4x4 and at
  8x8; D's text projection has batch norm; D has no activation after the conv that produces the
  8x8 map (64 px). The official D also declares a residual block at 4x4, but adds an undefined
  module to it, which makes it an identity: it is left out here.
* ``interp_loss_form="paper"``: ``L_G = mean BCE(fake) + interp_weight * mean BCE(interpolated
  fake)``. ``"official"``: one BCE over the concatenated ``B + B/2`` samples, the interpolated ones
  weighted by ``interp_weight`` and the sum divided by ``1.5 B`` (so ``interp_weight=1`` gives the
  interpolated term half the paper's relative weight).
* The official loader draws the wrong pair as (real image of another class, right text); this
  module uses the paper's (real image, another sample's text), by rolling the batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import T2IError
from ..fields import Config, Count, Fraction, Positive, PowerOfTwo, UnitInterval
from ..losses import bce_logits_loss, mismatched
from ..nn.blocks import init_weights
from ..nn.text_encoder import TextFeatures
from ..registry import register_model
from .base import SampleOutput, T2IModel

@dataclass
class GANINTCLSConfig(Config):
    vocab_size: int = 5000  # words in the vocabulary (set from the data; unused with text_source=embeddings)
    image_size: PowerOfTwo = 64  # output side, a power of two >= 16 (paper: 64)
    variant: Literal["gan", "gan_cls", "gan_int", "gan_int_cls"] = "gan_int_cls"  # gan | gan_cls | gan_int | gan_int_cls
    ngf: Count = 128  # G width: channels of the last hidden map (official 128; ngf*8 at 4x4 for 64 px)
    ndf: Count = 64  # D width: channels of the first map (official 64; ndf*8 at 4x4 for 64 px)
    z_dim: Count = 100  # noise size
    text_proj_dim: Count = 128  # sentence embedding after the FC layer, in G and in D ("nt")
    architecture: Literal["paper", "official"] = "paper"  # paper (plain DCGAN) | official (residual blocks in G, BN on D's text)
    cls_weight: Fraction = 0.5  # weight of the (real, wrong text) term in D's loss when the variant has CLS
    interp_weight: float = 1.0  # weight of G's interpolation term when the variant has INT
    interp_beta: UnitInterval = 0.5  # t = beta t1 + (1 - beta) t2 for G's interpolated embeddings
    interp_loss_form: Literal["paper", "official"] = "paper"  # paper (sum of two means) | official (one weighted mean over 1.5 B)
    text_source: Literal["encoder", "embeddings"] = "encoder"  # encoder (RNN text encoder) | embeddings (batch["sent_emb"], e.g. char-CNN-RNN)
    embedding_dim: Count = 1024  # size of precomputed embeddings (text_source=embeddings; char-CNN-RNN 1024)
    text_emb_dim: Count = 300  # text encoder word embedding
    text_hidden_dim: Count = 128  # per LSTM direction; sentence feature is 2x this (256)
    text_dropout: Fraction = 0.5
    text_encoder_mode: Literal["frozen", "joint_d"] = "frozen"  # frozen (a pretrained DAMSM) | joint_d (trained with D's loss)
    text_encoder_lr: Positive | None = None  # learning rate of a trainable text encoder (default: G's)
    damsm_weights: str | None = None  # DAMSM run folder (or its model.safetensors): its text encoder starts ours
    lr_decay: float = 0.5  # learning-rate factor applied every lr_decay_every_epochs (see lr_factor)
    lr_decay_every_epochs: int = 100  # official: halve every 100 epochs; 0 = constant learning rate
    truncation: float = 0.0  # noise truncation at sampling (0 = plain N(0, I), as in the paper)

    @property
    def uses_cls(self) -> bool:
        return self.variant in ("gan_cls", "gan_int_cls")

    @property
    def uses_interp(self) -> bool:
        return self.variant in ("gan_int", "gan_int_cls")

    @property
    def text_dim(self) -> int:
        """Size of the sentence embedding fed to G and D."""
        return self.embedding_dim if self.text_source == "embeddings" else 2 * self.text_hidden_dim


# ---------------------------------------------------------------------------------------------
# losses


def d_cls_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor, wrong_logits: torch.Tensor | None = None,
               cls_weight: float = 0.5) -> torch.Tensor:
    """Discriminator loss of GAN-CLS [Reed et al. 2016, Alg. 1], as a loss to minimise:

    ``BCE(D(x, h), 1) + w BCE(D(x, h_wrong), 0) + (1 - w) BCE(D(G(z, h), h), 0)``; without wrong
    pairs (plain GAN / GAN-INT) ``BCE(D(x, h), 1) + BCE(D(G(z, h), h), 0)``.
    """
    real = bce_logits_loss(real_logits, True)
    fake = bce_logits_loss(fake_logits, False)
    if wrong_logits is None:
        return real + fake
    return real + cls_weight * bce_logits_loss(wrong_logits, False) + (1.0 - cls_weight) * fake


def interpolate_embeddings(sent_emb: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    """``beta t1 + (1 - beta) t2`` [Reed et al. 2016, Eq. 5], pairing the first half of the batch
    with the second half (as the official code does): ``(B, D) -> (B // 2, D)``."""
    half = sent_emb.shape[0] // 2
    return torch.lerp(sent_emb[half: 2 * half], sent_emb[:half], beta)


def g_interp_loss(fake_logits: torch.Tensor, interp_logits: torch.Tensor | None, interp_weight: float = 1.0,
                  form: str = "paper") -> torch.Tensor:
    """Generator loss (non-saturating) of GAN / GAN-INT [Reed et al. 2016, Eq. 5]:

    ``paper``: ``BCE(D(G(z, h), h), 1) + lambda BCE(D(G(z', t_int), t_int), 1)``, each a mean;
    ``official``: one mean over all ``B + B/2`` samples with the interpolated ones weighted ``lambda``.
    """
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits), reduction="none")
    if interp_logits is None or interp_logits.numel() == 0:
        return fake.mean()
    interp = F.binary_cross_entropy_with_logits(interp_logits, torch.ones_like(interp_logits), reduction="none")
    if form == "official":
        return (fake.sum() + interp_weight * interp.sum()) / (fake.numel() + interp.numel())
    return fake.mean() + interp_weight * interp.mean()


# ---------------------------------------------------------------------------------------------
# networks


def _num_doublings(image_size: int) -> int:
    """Number of x2 steps between 4x4 and ``image_size``."""
    n = int(round(math.log2(image_size))) - 2
    if image_size < 16 or 2 ** (n + 2) != image_size:
        raise T2IError(f"gan_int_cls: image_size must be a power of two >= 16, got {image_size}")
    return n


def g_channels(ngf: int, image_size: int) -> list[int]:
    """Channels of G's hidden maps at 4, 8, ..., ``image_size / 2``: ``ngf * min(8, S / 2r)``
    (64 px: 8, 4, 2, 1 x ngf, the official plan)."""
    n = _num_doublings(image_size)
    return [ngf * min(8, 2 ** (n - 1 - k)) for k in range(n)]


def d_channels(ndf: int, image_size: int) -> list[int]:
    """Channels of D's maps at ``image_size / 2``, ..., 4: ``ndf * min(8, 2^k)`` (64 px: 1, 2, 4, 8 x ndf)."""
    return [ndf * min(8, 2**k) for k in range(_num_doublings(image_size))]


class BottleneckResidual(nn.Module):
    """Official G block at 4x4 and 8x8: ``relu(x + BN(conv3(relu(BN(conv3(relu(BN(conv1(x)))))))))``,
    with a 1x1 conv down to ``c / 4`` channels first."""

    def __init__(self, channels: int):
        super().__init__()
        mid = max(1, channels // 4)
        self.body = nn.Sequential(
            nn.Conv2d(channels, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(True),
            nn.Conv2d(mid, mid, 3, 1, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(True),
            nn.Conv2d(mid, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
        )

    def forward(self, x):
        return F.relu(x + self.body(x))


class Generator(nn.Module):
    """``G(z, phi(t))``: FC(phi(t)) -> 128 + leaky ReLU, concatenated with z, then a 4x4 transposed
    conv (1x1 -> 4x4) and stride-2 transposed convs with BN + ReLU up to ``image_size``, tanh."""

    def __init__(self, z_dim: int, text_dim: int, text_proj_dim: int, ngf: int, image_size: int,
                 residual: bool = False):
        super().__init__()
        chs = g_channels(ngf, image_size)
        self.text_proj = nn.Sequential(nn.Linear(text_dim, text_proj_dim), nn.LeakyReLU(0.2, True))
        stem = [nn.ConvTranspose2d(z_dim + text_proj_dim, chs[0], 4, 1, 0, bias=False), nn.BatchNorm2d(chs[0])]
        stem.append(BottleneckResidual(chs[0]) if residual else nn.ReLU(True))
        layers = [nn.Sequential(*stem)]
        for k, (cin, cout) in enumerate(zip(chs[:-1], chs[1:])):
            up = [nn.ConvTranspose2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout)]
            up.append(BottleneckResidual(cout) if residual and k == 0 else nn.ReLU(True))
            layers.append(nn.Sequential(*up))
        layers.append(nn.Sequential(nn.ConvTranspose2d(chs[-1], 3, 4, 2, 1, bias=False), nn.Tanh()))
        self.layers = nn.Sequential(*layers)
        init_weights(self, "dcgan")

    def forward(self, noise: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        h = torch.cat([noise, self.text_proj(sent_emb)], dim=1)  # (B, z + 128)
        return self.layers(h[:, :, None, None])  # (B, 3, S, S)


class Discriminator(nn.Module):
    """``D(x, phi(t))``: ``features(x)`` (stride-2 convs to 4x4), then ``logits(features, sent_emb)``
    (FC(phi(t)) -> 128 + leaky ReLU replicated 4x4, concatenated, 1x1 conv + BN + leaky ReLU, 4x4
    conv to one logit)."""

    def __init__(self, text_dim: int, text_proj_dim: int, ndf: int, image_size: int, official: bool = False):
        super().__init__()
        chs = d_channels(ndf, image_size)
        layers = [nn.Conv2d(3, chs[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for k, (cin, cout) in enumerate(zip(chs[:-1], chs[1:]), start=1):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.BatchNorm2d(cout)]
            if not (official and k == len(chs) - 2):  # the official D has no activation here
                layers.append(nn.LeakyReLU(0.2, True))
        self.trunk = nn.Sequential(*layers)
        proj = [nn.Linear(text_dim, text_proj_dim)]
        if official:
            proj.append(nn.BatchNorm1d(text_proj_dim))
        self.text_proj = nn.Sequential(*proj, nn.LeakyReLU(0.2, True))
        top = chs[-1]
        self.joint = nn.Sequential(
            nn.Conv2d(top + text_proj_dim, top, 1, bias=False), nn.BatchNorm2d(top), nn.LeakyReLU(0.2, True),
            nn.Conv2d(top, 1, 4, 1, 0, bias=False),
        )
        init_weights(self, "dcgan")

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)  # (B, top, 4, 4)

    def logits(self, features: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        text = self.text_proj(sent_emb)[:, :, None, None].expand(-1, -1, *features.shape[2:])  # (B, 128, 4, 4)
        return self.joint(torch.cat([features, text], dim=1)).flatten()  # (B,)

    def forward(self, images: torch.Tensor, sent_emb: torch.Tensor) -> torch.Tensor:
        return self.logits(self.features(images), sent_emb)


# ---------------------------------------------------------------------------------------------
# the model


@register_model("gan_int_cls", GANINTCLSConfig)
class GANINTCLS(T2IModel):
    def __init__(self, config: GANINTCLSConfig):
        super().__init__(config)
        c = config
        if c.text_source == "encoder":
            self.text_encoder = self.build_text_encoder().requires_grad_(self.text_encoder_trainable)
        else:
            self.text_encoder = None  # sentences come precomputed in batch["sent_emb"]
        official = c.architecture == "official"
        self.generator = Generator(c.z_dim, c.text_dim, c.text_proj_dim, c.ngf, c.image_size, residual=official)
        self.discriminator = Discriminator(c.text_dim, c.text_proj_dim, c.ndf, c.image_size, official=official)

    @property
    def text_encoder_trainable(self) -> bool:
        return self.config.text_source == "encoder" and self.config.text_encoder_mode != "frozen"

    def encode_text(self, tokens, lengths) -> TextFeatures:
        if self.config.text_source == "embeddings":
            raise T2IError("this gan_int_cls model was trained on precomputed text embeddings "
                           "(text_source=embeddings): it cannot encode free-text captions")
        return super().encode_text(tokens, lengths)

    def sentence(self, batch: dict) -> torch.Tensor:
        """The batch's sentence embeddings ``(B, D)``: from the text encoder or ``batch["sent_emb"]``."""
        if self.config.text_source == "embeddings":
            if "sent_emb" not in batch:
                raise T2IError("gan_int_cls with text_source=embeddings needs batch['sent_emb']: wrap the "
                               "data set with t2igan.data.embeddings.attach_caption_embeddings")
            sent_emb = batch["sent_emb"].float()
            if sent_emb.shape[1:] != (self.config.embedding_dim,):
                raise T2IError(f"sent_emb has shape {tuple(sent_emb.shape)}; the model expects "
                               f"(B, {self.config.embedding_dim}) (embedding_dim)")
            return sent_emb
        return self.encode_text(batch["tokens"], batch["lengths"]).sent_emb

    def generate_from_text(self, text: TextFeatures, noise, generator_module=None) -> SampleOutput:
        G = generator_module or self.generator
        return SampleOutput(G(noise, text.sent_emb))

    def lr_factor(self, epoch: int) -> float:
        """Learning-rate multiplier for 0-based ``epoch``: ``lr_decay ** (epoch // every)`` (the
        official code halves both learning rates every 100 epochs). The shared trainer applies it at the
        start of each epoch (``Trainer.apply_lr_schedule``)."""
        c = self.config
        if not c.lr_decay_every_epochs:
            return 1.0
        return c.lr_decay ** (epoch // c.lr_decay_every_epochs)

    def d_loss(self, batch, state):
        """[Alg. 1]: (real, right) as real; (fake, right) and, with CLS, (real, wrong) as fake."""
        c = self.config
        images = batch["image"]
        sent_emb = self.sentence(batch)  # (B, D); carries gradients to a joint_d text encoder
        g_sent = sent_emb.detach()  # G never back-propagates into the text encoder
        noise = torch.randn(images.shape[0], c.z_dim, device=images.device)
        fake = self.generator(noise, g_sent)
        state.update(fake=fake, sent_emb=g_sent)
        D = self.discriminator
        real_feats = D.features(images)
        real_logits = D.logits(real_feats, sent_emb)
        fake_logits = D(fake.detach(), sent_emb)
        wrong_logits = D.logits(real_feats, mismatched(sent_emb)) if c.uses_cls else None
        loss = d_cls_loss(real_logits, fake_logits, wrong_logits, c.cls_weight)
        logs = {"d_loss": loss.item(), "d_real": real_logits.mean().item(), "d_fake": fake_logits.mean().item()}
        if wrong_logits is not None:
            logs["d_wrong"] = wrong_logits.mean().item()
        return loss, logs

    def g_loss(self, batch, state):
        """Non-saturating G loss on the D phase's fakes, plus (INT) fakes from interpolated embeddings
        [Eq. 5] with fresh noise; both go through D in one pass. (The official code also redraws the
        noise of the first B fakes; reusing the D phase's fakes saves a G forward pass.)"""
        c = self.config
        fake, sent_emb = state["fake"], state["sent_emb"]
        images, texts = fake, sent_emb
        n_interp = 0
        if c.uses_interp and sent_emb.shape[0] >= 2:
            interp = interpolate_embeddings(sent_emb, c.interp_beta)  # (B // 2, D)
            n_interp = interp.shape[0]
            noise = torch.randn(n_interp, c.z_dim, device=fake.device)
            images = torch.cat([fake, self.generator(noise, interp)])
            texts = torch.cat([sent_emb, interp])
        logits = self.discriminator(images, texts)  # one D pass, as the official code
        fake_logits, interp_logits = logits[: fake.shape[0]], logits[fake.shape[0]:]
        loss = g_interp_loss(fake_logits, interp_logits if n_interp else None, c.interp_weight, c.interp_loss_form)
        logs = {"g_loss": loss.item()}
        if n_interp:
            logs["d_interp"] = interp_logits.mean().item()
        return loss, logs
