"""Network blocks shared by the model families; imports neither ``t2igan.models`` nor ``t2igan.data``.

* :mod:`.text_encoder` -- the bidirectional-LSTM text encoder (DAMSM's, every GAN's);
* :mod:`.image_encoder` -- DAMSM's image encoder and its backbones (Inception-v3, a small CNN);
* :mod:`.blocks` -- conv / up / down / residual / GLU blocks, initialisation, DF-GAN's down-blocks
  and one-way discriminator;
* :mod:`.conditioning` -- conditioning augmentation, DF-GAN's affine, SSA-GAN's SSCBN;
* :mod:`.attention` -- AttnGAN's word attention, MirrorGAN's sentence attention;
* :mod:`.multistage` -- the multi-stage generator and the stage discriminators of the AttnGAN family.
"""
