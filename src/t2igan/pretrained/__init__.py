"""Pretrained models that ship inside the package, usable offline by name.

Each bundled model is a run folder under this package (``shapes-dfgan/``, ...): ``config.json``,
``vocab.json``, ``model.safetensors`` (fp16), ``card.json`` (command, steps, hardware, time, probe
scores) and ``MODEL_CARD.md`` with a sample grid ``grid.png``. Anything that takes a run folder
(``Text2ImagePipeline.from_pretrained``, ``t2igan sample|eval|serve|info``) also takes a bundled name
(:func:`t2igan.runs.resolve_run_dir`); ``t2igan list-pretrained`` lists them. They are written by
``tools/bundle_pretrained.py``.
"""
