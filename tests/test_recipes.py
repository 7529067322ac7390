"""Recipes that cannot run wrong silently, and a training run that introduces itself.

* A CUB or COCO preset whose GAN needs a pretrained DAMSM (a frozen text encoder, a DAMSM loss) and names
  none is refused with one line that gives both ways to one (``t2igan pretrain damsm``, ``t2igan convert
  damsm`` of AttnGAN's released encoders), in ``--dry-run`` too and before any data is read.
* DAMSM pretraining without the ImageNet Inception weights says where they go and that
  ``model.backbone=small_cnn`` needs none.
* Training prints its run folder, data set sizes, device and dtype, parameter counts, then its pace and
  the time to ``train.max_steps``; a CPU run that would take more than a day is warned about.
"""

from __future__ import annotations

import re

import pytest
import torch

from t2igan.cli import main
from t2igan.config import TrainConfig, resolve_config
from t2igan.training import Trainer, missing_damsm
from t2igan.training.intro import CPU_WARN_HOURS, millions, pace_lines

NEEDS_DAMSM = ["dfgan-cub", "ssagan-cub", "attngan-cub", "mirrorgan-cub", "drgan-cub",
               "dfgan-coco", "ssagan-coco", "attngan-coco", "drgan-coco"]


@pytest.mark.parametrize("preset", NEEDS_DAMSM)
def test_a_preset_that_needs_a_damsm_and_has_none_is_refused_with_both_ways_out(preset, capsys):
    dataset = preset.split("-")[1]
    assert main(["train", preset, "--dry-run"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("error: ") and "\n" not in err and not captured.out
    assert f"t2igan pretrain damsm damsm-{dataset}" in err
    epoch = {"cub": 200, "coco": 100}[dataset]  # AttnGAN's released DAMSMencoders
    assert f"t2igan convert damsm text_encoder{epoch}.pth --image-encoder image_encoder{epoch}.pth" in err
    assert "model.damsm_weights=RUN" in err and not err.endswith("...")  # whole, not cut short
    # with a DAMSM run named, the same recipe resolves
    assert main(["train", preset, "model.damsm_weights=runs/cub-damsm", "--dry-run"]) == 0
    assert '"damsm_weights": "runs/cub-damsm"' in capsys.readouterr().out


def test_the_refusal_comes_before_any_data_or_run_folder(tmp_path, capsys):
    assert main(["train", "dfgan-cub", f"data.root={tmp_path / 'no-data'}", "--run-dir", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "needs a pretrained DAMSM" in err and "frozen text encoder" in err
    assert not (tmp_path / "run").exists()


def test_what_needs_no_damsm_is_not_refused():
    # DF-GAN training its text encoder with D; GAN-INT-CLS on char-CNN-RNN embeddings; any Shapes preset;
    # a resumed run (its text encoder is in its weights: a converted official run)
    assert missing_damsm(resolve_config("dfgan-cub", ["model.text_encoder_mode=joint_d"])) is None
    assert missing_damsm(resolve_config("gan_int_cls-cub")) is None
    assert missing_damsm(resolve_config("dfgan-shapes", ["model.damsm_weights=null"])) is None
    # SSA-GAN's DAMSM loss still needs the image encoder when its text encoder is trained by D
    assert "DAMSM loss" in missing_damsm(resolve_config("ssagan-cub", ["model.text_encoder_mode=joint_d"]))
    assert missing_damsm(resolve_config("ssagan-cub", ["model.text_encoder_mode=joint_d", "model.damsm_weight=0"])) is None


def test_the_python_api_refuses_too(tmp_path):
    from t2igan.errors import T2IError

    cfg = resolve_config("dfgan-shapes", ["model.nf=4", "model.damsm_weights=null", "data.image_size=32",
                                          "data.train_args={num_images: 8}", "data.test_args={num_images: 4}",
                                          "train.batch_size=4", "train.loggers=[]"])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.cfg.data.dataset = "cub"  # the Shapes images stand in for CUB's: the recipe is what is checked
    with pytest.raises(T2IError, match="needs a pretrained DAMSM"):
        trainer.fit()
    assert not (tmp_path / "run").exists()


def test_damsm_pretraining_offline_without_inception_weights_says_where_and_small_cnn(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("T2IGAN_OFFLINE", "1")
    monkeypatch.setenv("T2IGAN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("T2IGAN_INCEPTION_IS_WEIGHTS", raising=False)
    shapes = ["data.dataset=shapes", "data.root=null", "data.image_size=64", "data.train_args={num_images: 8}",
              "data.test_args={num_images: 8}", "train.loggers=[]", "--no-progress"]
    assert main(["pretrain", "damsm", "damsm-cub", *shapes, "--run-dir", str(tmp_path / "damsm")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: damsm: no ImageNet Inception weights") and "\n" not in err
    assert "inception_v3_google-0cc3c7bd.pth" in err and str(tmp_path / "cache") in err
    assert "T2IGAN_INCEPTION_IS_WEIGHTS=PATH" in err and "model.inception_weights=PATH" in err
    assert err.endswith("model.backbone=small_cnn data.image_size=64")
    assert not (tmp_path / "damsm").exists()
    # the way out it names works
    assert main(["pretrain", "damsm", "damsm-cub", *shapes, "model.backbone=small_cnn", "model.cnn_channels=4",
                 "train.max_steps=1", "train.batch_size=4", "--run-dir", str(tmp_path / "damsm")]) == 0


def test_training_introduces_itself(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "dfgan-shapes", "model.nf=4", "data.image_size=32", "data.train_args={num_images: 64}",
            "data.test_args={num_images: 16}", "train.batch_size=4", "train.max_steps=14", "train.sample_every=0",
            "train.loggers=[]", "train.device=cpu", "--run-dir", str(run), "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"run folder: {run}"
    assert out[1] == "data: shapes (built in), 32 px: 64 training images, 16 test images; a vocabulary of 62 words"
    assert re.fullmatch(rf"device: cpu \({torch.get_num_threads()} threads?\), float32", out[2])
    assert re.fullmatch(r"parameters: G [\d.]+ M, D [\d.]+ M, text encoder [\d.]+ M \(frozen\), damsm critic [\d.]+ M "
                        r"\(frozen\); [\d.]+ M in all, [\d.]+ M trained", out[3])
    speed = re.fullmatch(r"speed: ([\d.e+-]+) s/step \(steps 2-(\d+); [\d.e+-]+ s of CPU time\); "
                         r"train.max_steps=14 is (\d+) steps? away: about \d+ s", out[4])
    assert speed and int(speed[2]) + int(speed[3]) == 14 and float(speed[1]) > 0
    assert not any(line.startswith("warning") for line in out)
    # the counts are the model's
    trainer = Trainer(resolve_config("dfgan-shapes", args[2:10] + ["train.loggers=[]"]), progress=False)
    g = sum(p.numel() for p in trainer.model.generator.parameters())
    d = sum(p.numel() for p in trainer.model.discriminator.parameters())
    assert out[3].startswith(f"parameters: G {millions(g)}, D {millions(d)}, ")
    # a resumed run says where it starts
    assert main(["train", "dfgan-shapes", *args[2:7], "train.max_steps=15", *args[8:]] + ["--resume"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == f"run folder: {run} (resumed at step 14)"


def test_a_cpu_run_that_takes_days_is_warned_with_the_estimate_and_smaller_settings():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    paper = TrainConfig(max_steps=166000)  # dfgan-cub's 600 epochs, at 170 s a step on a CPU at 256 px
    line, warning = pace_lines(170.0, 168.0, 2, 11, paper, cpu)
    assert line.startswith("speed: 170 s/step (steps 2-11; 168 s of CPU time); train.max_steps=166,000 is "
                           "165,989 steps away: about 326 d 14 h")
    assert warning.startswith("warning: this run takes about 326 d 14 h on this CPU (170 s/step)")
    for setting in ("data.image_size=64", "model.nf=16", "train.batch_size=16", "train.time_limit_min=N",
                    "train.time_limit_clock=cpu"):
        assert setting in warning
    assert len(pace_lines(170.0, 168.0, 2, 11, paper, cuda)) == 1  # a GPU: no CPU advice
    short = TrainConfig(max_steps=166000, time_limit_min=30, time_limit_clock="cpu")  # a budget stops it
    (line,) = pace_lines(1.5, 1.2, 2, 11, short, cpu)
    assert line.endswith("train.time_limit_min=30 (cpu clock) stops it after about 1,500 steps")
    day = TrainConfig(max_steps=int(3600 * CPU_WARN_HOURS) + 20)  # just over a day at 1 s a step
    assert len(pace_lines(1.0, 1.0, 2, 11, day, cpu)) == 2 and len(pace_lines(0.9, 0.9, 2, 11, day, cpu)) == 1
