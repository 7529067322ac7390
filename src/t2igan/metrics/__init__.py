"""Evaluation metrics: FID, Inception score and the Inception weights they need (the networks are
:mod:`t2igan.nn.inception`), R-precision, BLEU, STREAM caption scores, the Shapes probe."""

from .fid import compute_features, feature_statistics, frechet_distance, load_statistics, save_statistics
from .inception import build_inception, load_inception_weights, resolve_weights_path
from .inception_score import inception_score

__all__ = [
    "build_inception",
    "compute_features",
    "feature_statistics",
    "frechet_distance",
    "inception_score",
    "load_inception_weights",
    "load_statistics",
    "resolve_weights_path",
    "save_statistics",
]
