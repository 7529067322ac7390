"""Network blocks that several model families share; imports neither ``t2igan.models`` nor ``t2igan.data``.

* :mod:`.text_encoder` -- the bidirectional-LSTM text encoder (DAMSM's, every GAN's);
* :mod:`.image_encoder` -- DAMSM's image encoder and its backbones (Inception-v3, a small CNN; also STREAM's);
* :mod:`.blocks` -- AttnGAN's GLU, up, residual and down blocks and conditioning augmentation (AttnGAN,
  MirrorGAN, DR-GAN), the official AttnGAN and DCGAN initialisations;
* :mod:`.attention` -- AttnGAN's word attention (AttnGAN, MirrorGAN, DR-GAN).

A block one family alone uses lives in that family's module (:mod:`t2igan.models`).
"""
