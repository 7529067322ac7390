"""Options that make G use its noise (t2igan.models.dfgan): the loss terms and blocks behave as their
papers say, and DF-GAN's G step uses them."""

import pytest
import torch
from conftest import make_batch

from t2igan import create_model
from t2igan.models.dfgan import NoiseInjection, diversity_sensitive_loss, minibatch_std, mode_seeking_loss

B, S, V = 4, 32, 30


def tiny(**kw):
    torch.manual_seed(0)
    return create_model("dfgan", vocab_size=V, image_size=S, nf=8, text_emb_dim=16, text_hidden_dim=8, **kw)


def test_mode_seeking_loss_falls_as_images_move_apart():
    z_a, z_b = torch.zeros(4, 10), torch.ones(4, 10)  # mean |z_a - z_b| = 1
    same = torch.zeros(4, 3, 8, 8)
    assert mode_seeking_loss(same, same, z_a, z_b) == pytest.approx(1e5)  # 1 / eps: collapse costs most
    near, far = mode_seeking_loss(same, same + 0.1, z_a, z_b), mode_seeking_loss(same, same + 0.5, z_a, z_b)
    assert near == pytest.approx(1 / (0.1 + 1e-5)) and far == pytest.approx(1 / (0.5 + 1e-5))
    moving = (same + 0.2).requires_grad_(True)
    mode_seeking_loss(same, moving, z_a, z_b).backward()
    assert (moving.grad < 0).all()  # pushes the second image further from the first


def test_diversity_sensitive_loss_is_bounded_by_tau():
    z_a, z_b = torch.zeros(2, 10), torch.full((2, 10), 2.0)  # |z_a - z_b| = 2 per pair
    a = torch.zeros(2, 3, 4, 4)
    b = torch.stack([torch.full((3, 4, 4), 0.5), torch.full((3, 4, 4), 4.0)])  # ratios 0.25 and 2
    assert diversity_sensitive_loss(a, b, z_a, z_b, tau=1.0) == pytest.approx(-(0.25 + 1.0) / 2)
    assert diversity_sensitive_loss(a, a, z_a, z_b) == 0.0
    b = b.requires_grad_(True)
    diversity_sensitive_loss(a, b, z_a, z_b, tau=1.0).backward()
    assert (b.grad[0] < 0).all() and (b.grad[1] == 0).all()  # past tau, no more push


def test_minibatch_std_sees_a_collapsed_batch():
    varied = torch.randn(8, 5, 4, 4)
    collapsed = varied[:1].expand(8, -1, -1, -1)
    out_varied, out_collapsed = minibatch_std(varied, 4), minibatch_std(collapsed, 4)
    assert out_varied.shape == (8, 6, 4, 4) and torch.equal(out_varied[:, :5], varied)
    assert (out_varied[:, 5] > 0.3).all() and (out_collapsed[:, 5] < 1e-3).all()
    assert minibatch_std(torch.randn(6, 5, 4, 4), 4).shape == (6, 6, 4, 4)  # 6 images: groups of 3
    # each image gets the statistic of its own group (images i and i + B/g)
    two_groups = torch.cat([torch.zeros(1, 5, 4, 4), torch.ones(1, 5, 4, 4)]).repeat(2, 1, 1, 1)  # (4, ...)
    assert torch.allclose(minibatch_std(two_groups, 2)[:, 5], torch.full((4, 4, 4), 1e-4), atol=1e-4)


def test_noise_injection_starts_as_the_identity():
    block, h = NoiseInjection(5), torch.randn(2, 5, 4, 4)
    assert torch.equal(block(h), h)
    with torch.no_grad():
        block.weight.fill_(1.0)
    torch.manual_seed(0)
    a = block(h)
    torch.manual_seed(1)
    assert not torch.equal(a, block(h)) and torch.allclose((a - h)[:, 0], (a - h)[:, 4])  # one map per image


@pytest.mark.parametrize("options, log", [({"mode_seeking_weight": 1.0}, "g_mode_seeking"),
                                          ({"diversity_sensitive_weight": 2.0}, "g_diversity_sensitive")])
def test_dfgan_g_step_adds_the_noise_term(options, log):
    batch = make_batch(V, (6, 4, 5, 3), S, 0, zero_pad=False)
    plain, varied = tiny(), tiny(**options)
    state_plain, state_varied = {}, {}
    torch.manual_seed(1)
    plain.compute_loss("d", batch, state_plain)
    torch.manual_seed(1)
    varied.compute_loss("d", batch, state_varied)
    loss_plain, logs_plain = plain.compute_loss("g", batch, state_plain)
    loss_varied, logs = varied.compute_loss("g", batch, state_varied)
    assert log not in logs_plain and log in logs
    weight = next(iter(options.values()))
    assert loss_varied.item() == pytest.approx(loss_plain.item() + weight * logs[log], rel=1e-5)
    loss_varied.backward()
    assert all(p.grad is not None for p in varied.generator.parameters())


def test_dfgan_options_change_only_their_networks():
    base = tiny()
    with_std, with_noise = tiny(d_minibatch_std=4), tiny(g_noise_injection=True)
    extra_d = set(with_std.discriminator.state_dict()) ^ set(base.discriminator.state_dict())
    assert not extra_d  # one more input channel in the joint head, no new weights
    assert with_std.discriminator.joint[0].in_channels == base.discriminator.joint[0].in_channels + 1
    extra_g = set(with_noise.generator.state_dict()) - set(base.generator.state_dict())
    assert extra_g and all(k.endswith("weight") and ".noise" in k for k in extra_g)
    batch = make_batch(V, (6, 4, 5, 3), S, 0, zero_pad=False)
    loss, _ = with_std.compute_loss("d", batch, {})
    assert torch.isfinite(loss)


def test_contrastive_floor_floods_gs_contrastive_term():
    from t2igan.models.dfgan import one_way_generator_loss

    m = tiny(contrastive_weight=1.0)
    fake, sent = torch.randn(B, 3, S, S), torch.randn(B, 16)
    _, plain = one_way_generator_loss(m.discriminator, fake, sent, contrastive_weight=1.0)
    low, high = plain["g_contrastive"] - 0.5, plain["g_contrastive"] + 0.5
    _, above = one_way_generator_loss(m.discriminator, fake, sent, contrastive_weight=1.0, contrastive_floor=low)
    _, below = one_way_generator_loss(m.discriminator, fake, sent, contrastive_weight=1.0, contrastive_floor=high)
    assert above["g_contrastive"] == pytest.approx(plain["g_contrastive"])  # above the floor: unchanged
    assert below["g_contrastive"] == pytest.approx(2 * high - plain["g_contrastive"])  # below: |L - b| + b


@pytest.mark.parametrize("option", [{"diversity_sensitive_tau": 0}, {"mode_seeking_weight": -1},
                                    {"d_minibatch_std": -2}, {"g_noise_injection": "sometimes"}])
def test_a_bad_noise_option_is_one_error(option):
    from t2igan.errors import T2IError

    with pytest.raises(T2IError, match=next(iter(option))):
        tiny(**option)


@pytest.mark.parametrize("name", ["attngan", "mirrorgan", "drgan"])
def test_ca_sample_draws_conditioning_augmentation_from_the_seeded_noise(name):
    from conftest import TINY_MODELS

    batch = make_batch(V)
    plain = create_model(name, vocab_size=V, **TINY_MODELS[name]).eval()
    model = create_model(name, vocab_size=V, **{**TINY_MODELS[name], "ca_sample": True}).eval()
    z_dim, c_dim = model.config.z_dim, model.config.c_dim
    assert plain.noise(4, None, torch.Generator().manual_seed(0)).shape == (4, z_dim)
    noise = model.noise(4, None, torch.Generator().manual_seed(0))
    assert noise.shape == (4, z_dim + c_dim)
    assert torch.equal(noise, model.noise(4, None, torch.Generator().manual_seed(0)))  # a seed fixes it
    with torch.no_grad():
        text = model.encode_text(batch["tokens"], batch["lengths"])
        image = model.generate_from_text(text, noise).images
        again = model.generate_from_text(text, noise).images
        other_eps = torch.cat([noise[:, :z_dim], torch.randn(4, c_dim)], dim=1)
        moved = model.generate_from_text(text, other_eps).images
    assert torch.equal(image, again)  # eval mode: nothing random beyond the noise
    assert not torch.allclose(image, moved)  # same z, another eps: another image
