import math

import pytest
import torch
from conftest import make_batch

import t2igan.losses as losses_module
from t2igan import create_model
from t2igan.config import TrainConfig, resolve_config
from t2igan.errors import T2IError
from t2igan.runs import load_run, save_run
from t2igan.data.text import Vocabulary

B, S, V = 4, 32, 30


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(vocab_size=V, image_size=S, nf=8, text_emb_dim=16, text_hidden_dim=8)
    args.update(kw)
    return create_model("dfgan", **args)


def batch(seed=0):
    return make_batch(V, (6, 4, 5, 3), S, seed, zero_pad=False)


def test_generator_and_discriminator_shapes():
    m = tiny()
    out = m.generate(batch()["tokens"], batch()["lengths"], m.noise(B))
    assert out.images.shape == (B, 3, S, S)
    assert out.images.abs().max() <= 1
    feats = m.discriminator.features(out.images)
    assert feats.shape == (B, 8 * 8, 4, 4)
    assert m.discriminator.logits(feats, torch.randn(B, 16)).shape == (B,)


def test_bad_image_size_is_refused():
    with pytest.raises(T2IError, match=r"invalid model.image_size=48: expected an integer: a power of two >= 16"):
        tiny(image_size=48)
    with pytest.raises(T2IError, match="unknown model"):
        create_model("nope")
    with pytest.raises(T2IError, match=r"unknown model config keys: \['not_a_field'\]"):
        create_model("dfgan", not_a_field=1)


def test_d_and_g_steps_update_only_their_networks():
    m = tiny()
    opts = {k: torch.optim.Adam(g) for k, g in m.optimizer_groups(TrainConfig()).items()}
    g0 = [p.clone() for p in m.generator.parameters()]
    d0 = [p.clone() for p in m.discriminator.parameters()]
    t0 = [p.clone() for p in m.text_encoder.parameters()]
    state = {}
    loss, logs = m.compute_loss("d", batch(), state)
    assert torch.isfinite(loss) and logs["ma_gp"] >= 0
    opts["d"].zero_grad(); loss.backward(); opts["d"].step()
    assert all(torch.equal(a, b) for a, b in zip(g0, m.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, m.discriminator.parameters()))
    d1 = [p.clone() for p in m.discriminator.parameters()]
    loss, logs = m.compute_loss("g", batch(), state)
    opts["g"].zero_grad(); loss.backward(); opts["g"].step()
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.generator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(d1, m.discriminator.parameters()))
    # frozen text encoder (the official setting) never changes
    assert all(torch.equal(a, b) for a, b in zip(t0, m.text_encoder.parameters()))


def test_joint_text_encoder_is_trained_by_d():
    m = tiny(text_encoder_mode="joint_d")
    opts = {k: torch.optim.Adam(g) for k, g in m.optimizer_groups(TrainConfig()).items()}
    t0 = [p.clone() for p in m.text_encoder.parameters()]
    loss, _ = m.compute_loss("d", batch(), {})
    opts["d"].zero_grad(); loss.backward(); opts["d"].step()
    assert any(not torch.equal(a, b) for a, b in zip(t0, m.text_encoder.parameters()))


def test_d_loss_sees_mismatched_pairs(monkeypatch):
    m = tiny()
    torch.manual_seed(1)
    _, logs = m.compute_loss("d", batch(), {})
    assert logs["d_mismatch"] != logs["d_real"]
    # with the mismatch replaced by the matched sentence, the mismatch logits equal the real ones
    monkeypatch.setattr(losses_module, "mismatched", lambda x: x)
    torch.manual_seed(1)
    _, same = m.compute_loss("d", batch(), {})
    assert same["d_mismatch"] == pytest.approx(same["d_real"], abs=1e-6)
    assert same["d_loss"] != pytest.approx(logs["d_loss"])


@pytest.mark.slow
def test_tiny_overfit_each_player_improves_against_a_fixed_opponent():
    """D alone learns to separate one real batch from G's images; G alone learns to fool a fixed D."""
    m = tiny()
    b = batch()
    opt_d = torch.optim.Adam(m.discriminator.parameters(), 1e-3, betas=(0.0, 0.9))
    first = None
    for _ in range(60):
        torch.manual_seed(0)
        loss, logs = m.compute_loss("d", dict(b), {})
        opt_d.zero_grad(); loss.backward(); opt_d.step()
        first = first if first is not None else logs["d_adv"]
    assert logs["d_adv"] < 0.6 * first
    opt_g = torch.optim.Adam(m.generator.parameters(), 1e-3, betas=(0.0, 0.9))
    g_first = None
    for _ in range(30):
        torch.manual_seed(0)
        state = {}
        m.compute_loss("d", dict(b), state)
        loss, logs = m.compute_loss("g", dict(b), state)
        opt_g.zero_grad(); loss.backward(); opt_g.step()
        g_first = g_first if g_first is not None else logs["g_loss"]
    assert logs["g_loss"] < g_first - 0.1


def truncnorm_std(bound: float) -> float:
    """Standard deviation of N(0, 1) truncated to [-bound, bound] (closed form)."""
    phi = math.exp(-bound * bound / 2) / math.sqrt(2 * math.pi)
    mass = math.erf(bound / math.sqrt(2))
    return math.sqrt(1 - 2 * bound * phi / mass)


def test_truncated_noise_official_form_is_scaled_truncnorm_and_seeded():
    """Official DF-GAN sampler: ``0.88 * truncnorm(-2, 2)`` (std 0.77), the default form."""
    m = tiny()
    assert m.config.truncation_form == "scaled"
    z = m.noise(20000, truncation=0.88, generator=torch.Generator().manual_seed(3))
    assert z.abs().max() <= 2 * 0.88 + 1e-5 and z.abs().max() > 1.7
    assert z.std().item() == pytest.approx(0.88 * truncnorm_std(2.0), rel=0.02)  # 0.774
    z2 = m.noise(20000, truncation=0.88, generator=torch.Generator().manual_seed(3))
    assert torch.equal(z, z2)


def test_truncated_noise_clip_form_is_narrower():
    m = tiny(truncation_form="clip")
    z = m.noise(20000, truncation=0.88, generator=torch.Generator().manual_seed(3))
    assert z.abs().max() <= 0.88 + 1e-6
    assert z.std().item() == pytest.approx(truncnorm_std(0.88), rel=0.02)  # 0.48
    with pytest.raises(T2IError, match="truncation_form"):
        tiny(truncation_form="wide")


def test_dfgan_cub_coco_presets_sample_and_train_as_the_official_code():
    """Official DF-GAN: scaled truncated noise, no moving average of G; dfgan-shapes keeps clip."""
    for name in ("dfgan-cub", "dfgan-coco"):
        cfg = resolve_config(name)
        assert cfg.model_args["truncation_form"] == "scaled" and cfg.train.ema_decay == 0
    assert resolve_config("dfgan-shapes").model_args["truncation_form"] == "clip"


def test_save_load_roundtrip_is_bit_exact(tmp_path):
    m = tiny()
    vocab = Vocabulary(["<pad>", "<unk>"] + [f"w{i}" for i in range(V - 2)])
    ema = tiny().generator  # a different generator plays the moving average
    save_run(tmp_path, {"data": {"max_words": 6}}, m, vocab, ema)
    m2, vocab2, _ = load_run(tmp_path)
    sd, sd2 = m.state_dict(), m2.state_dict()
    for k in sd:
        expected = ema.state_dict()[k[len("generator."):]] if k.startswith("generator.") else sd[k]
        assert torch.equal(expected, sd2[k]), k
    assert vocab2.words == vocab.words
    noise = m.noise(B, generator=torch.Generator().manual_seed(0))
    m.eval()
    out1 = m.generate(batch()["tokens"], batch()["lengths"], noise, ema)
    out2 = m2.generate(batch()["tokens"], batch()["lengths"], noise)
    assert torch.equal(out1.images, out2.images)


def test_load_run_errors_are_one_line(tmp_path):
    with pytest.raises(T2IError, match="run folder not found"):
        load_run(tmp_path / "nothing")
    with pytest.raises(T2IError, match="config.json is missing"):
        load_run(tmp_path)
    m = tiny()
    save_run(tmp_path, {}, m, Vocabulary(["<pad>", "<unk>"] + [f"w{i}" for i in range(V - 2)]))
    (tmp_path / "model.safetensors").write_bytes(b"garbage" * 10)
    with pytest.raises(T2IError, match="model.safetensors"):
        load_run(tmp_path)


def test_contrastive_term_is_off_by_default_and_trains_d_heads_and_g():
    plain = tiny()
    assert not any("proj" in k for k in plain.state_dict())  # default weights keep their names
    m = tiny(contrastive_weight=1.0, contrastive_dim=8)
    state = {}
    loss_d, logs_d = m.compute_loss("d", batch(), state)
    assert "d_contrastive" in logs_d and logs_d["d_loss"] > logs_d["d_adv"]
    loss_d.backward()
    assert m.discriminator.image_proj.weight.grad.abs().sum() > 0
    assert m.discriminator.text_proj.weight.grad.abs().sum() > 0
    m.zero_grad()
    loss_g, logs_g = m.compute_loss("g", batch(), state)
    assert abs(logs_g["g_loss"] - logs_g["g_adv"] - logs_g["g_contrastive"]) < 1e-5
    loss_g.backward()
    assert m.generator.fc.weight.grad.abs().sum() > 0


def test_damsm_term_is_off_by_default_and_when_on_scores_g_with_a_frozen_image_encoder():
    state = {}
    plain = tiny()
    plain.compute_loss("d", batch(), state)
    _, logs = plain.compute_loss("g", batch(), state)
    assert "damsm" not in logs  # DF-GAN's paper has no DAMSM term
    m = tiny(damsm_weight=0.5, damsm_backbone="small_cnn")
    state = {}
    m.compute_loss("d", batch(), state)
    with pytest.warns(UserWarning, match="randomly initialised image encoder"):
        loss_g, logs_g = m.compute_loss("g", batch(), state)
    assert logs_g["damsm"] > 0
    assert logs_g["g_loss"] == pytest.approx(logs_g["g_adv"] + 0.5 * logs_g["damsm"], rel=1e-5)
    loss_g.backward()
    enc = m.damsm_critic.encoder
    assert all(p.grad is None for p in enc.parameters())  # the image encoder is frozen
    assert not any(k.startswith("damsm_critic") for k in m.state_dict())
    m.zero_grad()
    m.config.damsm_weight = 0.0  # weight 0: the adversarial term alone
    loss_plain, _ = m.compute_loss("g", batch(), state)
    assert loss_plain.item() == pytest.approx(logs_g["g_adv"], rel=1e-5)


def test_sentence_in_fc_makes_the_first_4x4_map_follow_the_caption():
    """Officially G's first FC reads the noise only, so the 4x4 map is the same for every caption;
    with ``sentence_in_fc`` it reads [z, sent_emb]."""
    noise, sent = torch.randn(1, 100).expand(2, -1), torch.randn(2, 16)
    for on in (False, True):
        G = tiny(sentence_in_fc=on).generator
        assert G.fc.in_features == 100 + (16 if on else 0)
        first = {}
        G.fc.register_forward_hook(lambda mod, inp, out: first.setdefault("map", out))
        G(noise, sent)
        assert torch.allclose(first["map"][0], first["map"][1]) != on


def test_d_gamma_init_opens_the_residual_branches_of_d():
    """Officially D's residual gates start at 0 (D starts as its linear shortcut); d_gamma_init sets them."""
    assert all(b.gamma.item() == 0 for b in tiny().discriminator.blocks)
    D = tiny(d_gamma_init=1.0).discriminator
    assert all(b.gamma.item() == 1 for b in D.blocks)
    x = torch.randn(2, 3, S, S)
    # an open gate makes D's features depend on the pixels non-linearly: f(2x) != 2 f(x) - f(0)
    f0 = D.features(torch.zeros_like(x))
    assert not torch.allclose(D.features(2 * x) - f0, 2 * (D.features(x) - f0), atol=1e-4)
    closed = tiny().discriminator
    f0 = closed.features(torch.zeros_like(x))
    assert torch.allclose(closed.features(2 * x) - f0, 2 * (closed.features(x) - f0), atol=1e-4)


def test_d_translate_shifts_d_inputs_by_whole_pixels_keeping_colours_and_gradients():
    from t2igan.models.dfgan import random_translate

    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8, requires_grad=True)
    assert random_translate(x, 0.0) is x  # off: the images themselves, no random numbers drawn
    y = random_translate(x, 0.25)  # at most 2 px each way
    for i in range(16):
        assert any(torch.equal(y[i, :, 2:6, 2:6], x[i, :, 2 - dy:6 - dy, 2 - dx:6 - dx])
                   for dx in range(-2, 3) for dy in range(-2, 3)), i  # the middle: the image moved by whole pixels
        assert set(y[i].flatten().tolist()) <= set(x[i].flatten().tolist())  # no new colours (edges repeated)
    assert len({tuple(r.flatten().tolist()) for r in (y - x).detach()}) > 1  # each image its own shift
    y.sum().backward()
    assert x.grad.sum().item() == pytest.approx(16 * 3 * 64)  # every output pixel came from one input pixel
    # in the model: D's inputs move, the loss stays finite and G still gets gradients through the shift
    m = tiny(d_translate=0.125)
    state = {}
    m.compute_loss("d", batch(), state)
    loss_g, _ = m.compute_loss("g", batch(), state)
    loss_g.backward()
    assert m.generator.fc.weight.grad.abs().sum() > 0


def test_contrastive_d_learns_to_pair_images_with_their_captions():
    """A few D steps on a fixed batch whose images differ: D's contrastive loss falls well below log(B)."""
    m = tiny(contrastive_weight=1.0, contrastive_dim=8, text_encoder_mode="joint_d", text_dropout=0.0)
    data = batch()
    opt = torch.optim.Adam([p for n, p in m.named_parameters() if not n.startswith("generator")], lr=3e-3)
    first = None
    for _ in range(60):
        loss, logs = m.compute_loss("d", data, {})
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first if first is not None else logs["d_contrastive"]
    assert first > 1.0 and logs["d_contrastive"] < 0.25 * first


def test_contrastive_embedding_sees_where_things_are_unless_summed():
    """Flattened 4x4 features tell a mirrored image apart (positions, relations); summed ones cannot."""
    for pool, position_blind in (("flatten", False), ("sum", True)):
        m = tiny(contrastive_weight=1.0, contrastive_dim=8, contrastive_pool=pool)
        D = m.discriminator
        feats = torch.randn(2, D.image_proj.in_features // (16 if pool == "flatten" else 1), 4, 4)
        sent = torch.randn(2, 16)
        a, _ = D.embeddings(feats, sent)
        b, _ = D.embeddings(feats.flip(3), sent)
        assert torch.allclose(a, b, atol=1e-6) == position_blind
