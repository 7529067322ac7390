"""Model families, one file each (importing a module registers its model by name), on shared layers:

* :mod:`.base` -- :class:`~.base.T2IModel`: phase dispatch, frozen and unsaved submodules, optimizer groups;
* :mod:`.damsm` -- the DAMSM, the :class:`~.damsm.DAMSMCritic` the GANs share, the multi-stage GANs' config;
* :mod:`.stream` -- MirrorGAN's STREAM captioner (DAMSM and STREAM are registered models that the shared
  trainer pretrains, see :mod:`t2igan.commands.pretrain`).

A family imports only these, :mod:`t2igan.nn` and :mod:`t2igan.losses`; never another family.
"""
