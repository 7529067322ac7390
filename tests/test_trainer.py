"""The shared training loop, the pipeline and the CLI, end to end on tiny Shapes runs."""

import json

import pytest
import torch
from conftest import TINY_RUN

from t2igan import Text2ImagePipeline
from t2igan.cli import main
from t2igan.config import resolve_config
from t2igan.errors import T2IError
from t2igan.training import Trainer, list_checkpoints

TINY = TINY_RUN + [
    "train.log_every=1",
    "train.sample_every=3",
    "train.checkpoint_every=3",
    "train.keep_checkpoints=2",
    "train.num_sample_captions=4",
]


def tiny_cfg(steps=6, extra=()):
    return resolve_config("dfgan-shapes", TINY + [f"train.max_steps={steps}", *extra])


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    Trainer(tiny_cfg(), run, progress=False).fit()
    return run


def test_run_folder_layout(trained_run):
    for name in ("config.json", "vocab.json", "model.safetensors", "experiment.json", "log.jsonl"):
        assert (trained_run / name).is_file(), name
    assert [s for s, _ in list_checkpoints(trained_run)] == [3, 6]  # keep_checkpoints=2
    assert (trained_run / "samples" / "step-00000006.png").is_file()
    logs = [json.loads(line) for line in (trained_run / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logs] == [1, 2, 3, 4, 5, 6]
    assert all("d_loss" in entry and "g_loss" in entry for entry in logs)


def test_pipeline_same_seed_same_images(trained_run):
    pipe = Text2ImagePipeline.from_pretrained(trained_run, device="cpu")
    a = pipe(["a red circle", "a blue square"], n=2, seed=7)
    b = pipe(["a red circle", "a blue square"], n=2, seed=7)
    c = pipe(["a red circle", "a blue square"], n=2, seed=8)
    assert len(a) == 4 and a[0].size == (32, 32)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert any(x.tobytes() != y.tobytes() for x, y in zip(a, c))
    # the seed fixes each image whatever the batching
    d = pipe(["a red circle", "a blue square"], n=2, seed=7, batch_size=1)
    assert all(x.tobytes() == y.tobytes() for x, y in zip(a, d))


def test_pipeline_bad_captions_give_one_line_errors(trained_run):
    pipe = Text2ImagePipeline.from_pretrained(trained_run, device="cpu")
    with pytest.raises(T2IError, match="empty caption"):
        pipe([""])
    with pytest.raises(T2IError, match="only unknown words: zorblax"):
        pipe(["zorblax"])
    with pytest.raises(T2IError, match="at most"):
        pipe(["a red circle"], n=10_000)
    long = " ".join(["a red circle"] * 40)  # over max_words: truncated, not an error
    assert len(pipe([long])) == 1


def test_generate_batches_keeps_every_caption_in_order_and_flags_bad_ones(trained_run):
    """The lenient batched path of evaluation: nothing dropped or reordered, bad captions warned about
    and listed, each image its caption's with its noise row whatever the batching."""
    pipe = Text2ImagePipeline.from_pretrained(trained_run, device="cpu")
    captions = ["a red circle", "zorblax quux", "", "a blue square", "a green star"]
    noise = pipe.noise(len(captions), seed=3)
    with pytest.warns(UserWarning, match="2 of 5 captions .*'zorblax quux', ''"):
        batches = list(pipe.generate_batches(captions, noise, batch_size=2))
    assert [b.start for b in batches] == [0, 2, 4]
    assert [i for b in batches for i in b.bad] == [1, 2]
    images = torch.cat([b.images for b in batches])
    assert images.shape == (5, 3, 32, 32) and images.abs().max() <= 1
    good = [0, 3, 4]
    alone, _ = pipe.generate([captions[i] for i in good], noise[good], batch_size=1)
    torch.testing.assert_close(images[good], alone, rtol=0, atol=1e-5)
    with pytest.raises(T2IError, match="only unknown words: zorblax"):
        next(pipe.generate_batches(captions, noise, strict=True))
    with pytest.raises(T2IError, match="2 noise vectors for 5 captions"):
        next(pipe.generate_batches(captions, noise[:2]))
    # without noise: drawn batch by batch from one generator seeded `seed`
    def seeded(seed):
        return torch.cat([b.images for b in pipe.generate_batches(["a red circle"] * 3, seed=seed, batch_size=2)])
    assert torch.equal(seeded(5), seeded(5)) and not torch.equal(seeded(5), seeded(6))
    assert not torch.equal(seeded(5)[0], seeded(5)[1])  # every caption gets its own noise


def test_interpolation_row_is_deterministic(trained_run):
    pipe = Text2ImagePipeline.from_pretrained(trained_run, device="cpu")
    row = pipe.interpolate("a red circle", "a blue square", steps=5, seed=3)
    again = pipe.interpolate("a red circle", "a blue square", steps=5, seed=3)
    assert len(row) == 5 and [x.tobytes() for x in row] == [x.tobytes() for x in again]
    # the ends of the row are the two captions' own images with the same noise
    assert row[0].tobytes() == pipe(["a red circle"], seed=3)[0].tobytes()
    assert row[-1].tobytes() == pipe(["a blue square"], seed=3)[0].tobytes()


def test_resume_continues_where_it_stopped_and_matches_an_uninterrupted_run(tmp_path):
    full = Trainer(tiny_cfg(steps=6), tmp_path / "full", progress=False)
    full.fit()
    part = Trainer(tiny_cfg(steps=3), tmp_path / "part", progress=False)
    part.fit()
    resumed = Trainer(tiny_cfg(steps=6), tmp_path / "part", progress=False)
    resumed.fit(resume=True)
    assert resumed.step == 6
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_corrupt_newest_checkpoint_falls_back_to_the_previous(trained_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "copy"
    shutil.copytree(trained_run, run)
    newest = list_checkpoints(run)[-1][1]
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    t = Trainer(tiny_cfg(steps=6), run, progress=False)
    assert t.resume()
    assert t.step == 3
    assert "skipping unreadable checkpoint" in capsys.readouterr().err


def test_cli_train_sample_info(tmp_path, capsys):
    run = tmp_path / "cli-run"
    # overrides may come before or after the options
    assert main(["train", "dfgan-shapes", *TINY, "--run-dir", str(run), "--no-progress", "train.max_steps=2"]) == 0
    out = tmp_path / "grid.png"
    assert main(["sample", str(run), "a red circle", "a green star", "--n", "3", "-o", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size[0] > 3 * 32
    assert main(["info", str(run)]) == 0
    assert "dfgan" in capsys.readouterr().out
    assert main(["list-models"]) == 0
    assert "dfgan" in capsys.readouterr().out


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["sample", str(tmp_path / "missing"), "a red circle"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: run folder not found") and "\n" not in err
    assert main(["train", "no-such-preset"]) == 2
    assert "unknown preset" in capsys.readouterr().err
    assert main(["train", "dfgan-shapes", "train.batch_sise=3"]) == 2
    assert "batch_sise" in capsys.readouterr().err


def test_dry_run_prints_resolved_config(capsys):
    assert main(["train", "dfgan-shapes", "train.batch_size=5", "model.nf=4", "--dry-run"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["batch_size"] == 5 and cfg["model_args"]["nf"] == 4 and cfg["model"] == "dfgan"


def test_cpu_clock_time_limit_stops_and_saves(tmp_path):
    cfg = tiny_cfg(steps=50, extra=["train.time_limit_min=0.0001", "train.time_limit_clock=cpu",
                                    "train.sample_every=0"])
    Trainer(cfg, tmp_path, progress=False).fit()
    steps = [s for s, _ in list_checkpoints(tmp_path)]
    assert steps and steps[-1] < 50  # stopped by the CPU-time budget, and the last step was saved
    with pytest.raises(T2IError, match="time_limit_clock"):
        Trainer(tiny_cfg(extra=["train.time_limit_clock=gpu"]), tmp_path / "bad", progress=False)
