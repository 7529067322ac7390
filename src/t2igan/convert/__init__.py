"""Official checkpoints -> t2igan run folders, one module per official code base: :mod:`.attngan`
(AttnGAN and its DAMSM), :mod:`.mirrorgan`, :mod:`.dfgan`, :mod:`.ssagan`; :mod:`.common` holds what
they share.

The official repositories save ``torch.save`` pickles of state dicts. They are read with
``torch.load(weights_only=True)`` (tensors and plain containers only, no code runs), their keys are
renamed to t2igan's module layout, and a normal run folder (``config.json``, ``vocab.json``,
``model.safetensors``) is written, so ``t2igan sample`` and ``Text2ImagePipeline`` work on it. Key
layouts are read from the official model code, not copied.
"""
