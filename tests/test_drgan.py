"""DR-GAN: SDM key / non-key split and masks, SDL, the DNM's VAE terms, DAL gradients, spectral
norm in D, which networks each phase trains, presets, --attention / --masks, end-to-end training."""

import math

import pytest
import torch
from conftest import changed, make_batch, save_and_reload, shapes_vocab, snapshot

from t2igan import create_model
from t2igan.cli import main
from t2igan.config import TrainConfig, resolve_config
from t2igan.errors import T2IError
from t2igan.runs import load_run
from t2igan.models.attngan import image_pyramid
from t2igan.models.drgan import (
    distribution_alignment_loss,
    dnm_vae_loss,
    feature_statistics,
    semantic_disentangling_loss,
    softplus_contrast,
    split_key,
)
from t2igan.training import Trainer

B, V, T = 4, 30, 6
LENGTHS = torch.tensor([6, 4, 5, 3])


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(vocab_size=V, image_size=32, base_size=16, num_stages=2, ngf=4, ndf=4, num_residual=1, num_refine=1,
                c_dim=8, text_emb_dim=16, text_hidden_dim=8, damsm_backbone="small_cnn", damsm_weight=0.0,
                dnm_z_dim=8, dnm_ngf=4)
    args.update(kw)
    return create_model("drgan", **args)


def batch(seed=0, size=32):
    return make_batch(V, LENGTHS, size, seed, class_ids=True)


def generator_output(m, b):
    text = m.encode_text(b["tokens"], b["lengths"])
    return m.generator(m.noise(B), text.sent_emb, text.word_embs, text.mask)


# -- SDM ---------------------------------------------------------------------------------------


def test_key_and_nonkey_parts_recompose_the_features_and_masks_lie_in_unit_interval():
    m = tiny(num_stages=3, image_size=64).train()
    out = generator_output(m, batch())
    assert len(out.parts) == 2
    for p, side in zip(out.parts, (16, 32)):
        assert p.mask_q.shape == p.mask_h.shape == (B, 1, side, side)
        for feat, mask, key, nonkey in ((p.q, p.mask_q, p.key_q, p.nonkey_q), (p.h, p.mask_h, p.key_h, p.nonkey_h)):
            assert ((mask >= 0) & (mask <= 1)).all() and mask.std() > 0  # a map, not a constant
            assert torch.equal(key, feat * mask)
            # F+ + F- = F up to one rounding of |F| (|F+|, |F-| <= |F| for masks in [0, 1])
            assert torch.allclose(key + nonkey, feat, rtol=1e-6, atol=0)
    key, nonkey = split_key(p.q, torch.ones_like(p.mask_q))
    assert torch.equal(key, p.q) and not nonkey.any()
    # the masks reach the sampler: Q then H per SDM stage, (B, 1, h, w)
    m.eval()
    b = batch()
    sample = m.generate(b["tokens"], b["lengths"], m.noise(B))
    assert [tuple(x.shape) for x in sample.extras["masks"]] == [(B, 1, 16, 16)] * 2 + [(B, 1, 32, 32)] * 2
    assert [a.shape[-1] for a in sample.extras["attention"]] == [16, 32]
    assert all(((x >= 0) & (x <= 1)).all() for x in sample.extras["masks"])


def test_channel_masks_are_shown_as_their_channel_mean():
    m = tiny(mask_form="channel").eval()
    b = batch()
    out = generator_output(m, b)
    assert out.parts[0].mask_q.shape == (B, 4, 16, 16)
    shown = m.generate(b["tokens"], b["lengths"], m.noise(B)).extras["masks"]
    assert shown[0].shape == (B, 1, 16, 16) and ((shown[0] >= 0) & (shown[0] <= 1)).all()


def test_only_the_key_parts_reach_the_next_stage():
    """With both masks at 0 the next stage sees zeros: every caption and noise gives the same image."""
    m = tiny().eval()
    stage = m.generator.stages[0]
    for key_mask in (stage.mask_q, stage.mask_h):
        last = key_mask.net[-1]
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.constant_(last.bias, -1e4)  # sigmoid -> exactly 0
    out = generator_output(m, batch())
    assert not out.parts[0].key_q.any() and not out.parts[0].key_h.any()
    assert torch.equal(out.parts[0].nonkey_h, out.parts[0].h)
    final = out.images[-1]
    assert torch.allclose(final, final[:1].expand_as(final), atol=1e-6)
    assert not torch.allclose(out.images[0], out.images[0][:1].expand_as(out.images[0]))


# -- SDL ---------------------------------------------------------------------------------------


def pooled_spread(x, factor):
    """``x`` with every sample's pooled vector moved to ``mu + factor (v - mu)``: same batch mean,
    variance times factor^2."""
    v = x.mean(dim=(2, 3), keepdim=True)
    mu = v.mean(dim=0, keepdim=True)
    return x + (factor - 1) * (v - mu)


def test_feature_statistics_paper_variance_and_the_official_near_zero_one():
    torch.manual_seed(0)
    x = torch.randn(6, 5, 3, 3) * 2 + 1
    mean, var = feature_statistics(x)
    v = x.mean(dim=(2, 3))
    assert torch.allclose(mean, v.mean(0)) and torch.allclose(var, v.var(0, unbiased=False))
    _, official = feature_statistics(x, variance="official")
    assert official.abs().max() < 1e-10 and var.min() > 0.01  # the official statistic is (almost) always 0


def test_sdl_is_zero_when_statistics_match_and_positive_otherwise():
    torch.manual_seed(0)
    real = torch.randn(8, 5, 4, 4)
    nonkey = torch.randn(8, 5, 4, 4) * 3
    assert semantic_disentangling_loss(real.clone(), nonkey, real).item() == 0.0
    # other features with the same statistics (spatially flipped): still zero
    assert semantic_disentangling_loss(real.flip(-1), nonkey, real).item() == pytest.approx(0.0, abs=1e-6)
    shifted_mean = semantic_disentangling_loss(real + 0.5, nonkey, real)
    spread = pooled_spread(real, 2.0)  # same mean, variance x 4
    only_variance = semantic_disentangling_loss(spread, nonkey, real)
    assert shifted_mean > 1e-3 and only_variance > 1e-3
    # the official statistic cannot see a variance change
    assert semantic_disentangling_loss(spread, nonkey, real, variance="official") == pytest.approx(0.0, abs=1e-6)
    # the paper's term is SP(d+ - d-): ln 2 per statistic when everything matches, never 0
    assert semantic_disentangling_loss(real, real, real, form="paper").item() == pytest.approx(2 * math.log(2))
    assert semantic_disentangling_loss(real, nonkey, real, form="paper") > 0


def test_sdl_term_grows_with_the_key_distance_and_falls_with_the_nonkey_distance():
    d = torch.linspace(0, 3, 7)
    for form in ("shifted", "paper", "official"):
        up = softplus_contrast(d, torch.full_like(d, 1.0), form)
        assert (up.diff() > 0).all()
        down = softplus_contrast(torch.full_like(d, 1.0), d, form)
        assert (down.diff() < 0).all()
    # shifted = paper - its value at d+ = 0, i.e. ln((e^d- + e^d+) / (e^d- + 1))
    dk, dn = torch.tensor(0.7), torch.tensor(1.3)
    expected = torch.log((dn.exp() + dk.exp()) / (dn.exp() + 1))
    assert softplus_contrast(dk, dn) == pytest.approx(expected.item(), rel=1e-6)


def test_sdl_gradient_pulls_the_key_statistics_to_the_real_ones():
    torch.manual_seed(0)
    real = torch.randn(8, 5, 4, 4)
    key = (real + 1.0).requires_grad_(True)
    nonkey = torch.randn(8, 5, 4, 4)
    opt = torch.optim.Adam([key], lr=0.05)
    losses = []
    for _ in range(40):
        loss = semantic_disentangling_loss(key, nonkey, real)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    assert (feature_statistics(key.detach())[0] - feature_statistics(real)[0]).abs().max() < 0.2


# -- DNM / DAL ---------------------------------------------------------------------------------


def test_dnm_kl_is_zero_for_a_standard_normal_posterior_and_recon_zero_for_a_perfect_one():
    x = torch.rand(3, 3, 8, 8)
    recon, kl = dnm_vae_loss(x, x, torch.zeros(3, 5), torch.zeros(3, 5))
    assert recon.item() == 0.0 and kl.item() == 0.0
    _, kl_mu = dnm_vae_loss(x, x, torch.ones(3, 5), torch.zeros(3, 5))
    assert kl_mu.item() == pytest.approx(0.5)  # mu^2 / 2
    _, kl_var = dnm_vae_loss(x, x, torch.zeros(3, 5), torch.full((3, 5), 1.0))
    assert kl_var.item() == pytest.approx(0.5 * (math.e - 1 - 1))
    recon_off, _ = dnm_vae_loss(x + 0.5, x, torch.zeros(3, 5), torch.zeros(3, 5))
    assert recon_off.item() == pytest.approx(0.25)


def test_vae_reconstructs_at_the_first_stage_side_for_every_discriminator():
    m = tiny(num_stages=3, image_size=64).train()
    for D, side in zip(m.discriminator, (16, 32, 64)):
        feats = D.features(torch.rand(B, 3, side, side))
        recon, mu, logvar = D.vae(feats, torch.randn(B, 16))
        assert recon.shape == (B, 3, 16, 16) and mu.shape == logvar.shape == (B, 8)
        assert recon.abs().max() <= 1


def test_dal_gradients_reach_the_generator():
    m = tiny().train()
    b = batch()
    state = {}
    m.compute_loss("d", b, state)
    out, text = state["gen"], state["text"]
    m.zero_grad(set_to_none=True)
    D = m.discriminator[1]
    recon, _, _ = D.vae(D.features(out.images[1]), text.sent_emb)
    dal = distribution_alignment_loss(recon, image_pyramid(b["image"], [16])[0])
    dal.backward()
    G = m.generator
    for p in (G.to_rgb[1][0].weight, G.stages[0].up.conv.weight, G.stages[0].mask_h.net[-1].weight,
              G.stages[0].attention.project.weight, G.initial.fc.weight):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert G.to_rgb[0][0].weight.grad is None  # stage 0's head does not produce stage 1's image
    assert all(p.grad is None for p in m.text_encoder.parameters())


# -- discriminator, phases, losses --------------------------------------------------------------


def test_discriminator_is_spectrally_normalised_without_batch_norm():
    m = tiny(num_stages=3, image_size=64).train()
    for D in m.discriminator:
        convs = [c for part in (D.features, D.joint) for c in part.modules() if isinstance(c, torch.nn.Conv2d)]
        assert convs and all(torch.nn.utils.parametrize.is_parametrized(c, "weight") for c in convs)
        assert all(c.bias is not None for c in convs)
        assert not any(isinstance(x, torch.nn.BatchNorm2d) for part in (D.features, D.joint) for x in part.modules())
    D = m.discriminator[2]
    for _ in range(15):  # power iterations run in training forwards
        D.features(torch.rand(2, 3, 64, 64))
    conv = D.features[3][0]
    sigma = torch.linalg.matrix_norm(conv.weight.detach().flatten(1), ord=2)
    assert sigma.item() == pytest.approx(1.0, abs=0.05)
    plain = tiny(spectral_norm=False)
    assert any(isinstance(x, torch.nn.BatchNorm2d) for x in plain.discriminator[1].features.modules())


def test_d_and_g_phases_train_only_their_networks():
    m = tiny().train()
    assert not m.text_encoder.training
    groups = m.optimizer_groups(TrainConfig())
    ids = {k: {id(p) for g in gs for p in g["params"]} for k, gs in groups.items()}
    assert {id(p) for p in m.sdl_heads.parameters()} <= ids["g"]
    assert {id(p) for p in m.discriminator.parameters()} <= ids["d"]
    assert not {id(p) for p in m.text_encoder.parameters()} & (ids["g"] | ids["d"])
    opts = {k: torch.optim.Adam(g) for k, g in groups.items()}
    before = {n: snapshot(getattr(m, n)) for n in ("generator", "sdl_heads", "discriminator", "text_encoder")}
    state = {}
    loss, logs = m.compute_loss("d", batch(), state)
    opts["d"].zero_grad(set_to_none=True)
    loss.backward()
    opts["d"].step()
    assert {"d_loss", "dnm_recon0", "dnm_kl1"} <= set(logs)
    assert changed(before["discriminator"], m.discriminator)
    assert not changed(before["generator"], m.generator) and not changed(before["sdl_heads"], m.sdl_heads)
    d1 = snapshot(m.discriminator)
    loss, logs = m.compute_loss("g", batch(), state)
    opts["g"].zero_grad(set_to_none=True)
    loss.backward()
    opts["g"].step()
    assert changed(before["generator"], m.generator) and changed(before["sdl_heads"], m.sdl_heads)
    assert not changed(d1, m.discriminator) and not changed(before["text_encoder"], m.text_encoder)


def test_g_loss_is_the_weighted_sum_of_its_terms():
    m = tiny(sdl_weight=2.0, sdl_recon_weight=0.5, dal_weight=3.0, kl_weight=1.5).train()
    state = {}
    m.compute_loss("d", batch(), state)
    _, logs = m.compute_loss("g", batch(), state)
    expected = (logs["g_adv0"] + logs["g_adv1"] + 3.0 * (logs["dal0"] + logs["dal1"]) + 2.0 * logs["sdl"]
                + 0.5 * logs["sdl_recon"] + 1.5 * logs["kl"])
    assert logs["g_loss"] == pytest.approx(expected, rel=1e-5)
    assert logs["sdl"] >= 0 and logs["sdl_recon"] > 0


def test_bad_settings_are_one_line_errors():
    with pytest.raises(T2IError, match="invalid model.sdl_form='triplet': expected a string: one of shifted, paper"):
        tiny(sdl_form="triplet")
    with pytest.raises(T2IError, match="invalid model config: image_size 64 must equal"):
        tiny(image_size=64)


# -- run folders, CLI, presets ------------------------------------------------------------------


def test_save_load_roundtrip_and_attention_and_masks_cli(tmp_path, capsys):
    out1, out2 = save_and_reload(tiny(), tmp_path, shapes_vocab(V), batch())
    assert torch.equal(out1.images, out2.images)
    assert all(torch.equal(x, y) for x, y in zip(out1.extras["masks"], out2.extras["masks"]))
    out = tmp_path / "s.png"
    assert main(["sample", str(tmp_path), "a red circle", "a green star", "--n", "1", "--attention", "--masks",
                 "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "2 masks per image" in printed and "2 rows" in printed
    assert (tmp_path / "s-masks.png").is_file() and (tmp_path / "s-attention.png").is_file()


def test_presets_resolve_to_the_official_settings_and_shapes_matches_attngan():
    cub = resolve_config("drgan-cub")
    a = cub.model_args
    assert (a["ngf"], a["ndf"], a["num_residual"], a["damsm_weight"], a["spectral_norm"]) == (64, 32, 2, 5.0, True)
    assert cub.train.batch_size == 22 and cub.train.max_steps == 1000 * (8855 // 22)
    assert tuple(cub.train.betas_g) == (0.5, 0.999) and cub.train.lr_d == cub.train.lr_g == 2e-4
    coco = resolve_config("drgan-coco")
    a = coco.model_args
    assert (a["ngf"], a["ndf"], a["num_residual"], a["damsm_weight"]) == (64, 32, 3, 50.0)
    assert coco.train.batch_size == 20 and coco.train.max_steps == 250 * (82783 // 20) and coco.data.max_words == 12
    for cfg in (cub, coco):
        assert (cfg.model_args["sdl_form"], cfg.model_args["sdl_variance"]) == ("shifted", "paper")
    shapes, attn = resolve_config("drgan-shapes"), resolve_config("attngan-shapes")
    assert {k: shapes.model_args[k] for k in attn.model_args} == attn.model_args
    assert shapes.data == attn.data and shapes.train == attn.train


def test_trains_end_to_end_on_tiny_shapes(tmp_path):
    cfg = resolve_config("drgan-shapes", [
        "data.image_size=32", "model.base_size=16", "data.train_args={num_images: 32}",
        "data.test_args={num_images: 8}", "data.vocab=null", "model.damsm_weights=null", "model.damsm_weight=0",
        "model.ngf=4", "model.ndf=4", "model.c_dim=8", "model.text_emb_dim=16", "model.text_hidden_dim=8",
        "model.dnm_ngf=4", "model.dnm_z_dim=8", "train.batch_size=8", "train.max_steps=3",
        "train.sample_every=3", "train.checkpoint_every=3", "train.num_sample_captions=2",
    ])
    run = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert (run / "samples" / "step-00000003.png").is_file()
    model, _, _ = load_run(run)
    assert model.model_name == "drgan" and model.config.num_stages == 2
