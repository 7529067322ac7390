"""The one training loop (:mod:`.trainer`), split by job:

* :mod:`.trainer` -- :class:`Trainer`: phases, moving average, run folder, samples, logging, the loop;
  :func:`train` and :func:`resume_training`;
* :mod:`.checkpoints` -- atomic checkpoint writing, reading back, resuming (:class:`CheckpointIO`);
* :mod:`.distributed` -- torchrun: process group, gradient all-reduce, RNG states per rank;
* :mod:`.build` -- data sets, vocabulary, the model with its pretrained parts, the moving average (:class:`EMA`);
* :mod:`.final_metrics` -- the evaluation a DAMSM or STREAM pretraining run ends with.
"""

from .build import EMA, build_datasets, build_experiment_model, build_model, build_vocab, missing_damsm
from .checkpoints import CKPT_RE, CheckpointIO, list_checkpoints, safetensors_bytes
from .trainer import Trainer, elapsed_seconds, resume_training, train

__all__ = ["CKPT_RE", "EMA", "CheckpointIO", "Trainer", "build_datasets", "build_experiment_model", "build_model", "build_vocab",
           "elapsed_seconds", "list_checkpoints", "missing_damsm", "resume_training", "safetensors_bytes", "train"]
