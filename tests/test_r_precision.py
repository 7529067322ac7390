import pytest
import torch

from t2igan.data.shapes import ShapesDataset
from t2igan.data.text import Vocabulary
from t2igan.errors import T2IError
from t2igan.metrics.r_precision import damsm_features, dataset_r_precision, draw_mismatched, r_precision
from t2igan.models.damsm import DAMSM, DAMSMConfig


def test_perfect_features_score_one_and_random_ones_chance():
    torch.manual_seed(0)
    sent = torch.randn(500, 32)
    perfect = r_precision(sent * 3.0, sent, splits=10)
    assert perfect["mean"] == 1.0 and perfect["std"] == 0.0
    assert perfect["num_captions"] == 100 and perfect["num_images"] == 500
    rand = r_precision(torch.randn(2000, 32), torch.randn(2000, 32), splits=10)
    assert rand["mean"] < 0.03  # chance is 1 in 100


def test_ties_are_misses_and_splits_give_the_spread():
    sent = torch.randn(400, 8)
    tied = r_precision(torch.ones(400, 8), torch.ones(400, 8), torch.ones(400, 8))
    assert tied["mean"] == 0.0  # true caption not strictly best
    # first half retrieves perfectly, second half never (its images point away from their captions)
    images = torch.cat([sent[:200], -sent[200:]])
    res = r_precision(images, sent, splits=2)
    assert res["mean"] == pytest.approx(0.5) and res["std"] == pytest.approx(0.5)


def test_mismatched_captions_avoid_same_image_and_same_class_and_are_seeded():
    groups = torch.arange(300) // 3  # 3 captions per image
    classes = groups % 10  # 10 classes
    classes[:3] = -1  # an image without a class
    draw = lambda seed: draw_mismatched(groups, classes, groups, classes, 99, torch.Generator().manual_seed(seed))
    idx = draw(0)
    assert idx.shape == (300, 99)
    assert all(len(set(row.tolist())) == 99 for row in idx)  # distinct
    assert not (groups[idx] == groups[:, None]).any()
    known = classes >= 0
    assert not ((classes[idx] == classes[:, None]) & known[:, None]).any()
    assert torch.equal(idx, draw(0)) and not torch.equal(idx, draw(1))


def test_class_masking_matters():
    # captions of the same class look alike; only other-class mismatches are drawn, so retrieval is easy
    torch.manual_seed(0)
    classes = torch.arange(1000) % 10
    centres = torch.randn(10, 16) * 5
    sent = centres[classes] + 0.1 * torch.randn(1000, 16)
    images = centres[classes] + 0.1 * torch.randn(1000, 16)
    with_classes = r_precision(images, sent, class_ids=classes)["mean"]
    without = r_precision(images, sent)["mean"]
    assert with_classes > 0.95 > 0.5 > without


def test_too_small_pool_is_a_clear_error():
    with pytest.raises(T2IError, match="mismatched captions"):
        r_precision(torch.randn(50, 4), torch.randn(50, 4), splits=5)
    with pytest.raises(T2IError, match="splits"):
        r_precision(torch.randn(5, 4), torch.randn(5, 4), splits=10)


def test_dataset_r_precision_names_the_damsm():
    torch.manual_seed(0)
    data = ShapesDataset("test", 32, num_images=40, cache=False)
    vocab = Vocabulary.build(data.all_captions())
    damsm = DAMSM(DAMSMConfig(vocab_size=len(vocab), embed_dim=16, text_emb_dim=8, text_hidden_dim=8,
                              backbone="small_cnn", image_size=32, cnn_channels=4)).eval()
    res = dataset_r_precision(damsm, vocab, data, num_captions=50, splits=4, damsm_name="runs/x")
    assert res["damsm"] == "runs/x" and 0.0 <= res["mean"] <= 1.0 and res["num_images"] == 40
    image_emb, sent_emb = damsm_features(damsm, vocab, torch.zeros(3, 3, 32, 32), ["a red circle", "a blue star"])
    assert image_emb.shape == (3, 16) and sent_emb.shape == (2, 16)
