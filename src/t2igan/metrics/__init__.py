"""Evaluation metrics: Inception networks, FID, Inception score."""

from .fid import compute_features, feature_statistics, frechet_distance, load_statistics, save_statistics
from .inception import (
    FIDInceptionV3,
    ImageNetInceptionV3,
    InceptionV3,
    build_inception,
    load_inception_weights,
    resolve_weights_path,
)
from .inception_score import inception_score

__all__ = [
    "FIDInceptionV3",
    "ImageNetInceptionV3",
    "InceptionV3",
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
