"""Inception-v3 for FID / IS: architecture vs the reference (pytorch-fid, torchvision), input handling,
and finding / checking / loading the released weight files. Never touches the network."""

import hashlib
import os
import re
import shutil
import urllib.error

import pytest
import torch
import torch.nn.functional as F

from t2igan.errors import T2IError
from t2igan.metrics import inception
from t2igan.nn.inception import FIDInceptionV3, ImageNetInceptionV3
from t2igan.metrics.inception import (
    build_inception,
    hash_prefix_from_name,
    load_inception_weights,
    resolve_weights_path,
)

MIXED_OUT_CHANNELS = [  # (block, out channels, out side for a 299 input), from torchvision's Inception3
    ("Mixed_5b", 256, 35), ("Mixed_5c", 288, 35), ("Mixed_5d", 288, 35),
    ("Mixed_6a", 768, 17), ("Mixed_6b", 768, 17), ("Mixed_6c", 768, 17), ("Mixed_6d", 768, 17),
    ("Mixed_6e", 768, 17), ("Mixed_7a", 1280, 8), ("Mixed_7b", 2048, 8), ("Mixed_7c", 2048, 8),
]
A_C_E1 = ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7b"]


def random_official_state_dict(model: torch.nn.Module, seed: int, aux_head: bool = False,
                               batches_tracked: bool = True) -> dict:
    """A state dict in the released files' format (keys, shapes; the FID file has 566 entries, BatchNorm's
    ``num_batches_tracked`` included), with He-scaled random convs so activations stay O(1) through the
    94 conv layers."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in model.state_dict().items():
        if key.endswith("num_batches_tracked"):
            if batches_tracked:
                out[key] = torch.tensor(0)
        elif key.endswith("conv.weight"):
            out[key] = torch.randn(value.shape, generator=g) * (2.0 / value[0].numel()) ** 0.5
        elif key.endswith(("bn.weight", "running_var")):
            out[key] = 1 + 0.1 * torch.rand(value.shape, generator=g)
        else:  # bn.bias, running_mean, fc
            out[key] = 0.05 * torch.randn(value.shape, generator=g)
    if aux_head:  # torchvision's inception_v3_google file also holds the training-only aux classifier
        out["AuxLogits.conv0.conv.weight"] = torch.zeros(128, 768, 1, 1)
        out["AuxLogits.conv1.conv.weight"] = torch.zeros(768, 128, 5, 5)
        for name, c in (("conv0", 128), ("conv1", 768)):
            for buf in ("weight", "bias", "running_mean", "running_var"):
                out[f"AuxLogits.{name}.bn.{buf}"] = torch.zeros(c)
        out["AuxLogits.fc.weight"] = torch.zeros(1000, 768)
        out["AuxLogits.fc.bias"] = torch.zeros(1000)
    return out


def save_with_hash_name(state_dict: dict, folder, stem: str):
    """Save as ``<stem>-<first 8 hex of its sha256>.pth`` (torch.hub's naming convention)."""
    tmp = folder / f"{stem}.tmp"
    torch.save(state_dict, tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = folder / f"{stem}-{digest[:8]}.pth"
    tmp.rename(path)
    return path


@pytest.fixture(autouse=True)
def no_network(monkeypatch, tmp_path):
    """Offline, empty cache, no weight env vars; any download attempt fails the test."""
    monkeypatch.setenv("T2IGAN_OFFLINE", "1")
    monkeypatch.setenv("T2IGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("T2IGAN_INCEPTION_WEIGHTS", raising=False)
    monkeypatch.delenv("T2IGAN_INCEPTION_IS_WEIGHTS", raising=False)

    def forbidden(*args, **kwargs):
        raise AssertionError("a test tried to download")

    monkeypatch.setattr(torch.hub, "download_url_to_file", forbidden)


@pytest.fixture(scope="module")
def fid_state():
    return random_official_state_dict(FIDInceptionV3(), seed=0)


@pytest.fixture(scope="module")
def fid_file(fid_state, tmp_path_factory):
    return save_with_hash_name(fid_state, tmp_path_factory.mktemp("weights"), "pt_inception-2015-12-05")


@pytest.fixture(scope="module")
def fid_model(fid_state):
    model = FIDInceptionV3()
    model.load_official_state_dict(fid_state)
    return model


# --- architecture ---------------------------------------------------------------------------------


def test_parameter_counts_match_reference():
    fid, imagenet = FIDInceptionV3(), ImageNetInceptionV3()
    n_imagenet = sum(p.numel() for p in imagenet.parameters())
    # torchvision documents 27,161,264 params for inception_v3 with its aux head; the head is
    # conv0 (768->128, 1x1) + BN, conv1 (128->768, 5x5) + BN, fc 768 -> 1000
    aux_head = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
    assert n_imagenet == 27_161_264 - aux_head == 23_834_568
    # the FID network differs only by its 1008-class fc
    assert sum(p.numel() for p in fid.parameters()) == n_imagenet + 8 * 2048 + 8 == 23_850_960
    assert len(fid.state_dict()) == 566  # as the released file: 94 conv+BN units x 6 tensors + fc weight, bias
    floats = {k: v for k, v in fid.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert sum(v.numel() for v in floats.values()) == 23_885_392  # params + BN running stats
    # float32 payload 95.54 MB: the released file is 95,628,359 bytes
    assert 0 < 95_628_359 - 4 * 23_885_392 < 100_000


def test_state_dict_keys_are_torchvision_names():
    shapes = {k: tuple(v.shape) for k, v in FIDInceptionV3().state_dict().items()}
    assert shapes["Conv2d_1a_3x3.conv.weight"] == (32, 3, 3, 3)
    assert shapes["Conv2d_1a_3x3.bn.running_mean"] == (32,)
    assert shapes["Conv2d_4a_3x3.conv.weight"] == (192, 80, 3, 3)
    assert shapes["Mixed_5b.branch1x1.conv.weight"] == (64, 192, 1, 1)
    assert shapes["Mixed_5b.branch_pool.conv.weight"] == (32, 192, 1, 1)
    assert shapes["Mixed_6b.branch7x7_2.conv.weight"] == (128, 128, 1, 7)
    assert shapes["Mixed_6e.branch7x7dbl_2.conv.weight"] == (192, 192, 7, 1)
    assert shapes["Mixed_7a.branch7x7x3_4.conv.weight"] == (192, 192, 3, 3)
    assert shapes["Mixed_7c.branch3x3dbl_3b.conv.weight"] == (384, 384, 3, 1)
    assert shapes["fc.weight"] == (1008, 2048)
    assert shapes["fc.bias"] == (1008,)
    assert all(re.fullmatch(r"(Conv2d_\w+|Mixed_\d[a-e]\.branch\w+)\.(conv|bn)\.\w+|fc\.(weight|bias)", k)
               for k in shapes)
    assert FIDInceptionV3().Conv2d_1a_3x3.bn.eps == 0.001


def test_forward_layer_by_layer_on_64px(fid_model):
    torch.manual_seed(0)
    seen, pool_io = {}, {}
    hooks = [getattr(fid_model, name).register_forward_hook(
        lambda m, inp, out, name=name: seen.__setitem__(name, tuple(out.shape))) for name, _, _ in MIXED_OUT_CHANNELS]
    for name in ("Mixed_7b", "Mixed_7c"):
        hooks.append(getattr(fid_model, name).pool.register_forward_hook(
            lambda m, inp, out, name=name: pool_io.__setitem__(name, (inp[0], out))))
    images = torch.rand(2, 3, 64, 64) * 2 - 1  # (B, 3, 64, 64) in [-1, 1]
    features = fid_model(images)
    for h in hooks:
        h.remove()
    assert features.shape == (2, 2048)
    assert torch.isfinite(features).all() and features.std() > 0.01
    assert (features[0] - features[1]).abs().max() > 0  # depends on the image
    assert [(n, s[1], s[2]) for n, s in seen.items()] == [(n, c, side) for n, c, side in MIXED_OUT_CHANNELS]
    # the pool branches do what the TF graph does: E_1 averages without the padding, E_2 max-pools
    x, out = pool_io["Mixed_7b"]
    torch.testing.assert_close(out, F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
    assert not torch.allclose(out, F.avg_pool2d(x, 3, stride=1, padding=1))  # the borders differ
    x, out = pool_io["Mixed_7c"]
    torch.testing.assert_close(out, F.max_pool2d(x, 3, stride=1, padding=1))
    # the IS output of the original TF code: softmax over the 1008 classes of pool3 @ W (no fc bias)
    probs = fid_model(images, output="probs_no_bias")
    assert probs.shape == (2, 1008)
    torch.testing.assert_close(probs, (features @ fid_model.fc.weight.T).softmax(dim=1))


def test_pooling_variants_fid_vs_imagenet():
    fid, imagenet = FIDInceptionV3(), ImageNetInceptionV3()
    for name in A_C_E1:
        assert isinstance(getattr(fid, name).pool, torch.nn.AvgPool2d)
        assert getattr(fid, name).pool.count_include_pad is False
        assert getattr(imagenet, name).pool.count_include_pad is True
    assert isinstance(fid.Mixed_7c.pool, torch.nn.MaxPool2d)
    assert isinstance(imagenet.Mixed_7c.pool, torch.nn.AvgPool2d)
    # with equal weights, E_1 / E_2 of both variants differ only in the pool branch (last 192 channels)
    torch.manual_seed(0)
    for name, c_in in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        block_fid, block_std = getattr(fid, name), getattr(imagenet, name)
        block_std.load_state_dict(block_fid.state_dict())
        x = torch.randn(1, c_in, 4, 4)
        out_fid, out_std = block_fid(x), block_std(x)
        torch.testing.assert_close(out_fid[:, :-192], out_std[:, :-192])
        assert not torch.allclose(out_fid[:, -192:], out_std[:, -192:])


def test_train_mode_is_ignored(fid_model):
    fid_model.train()
    assert not fid_model.training and not fid_model.Mixed_5b.branch1x1.bn.training


# --- input handling -------------------------------------------------------------------------------


def test_preprocess_is_a_single_normalisation():
    torch.manual_seed(0)
    x01 = torch.rand(2, 3, 299, 299)
    model = ImageNetInceptionV3()
    # torchvision pipeline: ImageNet mean/std normalisation, then transform_input inside the model
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    normalised = (x01 - mean[:, None, None]) / std[:, None, None]
    tv_input = normalised * (std / 0.5)[:, None, None] + ((mean - 0.5) / 0.5)[:, None, None]
    torch.testing.assert_close(model.preprocess(2 * x01 - 1), tv_input)
    torch.testing.assert_close(ImageNetInceptionV3(input_range="[0,1]").preprocess(x01), tv_input)
    # FID (pytorch-fid): resize to 299 bilinearly, then 2x - 1 for [0, 1] input
    small = torch.rand(2, 3, 64, 64)
    expected = 2 * F.interpolate(small, size=(299, 299), mode="bilinear", align_corners=False) - 1
    torch.testing.assert_close(FIDInceptionV3(input_range="[0,1]").preprocess(small), expected)
    torch.testing.assert_close(FIDInceptionV3().preprocess(2 * small - 1), expected, atol=1e-6, rtol=0)


def test_bad_input_is_a_clear_error():
    model = FIDInceptionV3()
    with pytest.raises(T2IError, match=r"\[-1,1\]"):
        model(torch.rand(1, 3, 32, 32) * 255)  # [0, 255] images
    with pytest.raises(T2IError, match="shape"):
        model(torch.rand(1, 1, 32, 32))  # grayscale
    with pytest.raises(T2IError, match="output"):
        model(torch.rand(1, 3, 32, 32), output="pool4")
    with pytest.raises(T2IError, match="input_range"):
        FIDInceptionV3(input_range="0-255")


# --- weights --------------------------------------------------------------------------------------


def test_hash_prefix_follows_torch_hub_convention():
    for name, prefix in (("pt_inception-2015-12-05-6726825d.pth", "6726825d"),
                         ("inception_v3_google-0cc3c7bd.pth", "0cc3c7bd")):
        assert hash_prefix_from_name(name) == prefix
        assert torch.hub.HASH_REGEX.search(name).group(1) == prefix  # what torch.hub check_hash reads
    assert hash_prefix_from_name("my_inception.pth") is None
    assert hash_prefix_from_name("pt_inception-2015-12-05.pth") is None


def test_load_by_path_env_and_cache(fid_file, fid_state, monkeypatch, tmp_path):
    def same(state):
        return state.keys() == fid_state.keys() and all(torch.equal(state[k], fid_state[k]) for k in state)

    assert same(load_inception_weights("fid", path=fid_file))
    monkeypatch.setenv("T2IGAN_INCEPTION_WEIGHTS", str(fid_file))
    assert resolve_weights_path("fid") == fid_file
    assert same(load_inception_weights("fid"))
    monkeypatch.delenv("T2IGAN_INCEPTION_WEIGHTS")
    cache = tmp_path / "cache"
    cache.mkdir()
    monkeypatch.setitem(inception.WEIGHTS["fid"], "file", fid_file.name)  # the standard name, our hash
    shutil.copy(fid_file, cache / fid_file.name)
    assert resolve_weights_path("fid") == cache / fid_file.name
    model = build_inception("fid")
    assert isinstance(model, FIDInceptionV3)
    assert torch.equal(model.Mixed_6c.branch7x7_2.conv.weight, fid_state["Mixed_6c.branch7x7_2.conv.weight"])
    assert torch.equal(model.Conv2d_1a_3x3.bn.running_var, fid_state["Conv2d_1a_3x3.bn.running_var"])


def test_hash_mismatch_is_an_error(fid_file, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    official = cache / "pt_inception-2015-12-05-6726825d.pth"  # right name, wrong content
    shutil.copy(fid_file, official)
    with pytest.raises(T2IError, match="6726825d"):
        load_inception_weights("fid")
    renamed = tmp_path / "pt_inception-2015-12-05-00000000.pth"
    shutil.copy(fid_file, renamed)
    with pytest.raises(T2IError, match="sha256"):
        load_inception_weights("fid", path=renamed)
    assert load_inception_weights("fid", path=renamed, check_hash=False).keys()  # escape hatch


def test_missing_weights_offline_is_one_line_error(monkeypatch, tmp_path):
    for kind, env in (("fid", "T2IGAN_INCEPTION_WEIGHTS"), ("imagenet", "T2IGAN_INCEPTION_IS_WEIGHTS")):
        with pytest.raises(T2IError) as err:
            load_inception_weights(kind)  # T2IGAN_OFFLINE=1
        message = str(err.value)
        assert "\n" not in message and env in message and inception.WEIGHTS[kind]["file"] in message
        assert str(tmp_path / "cache") in message
    with pytest.raises(T2IError, match="not found"):
        load_inception_weights("fid", path=tmp_path / "nope.pth")
    monkeypatch.setenv("T2IGAN_INCEPTION_WEIGHTS", str(tmp_path / "missing.pth"))
    with pytest.raises(T2IError, match="T2IGAN_INCEPTION_WEIGHTS"):
        load_inception_weights("fid")
    with pytest.raises(T2IError, match="kind"):
        load_inception_weights("clip")


def test_failed_download_is_one_line_error(monkeypatch, tmp_path):
    calls = []

    def offline(url, dst, hash_prefix=None, progress=True):
        calls.append((url, dst, hash_prefix))
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(T2IError) as err:
        load_inception_weights("fid", download=True)
    assert "\n" not in str(err.value) and "T2IGAN_INCEPTION_WEIGHTS" in str(err.value)
    url, dst, prefix = calls[0]
    assert url == "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" \
                  "pt_inception-2015-12-05-6726825d.pth"
    assert dst == str(tmp_path / "cache" / "pt_inception-2015-12-05-6726825d.pth") and prefix == "6726825d"
    with pytest.raises(T2IError):
        load_inception_weights("imagenet", download=True)
    assert calls[1][0] == "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth"
    assert calls[1][2] == "0cc3c7bd"


def test_imagenet_file_with_aux_head_loads(tmp_path):
    model = ImageNetInceptionV3()
    state = random_official_state_dict(model, seed=1, aux_head=True)
    path = save_with_hash_name(state, tmp_path, "inception_v3_google")
    loaded = build_inception("imagenet", path=path)
    assert isinstance(loaded, ImageNetInceptionV3) and loaded.fc.weight.shape == (1000, 2048)
    assert torch.equal(loaded.fc.weight, state["fc.weight"])
    assert not any(k.startswith("AuxLogits") for k in loaded.state_dict())


def test_strict_keys_and_shapes(fid_state, tmp_path):
    model = FIDInceptionV3()
    # files saved by old PyTorch have no num_batches_tracked: accepted
    model.load_official_state_dict(random_official_state_dict(model, 2, batches_tracked=False))
    torch.testing.assert_close(model.fc.bias, random_official_state_dict(model, 2)["fc.bias"])
    broken = dict(fid_state)
    del broken["Mixed_6b.branch7x7_1.conv.weight"]
    broken["Mixed_6b.extra.weight"] = torch.zeros(1)
    with pytest.raises(T2IError, match=r"missing keys 1 \(Mixed_6b\.branch7x7_1\.conv\.weight\).*"
                                       r"unexpected keys 1 \(Mixed_6b\.extra\.weight\)"):
        model.load_official_state_dict(broken)
    with pytest.raises(T2IError, match="AuxLogits"):  # the FID file has no aux head
        model.load_official_state_dict(random_official_state_dict(model, 0, aux_head=True))
    wrong_fc = dict(fid_state, **{"fc.weight": torch.zeros(1000, 2048), "fc.bias": torch.zeros(1000)})
    with pytest.raises(T2IError, match=r"fc\.weight \(1000, 2048\) \(expected \(1008, 2048\)\)"):
        model.load_official_state_dict(wrong_fc)  # ImageNet weights given as FID weights
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(T2IError, match="garbage.pth"):
        load_inception_weights("fid", path=garbage)


def test_weights_are_never_fetched_when_offline_env_is_set(monkeypatch):
    assert os.environ["T2IGAN_OFFLINE"] == "1"
    assert not inception.downloads_allowed(None)
    assert inception.downloads_allowed(True) and not inception.downloads_allowed(False)
    monkeypatch.delenv("T2IGAN_OFFLINE")
    assert inception.downloads_allowed(None)
