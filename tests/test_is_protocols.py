"""The Inception Score's input protocols: TF1's bilinear resize against a hand-written reference and
against TensorFlow's own outputs (``tests/fixtures/tf_resize_bilinear.npz``), the 8-bit quantisation,
StackGAN's Pillow resize, the IS under ``paper`` against a reference written from the TF1 formula, and
which network and protocol a run's data set gets by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_inception import random_official_state_dict

from t2igan.errors import T2IError
from t2igan.evaluate import InceptionScorer, default_is_settings
from t2igan.nn.inception import FIDInceptionV3
from t2igan.metrics.inception_score import inception_score
from t2igan.metrics.is_protocols import (
    check_protocol,
    improved_gan_input,
    stackgan_input,
    stackgan_selection,
    tf1_resize_bilinear,
    to_pixels,
)

TF_RESIZE = Path(__file__).parent / "fixtures" / "tf_resize_bilinear.npz"


def source(i: int, n_in: int, n_out: int) -> np.float32:
    """Where TF1 samples output pixel ``i``: ``i * (in / out)``, both in float32 as the kernel computes them."""
    return np.float32(i) * (np.float32(n_in) / np.float32(n_out))


def tf1_reference(image: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """TF1 ``ResizeBilinear(align_corners=False)`` of one (H, W) array, pixel by pixel: output (y, x)
    samples the input at (y * H / out_h, x * W / out_w), clamped at the last row / column."""
    h, w = image.shape
    out = np.zeros((out_h, out_w), np.float64)
    for y in range(out_h):
        sy = source(y, h, out_h)
        y0 = int(np.floor(sy))
        y1, dy = min(y0 + 1, h - 1), float(sy - y0)
        for x in range(out_w):
            sx = source(x, w, out_w)
            x0 = int(np.floor(sx))
            x1, dx = min(x0 + 1, w - 1), float(sx - x0)
            top = image[y0, x0] * (1 - dx) + image[y0, x1] * dx
            bottom = image[y1, x0] * (1 - dx) + image[y1, x1] * dx
            out[y, x] = top * (1 - dy) + bottom * dy
    return out


def tf1_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The same resize along one axis as an (out, in) interpolation matrix (float64)."""
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        s = source(i, n_in, n_out)
        lo = int(np.floor(s))
        frac = float(s - lo)
        m[i, lo] += 1 - frac
        m[i, min(lo + 1, n_in - 1)] += frac
    return m


def resize_input(height: int, width: int) -> np.ndarray:
    """``tools/make_tf_checkpoint_fixtures.py``'s resize test image (1, H, W, 3)."""
    y, x, c = np.arange(height)[:, None, None], np.arange(width)[None, :, None], np.arange(3)
    return ((7 * y + 13 * x + 29 * c + (y * x) % 17) % 256).astype(np.float32)[None]


def resize(image_hw: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    return tf1_resize_bilinear(torch.from_numpy(image_hw)[None, None].float(), (out_h, out_w))[0, 0].numpy()


# ---------------------------------------------------------------------------------------------------
# TF1 resize
# ---------------------------------------------------------------------------------------------------


def test_tf1_resize_grid_by_hand():
    image = np.array([[0.0, 3.0], [6.0, 9.0]], np.float32)
    # rows and columns sample 0, 2/3, 4/3 (-> clamped to the last one); no half-pixel shift
    expected = np.array([[0, 2, 3], [4, 6, 7], [6, 8, 9]], np.float32)
    np.testing.assert_allclose(resize(image, 3, 3), expected, atol=1e-6)
    torch_half_pixel = F.interpolate(torch.from_numpy(image)[None, None], size=(3, 3), mode="bilinear",
                                     align_corners=False)[0, 0].numpy()
    assert np.abs(torch_half_pixel - expected).max() > 0.4  # PyTorch's grid is another one
    # down-sampling 4 -> 2 keeps rows / columns 0 and 2 (no averaging, no anti-aliasing)
    image = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_array_equal(resize(image, 2, 2), image[::2, ::2])
    # the same size is the identity
    np.testing.assert_array_equal(resize(image, 4, 4), image)


@pytest.mark.parametrize("src,dst", [((3, 5), (7, 4)), ((5, 7), (2, 3)), ((13, 6), (4, 11)), ((1, 4), (3, 2)),
                                     ((9, 9), (9, 20)), ((64, 48), (31, 77))])
def test_tf1_resize_matches_the_hand_written_reference(src, dst):
    image = np.random.default_rng(sum(src) + sum(dst)).integers(0, 256, src).astype(np.float32)
    np.testing.assert_allclose(resize(image, *dst), tf1_reference(image, *dst), atol=1e-4, rtol=0)


def test_tf1_resize_matches_tensorflow():
    with np.load(TF_RESIZE) as f:
        cases = [{name: f[f"{name}{i}"] for name in ("src", "dst", "rows", "cols", "out")} for i in range(7)]
    assert [tuple(c["dst"]) for c in cases][-3:] == [(299, 299)] * 3
    for c in cases:
        image = torch.from_numpy(resize_input(*c["src"])).permute(0, 3, 1, 2)
        ours = tf1_resize_bilinear(image, tuple(int(v) for v in c["dst"])).permute(0, 2, 3, 1).numpy()
        ours = ours[:, c["rows"]][:, :, c["cols"]]
        assert np.abs(ours - c["out"]).max() <= 1e-4, tuple(c["src"])


# ---------------------------------------------------------------------------------------------------
# 8-bit pixels, the two paper inputs
# ---------------------------------------------------------------------------------------------------


def test_pixels_are_saved_as_the_official_samplers_save_them():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 0.99999, 1.0, 1.2, -3.0])
    # uint8((x + 1) * 127.5): truncation, then clamped
    assert to_pixels(x).tolist() == [0, 0, 127, 191, 254, 255, 255, 0]
    assert to_pixels(torch.tensor([0.0, 0.5, 1.0]), "[0,1]").tolist() == [0, 127, 255]


def test_improved_gan_input_is_tf1_resize_of_8_bit_pixels_then_minus_128_over_128():
    images = torch.rand(2, 3, 20, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x = improved_gan_input(images)
    assert x.shape == (2, 3, 299, 299)
    pixels = np.floor((images.numpy() + 1) * 127.5)
    ref = np.einsum("oh,bchw,pw->bcop", tf1_matrix(20, 299), pixels, tf1_matrix(12, 299))
    np.testing.assert_allclose(x.numpy(), (ref - 128) / 128, atol=2e-6)
    assert x.min() >= -1 and x.max() <= 127 / 128


def test_stackgan_input_is_pillows_bilinear_upsampling_of_the_8_bit_image():
    """scipy.misc.imresize(img, (299, 299), "bilinear") = Pillow's bilinear resize; when enlarging it is
    a half-pixel bilinear interpolation (edges clamped), rounded to 8 bits; then p / 127.5 - 1."""
    images = torch.rand(2, 3, 40, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1  # H != W: no swap
    x = stackgan_input(images)
    assert x.shape == (2, 3, 299, 299)
    pixels = torch.floor((images + 1) * 127.5)
    ref = F.interpolate(pixels, size=(299, 299), mode="bilinear", align_corners=False)
    got = (x + 1) * 127.5
    assert torch.allclose(got, got.round(), atol=1e-3)  # 8-bit values
    # Pillow resizes in two passes with 8-bit rounding after each (fixed-point weights): within one grey level
    assert (got - ref).abs().max() <= 1.0 and (got - ref).abs().mean() < 0.4


def test_stackgan_selection_shuffles_and_keeps_whole_batches_of_64():
    sel = stackgan_selection(200, seed=3)
    assert len(sel) == 192 and len(set(sel.tolist())) == 192 and sel.max() < 200
    assert (sel == stackgan_selection(200, seed=3)).all() and not (sel == stackgan_selection(200, seed=4)).all()
    assert sorted(stackgan_selection(30, seed=0).tolist()) == list(range(30))  # fewer than 64: all


# ---------------------------------------------------------------------------------------------------
# the IS under each protocol; defaults
# ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fid_net():
    net = FIDInceptionV3()
    net.load_official_state_dict(random_official_state_dict(FIDInceptionV3(), seed=0))
    return net


def scorer_with(monkeypatch, net, protocol: str, network: str = "fid") -> InceptionScorer:
    import t2igan.metrics.inception as inception

    monkeypatch.setattr(inception, "build_inception", lambda kind="fid", path=None, device="cpu", **kw: net)
    monkeypatch.setattr(inception, "resolve_weights_path", lambda kind="fid", path=None, download=None: "w.pth")
    return InceptionScorer(False, True, None, network, None, "cpu", 10, protocol)


@pytest.mark.slow
def test_paper_is_matches_a_tf1_resize_reference(fid_net, monkeypatch):
    g = torch.Generator().manual_seed(2)
    images = (0.6 * (torch.rand(20, 3, 1, 1, generator=g) * 2 - 1) + 0.4 * (torch.rand(20, 3, 64, 64, generator=g) * 2 - 1))
    # reference: 8-bit pixels, TF1 resize as interpolation matrices (float64), (p - 128) / 128, softmax(pool3 W)
    pixels = np.floor((images.numpy().astype(np.float64) + 1) * 127.5)
    m = tf1_matrix(64, 299)
    x = (np.einsum("oh,bchw,pw->bcop", m, pixels, m) - 128) / 128
    with torch.no_grad():
        pool3 = fid_net.pool3(torch.from_numpy(x).float())
    # random weights give every image nearly the same pool3; a classifier orthogonal to the mean feature
    # tells them apart, so the score is well above 1 and sensitive to the input
    mean = pool3.mean(0) / pool3.mean(0).norm()
    rows = torch.randn(1008, 2048, generator=g)
    fid_net.fc.weight.copy_(2 * (rows - (rows @ mean)[:, None] * mean[None]))
    probs = torch.softmax(pool3 @ fid_net.fc.weight.t(), dim=1).double().numpy()
    value, std = inception_score(probs, splits=10)

    scorer = scorer_with(monkeypatch, fid_net, "paper")
    scorer.add(images)
    [record] = scorer.finish(None, progress=False)
    assert (record["is_network"], record["is_protocol"], record["images_scored"], record["splits"]) == ("fid", "paper", 20, 10)
    assert abs(record["value"] - value) <= 1e-6 and abs(record["std"] - std) <= 1e-6
    assert value > 1.5
    # the torch protocol gives other probabilities (PyTorch's half-pixel resize of float images)
    with torch.no_grad():
        torch_probs = scorer_with(monkeypatch, fid_net, "torch").is_probs(images[:2], None).double().numpy()
    assert np.abs(torch_probs - probs[:2]).max() > 100 * np.abs(np.concatenate(scorer.probs)[:2] - probs[:2]).max()


def test_default_network_and_protocol_follow_the_data_set():
    assert default_is_settings("cub") == ("cub", "paper")
    assert default_is_settings("coco") == ("fid", "paper")
    assert default_is_settings("shapes") == ("fid", "torch")
    assert default_is_settings("folder") == ("fid", "torch")
    assert default_is_settings("cub", "fid") == ("fid", "paper")  # improved-gan's protocol for the 2015 graph
    assert default_is_settings("cub", "imagenet") == ("imagenet", "torch")  # torchvision's has no paper protocol
    assert default_is_settings("shapes", "cub", "paper") == ("cub", "paper")


def test_protocol_errors(monkeypatch, fid_net):
    with pytest.raises(T2IError, match="torch"):
        check_protocol("paper", "imagenet")
    with pytest.raises(T2IError, match="unknown IS protocol"):
        check_protocol("tf", "fid")
    with pytest.raises(T2IError, match="unknown IS network"):
        scorer_with(monkeypatch, fid_net, "torch", network="alexnet")
