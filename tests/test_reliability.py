"""Crash safety: kill -9 and resume, non-finite losses, corrupt checkpoints, safe loading, and the
speed switches (channels_last, torch.compile) giving the same training as without them."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY_RUN
from safetensors.torch import load_file

from t2igan.config import resolve_config
from t2igan.data.pickles import safe_pickle_load
from t2igan.errors import T2IError
from t2igan.training import Trainer, list_checkpoints

TINY = TINY_RUN + [
    "train.log_every=1",
    "train.sample_every=0",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=2",
]


def tiny_cfg(steps, extra=()):
    return resolve_config("dfgan-shapes", TINY + [f"train.max_steps={steps}", *extra])


def checkpoint_tensors(run_dir, step):
    return load_file(str(run_dir / "checkpoints" / f"step-{step:08d}.safetensors"))


@pytest.mark.slow
def test_run_killed_mid_step_resumes_bit_identically(tmp_path):
    """SIGKILL at an arbitrary moment after the second checkpoint, resume, and end with exactly the
    weights (model and EMA) of a run that was never interrupted."""
    run = tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "t2igan", "train", "dfgan-shapes", *TINY, "--run-dir", str(run), "--no-progress"]
    log = open(tmp_path / "killed.log", "wb")
    proc = subprocess.Popen(cmd + ["train.max_steps=1000"], env=env, stdout=log, stderr=log)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if len(list_checkpoints(run)) >= 2:
            break
        time.sleep(0.01)
    time.sleep(0.05)  # land somewhere inside a later step (or a checkpoint write)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-2000:]
    log.close()
    killed_at = list_checkpoints(run)[-1][0]
    assert 4 <= killed_at < 12

    resumed = subprocess.run(cmd + ["train.max_steps=12", "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    reference = tmp_path / "uninterrupted"
    Trainer(tiny_cfg(12), reference, progress=False).fit()
    a, b = checkpoint_tensors(reference, 12), checkpoint_tensors(run, 12)
    assert a.keys() == b.keys() and any(k.startswith("ema.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # no temporary files left behind, only the last keep_checkpoints=2
    assert [s for s, _ in list_checkpoints(run)] == [10, 12]
    assert not list((run / "checkpoints").glob(".*.tmp"))
    # the log has each step once: lines of the lost steps after the checkpoint were replaced
    steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))


def test_non_finite_loss_stops_at_once_naming_step_loss_and_checkpoint(tmp_path):
    trainer = Trainer(tiny_cfg(8), tmp_path, progress=False)
    original = trainer.model.compute_loss

    def poisoned(phase, batch, state):
        loss, logs = original(phase, batch, state)
        if phase == "g" and trainer.step == 4:  # the 5th step's G loss
            loss = loss * float("nan")
            logs = {**logs, "g_loss": float("nan")}
        return loss, logs

    trainer.model.compute_loss = poisoned
    with pytest.raises(T2IError) as err:
        trainer.fit()
    msg = str(err.value)
    assert "non-finite g loss at step 5" in msg and "g_loss=nan" in msg
    assert "step-00000004.safetensors" in msg
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 4]  # nothing written after the NaN
    for path in [tmp_path / "model.safetensors", *(p for _, p in list_checkpoints(tmp_path))]:
        assert all(torch.isfinite(t).all() for t in load_file(str(path)).values()), path
    # G was not stepped with the NaN loss
    assert all(torch.isfinite(p).all() for p in trainer.model.generator.parameters())


def test_non_finite_weights_are_never_saved(tmp_path):
    trainer = Trainer(tiny_cfg(2), tmp_path, progress=False)
    trainer.fit()
    with torch.no_grad():
        trainer.model.discriminator.from_rgb.weight[0, 0, 0, 0] = float("inf")
    trainer.step = 3
    with pytest.raises(T2IError, match=r"non-finite weights \(model.discriminator.from_rgb.weight\) at step 3.*step-00000002"):
        trainer.save_checkpoint()
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2]


def test_corrupt_checkpoints_fall_back_and_all_corrupt_is_a_clear_error(tmp_path, capsys):
    Trainer(tiny_cfg(6), tmp_path, progress=False).fit()  # checkpoints 4 and 6 kept
    (_, older), (_, newest) = list_checkpoints(tmp_path)
    state = newest.with_suffix(".state.pt")
    state.write_bytes(state.read_bytes()[: len(state.read_bytes()) // 2])  # truncated state
    t = Trainer(tiny_cfg(6), tmp_path, progress=False)
    assert t.resume() and t.step == 4
    assert "skipping unreadable checkpoint step-00000006" in capsys.readouterr().err
    older.write_bytes(b"not a safetensors file")
    with pytest.raises(T2IError, match="none of the 2 checkpoints"):
        Trainer(tiny_cfg(6), tmp_path, progress=False).resume()


class RunsCode:
    """An object whose unpickling runs a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_data_pickle_is_refused_without_running_code(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "captions.pickle"
    evil.write_bytes(pickle.dumps([["a", "bird"], RunsCode(marker)], protocol=2))
    with pytest.raises(T2IError, match=r"refused to load .*captions.pickle.*(posix|os)\.system"):
        safe_pickle_load(evil)
    assert not marker.exists()
    # a harmless pickle of plain data still loads
    plain = tmp_path / "plain.pickle"
    plain.write_bytes(pickle.dumps({"words": ["a", "bird"], "ids": [1, 2]}, protocol=2))
    assert safe_pickle_load(plain) == {"words": ["a", "bird"], "ids": [1, 2]}


def test_malicious_checkpoint_state_is_refused_without_running_code(tmp_path, capsys):
    Trainer(tiny_cfg(4), tmp_path, progress=False).fit()  # checkpoints 2 and 4
    marker = tmp_path / "pwned"
    newest = list_checkpoints(tmp_path)[-1][1]
    torch.save({"step": 4, "evil": RunsCode(marker)}, newest.with_suffix(".state.pt"))
    t = Trainer(tiny_cfg(4), tmp_path, progress=False)
    assert t.resume() and t.step == 2  # weights_only=True refuses it; the previous checkpoint is used
    assert not marker.exists()
    assert "skipping unreadable checkpoint step-00000004" in capsys.readouterr().err


def test_channels_last_trains_like_the_default_layout(tmp_path):
    plain = Trainer(tiny_cfg(3), tmp_path / "plain", progress=False)
    start = {k: v.clone() for k, v in plain.model.state_dict().items()}
    plain.fit()
    nhwc = Trainer(tiny_cfg(3, ["train.channels_last=true"]), tmp_path / "nhwc", progress=False)
    assert nhwc.model.discriminator.from_rgb.weight.is_contiguous(memory_format=torch.channels_last)
    nhwc.fit()
    # the layouts sum in different orders; Adam turns tiny gradient differences into differences of up to
    # a few percent of a step, so each tensor must agree to well within what training moved it
    for (k, a), b in zip(plain.model.state_dict().items(), nhwc.model.state_dict().values()):
        if a.is_floating_point():
            moved = (a - start[k]).abs().max().item()
            assert (a - b).abs().max().item() <= 1e-6 + 0.25 * moved, k
    # its checkpoint loads into a default-layout trainer
    again = Trainer(tiny_cfg(3), tmp_path / "nhwc", progress=False)
    assert again.resume() and again.step == 3


def test_compile_flag_compiles_the_generator_and_keeps_its_weights_names(tmp_path):
    trainer = Trainer(tiny_cfg(1, ["train.compile=true"]), tmp_path, progress=False)
    assert trainer.model.generator._compiled_call_impl is not None
    assert trainer.model.discriminator._compiled_call_impl is None  # MA-GP's double backward
    reference = Trainer(tiny_cfg(1), tmp_path / "ref", progress=False)
    assert trainer.model.state_dict().keys() == reference.model.state_dict().keys()


def test_invalid_amp_value_is_a_clear_error():
    with pytest.raises(T2IError, match=r"invalid train.amp=.fp8.: expected a string: one of none, bf16, fp16"):
        Trainer(tiny_cfg(1, ["train.amp=fp8"]), progress=False)


def test_resume_with_data_workers_is_bit_identical_to_an_uninterrupted_run_without(tmp_path):
    """Crops, flips, the caption drawn and caption sub-sampling (max_words=4 forces it) are seeded
    per item, so 2 worker processes restarted mid-epoch give exactly the batches of one process."""
    short = ["data.max_words=4"]
    Trainer(tiny_cfg(4, short), tmp_path / "ref", progress=False).fit()
    Trainer(tiny_cfg(2, short + ["data.num_workers=2"]), tmp_path / "w", progress=False).fit()
    Trainer(tiny_cfg(4, short + ["data.num_workers=2"]), tmp_path / "w", progress=False).fit(resume=True)
    a, b = checkpoint_tensors(tmp_path / "ref", 4), checkpoint_tensors(tmp_path / "w", 4)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_resume_override_of_learning_rate_reaches_the_optimizers(tmp_path):
    """`t2igan resume RUN train.lr_g=...` changes the rate the restored optimizer steps with (not
    only experiment.json); an override that cannot change mid-run is refused before any write."""
    from t2igan.training import resume_training

    Trainer(tiny_cfg(2), tmp_path, progress=False).fit()
    before = {p.name: p.read_bytes() for p in [tmp_path / "model.safetensors", *(tmp_path / "checkpoints").iterdir()]}
    with pytest.raises(T2IError, match=r"changed train\.seed \(0 -> 5\)"):
        resume_training(tmp_path, ["train.max_steps=4", "train.seed=5"], progress=False)
    assert before == {p.name: p.read_bytes() for p in [tmp_path / "model.safetensors", *(tmp_path / "checkpoints").iterdir()]}
    resume_training(tmp_path, ["train.max_steps=4", "train.lr_g=5e-5", "train.betas_d=[0.5, 0.99]"], progress=False)
    state = torch.load(tmp_path / "checkpoints" / "step-00000004.state.pt", weights_only=True)
    assert {g["lr"] for g in state["optimizers"]["g"]["param_groups"]} == {5e-5}
    assert tuple(state["optimizers"]["d"]["param_groups"][0]["betas"]) == (0.5, 0.99)  # D's own group
    assert json.loads((tmp_path / "experiment.json").read_text())["train"]["lr_g"] == 5e-5


def test_model_weights_are_written_only_with_a_checkpoint(tmp_path):
    """A run that fails before its first checkpoint leaves no model.safetensors (never random weights)."""
    trainer = Trainer(tiny_cfg(4), tmp_path, progress=False)
    original = trainer.train_step

    def fails_at_step_2(batch):
        if trainer.step == 1:
            raise OSError(28, "No space left on device", str(tmp_path / "log.jsonl"))
        return original(batch)

    trainer.train_step = fails_at_step_2
    with pytest.raises(T2IError, match=r"No space left on device: .*log\.jsonl \(training stopped at step 1; "
                                       r"last good checkpoint: none yet\)"):
        trainer.fit()
    assert (tmp_path / "config.json").is_file() and not (tmp_path / "model.safetensors").exists()
