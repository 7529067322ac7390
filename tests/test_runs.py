"""Run folders (``t2igan.runs``): found by path or bundled name, written with their format version,
loaded with an expected kind, and refused with one line when written in another format; one writer at
a time (real concurrent processes, a lock left by SIGKILL); ``--overwrite`` that sets the old run aside
until the new one's first checkpoint, touches only what a run wrote, and is undone or finished after a
kill at any point; leftovers of killed writes cleared on the next start."""

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from conftest import TINY_RUN

from t2igan import create_model
from t2igan.config import resolve_config
from t2igan.data.text import Vocabulary
from t2igan.errors import T2IError
from t2igan.runs import (FORMAT_VERSION, STATE_DIR, RunLock, begin_overwrite, load_damsm, load_run, load_stream,
                         read_config, read_manifest, record_files, remove_leftovers, resolve_run_dir, run_files,
                         save_run, undo_overwrite)
from t2igan.training import Trainer, list_checkpoints

VOCAB = Vocabulary(["<pad>", "<unk>", "red", "circle"])


@pytest.fixture
def run(tmp_path):
    torch.manual_seed(0)
    model = create_model("dfgan", vocab_size=len(VOCAB), image_size=16, nf=4, text_emb_dim=8, text_hidden_dim=4)
    save_run(tmp_path / "run", {"data": {"max_words": 18}}, model, VOCAB)
    return tmp_path / "run"


def test_a_run_folder_records_its_format_and_loads_with_its_kind(run):
    config = read_config(run)
    assert config["format_version"] == FORMAT_VERSION and config["model_name"] == "dfgan"
    model, vocab, _ = load_run(run, kind="dfgan")
    assert vocab.words == VOCAB.words and not model.training
    with pytest.raises(T2IError, match=r"is a 'dfgan' run, not a damsm run"):
        load_damsm(run)
    with pytest.raises(T2IError, match=r"is a 'dfgan' run, not a stream or mirrorgan run"):
        load_stream(run)
    # a file in the run folder stands for the folder where a pretrained part is named
    assert resolve_run_dir(run / "model.safetensors", file_ok=True) == run
    assert resolve_run_dir("shapes-dfgan").name == "shapes-dfgan"


@pytest.mark.parametrize("version", [None, FORMAT_VERSION + 1])
def test_a_run_folder_of_another_format_is_one_error_naming_its_version(run, version):
    config = json.loads((run / "config.json").read_text())
    if version is None:  # a folder written before config.json recorded its format
        del config["format_version"]
    else:
        config["format_version"] = version
    (run / "config.json").write_text(json.dumps(config))
    shown = 0 if version is None else version
    with pytest.raises(T2IError, match=rf"run-folder format {shown}; this t2igan reads format {FORMAT_VERSION}"):
        load_run(run)
    out = subprocess.run([sys.executable, "-m", "t2igan", "sample", str(run), "red circle", "-o",
                          str(run.parent / "a.png")], capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and f"run-folder format {shown}" in out.stderr
    assert not (run.parent / "a.png").exists()


def test_old_setting_names_are_unknown_keys():
    """No legacy-rename tables: an old name is an unknown key, listing the valid ones."""
    with pytest.raises(T2IError, match=r"unknown model.* config keys: \['damsm_lambda'\]"):
        create_model("attngan", vocab_size=10, damsm_lambda=2.0)


# ---------------------------------------------------------------------------------------------------
# one writer, --overwrite, leftovers of killed writes
# ---------------------------------------------------------------------------------------------------

TINY = TINY_RUN + ["train.log_every=1", "train.sample_every=2", "train.checkpoint_every=2", "train.keep_checkpoints=2",
                   "train.num_sample_captions=2"]
TRAIN = [sys.executable, "-m", "t2igan", "train", "dfgan-shapes", *TINY, "--no-progress"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
SLOW_START_S = 240  # a loaded 2-core CI machine takes tens of seconds to start a training process


def every_file(run):
    """Relative path -> sha256 of every file in a folder (hidden ones and links followed included)."""
    return {p.relative_to(run).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(run.rglob("*")) if p.is_file()}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "t2igan", *map(str, args)], env=ENV, capture_output=True,
                          text=True, timeout=600)


def clis(*argvs):
    """Several commands at once (each in its own process); their outcomes in order."""
    procs = [subprocess.Popen([sys.executable, "-m", "t2igan", *map(str, a)], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for a in argvs]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=600), *p.communicate()) for p in procs]


def one_error(out, pattern):
    """The command failed with exit 2 and exactly one `error:` line matching ``pattern``, no traceback."""
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert out.returncode == 2 and len(errors) == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert re.search(pattern, errors[0]), errors[0]


def wait_for(condition, proc, what):
    deadline = time.time() + SLOW_START_S
    while not condition():
        assert proc.poll() is None, f"the training ended before {what}"
        assert time.time() < deadline, f"no {what} within {SLOW_START_S} s"
        time.sleep(0.05)


def log_steps(run):
    return [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines() if line.endswith("}")]



@pytest.fixture(scope="module")
def old_run(tmp_path_factory):
    """A finished tiny run (checkpoints 2 and 4, sample grids, TensorBoard) to copy."""
    run = tmp_path_factory.mktemp("old") / "run"
    Trainer(resolve_config("dfgan-shapes", TINY + ["train.max_steps=4"]), run, progress=False).fit()
    return run


def copy_of(old_run, tmp_path, name="run"):
    shutil.copytree(old_run, tmp_path / name, symlinks=True)
    return tmp_path / name


def test_the_lock_refuses_a_second_holder_and_takes_over_a_dead_ones(tmp_path):
    run = tmp_path / "run"
    with RunLock(run) as lock:
        assert (run / STATE_DIR / "lock").is_file()
        with pytest.raises(T2IError, match=rf"{run} is being written by process {os.getpid()} \(started \d{{4}}-"):
            RunLock(run).acquire()
        assert lock.taken_over is None
    assert not run.exists()  # the folders it made for its lock file, now empty, are gone
    # a lock file naming a process that has ended: its flock died with it; the lock is taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (run / STATE_DIR).mkdir(parents=True)
    (run / STATE_DIR / "lock").write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(),
                                                      "started": 0}))
    with RunLock(run) as lock:
        assert lock.taken_over["pid"] == int(dead.stdout)
    assert not (run / STATE_DIR / "lock").exists()


@pytest.mark.slow
def test_two_writers_at_once_and_a_stale_lock_after_sigkill(old_run, tmp_path):
    """Real processes: while one training writes the folder, a second `--resume`, `resume` or
    `--overwrite` is refused naming it and changes nothing; after a SIGKILL the next resume takes the
    lock over and every step is in the log once."""
    run = copy_of(old_run, tmp_path)
    log = open(tmp_path / "first.log", "wb")
    first = subprocess.Popen(TRAIN + ["train.max_steps=100000", "train.sample_every=0", "--run-dir", str(run),
                                      "--resume"], env=ENV, stdout=log, stderr=log)
    try:
        wait_for(lambda: len(log_steps(run)) >= 6, first, "training step after the resume")
        fixed = ("config.json", "experiment.json", "vocab.json", f"{STATE_DIR}/lock")  # the rest: the first's to write
        before = {k: v for k, v in every_file(run).items() if k in fixed}
        refused = clis(["train", "dfgan-shapes", *TINY, "train.max_steps=100000", "--run-dir", run, "--resume"],
                       ["resume", run, "train.max_steps=100000"],
                       ["train", "dfgan-shapes", *TINY, "model.nf=4", "--run-dir", run, "--overwrite"])
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        for out in refused:
            one_error(out, rf"{run} is being written by process {first.pid} \(started \d{{4}}-\d\d-\d\d ")
        assert before == {k: v for k, v in every_file(run).items() if k in fixed} and len(before) == 4
        assert not (run / STATE_DIR / "overwrite.json").exists()
        wait_for(lambda: list_checkpoints(run)[-1][0] >= 8, first, "checkpoint at step 8")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
        log.close()
    killed_at = list_checkpoints(run)[-1][0]
    assert (run / STATE_DIR / "lock").is_file()  # left behind by the killed process
    resumed = cli("resume", run, f"train.max_steps={killed_at + 2}", "--no-progress")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"was locked by process {first.pid}" in resumed.stderr and "taking the lock over" in resumed.stderr
    assert log_steps(run) == list(range(1, killed_at + 3))  # each step once: no second writer interleaved
    assert not (run / STATE_DIR / "lock").exists()


def test_overwrite_failing_before_its_first_checkpoint_puts_the_old_run_back_byte_identically(old_run, tmp_path):
    run = copy_of(old_run, tmp_path)
    before = every_file(run)
    # a batch larger than the data: found on the first batch, before the folder changes
    out = cli("train", "dfgan-shapes", *TINY, "train.batch_size=100", "--run-dir", run, "--overwrite")
    one_error(out, rf"fewer than one batch .*nothing in {run} was changed")
    assert every_file(run) == before
    # out of memory at step 1, after the old run was set aside: it is put back
    trainer = Trainer(resolve_config("dfgan-shapes", TINY + ["train.max_steps=4", "model.nf=4"]), run, progress=False)

    def out_of_memory(batch):
        assert (run / STATE_DIR / "overwrite.json").is_file() and not (run / "model.safetensors").exists()
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    trainer.train_step = out_of_memory
    with pytest.raises(T2IError, match=r"out of memory on cpu .*lower train\.batch_size .*training stopped at step 0; "
                                       r"last good checkpoint: none yet\); the old run was put back"):
        trainer.fit(overwrite=True)
    assert every_file(run) == before
    assert sorted(p.name for p in (run / STATE_DIR).iterdir()) == ["manifest.json"]


def test_overwrite_removes_only_what_the_run_wrote_and_names_the_rest(old_run, tmp_path, capsys):
    run = copy_of(old_run, tmp_path)
    (run / "samples" / "mine.png").write_bytes(b"my own picture")
    (run / "notes.txt").write_text("my notes")
    (run / "checkpoints" / "README").write_text("kept")
    Trainer(resolve_config("dfgan-shapes", TINY + ["train.max_steps=2", "model.nf=4"]), run, progress=False).fit(
        overwrite=True)
    warning = [line for line in capsys.readouterr().err.splitlines() if "--overwrite keeps" in line]
    assert warning == [f"warning: --overwrite keeps 3 file(s) in {run} that no run wrote: checkpoints/README, "
                       "notes.txt, samples/mine.png"]
    assert (run / "samples" / "mine.png").read_bytes() == b"my own picture"
    assert (run / "notes.txt").read_text() == "my notes" and (run / "checkpoints" / "README").read_text() == "kept"
    assert [s for s, _ in list_checkpoints(run)] == [2]  # the old run's step-4 checkpoint is gone
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["mine.png", "step-00000002.png"]
    assert len(list((run / "tensorboard").iterdir())) == 1  # the new run's event file alone
    assert sorted(p.name for p in (run / STATE_DIR).iterdir()) == ["manifest.json"]  # the old run is deleted
    assert json.loads((run / "config.json").read_text())["model_config"]["nf"] == 4
    assert set(run_files(run)) >= {"checkpoints/step-00000002.safetensors", "samples/step-00000002.png", "tensorboard/"}


def test_a_file_no_run_wrote_is_never_replaced(tmp_path):
    """A folder with the user's own config.json is no run: training into it, with or without --overwrite,
    is refused before anything is written."""
    folder = tmp_path / "mine"
    (folder / "samples").mkdir(parents=True)
    (folder / "config.json").write_text('{"my": "settings"}')
    (folder / "samples" / "a.png").write_bytes(b"png")
    before = every_file(folder)
    for flags in ([], ["--overwrite"]):
        out = cli("train", "dfgan-shapes", *TINY, "--run-dir", folder, *flags)
        one_error(out, rf"{folder / 'config.json'} was not written by a t2igan run and training would replace it")
        assert every_file(folder) == before and not (folder / STATE_DIR).exists()


def test_a_run_written_before_manifests_is_recognised_by_name(old_run, tmp_path):
    run = copy_of(old_run, tmp_path)
    shutil.rmtree(run / STATE_DIR)
    (run / "samples" / "mine.png").write_bytes(b"mine")
    assert read_manifest(run) is None
    assert set(run_files(run)) == {"checkpoints/step-00000002.safetensors", "checkpoints/step-00000002.state.pt",
                                   "checkpoints/step-00000004.safetensors", "checkpoints/step-00000004.state.pt",
                                   "config.json", "experiment.json", "log.jsonl", "model.safetensors", "vocab.json",
                                   "samples/step-00000002.png", "samples/step-00000004.png",
                                   *(f"tensorboard/{p.name}" for p in (run / "tensorboard").iterdir())}
    Trainer(resolve_config("dfgan-shapes", TINY + ["train.max_steps=2"]), run, progress=False).fit(overwrite=True)
    assert (run / "samples" / "mine.png").read_bytes() == b"mine"
    assert [s for s, _ in list_checkpoints(run)] == [2] and read_manifest(run)


def test_a_manifest_never_reaches_outside_its_folder(old_run, tmp_path):
    run = copy_of(old_run, tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("not the run's")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.png").write_text("not the run's either")
    (run / "linked").symlink_to(tmp_path / "elsewhere")
    manifest = json.loads((run / STATE_DIR / "manifest.json").read_text())
    manifest["files"] += ["../outside.txt", str(outside), "linked/x.png", f"{STATE_DIR}/lock", "a/../../outside.txt"]
    (run / STATE_DIR / "manifest.json").write_text(json.dumps(manifest))
    Trainer(resolve_config("dfgan-shapes", TINY + ["train.max_steps=2"]), run, progress=False).fit(overwrite=True)
    assert outside.read_text() == "not the run's"
    assert (tmp_path / "elsewhere" / "x.png").read_text() == "not the run's either"


def test_leftovers_of_killed_writes_are_cleared_on_the_next_start(old_run, tmp_path):
    run = copy_of(old_run, tmp_path)
    killed = [run / ".config.json.k2j3h4g5.tmp", run / "checkpoints" / ".step-00000006.safetensors.abcd_123.tmp",
              run / "samples" / ".step-00000006.png.zz99zz99.tmp", run / STATE_DIR / ".manifest.json.a1b2c3d4.tmp"]
    mine = [run / "notes.tmp", run / "checkpoints" / "my.tmp", run / ".hidden.tmp"]
    for p in killed + mine:
        p.write_bytes(b"half")
    # an --overwrite killed while it deleted the old run after its commit
    (run / STATE_DIR / "old" / "checkpoints").mkdir(parents=True)
    (run / STATE_DIR / "old" / "checkpoints" / "step-00000002.safetensors").write_bytes(b"discarded")
    out = cli("resume", run, "--no-progress")  # already at max_steps: changes nothing else
    assert out.returncode == 0 and "nothing to train" in out.stdout + out.stderr, out.stderr
    assert not any(p.exists() for p in killed) and all(p.read_bytes() == b"half" for p in mine)
    assert not (run / STATE_DIR / "old").exists()
    assert remove_leftovers(run) == 0


def test_wandb_offline_run_of_the_discarded_run_is_not_left_for_wandb_sync(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = tmp_path / "run"
    cfg = TINY + ["train.max_steps=2", "train.loggers=[wandb]"]
    Trainer(resolve_config("dfgan-shapes", cfg), run, progress=False).fit()
    (old,) = (run / "wandb").glob("offline-run-*")
    assert "wandb/" in read_manifest(run)
    Trainer(resolve_config("dfgan-shapes", cfg + ["model.nf=4"]), run, progress=False).fit(overwrite=True)
    (new,) = (run / "wandb").glob("offline-run-*")  # what `wandb sync RUN/wandb/offline-run-*` uploads
    assert new.name != old.name
    assert not list(run.rglob(old.name)) and (run / "wandb" / "latest-run").resolve() == new.resolve()


def interrupted_overwrite(old_run, tmp_path):
    """A copy of the run after a real `train --overwrite` (another model size) was SIGKILLed between
    setting the old run aside and its first checkpoint, and every file of the old run before it."""
    run = copy_of(old_run, tmp_path)
    before = every_file(run)
    log = open(tmp_path / "killed.log", "wb")
    new = ["model.nf=4", "train.max_steps=100000", "train.checkpoint_every=100000", "train.sample_every=0"]
    proc = subprocess.Popen(TRAIN + new + ["--run-dir", str(run), "--overwrite"], env=ENV, stdout=log, stderr=log)
    try:
        journal = run / STATE_DIR / "overwrite.json"
        wait_for(lambda: journal.is_file() and json.loads(journal.read_text())["phase"] == "moved"
                 and (run / "log.jsonl").is_file() and log_steps(run), proc, "step of the new run")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.close()
    assert not (run / "model.safetensors").exists() and (run / STATE_DIR / "old" / "model.safetensors").is_file()
    return run, before, new


@pytest.mark.slow
def test_sigkill_mid_overwrite_is_refused_by_every_command_until_undone_or_done_again(old_run, tmp_path):
    run, before, new = interrupted_overwrite(old_run, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, symlinks=True)
    killed_state = every_file(run)
    how = rf"{run} holds an interrupted --overwrite .*`t2igan undo-overwrite {run}` puts the old run back; .*again finishes"
    commands = [
        ["train", "dfgan-shapes", *TINY, *new, "--run-dir", run, "--resume"],  # the new config must not continue
        ["resume", run],
        ["train", "dfgan-shapes", *TINY, "--run-dir", run],
        ["sample", run, "a red circle", "-o", tmp_path / "a.png"],
        ["info", run],
        ["eval", run, "--metrics", "shapes", "--n", "8"],
        ["report", run, "-o", tmp_path / "report"],
    ]
    for argv in commands:
        one_error(cli(*argv), how)
    lock = f"{STATE_DIR}/lock"  # the killed process's lock file, taken over (and removed) by a refused training
    assert {k: v for k, v in every_file(run).items() if k != lock} == {k: v for k, v in killed_state.items() if k != lock}
    assert not (tmp_path / "a.png").exists() and not (tmp_path / "report").exists()

    # undo: the old run, every byte of it, and nothing of the new one
    out = cli("undo-overwrite", run)
    assert out.returncode == 0 and "put the old run back" in out.stdout, out.stderr
    assert every_file(run) == before
    one_error(cli("undo-overwrite", run), r"holds no interrupted --overwrite")
    assert cli("info", run).returncode == 0

    # or finish: the same --overwrite again discards the unfinished new run and, at its first checkpoint, the old
    out = cli("train", "dfgan-shapes", *TINY, "model.nf=4", "train.max_steps=2", "--run-dir", copy, "--overwrite",
              "--no-progress")
    assert out.returncode == 0 and "held an interrupted --overwrite" in out.stderr, out.stderr[-2000:]
    assert [s for s, _ in list_checkpoints(copy)] == [2] and log_steps(copy) == [1, 2]
    assert sorted(p.name for p in (copy / STATE_DIR).iterdir()) == ["manifest.json"]
    assert json.loads((copy / "config.json").read_text())["model_config"]["nf"] == 4


def killed_after(calls: int, action) -> None:
    """Run ``action`` in a forked child that dies (``os._exit``, no clean-up) at its ``calls``-th rename
    or replace: the folder is left as a SIGKILL at that moment would leave it."""
    pid = os.fork()
    if pid == 0:
        try:
            done = [0]

            def dying(real):
                def call(*args, **kwargs):
                    if done[0] == calls:
                        os._exit(9)
                    done[0] += 1
                    return real(*args, **kwargs)
                return call

            os.rename, os.replace = dying(os.rename), dying(os.replace)
            action()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)


def test_an_overwrite_killed_at_any_point_is_undone_byte_for_byte(old_run, tmp_path):
    """Kill the setting aside after each of its renames (and the journal and manifest writes), and the
    new run after it wrote files: `undo-overwrite`'s steps (clear leftovers, undo) give back the old run
    exactly; undo itself killed half-way and repeated does too."""
    reference = every_file(old_run)
    steps = len(run_files(old_run)) + 4  # journal, manifest aside, each entry, new manifest, journal again
    for calls in range(steps + 1):
        run = copy_of(old_run, tmp_path, f"run{calls}")
        killed_after(calls, lambda: begin_overwrite(run))
        assert (run / STATE_DIR / "overwrite.json").is_file() == (calls > 0), calls
        remove_leftovers(run)
        assert undo_overwrite(run) == (calls > 0)
        assert every_file(run) == reference, calls
        assert sorted(p.name for p in (run / STATE_DIR).iterdir()) == ["manifest.json"], calls

    def new_run_wrote_files(run):
        assert begin_overwrite(run)[0]
        record_files(run, "config.json", "checkpoints/step-00000001.safetensors", "samples/step-00000001.png")
        (run / "config.json").write_text("{}")
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "step-00000001.safetensors").write_bytes(b"new")

    for calls in range(steps):  # the undo killed at each of its renames and writes, then run again
        run = copy_of(old_run, tmp_path, f"undo{calls}")
        new_run_wrote_files(run)
        killed_after(calls, lambda: undo_overwrite(run))
        remove_leftovers(run)
        undo_overwrite(run)
        assert every_file(run) == reference, calls
        assert sorted(p.name for p in (run / STATE_DIR).iterdir()) == ["manifest.json"], calls
