import torch

from t2igan.losses import kl_normal_loss, mismatched
from t2igan.models.dfgan import d_hinge_loss, g_hinge_loss, matching_aware_gradient_penalty


def test_hinge_losses_by_hand():
    real = torch.tensor([2.0, 0.5])  # relu(1 - x): 0, 0.5 -> mean 0.25
    fake = torch.tensor([-2.0, 0.0])  # relu(1 + x): 0, 1 -> mean 0.5
    mis = torch.tensor([1.0, -1.0])  # relu(1 + x): 2, 0 -> mean 1
    assert torch.isclose(d_hinge_loss(real, fake, mis), torch.tensor(0.25 + 0.5 * (0.5 + 1.0)))
    assert torch.isclose(d_hinge_loss(real, fake), torch.tensor(0.75))
    assert torch.isclose(g_hinge_loss(fake), torch.tensor(1.0))


def test_ma_gp_matches_closed_form_for_a_linear_discriminator():
    # D(x, e) = <a, x> + <b, e>: the gradient is (a, b) for every sample
    torch.manual_seed(0)
    x = torch.randn(3, 2, 4, 4, requires_grad=True)
    e = torch.randn(3, 5, requires_grad=True)
    a, b = torch.randn(2, 4, 4), torch.randn(5)
    logits = (x * a).flatten(1).sum(1) + e @ b
    gp = matching_aware_gradient_penalty(logits, x, e, k=2.0, p=6.0)
    norm = torch.sqrt(a.pow(2).sum() + b.pow(2).sum())
    assert torch.isclose(gp, 2.0 * norm**6, rtol=1e-5)


def test_kl_is_zero_for_standard_normal_and_positive_otherwise():
    assert kl_normal_loss(torch.zeros(4, 3), torch.zeros(4, 3)).abs() < 1e-7
    assert kl_normal_loss(torch.ones(4, 3), torch.zeros(4, 3)) > 0


def test_mismatched_pairs_every_sample_with_another():
    x = torch.arange(4)
    m = mismatched(x)
    assert (m != x).all() and sorted(m.tolist()) == x.tolist()


def test_contrastive_loss_by_hand_and_its_extremes():
    from t2igan.models.dfgan import contrastive_loss

    torch.manual_seed(0)
    img, txt = torch.randn(5, 8), torch.randn(5, 8)
    sim = torch.nn.functional.normalize(img, dim=1) @ torch.nn.functional.normalize(txt, dim=1).t() / 0.1
    i2t = -(sim.diag() - sim.logsumexp(dim=1)).mean()
    t2i = -(sim.diag() - sim.logsumexp(dim=0)).mean()
    assert torch.allclose(contrastive_loss(img, txt, 0.1), (i2t + t2i) / 2, atol=1e-6)
    assert torch.allclose(contrastive_loss(img, txt, 0.1, symmetric=False), i2t, atol=1e-6)
    # matching embeddings far apart from each other: near 0; every caption alike: log(B)
    eye = torch.eye(5) * 10
    assert contrastive_loss(eye, eye, 0.1) < 1e-3
    same = torch.ones(5, 8)
    assert torch.allclose(contrastive_loss(img, same, 0.1, symmetric=False), torch.log(torch.tensor(5.0)), atol=1e-5)
