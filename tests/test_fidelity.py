"""t2igan against the official implementations, on golden fixtures the official code produced.

``tools/make_official_fixtures.py`` ran each official repository (commit in each file's metadata)
with small sizes, fixed seeds and perturbed weights, and saved weights, inputs and outputs under
``tests/fixtures/official/``. Here the official weights go through t2igan's converters and t2igan's
models must give the official outputs: forward passes, losses, and the weights after one training
step (which checks the gradients). Tolerances are those stated in the README's "Fidelity" table.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from t2igan import create_model
from t2igan.config import TrainConfig
from t2igan.convert.common import load_into, rename
from t2igan.convert.ssagan import SSAGAN_G_RULES, ssagan_state
from t2igan.data.text import Vocabulary
from t2igan.nn.text_encoder import TextFeatures

FIXTURES = Path(__file__).parent / "fixtures" / "official"


def load_fixture(family: str) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(FIXTURES / f"{family}.safetensors"), "pt") as f:
        tensors = {k: f.get_tensor(k).float() if f.get_tensor(k).is_floating_point() else f.get_tensor(k)
                   for k in f.keys()}
        meta = {k: json.loads(v) for k, v in f.metadata().items()}
    assert len(meta["official_commit"]) == 40
    return tensors, meta


def part(tensors: dict, prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def subgrid(x: torch.Tensor, size: int) -> torch.Tensor:
    """The strided sub-grid the fixture stores of a large image or mask."""
    step = max(1, x.shape[-1] // size)
    return x[..., ::step, ::step]


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4):
    torch.testing.assert_close(actual.detach().float().reshape(expected.shape), expected, atol=atol, rtol=rtol)


def fixed_noise(monkeypatch, noise: torch.Tensor) -> None:
    """Make the model's ``torch.randn(B, z)`` return the fixture's noise."""
    randn = torch.randn

    def fake(*shape, **kw):
        dims = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size)) else shape
        return noise.clone().to(kw.get("device") or "cpu") if tuple(dims) == tuple(noise.shape) else randn(*shape, **kw)

    monkeypatch.setattr(torch, "randn", fake)


def fixed_text(monkeypatch, model, sent_emb: torch.Tensor, word_embs: torch.Tensor | None = None) -> dict:
    """Feed the fixture's text features instead of encoding tokens; returns a matching batch."""
    B = sent_emb.shape[0]
    words = word_embs if word_embs is not None else torch.zeros(B, sent_emb.shape[1], 1)
    feats = TextFeatures(words, sent_emb, torch.zeros(B, words.shape[2], dtype=torch.bool))
    monkeypatch.setattr(model, "encode_text", lambda tokens, lengths: TextFeatures(
        feats.word_embs.clone(), feats.sent_emb.clone(), feats.mask.clone()))
    return {"tokens": torch.ones(B, words.shape[2], dtype=torch.long), "lengths": torch.full((B,), words.shape[2]),
            "class_id": torch.full((B,), -1)}


def train_step(model, batch: dict, train: TrainConfig) -> dict:
    """One step of every phase with Adam, as the trainer schedules them; returns the logs."""
    opts = {k: torch.optim.Adam(g) for k, g in model.optimizer_groups(train).items()}
    state, logs = {}, {}
    for phase in model.phases:
        loss, phase_logs = model.compute_loss(phase, dict(batch), state)
        opt = opts[model.optimizer_name(phase)]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        logs.update(phase_logs, **{f"{phase}_total": loss.item()})
    return logs


def dfgan_style_train_step(converted, t: dict, meta: dict, size: int, monkeypatch):
    """A fresh copy of a converted DF-GAN / SSA-GAN model, one training step on the fixture's
    sentence features, noise and real images, Adam(0.0, 0.9) at the official learning rates."""
    model = create_model(converted.model_name, **converted.config.__dict__)
    model.load_state_dict(converted.state_dict())
    model.train()
    batch = fixed_text(monkeypatch, model, t["input.sent_emb"])
    batch["image"] = F.interpolate(t["input.real_small"], size=(size, size), mode="nearest")
    fixed_noise(monkeypatch, t["input.noise"])
    c = meta["sizes"]
    train = TrainConfig(lr_g=c["lr_g"], lr_d=c["lr_d"], betas_g=(0.0, 0.9), betas_d=(0.0, 0.9))
    return model, train_step(model, batch, train)


# ---------------------------------------------------------------------------------------------
# SSA-GAN


@pytest.fixture(scope="module")
def ssagan():
    t, meta = load_fixture("ssagan")
    state, sizes = ssagan_state(part(t, "official.netG."), part(t, "official.netD."), "ssagan fixture")
    assert sizes["text_hidden_dim"] == meta["sizes"]["nw"] // 2
    model = create_model("ssagan", vocab_size=4, text_emb_dim=4, damsm_weight=0.0, **sizes)
    assert load_into(model, state, "ssagan fixture", optional_prefixes=("text_encoder.",)) == ["text_encoder"]
    return model, t, meta, state


def test_ssagan_converter_maps_every_official_tensor(ssagan):
    """Every t2igan weight comes from the official files and every official tensor has a place
    (save the unused ``conv_s`` of equal-width D blocks); the two known moves are applied."""
    model, t, meta, state = ssagan
    own = {k for k in model.state_dict() if not k.startswith("text_encoder.")}
    assert own == set(state)
    official_g = part(t, "official.netG.")
    assert torch.equal(state["generator.blocks.4.mask_predictor.net.0.weight"], official_g["block3.conv_mask.0.weight"])
    assert torch.equal(state["generator.blocks.2.norm1.affine.gamma.2.bias"],
                       official_g["block2.affine2.fc_gamma.linear2.bias"] + 1)
    dropped = {k for k in part(t, "official.netD.") if ".conv_s." in k} - {
        k for k in part(t, "official.netD.") if k.split(".")[0] in ("block0", "block1", "block2", "block3")}
    assert dropped == {"block4.conv_s.weight", "block4.conv_s.bias", "block5.conv_s.weight", "block5.conv_s.bias"}
    assert model.config.image_size == meta["image_size"] and model.config.d_max_mult == 16


def test_ssagan_generator_masks_and_discriminator_match_official_eval(ssagan):
    model, t, meta, _ = ssagan
    model.eval()
    with torch.no_grad():
        images, masks = model.generator(t["input.noise"], t["input.sent_emb"])
        assert_close(subgrid(images, meta["subgrid"]), t["eval.image"])
        assert len(masks) == 7
        for i, m in enumerate(masks):
            assert_close(subgrid(m, meta["subgrid"]), t[f"eval.mask{i}"])
        real = F.interpolate(t["input.real_small"], size=(256, 256), mode="nearest")
        feats = model.discriminator.features(real)
        assert_close(feats, t["eval.d_features"])
        assert_close(model.discriminator.logits(feats, t["input.sent_emb"]), t["eval.d_logits"])


def test_ssagan_training_step_matches_official_losses_and_updates(ssagan, monkeypatch):
    """main.py: D on the hinge loss (pairs i, i+1), D again on MA-GP, then G; Adam(0.0, 0.9)."""
    model, t, meta, _ = ssagan
    model, logs = dfgan_style_train_step(ssagan[0], t, meta, 256, monkeypatch)
    for ours, theirs in (("d_adv", "errD"), ("ma_gp", "train.ma_gp"), ("g_adv", "errG")):
        key = theirs if theirs.startswith("train.") else f"train.{theirs}"
        assert logs[ours] == pytest.approx(t[key].item(), rel=1e-4, abs=1e-5), ours
    after = {**rename(part(t, "after.netG."), SSAGAN_G_RULES, "after"),
             "discriminator.from_rgb.weight": t["after.netD.conv_img.weight"],
             "discriminator.joint.0.weight": t["after.netD.COND_DNET.joint_conv.0.weight"]}
    own = model.state_dict()
    for key, value in after.items():
        assert_close(own[key], value, atol=1e-6, rtol=1e-4)


def test_ssagan_cli_converts_official_files_to_a_run_that_samples_like_the_official_g(ssagan, tmp_path):
    """``t2igan convert ssagan netG.pth --discriminator netD.pth`` (DataParallel ``module.`` keys)."""
    from t2igan.cli import main
    from t2igan.runs import load_run

    _, t, meta, _ = ssagan
    torch.save({f"module.{k}": v for k, v in part(t, "official.netG.").items()}, tmp_path / "netG_600.pth")
    torch.save({f"module.{k}": v for k, v in part(t, "official.netD.").items()}, tmp_path / "netD_600.pth")
    Vocabulary(["<end>", "a", "red", "bird"], unk_token=None).save(tmp_path / "vocab.json")
    main(["convert", "ssagan", str(tmp_path / "netG_600.pth"), "--discriminator", str(tmp_path / "netD_600.pth"),
          "--vocab", str(tmp_path / "vocab.json"), "-o", str(tmp_path / "run")])
    model, _, config = load_run(tmp_path / "run")
    assert config["model_config"]["d_update"] == "two_steps" and config["model_config"]["mismatch_pairs"] == "shift"
    with torch.no_grad():
        images, _ = model.generator(t["input.noise"], t["input.sent_emb"])
    assert_close(subgrid(images, meta["subgrid"]), t["eval.image"])


# ---------------------------------------------------------------------------------------------
# AttnGAN (G_NET, D_NET64/128/256, RNN_ENCODER; one training step with the official losses)


def fixed_like(monkeypatch, value: torch.Tensor) -> None:
    """Make ``torch.randn_like`` of ``value``'s shape return it (CA's eps, drawn by the official code)."""
    randn_like = torch.randn_like
    monkeypatch.setattr(torch, "randn_like",
                        lambda x, **kw: value.clone() if tuple(x.shape) == tuple(value.shape) else randn_like(x, **kw))


def tiny_image_encoder(t: dict, prefix: str) -> torch.nn.Module:
    """The fixture's stand-in DAMSM image encoder: 1x1 conv of the image pooled to 5x5 (regions)
    and a linear map of its mean (code), from the stored weights."""
    w, code_w, code_b = (t[prefix + k] for k in ("emb_features.weight", "emb_cnn_code.weight", "emb_cnn_code.bias"))

    class Encoder(torch.nn.Module):
        def forward(self, images):
            pooled = F.adaptive_avg_pool2d(images, 5)
            return F.conv2d(pooled, w), F.linear(pooled.mean((2, 3)), code_w, code_b)

    return Encoder()


@pytest.fixture(scope="module")
def attngan():
    from t2igan.convert.attngan import attngan_state
    from t2igan.convert.common import convert_text_encoder

    t, meta = load_fixture("attngan")
    c = meta["sizes"]
    netsD = [part(t, f"official.netD{i}.") for i in range(3)]
    state, sizes = attngan_state(part(t, "official.netG."), netsD, "attngan fixture")
    text_state, text_sizes = convert_text_encoder(part(t, "official.text_encoder."), "attngan fixture")
    state.update({f"text_encoder.{k}": v for k, v in text_state.items()})
    assert sizes == {"ngf": c["ngf"], "c_dim": c["ncf"], "z_dim": c["nz"], "text_hidden_dim": c["nef"] // 2,
                     "num_stages": 3, "base_size": 64, "image_size": 256, "num_residual": c["r_num"],
                     "ndf": c["ndf"], "uncond_logits": True}
    args = dict(sizes, vocab_size=text_sizes["vocab_size"], text_emb_dim=text_sizes["text_emb_dim"],
                damsm_weight=c["lambda"], damsm_gamma1=c["gamma1"], damsm_gamma2=c["gamma2"], damsm_gamma3=c["gamma3"])
    return args, state, t, meta


def attngan_model(attngan):
    args, state, t, _ = attngan
    model = create_model("attngan", **args)
    assert load_into(model, state, "attngan fixture") == []  # every weight comes from the official files
    return model


def test_attngan_text_encoder_matches_official_rnn_encoder(attngan):
    _, _, t, _ = attngan
    model = attngan_model(attngan)
    with torch.no_grad():
        feats = model.text_encoder.eval()(t["input.captions"], t["input.cap_lens"])
    assert_close(feats.word_embs, t["text.words_embs"])
    assert_close(feats.sent_emb, t["text.sent_emb"])


def test_attngan_generator_attention_and_discriminators_match_official_eval(attngan, monkeypatch):
    _, _, t, meta = attngan
    model = attngan_model(attngan).eval()
    model.generator.ca.train()  # the official CA samples c = mu + sigma * eps in eval mode too
    fixed_like(monkeypatch, t["eval.eps"])
    words = t["input.full_captions"]
    with torch.no_grad():
        text = model.text_encoder(words, torch.full((words.shape[0],), words.shape[1]))
        images, attention, mu, logvar = model.generator(t["input.noise"], text.sent_emb, text.word_embs, text.mask)
        assert_close(mu, t["eval.mu"])
        assert_close(logvar, t["eval.logvar"])
        for i in range(3):
            assert_close(subgrid(images[i], meta["subgrid"]), t[f"eval.image{i}"])
        for i in range(2):
            assert_close(subgrid(attention[i], meta["subgrid"]), t[f"eval.attention{i}"])
        for i, D in enumerate(model.discriminator):
            real = F.interpolate(t["input.real_small"], size=(64 * 2**i,) * 2, mode="nearest")
            feats = D.features(real)
            assert_close(feats, t[f"eval.d{i}_features"])
            assert_close(torch.sigmoid(D.cond_logits(feats, text.sent_emb)), t[f"eval.d{i}_cond_prob"])
            assert_close(torch.sigmoid(D.uncond_logits(feats)), t[f"eval.d{i}_uncond_prob"])


def test_attngan_training_step_matches_official_losses_and_updates(attngan, monkeypatch):
    """trainer.py: each D_i on discriminator_loss (wrong pairs: image i, caption i+1), then G on
    generator_loss (stage terms + lambda * DAMSM at the last stage) + KL_loss; Adam(0.5, 0.999)."""
    import t2igan.models.attngan as attngan_module
    from t2igan.convert.attngan import ATTNGAN_G_RULES, attngan_d_state

    args, _, t, meta = attngan
    model = attngan_model(attngan).train()
    model.damsm_critic.encoder = tiny_image_encoder(t, "official.image_encoder.")
    real_small = t["input.real_small"]
    monkeypatch.setattr(attngan_module, "image_pyramid",
                        lambda images, sizes: [F.interpolate(real_small, size=(s, s), mode="nearest") for s in sizes])
    fixed_noise(monkeypatch, t["input.noise"])
    fixed_like(monkeypatch, t["train.eps"])
    words = t["input.full_captions"]
    B = words.shape[0]
    batch = {"image": torch.zeros(B, 3, 256, 256), "tokens": words, "lengths": torch.full((B,), words.shape[1]),
             "class_id": torch.full((B,), -1)}
    c = meta["sizes"]
    logs = train_step(model, batch, TrainConfig(lr_g=c["lr"], lr_d=c["lr"], betas_g=(0.5, 0.999), betas_d=(0.5, 0.999)))
    for i in range(3):
        assert logs[f"d_loss{i}"] == pytest.approx(t[f"train.errD{i}"].item(), rel=1e-4, abs=1e-5)
    assert logs["kl"] == pytest.approx(t["train.kl"].item(), rel=1e-4, abs=1e-6)
    assert logs["g_loss"] == pytest.approx((t["train.errG_total"] + t["train.kl"]).item(), rel=1e-4, abs=1e-5)
    own = model.state_dict()
    after = rename(part(t, "after.netG."), ATTNGAN_G_RULES, "after")
    for i in range(3):
        after.update(attngan_d_state(part(t, f"after.netD{i}."), i, 64 * 2**i, "after")[0])
    assert len(after) == 15
    for key, value in after.items():
        assert_close(own[key], value.reshape(own[key].shape), atol=1e-6, rtol=1e-4)


def test_attngan_cli_converts_official_files_to_a_run_that_samples_like_the_official_g(attngan, tmp_path, monkeypatch):
    from t2igan.cli import main
    from t2igan.runs import load_run

    _, _, t, meta = attngan
    files = {"netG_epoch_600.pth": part(t, "official.netG."), "text_encoder200.pth": part(t, "official.text_encoder.")}
    files.update({f"netD{i}.pth": part(t, f"official.netD{i}.") for i in range(3)})
    for name, state in files.items():
        torch.save(state, tmp_path / name)
    Vocabulary(["<end>"] + [f"w{i}" for i in range(1, meta["sizes"]["vocab"])], unk_token=None).save(tmp_path / "v.json")
    main(["convert", "attngan", str(tmp_path / "netG_epoch_600.pth"), "--text-encoder",
          str(tmp_path / "text_encoder200.pth"), "--vocab", str(tmp_path / "v.json"), "-o", str(tmp_path / "run"),
          "--discriminator", *(str(tmp_path / f"netD{i}.pth") for i in range(3))])
    model, _, config = load_run(tmp_path / "run")
    assert config["model_config"]["mismatch_pairs"] == "shift" and config["model_config"]["damsm_paper_form"] is False
    model.generator.ca.train()
    fixed_like(monkeypatch, t["eval.eps"])
    words = t["input.full_captions"]
    with torch.no_grad():
        out = model.generate(words, torch.full((words.shape[0],), words.shape[1]), t["input.noise"])
    assert_close(subgrid(out.images, meta["subgrid"]), t["eval.image2"])


# ---------------------------------------------------------------------------------------------
# DAMSM (words_loss, sent_loss: losses, attention maps, gradients; with same-class masking)


@pytest.mark.parametrize("case", ["plain", "classes"])
def test_damsm_losses_attention_and_gradients_match_official(case):
    from t2igan.data.text import padding_mask
    from t2igan.models.damsm import damsm_sentence_loss, damsm_word_loss

    t, meta = load_fixture("damsm")
    c = meta["sizes"]
    x = [t[f"input.{k}"].clone().requires_grad_(True) for k in ("regions", "words", "code", "sent")]
    lengths = t["input.cap_lens"]
    mask = padding_mask(x[1][:, 0], lengths)
    class_ids = t["input.class_ids"] if case == "classes" else None
    w0, w1, attn = damsm_word_loss(x[0], x[1], mask, class_ids, c["gamma1"], c["gamma2"], c["gamma3"])
    s0, s1 = damsm_sentence_loss(x[2], x[3], class_ids, c["gamma3"])
    (w0 + w1 + s0 + s1).backward()
    for name, value in (("w0", w0), ("w1", w1), ("s0", s0), ("s1", s1)):
        assert value.item() == pytest.approx(t[f"{case}.{name}"].item(), rel=1e-5, abs=1e-6), name
    for i, n in enumerate(lengths.tolist()):
        assert_close(attn[i, :n], t[f"{case}.attention{i}"])
    for k, v in zip(("regions", "words", "code", "sent"), x):
        assert_close(v.grad, t[f"{case}.grad_{k}"], atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# DF-GAN (NetG, NetD, NetC, the sampler, one training step)


@pytest.fixture(scope="module")
def dfgan(tmp_path_factory):
    """The official state dicts saved as a ``state_epoch_N.pth`` and converted by ``convert_dfgan``."""
    from t2igan.convert.dfgan import convert_dfgan
    from t2igan.runs import load_run

    t, meta = load_fixture("dfgan")
    tmp = tmp_path_factory.mktemp("dfgan")
    torch.save({"model": {k: part(t, f"official.{k}.") for k in ("netG", "netD", "netC")}, "epoch": 600},
               tmp / "state_epoch_600.pth")
    Vocabulary(["<end>", "a", "bird"], unk_token=None).save(tmp / "vocab.json")
    convert_dfgan(tmp / "state_epoch_600.pth", tmp / "run", vocab=tmp / "vocab.json")
    model, _, config = load_run(tmp / "run")
    return model, t, meta, config


def test_dfgan_generator_and_discriminator_match_official(dfgan):
    model, t, meta, config = dfgan
    assert config["model_config"]["truncation_form"] == "scaled"
    with torch.no_grad():
        assert_close(subgrid(model.generator(t["input.noise"], t["input.sent_emb"]), meta["subgrid"]), t["eval.image"])
        real = F.interpolate(t["input.real_small"], size=(64, 64), mode="nearest")
        feats = model.discriminator.features(real)
        assert_close(feats, t["eval.d_features"])
        assert_close(model.discriminator.logits(feats, t["input.sent_emb"]), t["eval.d_logits"])


def test_dfgan_sampler_draws_the_official_noise_distribution(dfgan):
    """Official lib/utils.py: ``trunc_rate * truncnorm(-2, 2)``; statistics of 20000 x z draws."""
    model, t, meta, _ = dfgan
    c = meta["sizes"]
    z = model.noise(c["noise_samples"], truncation=c["trunc_rate"], generator=torch.Generator().manual_seed(0))
    assert z.std().item() == pytest.approx(t["sampler.std"].item(), rel=0.01)
    assert z.abs().max().item() == pytest.approx(t["sampler.max_abs"].item(), rel=0.005)


def test_dfgan_training_step_matches_official_losses_and_updates(dfgan, monkeypatch):
    """lib/modules.py train(): hinge (real, fake, mismatched) + MA-GP in one D step, then G."""
    from t2igan.convert.dfgan import DFGAN_RULES

    model, t, meta, _ = dfgan
    model, logs = dfgan_style_train_step(dfgan[0], t, meta, 64, monkeypatch)
    assert logs["d_loss"] == pytest.approx(t["train.errD"].item(), rel=1e-4, abs=1e-5)
    assert logs["ma_gp"] == pytest.approx(t["train.ma_gp"].item(), rel=1e-4, abs=1e-6)
    assert logs["g_loss"] == pytest.approx(t["train.errG"].item(), rel=1e-4, abs=1e-5)
    after = rename({k[len("after."):]: v for k, v in t.items() if k.startswith("after.")}, DFGAN_RULES, "after")
    own = model.state_dict()
    assert len(after) == 4
    for key, value in after.items():
        assert_close(own[key], value, atol=1e-6, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# MirrorGAN (G_NET with GLAM; its D_NETs are AttnGAN's, checked above)


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_mirrorgan_glam_generator_matches_official(mode, monkeypatch):
    from t2igan.convert.attngan import attngan_state
    from t2igan.convert.mirrorgan import MIRRORGAN_G_RULES

    t, meta = load_fixture("mirrorgan")
    c = meta["sizes"]
    state, sizes = attngan_state(part(t, "official.netG."), [], "mirrorgan fixture", MIRRORGAN_G_RULES)
    model = create_model("mirrorgan", vocab_size=4, text_emb_dim=4, ndf=1, stream_backbone="small_cnn",
                         stream_image_size=32, stream_cnn_channels=4, stream_embed_dim=8, stream_hidden_dim=8, **sizes)
    assert load_into(model, state, "mirrorgan fixture", ("text_encoder.", "discriminator.", "stream.")) == [
        "discriminator", "stream", "text_encoder"]
    G = model.generator.train(mode == "train")
    G.ca.train()  # the official CA samples eps in both modes
    fixed_like(monkeypatch, t[f"{mode}.eps"])
    mask = torch.zeros(t["input.noise"].shape[0], c["words"], dtype=torch.bool)
    with torch.no_grad():
        images, attention, mu, logvar = G(t["input.noise"], t["input.sent_emb"], t["input.words_embs"], mask)
    assert_close(mu, t[f"{mode}.mu"])
    assert_close(logvar, t[f"{mode}.logvar"])
    for i in range(3):
        assert_close(subgrid(images[i], meta["subgrid"]), t[f"{mode}.image{i}"])
    for i in range(2):
        assert_close(subgrid(attention[i], meta["subgrid"]), t[f"{mode}.attention{i}"])


def test_mirrorgan_cli_converts_g_and_warns_that_stream_stays_random(tmp_path, capsys, monkeypatch):
    from t2igan.cli import main
    from t2igan.runs import load_run

    t, meta = load_fixture("mirrorgan")
    torch.save({f"module.{k}": v for k, v in part(t, "official.netG.").items()}, tmp_path / "netG_epoch_700.pth")
    attngan_t, _ = load_fixture("attngan")  # MirrorGAN's D_NETs are AttnGAN's, built with the same sizes
    for i in range(3):
        torch.save(part(attngan_t, f"official.netD{i}."), tmp_path / f"netD{i}.pth")
    Vocabulary(["<end>", "a", "bird"], unk_token=None).save(tmp_path / "v.json")
    main(["convert", "mirrorgan", str(tmp_path / "netG_epoch_700.pth"), "--vocab", str(tmp_path / "v.json"),
          "-o", str(tmp_path / "run"), "--discriminator", *(str(tmp_path / f"netD{i}.pth") for i in range(3))])
    assert "stream" in capsys.readouterr().err
    model, _, _ = load_run(tmp_path / "run")
    G = model.generator.eval()
    G.ca.train()
    fixed_like(monkeypatch, t["eval.eps"])
    mask = torch.zeros(t["input.noise"].shape[0], meta["sizes"]["words"], dtype=torch.bool)
    with torch.no_grad():
        images, _, _, _ = G(t["input.noise"], t["input.sent_emb"], t["input.words_embs"], mask)
    assert_close(subgrid(images[2], meta["subgrid"]), t["eval.image2"])
