"""A converted official checkpoint trains on as the official code would: ``t2igan resume`` of a
converted run starts from the converted weights (not new random ones) with the family's official
optimiser (AttnGAN / MirrorGAN: Adam(0.5, 0.999) at 2e-4 for G and D; DF-GAN / SSA-GAN: G 1e-4,
D 4e-4, Adam(0.0, 0.9))."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from test_fidelity import load_fixture, part

from t2igan.cli import main
from t2igan.data.text import Vocabulary

WORDS = ["<end>", "a", "red", "blue", "green", "circle", "square", "triangle", "small", "large", "big", "on"]


def convert(family: str, folder: Path) -> Path:
    """Official files from the fidelity fixtures -> ``t2igan convert`` -> a run folder."""
    t, _ = load_fixture(family)
    Vocabulary(WORDS, unk_token=None).save(folder / "vocab.json")
    if family == "attngan":
        torch.save(part(t, "official.netG."), folder / "netG.pth")
        torch.save(part(t, "official.text_encoder."), folder / "text_encoder.pth")
        for i in range(3):
            torch.save(part(t, f"official.netD{i}."), folder / f"netD{i}.pth")
        args = ["--text-encoder", str(folder / "text_encoder.pth"), "--discriminator",
                *(str(folder / f"netD{i}.pth") for i in range(3))]
    else:  # dfgan: one state_epoch file with netG / netD / netC
        torch.save({"model": {k: part(t, f"official.{k}.") for k in ("netG", "netD", "netC")}}, folder / "netG.pth")
        args = []
    run = folder / "run"
    assert main(["convert", family, str(folder / "netG.pth"), "--vocab", str(folder / "vocab.json"), "-o", str(run),
                 *args]) == 0
    return run


@pytest.mark.parametrize("family,lr_g,lr_d,betas", [("attngan", 2e-4, 2e-4, (0.5, 0.999)),
                                                     ("dfgan", 1e-4, 4e-4, (0.0, 0.9))])
def test_resuming_a_converted_run_trains_the_official_weights_with_the_official_optimiser(family, lr_g, lr_d, betas,
                                                                                         tmp_path, capsys):
    run = convert(family, tmp_path)
    converted = load_file(str(run / "model.safetensors"))
    size = json.loads((run / "config.json").read_text())["experiment"]["data"]["image_size"]
    assert main(["resume", str(run), "data.dataset=shapes", "data.root=null", f"data.image_size={size}",
                 f"data.vocab={run / 'vocab.json'}", "data.train_args={num_images: 8}", "data.test_args={num_images: 4}",
                 "train.batch_size=2", "train.max_steps=1", "train.checkpoint_every=1", "train.sample_every=0",
                 "train.num_sample_captions=2", "train.device=cpu", "train.loggers=[]", "--no-progress"]) == 0
    assert "starting from its model.safetensors" in capsys.readouterr().out
    state = torch.load(run / "checkpoints" / "step-00000001.state.pt", weights_only=True)
    groups = {phase: opt["param_groups"] for phase, opt in state["optimizers"].items()}
    lrs = {phase: {g["lr"] for g in gs} for phase, gs in groups.items()}
    assert lrs == {"g": {lr_g}, "d": {lr_d}} and all(tuple(g["betas"]) == betas for gs in groups.values() for g in gs)
    # one Adam step moves each weight by about lr: the converted weights were trained on, not replaced
    # (batch-norm statistics are not weights: they follow the training batch)
    trained = load_file(str(run / "checkpoints" / "step-00000001.safetensors"))
    moved = [(trained[f"model.{k}"] - v).abs().max().item() for k, v in converted.items()
             if f"model.{k}" in trained and k.startswith(("generator.", "discriminator.")) and ".running_" not in k
             and v.is_floating_point()]
    assert moved and max(moved) < 20 * max(lr_g, lr_d) and max(moved) > 0
