"""Model families, one module per family group that a reader holds beside the paper (importing a module
registers its models by name):

* :mod:`.dfgan` -- DF-GAN, and the one-way D, losses and options SSA-GAN (:mod:`.ssagan`) reuses;
* :mod:`.attngan` -- AttnGAN, and the multi-stage generator, stage discriminators and losses that
  MirrorGAN (:mod:`.mirrorgan`, GLAM stages) and DR-GAN (:mod:`.drgan`, SDM stages) reuse;
* :mod:`.gan_int_cls` -- GAN-INT-CLS;
* :mod:`.damsm` -- the DAMSM, its losses and the :class:`~.damsm.DAMSMCritic` the GANs share;
* :mod:`.stream` -- MirrorGAN's STREAM captioner (DAMSM and STREAM are registered models that the shared
  trainer pretrains, see :mod:`t2igan.commands.pretrain`);
* :mod:`.base` -- :class:`~.base.T2IModel`: phase dispatch, frozen and unsaved submodules, optimizer groups.

A family imports :mod:`t2igan.nn`, :mod:`t2igan.losses`, these shared modules and its group's module; never
another family.
"""
