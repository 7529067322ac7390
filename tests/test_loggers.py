"""Trackers: TensorBoard read back from its event file, W&B in offline mode read back from its run
file and media folder; both get the scalars of ``log.jsonl`` and the sample grids as images."""

import io
import json
import socket
import struct

import numpy as np
import pytest
from conftest import TINY_RUN
from PIL import Image

from t2igan.config import resolve_config
from t2igan.errors import T2IError
from t2igan.loggers import resolve_names
from t2igan.training import Trainer

TINY = TINY_RUN + ["train.max_steps=2", "train.log_every=1", "train.sample_every=2", "train.checkpoint_every=100",
                   "train.num_sample_captions=2"]


def train(tmp_path, loggers: str):
    run = tmp_path / "run"
    Trainer(resolve_config("dfgan-shapes", [*TINY, f"train.loggers={loggers}"]), run, progress=False).fit()
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return run, logged


def test_tensorboard_gets_scalars_and_sample_images(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run, logged = train(tmp_path, "[tensorboard]")
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0, "scalars": 0}).Reload()
    g_loss = events.Scalars("g_loss")
    assert [e.step for e in g_loss] == [r["step"] for r in logged]
    assert [e.value for e in g_loss] == pytest.approx([r["g_loss"] for r in logged], rel=1e-6)
    images = events.Images("samples")
    assert [e.step for e in images] == [2, 2]  # the grid at step 2 and the final one (same step)
    grid = Image.open(run / "samples" / "step-00000002.png").convert("RGB")
    shown = Image.open(io.BytesIO(images[-1].encoded_image_string)).convert("RGB")
    assert shown.size == grid.size and np.array_equal(np.asarray(shown), np.asarray(grid))
    assert not (run / "wandb").exists()


def wandb_records(path):
    """The protobuf records of a W&B run file: a ``:W&B`` header (7 bytes), then LevelDB-log blocks
    of 32 KiB holding records ``(crc32, length, type)`` + data, split FIRST/MIDDLE/LAST over blocks."""
    from wandb.proto import wandb_internal_pb2

    data, pos, pending = path.read_bytes(), 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if left < 7 or (kind == 0 and length == 0):  # block padding
            pos += left
            continue
        pending += data[pos + 7: pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # FULL or LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_gets_scalars_and_sample_images(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run, logged = train(tmp_path, "[wandb]")
    (offline,) = (run / "wandb").glob("offline-run-*")
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in wandb_records(next(offline.glob("*.wandb"))) if r.WhichOneof("record_type") == "history"]
    g_loss = [(h["_step"], h["g_loss"]) for h in history if "g_loss" in h]
    assert g_loss == [(r["step"], pytest.approx(r["g_loss"], rel=1e-6)) for r in logged]
    (image,) = [h for h in history if h.get("samples/_type") == "image-file"]
    grid = Image.open(run / "samples" / "step-00000002.png").convert("RGB")
    assert image["_step"] == 2 and (image["samples/width"], image["samples/height"]) == grid.size
    media = Image.open(offline / "files" / image["samples/path"]).convert("RGB")
    assert np.array_equal(np.asarray(media), np.asarray(grid))
    assert not (run / "tensorboard").exists()


def test_logger_names_are_checked_before_training():
    assert resolve_names(None) == ["tensorboard"]  # installed with the test extras
    assert resolve_names([]) == []
    with pytest.raises(T2IError, match="unknown logger 'mlflow'"):
        resolve_names(["tensorboard", "mlflow"])
    with pytest.raises(T2IError, match="unknown logger"):
        Trainer(resolve_config("dfgan-shapes", [*TINY, "train.loggers=[neptune]"]), None, progress=False)


def test_wandb_mode_and_online_problems_are_one_line_before_anything_is_written(tmp_path, monkeypatch):
    import time

    from t2igan import loggers

    monkeypatch.setenv("WANDB_MODE", "bogus")
    with pytest.raises(T2IError, match="WANDB_MODE='bogus' is not a W&B mode"):
        resolve_names(["wandb"])
    monkeypatch.setenv("WANDB_MODE", "online")
    for name in ("WANDB_API_KEY", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc with a key
    with pytest.raises(T2IError, match="WANDB_MODE=online needs a W&B API key"):
        resolve_names(["wandb"])
    monkeypatch.setenv("WANDB_API_KEY", "k" * 40)
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    start = time.monotonic()
    with pytest.raises(T2IError, match=f"the W&B server http://127.0.0.1:{port} cannot be reached"):
        Trainer(resolve_config("dfgan-shapes", [*TINY, "train.loggers=[wandb]"]), tmp_path / "run", progress=False)
    assert time.monotonic() - start < 5 and not (tmp_path / "run").exists()
    # a server that never answers (a network that drops packets): refused after the reach timeout
    monkeypatch.setattr(loggers.socket, "create_connection", lambda *a, **k: time.sleep(30))
    start = time.monotonic()
    assert loggers.reachable("https://api.example", timeout=0.3) == "no answer within 0.3 s"
    assert time.monotonic() - start < 2
