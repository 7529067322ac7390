"""The DF-GAN family's projected discriminator (``model.d_backbone``,
:class:`t2igan.models.dfgan.ProjectedDiscriminator`): which maps of the frozen DAMSM backbones it reads,
the fixed cross-channel and cross-scale mixing, the augmentation before the backbone, one logit per
scale, the builder loading the DAMSM's backbone, and the checks on its inputs. The model contract
(frozen, moved, never saved, each phase) is in ``tests/test_model_contract.py``."""

from types import SimpleNamespace

import pytest
import torch

from t2igan import create_model
from t2igan.errors import T2IError
from t2igan.models.dfgan import (ProjectedDiscriminator, augment_policy, build_d_backbone, d_hinge_loss,
                                 matching_aware_gradient_penalty, one_way_discriminator, random_cutout)
from t2igan.nn.image_encoder import InceptionBackbone, SmallCNN
from t2igan.training.build import build_model

B = 4


def small_backbone(size: int = 64, channels: int = 4, seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    return SmallCNN(size, channels).requires_grad_(False).eval()


def projected_d(backbone=None, **kwargs) -> ProjectedDiscriminator:
    torch.manual_seed(1)
    return ProjectedDiscriminator(backbone or small_backbone(), nf=4, cond_dim=8, image_size=32, **kwargs)


def test_small_cnn_maps_are_the_last_activation_at_each_side():
    """A 64 px small CNN gives 4 maps, sides 32, 16, 8 and 4; the 8 x 8 one is the DAMSM's regions (before
    their projection) and the 4 x 4 one the map its global feature is the mean of; a 32 px image is read
    at the CNN's 64 px."""
    cnn = small_backbone()
    images = torch.rand(B, 3, 32, 32) * 2 - 1
    maps = cnn.feature_maps(images)
    assert [m.shape[-1] for m in maps] == [32, 16, 8, 4] and [m.shape[1] for m in maps] == [4, 8, 16, 32]
    local, glob = cnn(images)
    torch.testing.assert_close(maps[2], local)
    torch.testing.assert_close(maps[3].mean(dim=(2, 3)), glob)


def test_inception_maps_are_mixed_5d_6e_7c():
    torch.manual_seed(0)
    inception = InceptionBackbone()
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    maps = inception.feature_maps(images)
    assert [tuple(m.shape[1:]) for m in maps] == [(288, 35, 35), (768, 17, 17), (2048, 8, 8)]
    local, glob = inception(images)
    torch.testing.assert_close(maps[1], local)  # Mixed_6e: the DAMSM's regions
    torch.testing.assert_close(maps[2].mean(dim=(2, 3)), glob)
    D = ProjectedDiscriminator(inception, nf=4, cond_dim=8, image_size=64).eval()
    assert D.sides == [35, 17, 8] and [len(h) for h in D.heads] == [3, 2, 1]  # each head ends at 4 x 4
    assert D.features(torch.rand(1, 3, 64, 64) * 2 - 1).shape == (1, sum(D.out_chs), 4, 4)


def test_one_logit_per_scale_and_the_hinge_averages_over_scales():
    """[Projected GAN, Eq. 2] sums one discriminator's loss per scale; with DF-GAN's hinge the terms are
    averaged, as the official code averages over its discriminators' logits. The scales: the small CNN's
    4 maps and the pooled image."""
    D = projected_d().train()
    images = (torch.rand(B, 3, 32, 32) * 2 - 1).requires_grad_(True)
    sent = torch.randn(B, 8, requires_grad=True)
    logits = D.logits(D.features(images), sent)
    assert logits.shape == (B, 5)
    per_scale = torch.stack([d_hinge_loss(logits[:, k], -logits[:, k]) for k in range(5)])
    torch.testing.assert_close(d_hinge_loss(logits, -logits), per_scale.mean())
    gp = matching_aware_gradient_penalty(logits, images, sent)  # MA-GP through the frozen backbone
    assert torch.isfinite(gp) and gp > 0


def test_gradients_reach_the_images_through_the_frozen_backbone_but_not_its_weights():
    backbone = small_backbone()
    D = projected_d(backbone).train()
    images = (torch.rand(B, 3, 32, 32) * 2 - 1).requires_grad_(True)
    D.logits(D.features(images), torch.randn(B, 8)).sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(p.grad is None for p in backbone.parameters())
    assert all(p.grad is not None for p in D.parameters())  # every head and scale takes part


def test_cross_scale_mixing_carries_the_coarsest_map_to_the_finest(monkeypatch):
    """CSM [Projected GAN, Sec. 3.2]: every mixed map also receives the coarser ones; with all backbone
    maps zero but the coarsest, the finest mixed map still varies with it (CCM alone would give a
    constant, its bias)."""
    D = projected_d().eval()
    sides, chans = D.sides, [p.weight.shape[1] for p in D.ccm]

    def maps(images):
        out = [torch.zeros(images.shape[0], c, s, s) for c, s in zip(chans, sides)]
        out[-1] = images[:, :1, :sides[-1], :sides[-1]].expand(-1, chans[-1], -1, -1) * 3
        return out

    monkeypatch.setattr(D.backbone, "feature_maps", maps)
    finest = D.projected(torch.rand(B, 3, 32, 32))[0]
    assert finest.shape[-1] == sides[0]
    assert finest.std(dim=(2, 3)).min() > 0
    flat = D.projected(torch.zeros(B, 3, 32, 32))[0]  # every map zero: the projections' biases, a constant
    assert flat.std(dim=(2, 3)).max() < 1e-6


def test_the_pooled_image_shows_d_what_the_backbone_barely_sees():
    """A uniform brightening leaves a group-normalised backbone's maps nearly as they were; D's pixel
    head sees it (the reason it is there)."""
    D = projected_d().eval()
    images = torch.rand(B, 3, 32, 32) - 0.5
    feats, feats_b = D.features(images), D.features(images + 0.4)
    backbone = slice(0, sum(D.out_chs[:-1]))
    pixels = slice(sum(D.out_chs[:-1]), None)
    rel = lambda a, b: ((a - b).norm() / a.norm()).item()  # noqa: E731
    assert rel(feats[:, pixels], feats_b[:, pixels]) > 3 * rel(feats[:, backbone], feats_b[:, backbone])


def test_augmentation_only_while_training_and_cutout_cuts_one_square():
    D = projected_d()
    images = torch.rand(B, 3, 32, 32) * 2 - 1
    assert torch.equal(D.eval().augment(images), images)
    torch.manual_seed(0)
    assert not torch.equal(D.train().augment(images), images)

    ones = torch.ones(64, 3, 32, 32, requires_grad=True)
    cut = random_cutout(ones, 0.5)
    holes = (cut[:, 0] == 0)
    assert (cut[:, 0] == cut[:, 1]).all() and holes.any(dim=(1, 2)).all()
    rows, cols = holes.any(dim=2).sum(dim=1), holes.any(dim=1).sum(dim=1)
    assert (holes.sum(dim=(1, 2)) == rows * cols).all()  # a rectangle ...
    assert rows.max() == 16 and cols.max() == 16 and (rows <= 16).all() and (cols <= 16).all()  # ... of half the side, cut by the border
    cut.sum().backward()
    assert torch.equal(ones.grad, cut.detach())  # differentiable: the gradient is the mask


def test_d_augment_chooses_the_transforms():
    assert augment_policy("translation,cutout") == {"translation", "cutout"}
    assert augment_policy("none") == set() and augment_policy("cutout") == {"cutout"}
    assert augment_policy("translation,color") is None
    config = SimpleNamespace(nf=4, cond_dim=8, image_size=32, d_augment="none",
                             discriminator_args=lambda: {"contrastive_dim": 0})
    D = one_way_discriminator(config, small_backbone()).train()
    images = torch.rand(B, 3, 32, 32) * 2 - 1
    assert (D.translate, D.cutout) == (0.0, 0.0) and torch.equal(D.augment(images), images)
    config.d_augment = "translation"
    assert (one_way_discriminator(config, small_backbone()).translate,
            one_way_discriminator(config, small_backbone()).cutout) == (0.125, 0.0)


def test_random_backbone_is_the_architecture_asked_for_drawn_from_a_fixed_seed():
    """``build_d_backbone``: the same weights whatever the global random state (which it leaves as it
    was), frozen, in eval mode."""
    config = SimpleNamespace(d_backbone="damsm_random", damsm_backbone="small_cnn", damsm_image_size=64,
                             damsm_cnn_channels=4, image_size=32)
    torch.manual_seed(5)
    a = build_d_backbone(config)
    after = torch.rand(1)
    torch.manual_seed(5)
    torch.rand(1)
    torch.manual_seed(123)
    b = build_d_backbone(config)
    sa, sb = a.state_dict(), b.state_dict()
    assert isinstance(a, SmallCNN) and a.image_size == 64 and a.local[0].out_channels == 4
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    torch.manual_seed(5)
    assert torch.equal(torch.rand(1), after)  # the global stream went on as if nothing was drawn
    assert not any(p.requires_grad for p in a.parameters()) and not a.training
    assert build_d_backbone(SimpleNamespace(d_backbone="none")) is None


def damsm_run(tmp_path, image_size: int = 32):
    """A tiny small-CNN DAMSM run folder (random weights) and its vocabulary."""
    from t2igan.data.text import Vocabulary
    from t2igan.models.damsm import DAMSM, DAMSMConfig
    from t2igan.runs import save_run

    vocab = Vocabulary(["<pad>", "<unk>"] + [f"w{i}" for i in range(28)])
    torch.manual_seed(3)
    damsm = DAMSM(DAMSMConfig(vocab_size=len(vocab), embed_dim=16, text_emb_dim=8, text_hidden_dim=8,
                              backbone="small_cnn", image_size=image_size, cnn_channels=4)).eval()
    save_run(tmp_path / "damsm", {"data": {"max_words": 18}}, damsm, vocab)
    return tmp_path / "damsm", damsm, vocab


def test_the_builder_gives_d_the_damsm_runs_backbone_and_a_run_folder_loads_without_it(tmp_path):
    """``d_backbone=damsm``: D reads the backbone of the ``damsm_weights`` run's image encoder; the run's
    architecture is written into the config, so a saved GAN run, loaded without its DAMSM (``load_run``
    drops ``*_weights``), rebuilds a D of the same shapes and loads bit for bit."""
    from t2igan.runs import load_run, save_run

    path, damsm, vocab = damsm_run(tmp_path)
    model = build_model("dfgan", vocab_size=len(vocab), image_size=32, nf=4, text_emb_dim=8, text_hidden_dim=8,
                        d_backbone="damsm", damsm_weights=str(path))
    want, got = damsm.image_encoder.backbone.state_dict(), model.feature_network.state_dict()
    assert set(want) == set(got) and all(torch.equal(want[k], got[k]) for k in want)
    c = model.config
    assert (c.damsm_backbone, c.damsm_image_size, c.damsm_cnn_channels) == ("small_cnn", 32, 4)
    assert model.discriminator.backbone is model.feature_network and len(model.discriminator.heads) >= 2
    save_run(tmp_path / "gan", {"data": {"max_words": 18}}, model.eval(), vocab)
    loaded, _, config = load_run(tmp_path / "gan")
    assert config["model_config"]["d_backbone"] == "damsm" and loaded.config.damsm_weights is None
    saved, back = model.state_dict(), loaded.state_dict()
    assert set(saved) == set(back) and all(torch.equal(saved[k], back[k]) for k in saved)
    # damsm_random: the run's architecture, random weights
    model = build_model("dfgan", vocab_size=len(vocab), image_size=32, nf=4, text_emb_dim=8, text_hidden_dim=8,
                        d_backbone="damsm_random", damsm_weights=str(path))
    got = model.feature_network.state_dict()
    assert set(want) == set(got) and not all(torch.equal(want[k], got[k]) for k in want)


def test_bad_d_backbone_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(T2IError, match=r"d_backbone=damsm .* model\.damsm_weights is empty"):
        build_model("dfgan", vocab_size=30, image_size=32, nf=4, d_backbone="damsm")
    path, _, vocab = damsm_run(tmp_path)
    with pytest.raises(T2IError, match=r"DAMSM's 32 px, smaller than G's 64 px"):
        build_model("dfgan", vocab_size=len(vocab), image_size=64, nf=4, text_emb_dim=8, text_hidden_dim=8,
                    d_backbone="damsm", damsm_weights=str(path))
    with pytest.raises(T2IError, match=r"invalid model\.d_backbone='resnet': .*none, damsm, damsm_random"):
        create_model("dfgan", vocab_size=30, d_backbone="resnet")
    with pytest.raises(T2IError, match=r"invalid model\.d_augment='translation,color': .*translation, cutout"):
        create_model("ssagan", vocab_size=30, d_augment="translation,color")
    with pytest.raises(T2IError, match=r"model\.d_minibatch_std is an option of DF-GAN's own D"):
        create_model("dfgan", vocab_size=30, d_minibatch_std=2, d_backbone="damsm_random", damsm_backbone="small_cnn")
