"""AttnGAN [Xu et al., "AttnGAN: Fine-Grained Text to Image Generation with Attentional Generative
Adversarial Networks", CVPR 2018]: a multi-stage generator that attends to words, per-stage
discriminators, and the DAMSM image-text matching loss.

Generator [AttnGAN, Eq. 1]::

    h_0 = F_0(z, F_ca(e_bar))          c = F_ca(e_bar): conditioning augmentation (CA)
    h_i = F_i(h_{i-1}, F_attn_i(e, h_{i-1}))   for i = 1 .. m-1
    x_i = G_i(h_i)                      a 3x3 conv + tanh per stage

* CA: ``FC(e_bar) -> 4 c_dim``, GLU -> ``2 c_dim`` split into ``mu`` and ``log sigma^2``,
  ``c = mu + sigma * eps`` (as the official code; the KL term keeps it near N(0, I)). At inference
  (eval mode) ``c = mu``, so a seed alone fixes an image.
* F_0: ``FC([c, z]) -> 2 * (2^k ngf) x 4 x 4``, BN, GLU, then ``k`` up-blocks (nearest x2, conv3x3,
  BN, GLU), each halving the channels, to ``ngf x base_size x base_size`` (official: 16 ngf at 4x4,
  four up-blocks, 64 px).
* F_i: word attention (:class:`WordAttention`) gives a word-context feature per pixel; it is
  concatenated with ``h``, passed through ``num_residual`` GLU residual blocks and one up-block
  (``2 ngf -> ngf``): each extra stage doubles the resolution (64 -> 128 -> 256).

Discriminators: one per stage (:class:`StageDiscriminator`), down-sampling the stage's image to
``4 x 4``; an unconditional logit and a sentence-conditional logit (the sentence replicated
spatially, concatenated, conv3x3 + BN + leaky ReLU, then a 4x4 conv). Logits, never sigmoids.

Losses, per stage ``i`` [AttnGAN, Eq. 3-5, in the official code's weighting]:

* D_i: ``(BCE(D(x), 1) + BCE(D(x, e), 1)) / 2 + (BCE(D(x_hat), 0) + BCE(D(x_hat, e), 0)
  + BCE(D(x, e_wrong), 0)) / 3``: the official code also shows D real images with another
  caption of the batch (``e_wrong``, :func:`t2igan.losses.mismatched_pairs`);
* G: ``sum_i [BCE(D_i(x_hat_i), 1) + BCE(D_i(x_hat_i, e), 1)] + lambda L_DAMSM(x_hat_{m-1})
  + KL(N(mu, sigma^2) || N(0, I))`` [AttnGAN, Eq. 2; StackGAN's CA term]. The DAMSM loss
  (``L_1^w + L_2^w + L_1^s + L_2^s``, [AttnGAN, Eq. 10-13]) scores the last stage only, with a
  frozen, pretrained DAMSM (:mod:`t2igan.models.damsm`); lambda = 5 on CUB, 50 on COCO.

Where the official code (github.com/taoxugit/AttnGAN) and the paper differ:

* ``damsm_paper_form``: the paper's region-word relevance is ``log(sum exp(gamma2 R))^(1/gamma2)``
  (Eq. 10); the official code drops the ``1/gamma2`` (``False``, the default and the presets).
* The official attention mask is laid out batch-major against query-major scores (``mask.repeat``),
  so in a batch of captions of different lengths some pixels mask the wrong words. Here each
  caption's own padding is masked, so a padded word never receives attention.
* ``mismatch_pairs``: the official code pairs image ``i`` with caption ``i + 1`` (``B - 1`` pairs,
  ``"shift"``, the default and the ``-cub``/``-coco`` presets); ``"roll"`` uses all ``B`` images,
  image ``j`` with caption ``j - 1`` (DF-GAN's pairing, the ``-shapes`` presets).
* The official G loss has no 1/2 on the uncond + cond terms (Eq. 3 has); the code's form is used.

The networks are :mod:`t2igan.nn.multistage`'s, configured with AttnGAN's attention stage; the
losses are :mod:`t2igan.losses`' stage losses and the shared KL + DAMSM tail
(:func:`t2igan.models.damsm.add_kl_and_damsm`).

Frozen parts: the text encoder (saved with the model: the generator needs it at inference) is always
frozen and kept in eval mode; the DAMSM image encoder is the :class:`~t2igan.models.damsm.DAMSMCritic`
submodule ``damsm_critic`` (in no optimizer, never in train mode, not written to checkpoints; it
comes from ``damsm_weights``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..losses import multistage_discriminator_loss, multistage_generator_loss
from ..nn.attention import WordAttention  # noqa: F401 (public name)
from ..nn.blocks import init_weights
from ..nn.multistage import AttentionStage, MultiStageGenerator, StageDiscriminator, StageDiscriminators
from ..registry import register_model
from .base import SampleOutput, T2IModel
from .damsm import MultiStageConfig, add_kl_and_damsm, build_damsm_critic, generate_for_step


@dataclass
class AttnGANConfig(MultiStageConfig):
    """AttnGAN's fields: those of every multi-stage GAN (:class:`~t2igan.models.damsm.MultiStageConfig`)."""


@register_model("attngan", AttnGANConfig)
class AttnGAN(T2IModel):
    """Networks: ``text_encoder`` (frozen DAMSM), ``generator`` (a
    :class:`~t2igan.nn.multistage.MultiStageGenerator` of :class:`~t2igan.nn.multistage.AttentionStage`),
    ``discriminator`` (one :class:`~t2igan.nn.multistage.StageDiscriminator` per stage) and the
    unsaved ``damsm_critic``."""

    eval_modules = ("text_encoder",)
    unsaved_modules = ("damsm_critic",)

    def __init__(self, config: AttnGANConfig):
        super().__init__(config)
        c = config
        c.check("attngan")
        self.text_encoder = self.build_text_encoder().requires_grad_(False)
        self.damsm_critic = build_damsm_critic("attngan", c, self.text_encoder)
        self.generator = MultiStageGenerator(c.ngf, c.z_dim, c.c_dim, c.cond_dim, c.base_size, c.num_stages,
                                             lambda: AttentionStage(c.ngf, c.cond_dim, c.num_residual))
        self.discriminator = StageDiscriminators(
            [StageDiscriminator(c.ndf, c.cond_dim, s, c.uncond_logits, c.d_batch_norm) for s in c.stage_sizes])
        init_weights(self.generator)
        init_weights(self.discriminator)
        self.train()

    @property
    def image_encoder(self):
        """The frozen DAMSM image encoder (None until loaded or first used)."""
        return self.damsm_critic.encoder

    def damsm_loss(self, images, text, class_ids=None):
        """``L_DAMSM = L_1^w + L_2^w + L_1^s + L_2^s`` [AttnGAN, Eq. 10-14] of ``images`` against
        their captions, scored by the frozen DAMSM encoders; gradients reach only ``images``."""
        return self.damsm_critic(images, text, class_ids)

    # -- inference -------------------------------------------------------------------------------
    def generate_from_text(self, text, noise, generator_module=None) -> SampleOutput:
        G = generator_module or self.generator
        out = G(noise, text.sent_emb, text.word_embs, text.mask)
        return SampleOutput(out.images[-1], {"attention": out.attention, "stage_images": out.images})

    # -- training --------------------------------------------------------------------------------
    def d_loss(self, batch, state):
        """Generate every stage's image once (reused by the G phase), then sum the stage losses
        of :func:`t2igan.losses.stage_discriminator_loss`."""
        out = generate_for_step(self, batch, state)
        return multistage_discriminator_loss(self.discriminator, batch["image"], out.images, state["text"].sent_emb,
                                             self.config.mismatch_pairs)

    def g_loss(self, batch, state):
        """``sum_i L_G_i + lambda L_DAMSM(last stage) + KL`` [AttnGAN, Eq. 2; StackGAN CA]."""
        fakes, text = state["fakes"], state["text"]
        loss, logs = multistage_generator_loss(self.discriminator, fakes, text.sent_emb)
        loss = add_kl_and_damsm(loss, logs, self.damsm_critic, self.config, state["mu"], state["logvar"],
                                fakes[-1], text, batch)
        logs["g_loss"] = loss.item()
        return loss, logs
