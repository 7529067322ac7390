"""SSA-GAN: SSCBN algebra, masks, which networks each phase trains, the DAMSM term, --masks."""

import pytest
import torch
import torch.nn.functional as F
from conftest import changed, make_batch, save_and_reload, shapes_vocab, snapshot
from conftest import phase_step as step

from t2igan import create_model
from t2igan.cli import main
from t2igan.config import TrainConfig, resolve_config
from t2igan.data.text import Vocabulary
from t2igan.errors import T2IError
from t2igan.runs import load_run, save_run
from t2igan.models.ssagan import SSCBN, SSACNBlock
from t2igan.training import Trainer

B, S, V = 4, 32, 30


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(vocab_size=V, image_size=S, nf=4, text_emb_dim=16, text_hidden_dim=8, mask_hidden=8,
                d_max_mult=8, damsm_weight=0.0, damsm_backbone="small_cnn")
    args.update(kw)
    return create_model("ssagan", **args)


def batch(seed=0):
    return make_batch(V, (6, 4, 5, 3), S, seed, zero_pad=False, class_ids=True)


def randomised_sscbn(channels=6, cond=5):
    torch.manual_seed(1)
    norm = SSCBN(cond, channels)
    for p in norm.affine.parameters():  # leave the zero init, so the text really acts
        torch.nn.init.normal_(p, std=0.5)
    return norm


def test_masks_lie_in_unit_interval_with_one_per_block_at_its_resolution():
    m = tiny().eval()
    out = m.generate(batch()["tokens"], batch()["lengths"], m.noise(B))
    assert out.images.shape == (B, 3, S, S) and out.images.abs().max() <= 1
    masks = out.extras["masks"]
    assert [tuple(x.shape) for x in masks] == [(B, 1, r, r) for r in (4, 8, 16, 32)]
    for x in masks:
        assert x.min() >= 0 and x.max() <= 1
        assert x.std() > 0  # a real prediction, not a constant


def test_seven_blocks_for_256_px_the_first_without_upsampling():
    m = tiny(image_size=256, nf=2)
    blocks = m.generator.blocks
    assert len(blocks) == 7
    assert [b.upsample for b in blocks] == [False] + [True] * 6
    _, masks = m.generator.eval()(torch.randn(1, 100), torch.randn(1, 16))
    assert [x.shape[-1] for x in masks] == [4, 8, 16, 32, 64, 128, 256]
    # official discriminator widths: nf .. 16 nf
    d = tiny(image_size=256, nf=2, d_max_mult=16).discriminator
    assert d.blocks[-1].res[0].out_channels == 2 * 16


def test_sscbn_with_mask_zero_is_plain_batch_norm_whatever_the_text():
    norm = randomised_sscbn()
    x = torch.randn(4, 6, 5, 5)
    zeros = torch.zeros(4, 1, 5, 5)
    expected = F.batch_norm(x, None, None, training=True)
    for sent in (torch.randn(4, 5), torch.randn(4, 5) * 3):
        assert torch.allclose(norm(x, sent, zeros), expected, atol=1e-5)


def test_sscbn_with_mask_one_is_the_dfgan_affine_of_normalised_features():
    norm = randomised_sscbn()
    x, sent = torch.randn(4, 6, 5, 5), torch.randn(4, 5)
    h = F.batch_norm(x, None, None, training=True)
    gamma = norm.affine.gamma(sent) - 1  # SSA-GAN's gamma(e): DF-GAN's affine scale starts at 1
    beta = norm.affine.beta(sent)
    expected = (gamma[:, :, None, None] + 1) * h + beta[:, :, None, None]
    assert torch.allclose(norm(x, sent, torch.ones(4, 1, 5, 5)), expected, atol=1e-5)
    # a spatial mask applies the text only where it is on
    half = torch.zeros(4, 1, 5, 5)
    half[..., :2] = 1
    out = norm(x, sent, half)
    assert torch.allclose(out[..., :2], expected[..., :2], atol=1e-5)
    assert torch.allclose(out[..., 2:], h[..., 2:], atol=1e-5)
    assert not torch.allclose(expected, h, atol=1e-2)


def test_fresh_block_is_its_shortcut_and_fresh_sscbn_ignores_text():
    torch.manual_seed(0)
    x, sent = torch.randn(2, 6, 4, 4), torch.randn(2, 5)
    norm = SSCBN(5, 6)  # zero-initialised last MLP layers: gamma = beta = 0
    assert torch.allclose(norm(x, sent, torch.ones(2, 1, 4, 4)), F.batch_norm(x, None, None, training=True), atol=1e-6)
    block = SSACNBlock(5, 6, 3, upsample=True, mask_hidden=4)
    out, mask = block(x, sent)
    assert out.shape == (2, 3, 8, 8) and mask.shape == (2, 1, 8, 8)
    up = F.interpolate(x, scale_factor=2, mode="nearest")
    assert torch.allclose(out, block.shortcut(up))  # the residual gate starts at 0


def test_d_and_g_phases_train_only_their_networks_and_frozen_text_encoder_stays():
    m = tiny(text_encoder_mode="frozen", d_update="one_step")
    opts = {k: torch.optim.Adam(g) for k, g in m.optimizer_groups(TrainConfig()).items()}
    g0, d0, t0 = snapshot(m.generator), snapshot(m.discriminator), snapshot(m.text_encoder)
    state = {}
    logs = step(m, "d", batch(), state, opts)
    assert logs["ma_gp"] >= 0 and logs["d_mismatch"] != logs["d_real"]
    assert not changed(g0, m.generator) and changed(d0, m.discriminator)
    d1 = snapshot(m.discriminator)
    step(m, "g", batch(), state, opts)
    assert changed(g0, m.generator) and not changed(d1, m.discriminator)
    assert not changed(t0, m.text_encoder)


def reference_ma_gp(D, images, sent_emb, k=2.0, p=6.0):
    """MA-GP written out: k * mean(||(d/dx, d/de) sum D(x, e)||^p), as the official second D step."""
    x = images.detach().clone().requires_grad_(True)
    e = sent_emb.detach().clone().requires_grad_(True)
    out = D.logits(D.features(x), e)
    gx, ge = torch.autograd.grad(out.sum(), (x, e), create_graph=True)
    return k * torch.cat([gx.flatten(1), ge.flatten(1)], 1).norm(dim=1).pow(p).mean()


def test_official_d_update_is_a_hinge_step_then_a_ma_gp_step_on_one_optimizer():
    """Official main.py: Adam step on the hinge loss, then (D updated) a step on MA-GP alone."""
    m = tiny()
    assert m.phases == ("d", "d_gp", "g") and m.optimizer_name("d_gp") == "d"
    assert set(m.optimizer_groups(TrainConfig())) == {"d", "g"}
    opts = {k: torch.optim.Adam(g) for k, g in m.optimizer_groups(TrainConfig()).items()}
    state = {}
    logs = step(m, "d", batch(), state, opts)
    assert "ma_gp" not in logs and logs["d_loss"] == logs["d_adv"]
    d1, g1 = snapshot(m.discriminator), snapshot(m.generator)
    expected = reference_ma_gp(m.discriminator, batch()["image"], state["sent_emb"]).item()
    logs = step(m, "d_gp", batch(), state, opts)
    assert logs["ma_gp"] == pytest.approx(expected, rel=1e-5) and logs["ma_gp"] > 0
    assert changed(d1, m.discriminator) and not changed(g1, m.generator)
    assert opts["d"].state[next(m.discriminator.parameters())]["step"].item() == 2  # one Adam, two steps


def test_one_step_d_update_sums_hinge_and_ma_gp():
    m = tiny(d_update="one_step")
    assert m.phases == ("d", "g")
    state = {}
    loss, logs = m.compute_loss("d", batch(), state)
    expected = reference_ma_gp(m.discriminator, batch()["image"], state["sent_emb"]).item()
    assert logs["ma_gp"] == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx(logs["d_adv"] + logs["ma_gp"], rel=1e-6)
    with pytest.raises(T2IError, match="d_update"):
        tiny(d_update="three")


def test_mismatched_pairs_follow_the_official_shift_or_the_roll():
    """Official SSA-GAN: real image i with caption i+1, B-1 pairs; roll: image j with caption j-1."""
    from t2igan.models.dfgan import one_way_discriminator_loss as discriminator_loss

    m = tiny()
    D = m.discriminator
    images, e = batch()["image"], torch.randn(B, 16)
    fake = torch.rand(B, 3, S, S) * 2 - 1
    feats = D.features(images)
    shift_logits = torch.stack([D.logits(feats[i:i + 1], e[i + 1:i + 2])[0] for i in range(B - 1)])
    roll_logits = torch.stack([D.logits(feats[j:j + 1], e[j - 1:j] if j else e[-1:])[0] for j in range(B)])
    _, logs = discriminator_loss(D, images, e, fake, with_gp=False)
    assert logs["d_mismatch"] == pytest.approx(shift_logits.mean().item(), abs=1e-6)
    _, logs = discriminator_loss(D, images, e, fake, mismatch="roll", with_gp=False)
    assert logs["d_mismatch"] == pytest.approx(roll_logits.mean().item(), abs=1e-6)
    assert tiny(mismatch_pairs="shift").config.mismatch_pairs == "shift"
    with pytest.raises(T2IError, match="mismatch_pairs"):
        tiny(mismatch_pairs="random")


def test_joint_mode_trains_the_text_encoder_with_g_only():
    m = tiny(text_encoder_mode="joint", text_encoder_lr=1e-3)
    groups = m.optimizer_groups(TrainConfig())
    te = {id(p) for p in m.text_encoder.parameters()}
    assert te <= {id(p) for g in groups["g"] for p in g["params"]}
    assert not te & {id(p) for g in groups["d"] for p in g["params"]}
    assert [g["lr"] for g in groups["g"]][-1] == 1e-3
    opts = {k: torch.optim.Adam(g) for k, g in groups.items()}
    t0 = snapshot(m.text_encoder)
    state = {}
    step(m, "d", batch(), state, opts)
    assert all(p.grad is None for p in m.text_encoder.parameters())  # D's loss does not reach it
    assert not changed(t0, m.text_encoder)
    step(m, "g", batch(), state, opts)
    assert changed(t0, m.text_encoder)


def test_joint_d_mode_trains_the_text_encoder_with_d():
    m = tiny(text_encoder_mode="joint_d")
    opts = {k: torch.optim.Adam(g) for k, g in m.optimizer_groups(TrainConfig()).items()}
    t0 = snapshot(m.text_encoder)
    step(m, "d", batch(), {}, opts)
    assert changed(t0, m.text_encoder)


def test_damsm_term_uses_a_frozen_image_encoder_outside_optimizers_and_checkpoints():
    m = tiny(text_encoder_mode="joint", damsm_weight=0.1)
    groups = m.optimizer_groups(TrainConfig())
    opts = {k: torch.optim.Adam(g) for k, g in groups.items()}
    state = {}
    step(m, "d", batch(), state, opts)
    with pytest.warns(UserWarning, match="randomly initialised image encoder"):
        logs = step(m, "g", batch(), state, opts)
    assert logs["damsm"] > 0 and logs["g_loss"] == pytest.approx(logs["g_adv"] + 0.1 * logs["damsm"], rel=1e-4)
    enc = m.damsm_critic.encoder
    e0 = snapshot(enc)
    m.train()
    assert not enc.training and not any(p.requires_grad for p in enc.parameters())
    in_opt = {id(p) for gs in groups.values() for g in gs for p in g["params"]}
    assert not {id(p) for p in enc.parameters()} & in_opt
    step(m, "d", batch(1), state, opts)
    step(m, "g", batch(1), state, opts)
    assert not changed(e0, enc)
    assert not any(k.startswith("image_encoder") for k in m.state_dict())


def test_damsm_weight_defaults_follow_the_text_encoder_mode():
    assert tiny(damsm_weight=None).config.damsm_loss_weight == 0.05
    assert tiny(damsm_weight=None, text_encoder_mode="joint").config.damsm_loss_weight == 0.1
    with pytest.raises(T2IError, match="text_encoder_mode"):
        tiny(text_encoder_mode="fine")


def test_presets_resolve_to_the_official_settings():
    cub = resolve_config("ssagan-cub")
    assert cub.model_args["nf"] == 64 and cub.train.batch_size == 24 and cub.data.image_size == 256
    assert cub.train.max_steps == 600 * (8855 // 24)
    coco = resolve_config("ssagan-coco")
    assert coco.train.max_steps == 120 * (82783 // 24) and coco.data.max_words == 12
    for official in (cub, coco):  # the official code's training step and sampler
        args = official.model_args
        assert args.get("mismatch_pairs", "shift") == "shift" and args.get("d_update", "two_steps") == "two_steps"
        assert official.train.ema_decay == 0
    shapes, dfgan = resolve_config("ssagan-shapes"), resolve_config("dfgan-shapes")
    assert shapes.data == dfgan.data and shapes.train == dfgan.train  # a like-for-like comparison
    same = ("nf", "text_encoder_mode", "damsm_weights", "contrastive_weight", "sentence_in_fc", "d_gamma_init")
    assert {k: shapes.model_args.get(k) for k in same} == {k: dfgan.model_args.get(k) for k in same}


def test_save_load_roundtrip_and_masks_cli(tmp_path, capsys):
    out1, out2 = save_and_reload(tiny(), tmp_path, shapes_vocab(V), batch())
    assert torch.equal(out1.images, out2.images)
    assert all(torch.equal(a, b) for a, b in zip(out1.extras["masks"], out2.extras["masks"]))

    out = tmp_path / "s.png"
    assert main(["sample", str(tmp_path), "a red circle", "a green star", "--n", "1", "--masks", "-o", str(out)]) == 0
    from PIL import Image

    grid = Image.open(tmp_path / "s-masks.png").convert("RGB")
    plain = Image.open(out)
    assert grid.width > plain.width  # image + 4 masks per row vs. 2 images
    assert "4 masks per image" in capsys.readouterr().out


def test_masks_grid_rows_are_image_then_grey_masks():
    from t2igan.commands.masks import mask_images

    masks = [torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 8, 8)]
    masks[0][1, 0, :2] = 1
    rows = mask_images(masks, 16)
    assert len(rows) == 2 and all(len(r) == 2 for r in rows)
    first = rows[1][0]
    assert first.size == (16, 16) and first.getpixel((0, 0)) == (255, 255, 255) and first.getpixel((0, 15)) == (0, 0, 0)
    assert rows[0][1].getpixel((5, 5)) == (255, 255, 255)


def test_masks_flag_on_a_model_without_masks_is_a_one_line_error(tmp_path, capsys):
    vocab = Vocabulary(["<pad>", "<unk>", "a", "red", "circle"] + [f"w{i}" for i in range(V - 5)])
    torch.manual_seed(0)
    dfgan = create_model("dfgan", vocab_size=V, image_size=S, nf=4, text_emb_dim=16, text_hidden_dim=8)
    save_run(tmp_path, {"data": {"max_words": 6}}, dfgan, vocab)
    assert main(["sample", str(tmp_path), "a red circle", "--n", "1", "--masks", "-o", str(tmp_path / "x.png")]) == 2
    assert "predicts no masks" in capsys.readouterr().err


def test_trains_end_to_end_on_tiny_shapes(tmp_path):
    cfg = resolve_config("ssagan-shapes", [
        "data.image_size=32", "data.train_args={num_images: 32}", "data.test_args={num_images: 8}",
        "model.nf=4", "model.text_emb_dim=16", "model.text_hidden_dim=8", "model.mask_hidden=8",
        "model.text_encoder_mode=joint_d", "model.damsm_weights=null",
        "train.batch_size=8", "train.max_steps=3", "train.sample_every=3", "train.checkpoint_every=3",
        "train.num_sample_captions=2",
    ])
    run = Trainer(cfg, tmp_path / "run", progress=False).fit()
    assert (run / "samples" / "step-00000003.png").is_file()
    model, _, _ = load_run(run)
    assert model.model_name == "ssagan"


def test_trainer_steps_d_twice_per_iteration_with_the_official_d_update(tmp_path):
    """The trainer runs the d, d_gp, g phases and steps D's one Adam in both D phases."""
    cfg = resolve_config("ssagan-shapes", [
        "data.image_size=32", "data.train_args={num_images: 16}", "data.test_args={num_images: 4}",
        "model.nf=4", "model.text_emb_dim=16", "model.text_hidden_dim=8", "model.mask_hidden=8",
        "model.d_update=two_steps", "model.mismatch_pairs=shift", "model.text_encoder_mode=joint_d",
        "model.damsm_weights=null",
        "train.batch_size=8", "train.max_steps=2", "train.sample_every=2", "train.checkpoint_every=2",
        "train.num_sample_captions=2",
    ])
    trainer = Trainer(cfg, tmp_path / "run", progress=False)
    trainer.fit()
    assert set(trainer.optimizers) == {"d", "g"}
    d_param = next(trainer.model.discriminator.parameters())
    g_param = next(trainer.model.generator.parameters())
    assert trainer.optimizers["d"].state[d_param]["step"].item() == 4  # 2 iterations x (hinge, MA-GP)
    assert trainer.optimizers["g"].state[g_param]["step"].item() == 2


def test_contrastive_term_is_dfgans_off_by_default_and_adds_to_both_phases():
    """SSA-GAN shares DF-GAN's optional image-sentence contrastive term: off by default (no D heads,
    keys unchanged); on, D's hinge + MA-GP and G's hinge + DAMSM each gain weight x InfoNCE."""
    assert not any("proj" in k for k in tiny().state_dict())
    m = tiny(contrastive_weight=0.5, contrastive_dim=8, d_update="one_step", damsm_weight=0.1)
    state = {}
    loss_d, logs_d = m.compute_loss("d", batch(), state)
    assert logs_d["d_loss"] == pytest.approx(logs_d["d_adv"] + logs_d["ma_gp"] + 0.5 * logs_d["d_contrastive"], rel=1e-5)
    loss_d.backward()
    assert m.discriminator.image_proj.weight.grad.abs().sum() > 0
    assert m.discriminator.text_proj.weight.grad.abs().sum() > 0
    m.zero_grad()
    with pytest.warns(UserWarning, match="randomly initialised image encoder"):
        loss_g, logs_g = m.compute_loss("g", batch(), state)
    assert logs_g["g_loss"] == pytest.approx(logs_g["g_adv"] + 0.5 * logs_g["g_contrastive"] + 0.1 * logs_g["damsm"],
                                             rel=1e-5)
    loss_g.backward()
    assert m.generator.fc.weight.grad.abs().sum() > 0


def test_sentence_in_fc_is_shared_with_dfgan():
    """DF-GAN's option: G's first FC reads [z, sent_emb], so two captions start from different 4x4 maps."""
    for on in (False, True):
        G = tiny(sentence_in_fc=on).generator.eval()
        assert G.fc.in_features == 100 + (16 if on else 0)  # z 100, sentence 2 x 8
        first = {}
        G.fc.register_forward_hook(lambda mod, inp, out: first.setdefault("map", out))
        G(torch.randn(1, 100).expand(2, -1), torch.randn(2, 16))
        assert torch.allclose(first["map"][0], first["map"][1]) != on
