"""FID (Frechet distance, statistics files, feature extraction) and the Inception score."""

import numpy as np
import pytest
import torch
from scipy import linalg

from t2igan.errors import T2IError
from t2igan.metrics import fid as fid_module
from t2igan.metrics import (
    compute_features,
    feature_statistics,
    frechet_distance,
    inception_score,
    load_statistics,
    save_statistics,
)

# --- FID ------------------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 64)) @ rng.normal(size=(64, 64))  # correlated features
    mu, sigma = feature_statistics(features)
    assert mu.dtype == sigma.dtype == np.float64 and sigma.shape == (64, 64)
    np.testing.assert_allclose(sigma, np.cov(features.T), rtol=1e-12)  # unbiased, rows are samples
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)
    # float32 features (what compute_features returns) give the same statistics in float64
    mu32, _ = feature_statistics(features.astype(np.float32))
    assert mu32.dtype == np.float64


def test_fid_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    m1, m2 = rng.normal(size=8), rng.normal(size=8)
    d1, d2 = rng.uniform(0.1, 3, size=8), rng.uniform(0.1, 3, size=8)
    # ||m1 - m2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}); diagonal: the square root is elementwise
    expected = np.sum((m1 - m2) ** 2) + np.sum(d1 + d2 - 2 * np.sqrt(d1 * d2))
    assert frechet_distance(m1, np.diag(d1), m2, np.diag(d2)) == pytest.approx(expected, rel=1e-10)
    # same for commuting, non-diagonal covariances Q D Q^T
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    got = frechet_distance(m1, q @ np.diag(d1) @ q.T, m2, q @ np.diag(d2) @ q.T)
    assert got == pytest.approx(expected, rel=1e-8)
    # symmetric, and grows with the mean shift
    assert frechet_distance(m2, np.diag(d2), m1, np.diag(d1)) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(m1 + 1, np.diag(d1), m2, np.diag(d2)) > expected + 1e-3


def test_fid_from_samples_approaches_the_population_value():
    rng = np.random.default_rng(2)
    a = rng.normal(0.0, 1.0, size=(20000, 4))
    b = rng.normal(0.5, 2.0, size=(20000, 4))  # population FID = 4 * 0.25 + 4 * (1 + 4 - 2 * 2) = 5
    assert frechet_distance(*feature_statistics(a), *feature_statistics(b)) == pytest.approx(5.0, rel=0.03)


def test_singular_covariances():
    rng = np.random.default_rng(3)
    # fewer samples than dimensions: rank-deficient covariances, as with a few images and 2048-d features
    x, y = rng.normal(size=(10, 40)), rng.normal(size=(10, 40)) + 0.3
    mx, sx = feature_statistics(x)
    my, sy = feature_statistics(y)
    assert np.linalg.matrix_rank(sx) == 9
    assert abs(frechet_distance(mx, sx, mx, sx)) < 1e-6 * np.trace(sx)
    value = frechet_distance(mx, sx, my, sy)
    regularised = frechet_distance(mx, sx + 1e-9 * np.eye(40), my, sy + 1e-9 * np.eye(40))
    assert np.isfinite(value) and value == pytest.approx(regularised, rel=1e-4)
    # a dimension with zero variance: the closed form still holds
    d1, d2 = np.array([1.0, 0.0, 4.0]), np.array([4.0, 0.0, 1.0])
    assert frechet_distance(np.zeros(3), np.diag(d1), np.zeros(3), np.diag(d2)) == pytest.approx(2.0, abs=1e-9)


def test_non_finite_square_root_falls_back_to_eps_offset(monkeypatch):
    real_sqrtm, calls = linalg.sqrtm, []

    def flaky_sqrtm(matrix):  # the first call fails as sqrtm of a singular product used to
        calls.append(matrix)
        return np.full_like(matrix, np.nan) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(fid_module.linalg, "sqrtm", flaky_sqrtm)
    d1, d2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    with pytest.warns(UserWarning, match="singular"):
        value = frechet_distance(np.zeros(2), np.diag(d1), np.zeros(2), np.diag(d2), eps=1e-6)
    np.testing.assert_allclose(calls[1], np.diag((d1 + 1e-6) * (d2 + 1e-6)))  # offset on both sigmas
    assert value == pytest.approx(2.0 - 2 * 2 * np.sqrt(1e-6 * (1 + 1e-6)), rel=1e-9)


def test_imaginary_part_small_dropped_large_error(monkeypatch):
    sigma = np.eye(3)
    monkeypatch.setattr(fid_module.linalg, "sqrtm", lambda m: np.eye(3) + 1e-9j)
    assert frechet_distance(np.zeros(3), sigma, np.zeros(3), sigma) == pytest.approx(0.0, abs=1e-8)
    monkeypatch.setattr(fid_module.linalg, "sqrtm", lambda m: np.eye(3) + 0.5j)
    with pytest.raises(T2IError, match="imaginary"):
        frechet_distance(np.zeros(3), sigma, np.zeros(3), sigma)


def test_mismatched_statistics_are_an_error():
    with pytest.raises(T2IError, match="do not match"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))
    with pytest.raises(T2IError, match="N >= 2"):
        feature_statistics(np.zeros((1, 5)))


def test_statistics_npz_round_trip(tmp_path):
    rng = np.random.default_rng(4)
    mu, sigma = feature_statistics(rng.normal(size=(50, 6)))
    path = tmp_path / "cub_test_stats.npz"
    save_statistics(path, mu, sigma)
    with np.load(path) as data:  # pytorch-fid's format: exactly these two arrays
        assert sorted(data.files) == ["mu", "sigma"]
    mu2, sigma2 = load_statistics(path)
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)
    other = tmp_path / "stats_without_suffix"
    save_statistics(other, mu, sigma)  # written to exactly that name
    assert other.is_file() and load_statistics(other)[0].shape == (6,)


def test_bad_statistics_files_are_clear_errors(tmp_path):
    with pytest.raises(T2IError, match="missing.npz"):
        load_statistics(tmp_path / "missing.npz")
    wrong_keys = tmp_path / "wrong_keys.npz"
    np.savez(wrong_keys, m=np.zeros(3), s=np.eye(3))
    with pytest.raises(T2IError, match="'mu' and 'sigma'"):
        load_statistics(wrong_keys)
    wrong_shape = tmp_path / "wrong_shape.npz"
    np.savez(wrong_shape, mu=np.zeros(3), sigma=np.eye(4))
    with pytest.raises(T2IError, match="wrong_shape.npz"):
        load_statistics(wrong_shape)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, mu=np.array([{"a": 1}], dtype=object), sigma=np.eye(1))
    with pytest.raises(T2IError, match="pickled.npz"):
        load_statistics(pickled)  # object arrays need pickle: refused


class PixelFeatures(torch.nn.Module):
    """Stand-in for an Inception: 'pool3' = first 4 pixel values, 'probs' = softmax over them."""

    def __init__(self):
        super().__init__()
        self.batch_sizes = []

    def forward(self, images, output="pool3"):
        self.batch_sizes.append(images.shape[0])
        features = images.flatten(1)[:, :4]
        return features.softmax(dim=1) if output == "probs" else features


def test_compute_features_batches_in_order():
    torch.manual_seed(0)
    batches = [torch.rand(5, 3, 8, 8) * 2 - 1, torch.rand(3, 3, 8, 8) * 2 - 1]
    model = PixelFeatures()
    features = compute_features(batches, model, batch_size=2, device="cpu", progress=False)
    assert features.shape == (8, 4) and features.dtype == np.float32
    np.testing.assert_array_equal(features, torch.cat(batches).flatten(1)[:, :4].numpy())
    assert model.batch_sizes == [2, 2, 1, 2, 1]  # no model call larger than batch_size
    probs = compute_features(iter(batches), PixelFeatures(), 4, "cpu", progress=False, output="probs")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(T2IError, match="no images"):
        compute_features([], model, 2, "cpu", progress=False)


# --- Inception score ------------------------------------------------------------------------------


def test_is_of_uniform_predictions_is_one():
    probs = np.full((100, 10), 0.1)
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(1.0) and std == pytest.approx(0.0, abs=1e-12)


def test_is_of_confident_diverse_predictions_is_the_class_count():
    classes = 7
    probs = np.eye(classes)[np.tile(np.arange(classes), 10)]  # (70, 7) one-hot, each split covers all classes
    mean, std = inception_score(probs, splits=10)
    assert mean == pytest.approx(classes) and std == pytest.approx(0.0, abs=1e-9)
    # collapse onto one class: IS 1, whatever the confidence
    assert inception_score(np.eye(classes)[np.zeros(70, dtype=int)], splits=10)[0] == pytest.approx(1.0)
    # torch tensors are accepted
    assert inception_score(torch.from_numpy(probs).float(), splits=10)[0] == pytest.approx(classes, rel=1e-6)


def test_is_hand_computed_case():
    probs = np.array([[0.5, 0.5], [1.0, 0.0], [0.9, 0.1], [0.2, 0.8]])
    # split 1: rows 0-1, p(y) = (0.75, 0.25); KL row0 = 0.5 ln(0.5/0.75) + 0.5 ln(0.5/0.25), row1 = ln(1/0.75)
    kl1 = (0.5 * np.log(0.5 / 0.75) + 0.5 * np.log(2.0) + np.log(1 / 0.75)) / 2
    # split 2: rows 2-3, p(y) = (0.55, 0.45)
    kl2 = (0.9 * np.log(0.9 / 0.55) + 0.1 * np.log(0.1 / 0.45)
           + 0.2 * np.log(0.2 / 0.55) + 0.8 * np.log(0.8 / 0.45)) / 2
    s1, s2 = np.exp(kl1), np.exp(kl2)
    mean, std = inception_score(probs, splits=2)
    assert mean == pytest.approx((s1 + s2) / 2, rel=1e-12)
    assert std == pytest.approx(abs(s1 - s2) / 2, rel=1e-12)  # population std of two values
    one_split = inception_score(probs, splits=1)
    assert one_split[1] == 0.0 and one_split[0] > 1.0


def test_is_split_boundaries_follow_the_original_code():
    # N = 5, splits = 2: rows [0:2] and [2:5] (k * N // splits), not [0:3], [3:5]
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    mean, _ = inception_score(probs, splits=2)
    assert mean == pytest.approx((2.0 + 1.0) / 2)


def test_is_rejects_logits_and_bad_splits():
    with pytest.raises(T2IError, match="logits"):
        inception_score(np.random.default_rng(0).normal(size=(20, 5)), splits=2)
    with pytest.raises(T2IError, match="splits"):
        inception_score(np.full((5, 2), 0.5), splits=10)
    with pytest.raises(T2IError, match="shape"):
        inception_score(np.full(10, 0.1))
