"""StackGAN's CUB Inception: the pure-Python TensorFlow checkpoint reader on files TensorFlow wrote
(``tests/fixtures/tf_checkpoint``, made by ``tools/make_tf_checkpoint_fixtures.py``), the slim ->
t2igan name mapping against a slim Inception-v3 evaluated from its variable names, ``t2igan convert
inception-cub`` and ``t2igan eval --is-network cub`` through the CLI, and the weights' lookup and checks."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from t2igan.cli import main
from t2igan.convert.inception_cub import slim_inception_v3_layers
from t2igan.errors import T2IError
from t2igan.metrics.inception_cub import CUB_ENV, load_cub_inception, resolve_cub_weights
from t2igan.nn.inception import CUBInceptionV3
from t2igan.convert.tf_checkpoint import Table, TFCheckpoint, _varint

FIXTURES = Path(__file__).parent / "fixtures" / "tf_checkpoint"
FIXTURE_VARIABLES = 1157  # 94 convs + logits + aux head, their moving averages, RMSProp slots, global_step
WIDTH_DIVISOR = 64  # the fixture's widths: max(1, width // 64)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    monkeypatch.setenv("T2IGAN_OFFLINE", "1")
    monkeypatch.setenv("T2IGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(CUB_ENV, raising=False)


def pattern(i: int, shape) -> np.ndarray:
    """What the fixture script stored in the i-th variable (sorted by name)."""
    return (i + (np.arange(int(np.prod(shape))) % 97) / 128).astype(np.float32).reshape(shape)


# ---------------------------------------------------------------------------------------------------
# the reader, on checkpoints TensorFlow wrote
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["v1", "v2"])
def test_reader_gives_every_tensor_tensorflow_wrote(fmt):
    with TFCheckpoint(FIXTURES / fmt / "model.ckpt") as ckpt:
        assert ckpt.format == fmt.upper()
        variables = ckpt.variables()
        assert len(variables) == FIXTURE_VARIABLES
        for i, name in enumerate(sorted(variables)):
            dtype, shape = variables[name]
            value = ckpt.read(name)
            assert value.shape == shape and value.dtype == dtype, name
            if name == "global_step":
                assert dtype is np.int64 and value == 5000
            else:
                np.testing.assert_array_equal(value, pattern(i, shape), err_msg=name)


def test_v1_fixture_spans_several_table_blocks_and_v2_index_names_its_shard():
    path = FIXTURES / "v1" / "model.ckpt"
    table = Table(path.read_bytes(), str(path))
    assert len(list(table.block_entries(table.block(table.index_offset, table.index_size)))) >= 2
    with TFCheckpoint(FIXTURES / "v2" / "model.ckpt.index") as ckpt:  # the .index file names the prefix too
        assert [p.name for p in ckpt.files()] == ["model.ckpt.index", "model.ckpt.data-00000-of-00001"]


def test_tensorflow_named_every_converted_convolution_as_the_mapping_says():
    """TensorFlow's variable scopes named the fixture's convolutions: each t2igan conv must map to the one
    with its kernel size and (divided) widths, and every conv outside the aux head must be used."""
    net_state = CUBInceptionV3(51).state_dict()
    with TFCheckpoint(FIXTURES / "v2" / "model.ckpt") as ckpt:
        variables = ckpt.variables()
    mapped = set()
    for scope, module in slim_inception_v3_layers():
        for suffix in ("weights", "BatchNorm/beta", "BatchNorm/moving_mean", "BatchNorm/moving_variance"):
            assert f"{scope}/{suffix}" in variables and f"{scope}/{suffix}/ExponentialMovingAverage" in variables
        kh, kw, _, cout = variables[f"{scope}/weights"][1]  # (input widths are sums of divided widths)
        out, _, th, tw = net_state[f"{module}.conv.weight"].shape
        assert (kh, kw, cout) == (th, tw, max(1, out // WIDTH_DIVISOR)), scope
        mapped.add(scope)
    convs = {n[: -len("/weights")] for n in variables if n.endswith("/weights")} - {"logits/logits"}
    assert convs - mapped == {"aux_logits/proj", "aux_logits/Conv", "aux_logits/FC"}
    assert len(mapped) == 94


def test_reader_errors_are_one_line(tmp_path):
    v1 = (FIXTURES / "v1" / "model.ckpt").read_bytes()
    cases = {"missing": None, "empty": b"", "text": b"model_checkpoint_path: 'x'\n" * 4,
             "cut": v1[: len(v1) // 2], "no-footer": v1[:-1]}
    for name, data in cases.items():
        path = tmp_path / name
        if data is not None:
            path.write_bytes(data)
        with pytest.raises(T2IError) as e:
            TFCheckpoint(path)
        assert "\n" not in str(e.value) and str(path) in str(e.value)
    (tmp_path / "v2.ckpt.index").write_bytes((FIXTURES / "v2" / "model.ckpt.index").read_bytes())
    with TFCheckpoint(tmp_path / "v2.ckpt") as ckpt, pytest.raises(T2IError, match="data file missing"):
        ckpt.read("conv0/weights")
    data = (FIXTURES / "v2" / "model.ckpt.data-00000-of-00001").read_bytes()
    (tmp_path / "v2.ckpt.data-00000-of-00001").write_bytes(data[:100])
    with TFCheckpoint(tmp_path / "v2.ckpt") as ckpt, pytest.raises(T2IError, match="truncated or corrupt"):
        ckpt.read("logits/logits/weights")


# ---------------------------------------------------------------------------------------------------
# a full-size slim Inception-v3, its checkpoint, and the reference forward pass by slim names
# ---------------------------------------------------------------------------------------------------


class SlimInceptionV3:
    """TF-Slim's ``inception_v3`` (``inception/slim/inception_model.py``) evaluated from variables looked
    up by their slim names; in ``build`` mode it first creates them (random, full size). Convolutions
    without a scope are ``Conv``, ``Conv_1``, ... in creation order within their branch scope."""

    def __init__(self, tensors: dict[str, np.ndarray] | None = None, seed: int = 0):
        self.tensors = {} if tensors is None else tensors
        self.rng = np.random.default_rng(seed)
        self.counts: dict[str, int] = {}

    def variable(self, name: str, shape, kind: str) -> torch.Tensor:
        if name not in self.tensors:
            if kind == "weights":
                value = self.rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
            elif kind == "variance":
                value = 1 + 0.2 * self.rng.random(shape)
            else:
                value = 0.05 * self.rng.standard_normal(shape)
            self.tensors[name] = value.astype(np.float32)
        assert self.tensors[name].shape == tuple(shape), name
        return torch.from_numpy(self.tensors[name])

    def conv(self, x, scope, out, kernel, stride=1, padding="SAME"):
        if scope.endswith("/"):  # an unnamed conv in a branch scope
            k = self.counts.get(scope, 0)
            self.counts[scope] = k + 1
            scope = scope + ("Conv" if k == 0 else f"Conv_{k}")
        kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
        w = self.variable(f"{scope}/weights", (kh, kw, x.shape[1], out), "weights")
        y = F.conv2d(x, w.permute(3, 2, 0, 1), stride=stride, padding=(kh // 2, kw // 2) if padding == "SAME" else 0)
        mean = self.variable(f"{scope}/BatchNorm/moving_mean", (out,), "mean")[:, None, None]
        var = self.variable(f"{scope}/BatchNorm/moving_variance", (out,), "variance")[:, None, None]
        beta = self.variable(f"{scope}/BatchNorm/beta", (out,), "beta")[:, None, None]
        return F.relu((y - mean) / torch.sqrt(var + 0.001) + beta)

    @staticmethod
    def avg(x):  # 3x3 stride 1 SAME: TensorFlow leaves the padding out of the mean
        return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

    def __call__(self, x: torch.Tensor, num_classes: int = 51) -> torch.Tensor:
        self.counts = {}
        c = self.conv
        x = c(x, "conv0", 32, 3, 2, "VALID")
        x = c(x, "conv1", 32, 3, padding="VALID")
        x = c(x, "conv2", 64, 3)
        x = F.max_pool2d(x, 3, 2)
        x = c(x, "conv3", 80, 1, padding="VALID")
        x = c(x, "conv4", 192, 3, padding="VALID")
        x = F.max_pool2d(x, 3, 2)
        for s, pool in (("mixed_35x35x256a", 32), ("mixed_35x35x288a", 64), ("mixed_35x35x288b", 64)):
            x = torch.cat([c(x, f"{s}/branch1x1/", 64, 1),
                           c(c(x, f"{s}/branch5x5/", 48, 1), f"{s}/branch5x5/", 64, 5),
                           c(c(c(x, f"{s}/branch3x3dbl/", 64, 1), f"{s}/branch3x3dbl/", 96, 3), f"{s}/branch3x3dbl/", 96, 3),
                           c(self.avg(x), f"{s}/branch_pool/", pool, 1)], 1)
        s = "mixed_17x17x768a"
        x = torch.cat([c(x, f"{s}/branch3x3/", 384, 3, 2, "VALID"),
                       c(c(c(x, f"{s}/branch3x3dbl/", 64, 1), f"{s}/branch3x3dbl/", 96, 3), f"{s}/branch3x3dbl/", 96, 3, 2,
                         "VALID"),
                       F.max_pool2d(x, 3, 2)], 1)
        for s, n in (("mixed_17x17x768b", 128), ("mixed_17x17x768c", 160), ("mixed_17x17x768d", 160),
                     ("mixed_17x17x768e", 192)):
            b7 = c(c(c(x, f"{s}/branch7x7/", n, 1), f"{s}/branch7x7/", n, (1, 7)), f"{s}/branch7x7/", 192, (7, 1))
            d = c(x, f"{s}/branch7x7dbl/", n, 1)
            for k, (out, kernel) in enumerate(((n, (7, 1)), (n, (1, 7)), (n, (7, 1)), (192, (1, 7)))):
                d = c(d, f"{s}/branch7x7dbl/", out, kernel)
            x = torch.cat([c(x, f"{s}/branch1x1/", 192, 1), b7, d, c(self.avg(x), f"{s}/branch_pool/", 192, 1)], 1)
        s = "mixed_17x17x1280a"
        b3 = c(c(x, f"{s}/branch3x3/", 192, 1), f"{s}/branch3x3/", 320, 3, 2, "VALID")
        b7 = c(c(c(c(x, f"{s}/branch7x7x3/", 192, 1), f"{s}/branch7x7x3/", 192, (1, 7)), f"{s}/branch7x7x3/", 192, (7, 1)),
               f"{s}/branch7x7x3/", 192, 3, 2, "VALID")
        x = torch.cat([b3, b7, F.max_pool2d(x, 3, 2)], 1)
        for s in ("mixed_8x8x2048a", "mixed_8x8x2048b"):
            h = c(x, f"{s}/branch3x3/", 384, 1)
            b3 = torch.cat([c(h, f"{s}/branch3x3/", 384, (1, 3)), c(h, f"{s}/branch3x3/", 384, (3, 1))], 1)
            h = c(c(x, f"{s}/branch3x3dbl/", 448, 1), f"{s}/branch3x3dbl/", 384, 3)
            d = torch.cat([c(h, f"{s}/branch3x3dbl/", 384, (1, 3)), c(h, f"{s}/branch3x3dbl/", 384, (3, 1))], 1)
            x = torch.cat([c(x, f"{s}/branch1x1/", 320, 1), b3, d, c(self.avg(x), f"{s}/branch_pool/", 192, 1)], 1)
        x = x.mean(dim=(2, 3))
        w = self.variable("logits/logits/weights", (2048, num_classes), "weights")
        return x @ w + self.variable("logits/logits/biases", (num_classes,), "beta")


def _key(number: int, wire: int) -> bytes:
    return _uvarint(number << 3 | wire)


def _uvarint(v: int) -> bytes:
    out = bytearray()
    while True:
        out.append(v & 0x7F | (0x80 if v > 0x7F else 0))
        v >>= 7
        if not v:
            return bytes(out)


def _message(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _uvarint(len(payload)) + payload


def _table(entries: list[tuple[bytes, bytes]]) -> bytes:
    """A sorted string table: one data block (a restart at every entry), its index, an empty metaindex."""

    def block(items):
        body, restarts = bytearray(), []
        for key, value in items:
            restarts.append(len(body))
            body += _uvarint(0) + _uvarint(len(key)) + _uvarint(len(value)) + key + value
        return bytes(body) + b"".join(struct.pack("<I", r) for r in restarts or [0]) + \
            struct.pack("<I", max(1, len(restarts)))

    out = bytearray()
    handles = []
    for items in (entries, []):  # data block, metaindex block
        data = block(items)
        handles.append(_uvarint(len(out)) + _uvarint(len(data)))
        out += data + b"\0" * 5
    index = block([(entries[-1][0], handles[0])])
    index_handle = _uvarint(len(out)) + _uvarint(len(index))
    out += index + b"\0" * 5
    footer = handles[1] + index_handle
    return bytes(out) + footer + b"\0" * (40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57)


def write_v2_checkpoint(prefix: Path, tensors: dict[str, np.ndarray]) -> None:
    """A V2 checkpoint (``PREFIX.index`` + one data shard) of float32 / int64 tensors (no CRCs)."""
    data, entries = bytearray(), []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        dtype = {np.dtype(np.float32): 1, np.dtype(np.int64): 9}[a.dtype]
        shape = b"".join(_message(2, _key(1, 0) + _uvarint(d)) for d in a.shape)
        entry = (_key(1, 0) + _uvarint(dtype) + _message(2, shape) + _key(4, 0) + _uvarint(len(data))
                 + _key(5, 0) + _uvarint(a.nbytes))
        entries.append((name.encode(), entry))
        data += a.astype(a.dtype.newbyteorder("<")).tobytes()
    header = _key(1, 0) + _uvarint(1)
    prefix.with_name(prefix.name + ".index").write_bytes(_table([(b"", header)] + entries))
    prefix.with_name(prefix.name + ".data-00000-of-00001").write_bytes(bytes(data))


@pytest.fixture(scope="module")
def stackgan_checkpoint(tmp_path_factory):
    """A full-size slim Inception-v3 checkpoint laid out as the inception fine-tuning code saves it: the
    variables, different moving averages of them (what StackGAN's evaluation restores), an optimiser
    slot, the aux head and global_step; plus the reference network built from the averages."""
    folder = tmp_path_factory.mktemp("stackgan")
    averages = SlimInceptionV3(seed=1)
    averages(torch.zeros(1, 3, 139, 139))  # creates every variable at full size
    plain = {k: (v * 0.5 - 0.1).astype(np.float32) for k, v in averages.tensors.items()}  # the raw variables
    tensors = dict(plain)
    tensors.update({f"{k}/ExponentialMovingAverage": v for k, v in averages.tensors.items()})
    tensors["logits/logits/weights/RMSProp"] = np.ones((2048, 51), np.float32)
    tensors["aux_logits/FC/weights"] = np.ones((768, 51), np.float32)
    tensors["global_step"] = np.array(5000, np.int64)
    write_v2_checkpoint(folder / "model.ckpt", tensors)
    return folder / "model.ckpt", averages


@pytest.mark.slow
def test_convert_cli_maps_slim_names_to_a_network_that_computes_stackgans_probabilities(stackgan_checkpoint, tmp_path,
                                                                                          capsys):
    ckpt, reference = stackgan_checkpoint
    assert main(["convert", "inception-cub", str(ckpt), "-o", str(tmp_path / "weights")]) == 0
    out = capsys.readouterr().out
    [file] = (tmp_path / "weights").glob("inception_cub-*.safetensors")
    assert str(file) in out and "50 classes + background" in out and "V2" in out
    net, used = load_cub_inception(file)
    assert used == file and net.fc.out_features == 51
    images = torch.rand(2, 3, 139, 139, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        expected = reference(images)[:, 1:].softmax(dim=1)  # StackGAN: softmax without the background logit
        actual = net.class_probs(images)
    assert expected.std() > 1e-3  # the classes are told apart, so a wrong mapping shows
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-4)
    # from the moving averages, not the raw variables (as StackGAN's variables_to_restore())
    assert torch.equal(net.Conv2d_1a_3x3.conv.weight, torch.from_numpy(reference.tensors["conv0/weights"]).permute(3, 2, 0, 1))
    # the default folder is the cache that --is-network cub searches
    assert main(["convert", "inception-cub", str(ckpt)]) == 0
    [cached] = (tmp_path / "cache").glob("inception_cub-*.safetensors")
    assert resolve_cub_weights() == cached


def test_weights_are_found_by_path_env_and_cache_and_checked(stackgan_checkpoint, tmp_path, monkeypatch, capsys):
    ckpt, _ = stackgan_checkpoint
    cache = tmp_path / "cache"
    with pytest.raises(T2IError) as e:
        resolve_cub_weights()
    message = str(e.value)
    assert "\n" not in message and "StackGAN-inception-model" in message and "birds_valid299/model.ckpt" in message
    assert "t2igan convert inception-cub" in message and CUB_ENV in message
    assert main(["convert", "inception-cub", str(ckpt)]) == 0
    [file] = cache.glob("inception_cub-*.safetensors")
    assert resolve_cub_weights() == file  # the cache
    monkeypatch.setenv(CUB_ENV, str(tmp_path / "nowhere.safetensors"))
    with pytest.raises(T2IError, match=CUB_ENV):
        resolve_cub_weights()
    moved = tmp_path / file.name
    file.rename(moved)
    monkeypatch.setenv(CUB_ENV, str(moved))
    assert resolve_cub_weights() == moved  # the environment variable ...
    wrong = tmp_path / "inception_cub-00000000.safetensors"
    wrong.write_bytes(moved.read_bytes())
    assert resolve_cub_weights(wrong) == wrong  # ... and a path given beats it
    # the hash in the name is checked ...
    with pytest.raises(T2IError, match="sha256"):
        load_cub_inception(wrong)
    # ... and so are the tensors, against the sha256 the converter recorded
    data = bytearray(moved.read_bytes())
    data[-1] ^= 1
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(data))
    with pytest.raises(T2IError, match="do not match"):
        load_cub_inception(tampered)


def test_convert_errors_are_one_line(tmp_path, capsys):
    # the tiny fixture has slim's names but not its widths
    assert main(["convert", "inception-cub", str(FIXTURES / "v1" / "model.ckpt"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err and "shape" in err
    write_v2_checkpoint(tmp_path / "other.ckpt", {"generator/fc/weights": np.zeros((2, 2), np.float32)})
    assert main(["convert", "inception-cub", str(tmp_path / "other.ckpt"), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "conv0/weights" in err and "\n" not in err
    assert main(["convert", "inception-cub", str(tmp_path / "absent.ckpt"), "-o", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err
    assert not list(tmp_path.glob("inception_cub-*"))


@pytest.mark.slow
def test_eval_cli_scores_with_the_cub_network_by_path_or_env(stackgan_checkpoint, tiny_trained_run, tmp_path,
                                                             monkeypatch, capsys):
    import shutil

    ckpt, _ = stackgan_checkpoint
    assert main(["convert", "inception-cub", str(ckpt), "-o", str(tmp_path / "w")]) == 0
    [weights] = (tmp_path / "w").glob("inception_cub-*.safetensors")
    run = tmp_path / "run"
    shutil.copytree(tiny_trained_run, run)
    base = ["eval", str(run), "--metrics", "is", "--n", "4", "--device", "cpu", "--no-progress"]
    assert main(base + ["--is-network", "cub", str(weights), "--is-protocol", "paper"]) == 0
    monkeypatch.setenv(CUB_ENV, str(weights))
    assert main(base + ["--is-network", "cub"]) == 0  # a Shapes run: the torch protocol by default
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    paper, torch_protocol = [r for r in records if r["metric"] == "is"]
    assert (paper["is_network"], paper["is_protocol"], paper["inception"]) == ("cub", "paper", str(weights))
    assert (torch_protocol["is_network"], torch_protocol["is_protocol"]) == ("cub", "torch")
    assert paper["images_scored"] == 4 and 1.0 <= paper["value"] <= 50.0
    capsys.readouterr()
    # offline without the file: one line that says where the weights come from
    monkeypatch.delenv(CUB_ENV)
    assert main(base + ["--is-network", "cub"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: CUB Inception weights not found") and "\n" not in err
    assert "StackGAN-inception-model" in err and "t2igan convert inception-cub" in err
    for bad in (["--is-network", "imagenet", "--is-protocol", "paper"], ["--is-network", "alexnet"],
                ["--is-network", "cub", str(weights), "extra"]):
        assert main(base + bad) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err
