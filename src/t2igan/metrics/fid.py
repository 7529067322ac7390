"""Frechet Inception Distance [Heusel et al., NeurIPS 2017, "GANs Trained by a Two Time-Scale Update
Rule ..."], matching pytorch-fid (``mseitzer/pytorch-fid``, ``src/pytorch_fid/fid_score.py``), itself a
port of the TF original (``bioinf-jku/TTUR``):

    FID = ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})

over the pool3 features of :class:`~t2igan.nn.inception.FIDInceptionV3`, with mean and (unbiased,
``np.cov``) covariance in float64. Statistics files are pytorch-fid's ``.npz`` with keys ``mu``, ``sigma``.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from scipy import linalg
from tqdm import tqdm

from ..errors import T2IError


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, D) -> mean (D,) and covariance (D, D), float64 (rows are samples)."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or features.shape[0] < 2:
        raise T2IError(f"feature_statistics needs (N >= 2, D) features, got shape {features.shape}")
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) [Heusel et al. 2017, Eq. 6].

    If ``sigma1 @ sigma2`` is too singular for a finite square root, ``eps`` is added to both diagonals
    (as pytorch-fid). A small imaginary part of the square root (numerical error) is dropped; a large one
    is an error.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise T2IError(f"FID statistics do not match: mu {mu1.shape} vs {mu2.shape}, "
                       f"sigma {sigma1.shape} vs {sigma2.shape}")
    with warnings.catch_warnings():  # singular products are expected (N < D); checked just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)  # (S1 S2)^{1/2}
    if not np.isfinite(covmean).all():
        warnings.warn(f"FID: singular covariance product; adding {eps} to the diagonals", stacklevel=2)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise T2IError(f"FID: square root of the covariance product has a large imaginary part "
                           f"({np.abs(covmean.imag).max():.3g})")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def save_statistics(path: str | Path, mu: np.ndarray, sigma: np.ndarray) -> None:
    """Write pytorch-fid style statistics: an ``.npz`` with ``mu`` (D,) and ``sigma`` (D, D)."""
    with open(path, "wb") as f:  # a file object: np.savez must not append ".npz" to the name
        np.savez(f, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))


def load_statistics(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read ``mu``, ``sigma`` from a pytorch-fid style ``.npz`` (no pickles)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if "mu" not in data or "sigma" not in data:
                raise T2IError(f"{path}: FID statistics need arrays 'mu' and 'sigma', found {sorted(data.files)}")
            mu, sigma = data["mu"].astype(np.float64), data["sigma"].astype(np.float64)
    except T2IError:
        raise
    except Exception as err:  # missing file, not a zip, pickled object arrays
        raise T2IError(f"{path}: cannot read FID statistics ({type(err).__name__}: {err})") from err
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise T2IError(f"{path}: FID statistics have mu {mu.shape} and sigma {sigma.shape}, expected (D,), (D, D)")
    return mu, sigma


@torch.no_grad()
def compute_features(images_iter: Iterable[torch.Tensor], model: torch.nn.Module, batch_size: int = 50,
                     device: str | torch.device = "cpu", progress: bool = True,
                     output: str = "pool3") -> np.ndarray:
    """Run ``model`` (an Inception from :mod:`t2igan.metrics.inception`) over batches of images.

    ``images_iter`` yields float tensors (B, 3, H, W) in the model's ``input_range`` ([-1, 1] by
    default); each is cut into chunks of at most ``batch_size``. Returns (N, D) float32 features
    (``output`` "pool3") or class probabilities (``output`` "probs", for the Inception score).
    """
    model = model.to(device).eval()
    total = len(images_iter) if hasattr(images_iter, "__len__") else None
    chunks = []
    for images in tqdm(images_iter, total=total, desc=f"inception {output}", unit="batch", disable=not progress):
        for chunk in torch.split(images, batch_size):
            chunks.append(model(chunk.to(device), output=output).float().cpu().numpy())
    if not chunks:
        raise T2IError("compute_features got no images")
    return np.concatenate(chunks)
