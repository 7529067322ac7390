"""AttnGAN: word attention, stage sizes, which networks each phase trains, the DAMSM term, --attention."""

import pytest
import torch
from conftest import changed, make_batch, save_and_reload, shapes_vocab, snapshot
from conftest import phase_step as step

import t2igan.models.attngan as attngan_module
from t2igan import create_model
from t2igan.cli import main
from t2igan.config import TrainConfig, resolve_config
from t2igan.data.text import padding_mask
from t2igan.errors import T2IError
from t2igan.runs import load_run, save_run
from t2igan.models.attngan import WordAttention
from t2igan.training import Trainer, build_experiment_model
from t2igan.visualize import attention_figure

B, V, T = 4, 30, 6
LENGTHS = torch.tensor([6, 4, 5, 3])


def tiny(model="attngan", **kw):
    torch.manual_seed(0)
    args = dict(vocab_size=V, image_size=32, base_size=16, num_stages=2, ngf=4, ndf=4, num_residual=1,
                c_dim=8, text_emb_dim=16, text_hidden_dim=8, damsm_backbone="small_cnn", damsm_weight=0.0)
    args.update(kw)
    return create_model(model, **args)


def batch(seed=0, size=32):
    return make_batch(V, LENGTHS, size, seed, class_ids=True)


def test_attention_rows_sum_to_one_and_padding_gets_nothing():
    torch.manual_seed(0)
    attn = WordAttention(feat_dim=5, word_dim=7)
    h, words = torch.randn(B, 5, 3, 3), torch.randn(B, 7, T)
    mask = padding_mask(torch.zeros(B, T), LENGTHS)
    context, beta = attn(h, words, mask)
    assert context.shape == (B, 5, 3, 3) and beta.shape == (B, T, 3, 3)
    assert torch.allclose(beta.sum(dim=1), torch.ones(B, 3, 3), atol=1e-6)
    for b, n in enumerate(LENGTHS.tolist()):
        assert torch.all(beta[b, n:] == 0)
        assert torch.all(beta[b, :n] > 0)
    # whatever the padded words hold, the output is the same
    noisy = words.clone()
    noisy[mask[:, None, :].expand_as(noisy)] = 100.0
    context2, beta2 = attn(h, noisy, mask)
    assert torch.allclose(context, context2, atol=1e-6) and torch.equal(beta, beta2)
    # and the context of a pixel is its beta-weighted sum of the projected words
    projected = attn.project(words)  # (B, 5, T)
    expected = torch.einsum("bct,bt->bc", projected, beta[:, :, 1, 2])
    assert torch.allclose(context[:, :, 1, 2], expected, atol=1e-5)


def test_generator_attention_maps_ignore_padding_and_sum_to_one():
    m = tiny(num_stages=3, image_size=64).eval()
    b = batch()
    out = m.generate(b["tokens"], b["lengths"], m.noise(B))
    assert [tuple(a.shape) for a in out.extras["attention"]] == [(B, T, 16, 16), (B, T, 32, 32)]
    for beta in out.extras["attention"]:
        assert torch.allclose(beta.sum(dim=1), torch.ones_like(beta[:, 0]), atol=1e-5)
        for i, n in enumerate(b["lengths"].tolist()):
            assert torch.all(beta[i, n:] == 0)


@pytest.mark.parametrize("num_stages", [1, 2, 3])
def test_output_sizes_per_stage(num_stages):
    size = 16 * 2 ** (num_stages - 1)
    m = tiny(num_stages=num_stages, image_size=size).eval()
    b = batch(size=size)
    out = m.generate(b["tokens"], b["lengths"], m.noise(B))
    assert out.images.shape == (B, 3, size, size) and out.images.abs().max() <= 1
    assert [x.shape[-1] for x in out.extras["stage_images"]] == [16 * 2**i for i in range(num_stages)]
    assert torch.equal(out.extras["stage_images"][-1], out.images)
    assert [a.shape[-1] for a in out.extras["attention"]] == [16 * 2**i for i in range(num_stages - 1)]
    assert len(m.discriminator) == num_stages
    for D, img in zip(m.discriminator, out.extras["stage_images"]):
        feats = D.features(img)
        assert feats.shape[-2:] == (4, 4)
        assert D.cond_logits(feats, torch.randn(B, 16)).shape == (B,) and D.uncond_logits(feats).shape == (B,)


def test_official_widths_at_256_px_and_bad_sizes_are_refused():
    m = tiny(image_size=256, base_size=64, num_stages=3, ngf=2, ndf=2)
    assert m.generator.initial.ch0 == 16 * 2  # 16 ngf at 4x4
    # D_256: 3 -> ndf .. 8 ndf (64 -> 4 px needs 4 halvings), 16 ndf, 32 ndf, then back to 8 ndf
    assert [D.out_ch for D in m.discriminator] == [16, 16, 16]
    convs = [l for l in m.discriminator[2].features.modules() if isinstance(l, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [2, 4, 8, 16, 32, 64, 32, 16]
    with pytest.raises(T2IError, match="base_size \\* 2\\^"):
        tiny(image_size=64, base_size=16, num_stages=2)
    with pytest.raises(T2IError, match="power of two"):
        tiny(base_size=24, image_size=48)
    with pytest.raises(T2IError, match="image_size 32 must equal base_size"):
        build_experiment_model(resolve_config("attngan-shapes", ["data.image_size=32", "model.damsm_weights=null"]), V)


def test_conditioning_augmentation_samples_in_training_and_uses_the_mean_in_eval():
    m = tiny()
    ca = m.generator.ca
    sent = torch.randn(B, 16)
    ca.train()
    c1, mu, logvar = ca(sent)
    c2, _, _ = ca(sent)
    assert mu.shape == logvar.shape == (B, 8) and not torch.equal(c1, c2)
    ca.eval()
    c3, mu3, _ = ca(sent)
    assert torch.equal(c3, mu3) and torch.allclose(mu3, mu)


def test_d_and_g_phases_train_only_their_networks_and_the_text_encoder_stays_frozen():
    m = tiny()
    m.train()
    assert not m.text_encoder.training  # no dropout in the frozen encoder
    groups = m.optimizer_groups(TrainConfig())
    in_opt = {id(p) for gs in groups.values() for g in gs for p in g["params"]}
    assert not {id(p) for p in m.text_encoder.parameters()} & in_opt
    opts = {k: torch.optim.Adam(g) for k, g in groups.items()}
    g0, d0, t0 = snapshot(m.generator), snapshot(m.discriminator), snapshot(m.text_encoder)
    state = {}
    logs = step(m, "d", batch(), state, opts)
    assert set(logs) >= {"d_loss", "d_loss0", "d_loss1"}
    assert not changed(g0, m.generator) and changed(d0, m.discriminator)
    d1 = snapshot(m.discriminator)
    logs = step(m, "g", batch(), state, opts)
    assert set(logs) >= {"g_loss", "g_adv0", "g_adv1", "kl"}
    assert changed(g0, m.generator) and not changed(d1, m.discriminator)
    assert not changed(t0, m.text_encoder)


def test_d_sees_real_images_with_wrong_captions(monkeypatch):
    m = tiny()
    torch.manual_seed(1)
    _, logs = m.compute_loss("d", batch(), {})
    assert logs["d0_cond_wrong"] != pytest.approx(logs["d0_cond_real"])
    monkeypatch.setattr(attngan_module, "mismatched_pairs", lambda feats, cond, form: (feats, cond))
    torch.manual_seed(1)
    _, same = m.compute_loss("d", batch(), {})
    for i in range(2):
        assert same[f"d{i}_cond_wrong"] == pytest.approx(same[f"d{i}_cond_real"], abs=1e-6)


def test_wrong_caption_pairs_are_the_official_shift_by_default_or_the_roll():
    """Official discriminator_loss: real image i with caption i+1 for i < B-1 (B-1 pairs); the
    "roll" option pairs all B images, image j with caption j-1."""
    m = tiny()
    assert m.config.mismatch_pairs == "shift"
    D = m.discriminator[0].eval()
    real, fake = batch()["image"][:, :, :16, :16], torch.rand(B, 3, 16, 16)
    e = torch.randn(B, 16)
    feats = D.features(real)
    one = lambda i, j: D.cond_logits(feats[i:i + 1], e[j:j + 1])[0]  # noqa: E731
    shift = torch.stack([one(i, i + 1) for i in range(B - 1)]).mean().item()
    roll = torch.stack([one(j, (j - 1) % B) for j in range(B)]).mean().item()
    _, logs = attngan_module.stage_discriminator_loss(D, real, fake, e)
    assert logs["cond_wrong"] == pytest.approx(shift, abs=1e-6)
    _, logs = attngan_module.stage_discriminator_loss(D, real, fake, e, "roll")
    assert logs["cond_wrong"] == pytest.approx(roll, abs=1e-6)
    with pytest.raises(T2IError, match="mismatch_pairs"):
        tiny(mismatch_pairs="other")


def test_lower_stage_discriminators_see_downsampled_real_images(monkeypatch):
    m = tiny()
    seen = []
    monkeypatch.setattr(attngan_module, "stage_discriminator_loss",
                        lambda D, real, fake, sent, mismatch: (seen.append((real, fake.shape)) or (real.mean() * 0, {})))
    b = batch()
    m.compute_loss("d", b, {})
    assert [r.shape[-1] for r, _ in seen] == [16, 32] and [f[-1] for _, f in seen] == [16, 32]
    # a down-sampled image keeps the real image's content: its mean colour per channel
    assert torch.allclose(seen[0][0].mean(dim=(2, 3)), b["image"].mean(dim=(2, 3)), atol=0.02)
    assert torch.equal(seen[1][0], b["image"])


@pytest.mark.parametrize("model", ["attngan", "mirrorgan", "drgan"])
def test_stage_discriminators_without_batch_norm_judge_each_image_alone(model):
    """d_batch_norm=False: no batch norm in any stage D, so an image's logits do not depend on the
    other images of its batch (with batch norm, a shift of the other images' colours moves them)."""
    extra = {"drgan": {"spectral_norm": False}, "mirrorgan": {"stream_lambda": 0.0}}.get(model, {})
    x = torch.rand(B, 3, 32, 32) * 2 - 1
    shifted = x.clone()
    shifted[1:] = (shifted[1:] + 0.5).clamp(-1, 1)  # the other images brighter, image 0 the same
    logits = {}
    for batch_norm in (True, False):
        m = tiny(model=model, d_batch_norm=batch_norm, **extra)
        judging = [x for D in m.discriminator for part in (D.features, D.joint) for x in part.modules()]
        assert any(isinstance(x, torch.nn.BatchNorm2d) for x in judging) == batch_norm
        D = m.discriminator[-1].train()
        with torch.no_grad():
            logits[batch_norm] = [D.uncond_logits(D.features(images))[0] for images in (x, shifted)]
    assert not torch.allclose(*logits[True], atol=1e-4)
    assert torch.allclose(*logits[False], atol=1e-6)


def test_damsm_gradients_reach_the_generator_and_never_the_frozen_encoders():
    m = tiny(damsm_weight=5.0)
    groups = m.optimizer_groups(TrainConfig())
    state = {}
    m.compute_loss("d", batch(), state)
    with pytest.warns(UserWarning, match="randomly initialised"):
        damsm, _ = m.damsm_critic(state["fakes"][-1], state["text"])
    enc = m.damsm_critic.encoder
    m.generator.zero_grad(set_to_none=True)
    damsm.backward()
    # the last stage's image head and the word attention feeding it get gradients...
    assert m.generator.to_rgb[1][0].weight.grad.abs().sum() > 0
    assert m.generator.stages[0].attention.project.weight.grad.abs().sum() > 0
    # ...the first stage's head does not (DAMSM scores the last stage only), nor do the encoders
    assert m.generator.to_rgb[0][0].weight.grad is None
    assert all(p.grad is None and not p.requires_grad for p in enc.parameters())
    assert all(p.grad is None and not p.requires_grad for p in m.text_encoder.parameters())
    in_opt = {id(p) for gs in groups.values() for g in gs for p in g["params"]}
    assert not {id(p) for p in enc.parameters()} & in_opt
    m.train()
    assert not enc.training and not m.text_encoder.training
    assert not any(k.startswith("image_encoder") for k in m.state_dict())
    # the G loss adds it with weight lambda
    _, logs = m.compute_loss("g", batch(), state)
    adv = logs["g_adv0"] + logs["g_adv1"]
    assert logs["g_loss"] == pytest.approx(adv + logs["kl"] + 5.0 * logs["damsm"], rel=1e-4)


def test_tiny_overfit_generator_and_damsm_losses_fall():
    """Against a fixed D and a fixed (random) DAMSM, G learns one batch: both its adversarial and
    its DAMSM loss fall."""
    m = tiny(damsm_weight=1.0)
    b = batch()
    opt_g = torch.optim.Adam(m.generator.parameters(), 2e-3, betas=(0.5, 0.999))
    history = []
    with pytest.warns(UserWarning, match="randomly initialised"):
        for _ in range(40):
            torch.manual_seed(0)
            state = {}
            m.compute_loss("d", dict(b), state)
            loss, logs = m.compute_loss("g", dict(b), state)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            history.append(logs)
    first, last = history[0], history[-1]
    assert last["g_adv0"] + last["g_adv1"] < 0.7 * (first["g_adv0"] + first["g_adv1"])
    assert last["damsm"] < 0.8 * first["damsm"]


def test_attention_figure_highlights_where_a_word_is_attended():
    from PIL import Image

    image = Image.new("RGB", (32, 32), (128, 128, 128))
    maps = torch.zeros(3, 8, 8)
    maps[0, :, :4] = 1.0  # word 0: the left half
    maps[1, :, 4:] = 1.0  # word 1: the right half
    fig = attention_figure(image, ["red", "circle"], maps, title="a red circle")
    cell = fig.width // 3
    assert fig.width > 3 * 96 - 1 and fig.height > cell
    red = fig.crop((cell, 0, 2 * cell, cell)).convert("L")
    circle = fig.crop((2 * cell, 0, 3 * cell, cell)).convert("L")
    assert red.getpixel((cell // 5, cell // 2)) > red.getpixel((4 * cell // 5, cell // 2)) + 50
    assert circle.getpixel((4 * cell // 5, cell // 2)) > circle.getpixel((cell // 5, cell // 2)) + 50
    with pytest.raises(ValueError, match="one \\(h, w\\) attention map per word"):
        attention_figure(image, ["a", "b", "c", "d"], maps)


def test_save_load_roundtrip_and_attention_cli(tmp_path, capsys):
    vocab = shapes_vocab(V)
    out1, out2 = save_and_reload(tiny(), tmp_path, vocab, batch())
    assert torch.equal(out1.images, out2.images)
    assert torch.equal(out1.extras["attention"][0], out2.extras["attention"][0])

    out = tmp_path / "s.png"
    assert main(["sample", str(tmp_path), "a red circle", "a green star", "--n", "1", "--attention", "-o", str(out)]) == 0
    from PIL import Image

    fig = Image.open(tmp_path / "s-attention.png")
    plain = Image.open(out)
    cell = plain.width - 8  # the plain grid is one column of 2 images
    assert fig.width >= 4 * cell and 2 * cell < fig.height < 4 * cell  # 2 rows of image + 3 word maps
    assert "2 rows" in capsys.readouterr().out
    # a one-stage model has no attention: a one-line error
    save_run(tmp_path / "one", {"data": {"max_words": 6}}, tiny(num_stages=1, image_size=16), vocab)
    assert main(["sample", str(tmp_path / "one"), "a red circle", "--n", "1", "--attention",
                 "-o", str(tmp_path / "x.png")]) == 2
    assert "no word attention" in capsys.readouterr().err


def test_presets_resolve_to_the_official_settings():
    cub = resolve_config("attngan-cub")
    a = cub.model_args
    assert (a["ngf"], a["ndf"], a["num_residual"], a["damsm_weight"], a["damsm_gamma1"]) == (32, 64, 2, 5.0, 4.0)
    assert cub.train.batch_size == 20 and cub.train.max_steps == 600 * (8855 // 20)
    assert tuple(cub.train.betas_g) == (0.5, 0.999) and cub.train.lr_d == cub.train.lr_g == 2e-4
    coco = resolve_config("attngan-coco")
    a = coco.model_args
    assert (a["ngf"], a["ndf"], a["num_residual"], a["damsm_weight"]) == (48, 96, 3, 50.0)
    assert coco.train.max_steps == 120 * (82783 // 14) and coco.data.max_words == 12
    shapes = resolve_config("attngan-shapes")
    assert shapes.data.image_size == shapes.model_args["base_size"] * 2 ** (shapes.model_args["num_stages"] - 1)


def test_trains_end_to_end_on_tiny_shapes(tmp_path):
    cfg = resolve_config("attngan-shapes", [
        "data.image_size=32", "model.base_size=16", "data.train_args={num_images: 32}",
        "data.test_args={num_images: 8}", "data.vocab=null", "model.damsm_weights=null", "model.damsm_weight=0",
        "model.ngf=4", "model.ndf=4", "model.c_dim=8", "model.text_emb_dim=16", "model.text_hidden_dim=8",
        "train.batch_size=8", "train.max_steps=3", "train.sample_every=3", "train.checkpoint_every=3",
        "train.num_sample_captions=2",
    ])
    run = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert (run / "samples" / "step-00000003.png").is_file()
    model, _, _ = load_run(run)
    assert model.model_name == "attngan" and model.config.num_stages == 2
