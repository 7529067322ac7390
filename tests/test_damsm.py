import json

import pytest
import torch
import torch.nn.functional as F

from t2igan.data.text import Vocabulary, padding_mask
from t2igan.errors import T2IError
from t2igan.hub import load_safetensors, load_safetensors_into
from t2igan.models.damsm import (
    DAMSM,
    DAMSMConfig,
    damsm_loss,
    damsm_sentence_loss,
    damsm_word_loss,
    word_region_attention,
)
from t2igan.nn.image_encoder import ImageEncoder
from t2igan.nn.text_encoder import RNNTextEncoder, TextFeatures
from t2igan.runs import load_damsm, save_run


# --- a straightforward reference: the official words_loss structure, one caption at a time ---------


def reference_attention(word, regions, gamma1):
    """word (D, T) real words only; regions (D, L) -> context (D, T), attention (T, L)."""
    s = word.t() @ regions  # (T, L)
    s = torch.softmax(s, dim=0)  # over words
    attn = torch.softmax(gamma1 * s, dim=1)  # over regions
    return regions @ attn.t(), attn


def reference_word_loss(region_feats, word_embs, lengths, class_ids, gamma1, gamma2, gamma3, paper_form):
    B = word_embs.shape[0]
    regions = region_feats.flatten(2)
    sims = torch.zeros(B, B)  # (images, captions)
    for i in range(B):
        word = word_embs[i, :, : lengths[i]]
        for j in range(B):
            context, _ = reference_attention(word, regions[j], gamma1)
            cos = F.cosine_similarity(context, word, dim=0)  # (T_i,)
            r = torch.log(torch.exp(gamma2 * cos).sum())
            sims[j, i] = r / gamma2 if paper_form else r
    for i in range(B):
        for j in range(B):
            if i != j and class_ids is not None and class_ids[i] >= 0 and class_ids[i] == class_ids[j]:
                sims[j, i] = float("-inf")
    sims = gamma3 * sims
    labels = torch.arange(B)
    return F.cross_entropy(sims, labels), F.cross_entropy(sims.t(), labels)


def random_inputs(B=6, D=16, T=9, hw=4, seed=0):
    """hw=4: 16 regions for 16 features (explicit context vectors); hw=2: 4 regions (Gram form)."""
    g = torch.Generator().manual_seed(seed)
    region_feats = torch.randn(B, D, hw, hw, generator=g)
    word_embs = torch.randn(B, D, T, generator=g)
    lengths = torch.tensor([9, 3, 1, 6, 9, 4])[:B]
    mask = padding_mask(torch.zeros(B, T), lengths)
    # padding positions hold garbage: they must not matter
    word_embs = torch.where(mask[:, None], 100 * torch.randn(B, D, T, generator=g), word_embs)
    return region_feats, word_embs, lengths, mask


@pytest.mark.parametrize("hw", [4, 2])
@pytest.mark.parametrize("paper_form", [True, False])
@pytest.mark.parametrize("class_ids", [None, [3, 3, 5, -1, -1, 3]])
def test_word_loss_matches_per_sample_reference(paper_form, class_ids, hw):
    region_feats, word_embs, lengths, mask = random_inputs(hw=hw)
    region_feats.requires_grad_(True)
    cls = None if class_ids is None else torch.tensor(class_ids)
    l0, l1, attn = damsm_word_loss(region_feats, word_embs, mask, cls, 4.0, 5.0, 10.0, paper_form)
    r0, r1 = reference_word_loss(region_feats, word_embs, lengths, cls, 4.0, 5.0, 10.0, paper_form)
    assert torch.allclose(l0, r0, atol=1e-5, rtol=1e-5)
    assert torch.allclose(l1, r1, atol=1e-5, rtol=1e-5)
    # same gradients too
    (grad,) = torch.autograd.grad(l0 + 2 * l1, region_feats, retain_graph=True)
    (ref_grad,) = torch.autograd.grad(r0 + 2 * r1, region_feats)
    assert torch.allclose(grad, ref_grad, atol=1e-5, rtol=1e-4)
    # the returned attention is each caption over its own image, as the reference computes it
    for i in range(len(lengths)):
        _, ref_attn = reference_attention(word_embs[i, :, : lengths[i]], region_feats[i].flatten(1), 4.0)
        assert torch.allclose(attn[i, : lengths[i]].flatten(1), ref_attn, atol=1e-6)


def test_class_masking_changes_loss_and_minus_one_never_masks():
    region_feats, word_embs, _, mask = random_inputs()
    base = damsm_word_loss(region_feats, word_embs, mask)[0]
    unknown = damsm_word_loss(region_feats, word_embs, mask, torch.full((6,), -1))[0]
    masked = damsm_word_loss(region_feats, word_embs, mask, torch.tensor([1, 1, 1, 1, 1, 1]))[0]
    assert torch.allclose(base, unknown)
    # every other pair masked: each softmax holds only the true pair, so the loss is 0
    assert masked.abs() < 1e-6 < base


def test_attention_rows_sum_to_one_and_ignore_padding():
    region_feats, word_embs, lengths, mask = random_inputs()
    _, _, attn = damsm_word_loss(region_feats, word_embs, mask)  # (B, T, h, w)
    sums = attn.flatten(2).sum(-1)  # (B, T)
    assert torch.allclose(sums[~mask], torch.ones(int((~mask).sum())), atol=1e-6)
    assert (attn[mask] == 0).all()
    # the generic function gives the same attention and context as the per-caption reference
    context, attn2 = word_region_attention(word_embs, region_feats, mask, gamma1=4.0)
    assert context.shape == word_embs.shape and torch.allclose(attn2, attn, atol=1e-6)
    for i in range(len(lengths)):
        ref_context, _ = reference_attention(word_embs[i, :, : lengths[i]], region_feats[i].flatten(1), 4.0)
        assert torch.allclose(context[i, :, : lengths[i]], ref_context, atol=1e-5)
    # a padding word's value cannot change any real word's attention or context (Eq. 8 masks it)
    changed = word_embs.clone()
    changed[mask.unsqueeze(1).expand_as(changed)] = 7.0
    context3, attn3 = word_region_attention(changed, region_feats, mask, gamma1=4.0)
    assert torch.allclose(attn2, attn3) and torch.allclose(context, context3)
    assert (context[mask.unsqueeze(1).expand_as(context)] == 0).all()


def test_sentence_loss_matches_reference_and_prefers_matching_pairs():
    torch.manual_seed(0)
    image_emb, sent_emb = torch.randn(5, 8), torch.randn(5, 8)
    l0, l1 = damsm_sentence_loss(image_emb, sent_emb, gamma3=10.0)
    sims = torch.stack([torch.stack([F.cosine_similarity(image_emb[j], sent_emb[i], dim=0) for i in range(5)])
                        for j in range(5)]) * 10.0
    assert torch.allclose(l0, F.cross_entropy(sims, torch.arange(5)), atol=1e-5)
    assert torch.allclose(l1, F.cross_entropy(sims.t(), torch.arange(5)), atol=1e-5)
    aligned0, aligned1 = damsm_sentence_loss(sent_emb * 2.0, sent_emb)  # images equal to their captions
    assert aligned0 < l0 and aligned1 < l1


def test_small_cnn_encoder_and_gradients_reach_images():
    torch.manual_seed(0)
    enc = ImageEncoder(embed_dim=16, backbone="small_cnn", image_size=32, cnn_channels=8)
    images = (torch.rand(3, 3, 32, 32) * 2 - 1).requires_grad_(True)
    region_feats, image_emb = enc(images)
    assert region_feats.shape == (3, 16, 8, 8) and image_emb.shape == (3, 16)
    mask = padding_mask(torch.zeros(3, 5), torch.tensor([5, 2, 3]))
    text = TextFeatures(torch.randn(3, 16, 5), torch.randn(3, 16), mask)
    loss, logs = damsm_loss(enc, images, text)
    loss.backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert set(logs) == {"damsm_w", "damsm_s"} and abs(logs["damsm_w"] + logs["damsm_s"] - loss.item()) < 1e-4
    # other input sizes are resized to the encoder's
    assert enc(torch.zeros(2, 3, 64, 64))[0].shape == (2, 16, 8, 8)


def test_inception_backbone_random_frozen_and_loaded_by_the_builder(tmp_path):
    from t2igan.nn.inception import ImageNetInceptionV3
    from t2igan.training.build import build_model

    enc = ImageEncoder(embed_dim=8, backbone="inception")
    trainable = {n for n, p in enc.named_parameters() if p.requires_grad}
    assert trainable == {"emb_features.weight", "emb_code.weight", "emb_code.bias"}
    enc.train()
    assert not enc.backbone.net.training  # BatchNorm statistics stay frozen
    region_feats, image_emb = enc(torch.zeros(1, 3, 32, 32))
    assert region_feats.shape == (1, 8, 17, 17) and image_emb.shape == (1, 8)
    with pytest.raises(T2IError, match="backbone"):
        ImageEncoder(backbone="resnet")
    # the model builder finds the ImageNet file (a missing one is one error) and loads it into the backbone
    args = dict(vocab_size=12, embed_dim=16, text_emb_dim=8, text_hidden_dim=8, backbone="inception")
    with pytest.raises(T2IError, match="not found"):
        build_model("damsm", **args, inception_weights=str(tmp_path / "none.pth"))
    torch.manual_seed(1)
    weights = ImageNetInceptionV3().state_dict()
    torch.save(weights, tmp_path / "imagenet.pth")  # no hash in the name: loaded unchecked
    damsm = build_model("damsm", **args, inception_weights=str(tmp_path / "imagenet.pth"))
    assert damsm.config.inception_weights == str(tmp_path / "imagenet.pth")
    net = damsm.image_encoder.backbone.net
    assert torch.equal(net.Mixed_7c.branch_pool.conv.weight, weights["Mixed_7c.branch_pool.conv.weight"])


def tiny_damsm(vocab_size=12):
    cfg = DAMSMConfig(vocab_size=vocab_size, embed_dim=16, text_emb_dim=8, text_hidden_dim=8,
                      backbone="small_cnn", image_size=16, cnn_channels=8)
    return DAMSM(cfg)


def test_damsm_training_steps_lower_loss():
    torch.manual_seed(0)
    model = tiny_damsm()
    images = torch.rand(8, 3, 16, 16) * 2 - 1
    tokens = torch.randint(2, 12, (8, 6))
    lengths = torch.tensor([6, 4, 5, 3, 6, 2, 6, 5])
    tokens = tokens.masked_fill(padding_mask(tokens, lengths), 0)
    opt = torch.optim.Adam(model.trainable_parameters(), lr=0.01)
    first = model.losses(images, tokens, lengths)[1]["loss"]
    for _ in range(50):
        loss, _ = model.losses(images, tokens, lengths)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()  # no dropout; GroupNorm behaves as in training
    with torch.no_grad():
        assert model.losses(images, tokens, lengths)[1]["loss"] < 0.5 * first


def test_save_load_round_trip_and_text_encoder_prefix(tmp_path):
    torch.manual_seed(0)
    model = tiny_damsm(vocab_size=5).eval()
    vocab = Vocabulary.build(["a red circle"])
    save_run(tmp_path, {"name": "damsm-test"}, model, vocab)
    loaded, vocab2 = load_damsm(tmp_path)
    assert vocab2.words == vocab.words
    tokens, lengths = torch.tensor([[2, 3, 4]]), torch.tensor([3])
    a = model.text_encoder(tokens, lengths).sent_emb
    b = loaded.text_encoder(tokens, lengths).sent_emb
    assert torch.equal(a, b)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.equal(model.image_encoder(images)[1], loaded.image_encoder(images)[1])
    # a generator's text encoder loads straight from the DAMSM run (DF-GAN's, GAN-INT-CLS's damsm_weights):
    # the folder or its weights file
    from t2igan.training.build import load_damsm_text_encoder

    keys = load_safetensors(tmp_path / "model.safetensors")
    assert any(k.startswith("text_encoder.") for k in keys) and any(k.startswith("image_encoder.") for k in keys)
    for damsm_weights in (str(tmp_path), str(tmp_path / "model.safetensors")):
        te = RNNTextEncoder(5, 8, 8)
        load_damsm_text_encoder(te, damsm_weights)
        assert torch.equal(te.eval()(tokens, lengths).sent_emb, a)
    # also from the weights file path; a wrong folder is a one-line error
    assert load_damsm(tmp_path / "model.safetensors")[0].config == model.config
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["model_name"] = "dfgan"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(T2IError, match="not a damsm run"):
        load_damsm(tmp_path)
    with pytest.raises(T2IError, match="not found"):
        load_damsm(tmp_path / "missing")


def test_pretrain_command_writes_a_loadable_run(tmp_path, capsys):
    from t2igan.cli import main

    tiny = ["train.max_steps=4", "train.batch_size=8", "train.log_every=2", "data.image_size=32",
            "data.train_args={num_images: 64}", "data.test_args={num_images: 30}", "model.embed_dim=16",
            "model.text_hidden_dim=8", "model.text_emb_dim=8", "model.cnn_channels=4"]
    run = tmp_path / "damsm-run"
    assert main(["pretrain", "damsm", "damsm-shapes", *tiny, "--run-dir", str(run), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "R-precision of real test images" in out and str(run) in out
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 4]
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["metric"] == "r_precision" and metrics[-1]["step"] == 4 and 0 <= metrics[-1]["mean"] <= 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-00000004.safetensors",
                                                                       "step-00000004.state.pt"]
    model, vocab = load_damsm(run)
    assert model.config.image_size == 32 and model.config.vocab_size == len(vocab)
    experiment = json.loads((run / "config.json").read_text())["experiment"]
    assert experiment["train"]["max_steps"] == 4
    # bad keys are one-line errors; --dry-run prints the resolved config
    assert main(["pretrain", "damsm", "damsm-shapes", "model.colour=1", "--dry-run"]) == 2
    assert "colour" in capsys.readouterr().err
    assert main(["pretrain", "damsm", "dfgan-shapes", "--dry-run"]) == 2
    capsys.readouterr()
    assert main(["pretrain", "damsm", "damsm-shapes", "train.lr=0.01", "--dry-run"]) == 2  # model.lr
    assert "unknown train config keys: ['lr']" in capsys.readouterr().err
    assert main(["pretrain", "damsm", "damsm-cub", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["model_args"]["backbone"] == "inception"


def test_lr_schedule_decays_per_epoch_to_a_floor():
    from t2igan.models.damsm import DAMSMConfig, epoch_lr

    t = DAMSMConfig(lr=0.002, lr_decay=0.98, lr_min_factor=0.1)
    assert epoch_lr(t, 0) == 0.002
    assert epoch_lr(t, 1) == pytest.approx(0.002 * 0.98)
    assert epoch_lr(t, 1000) == pytest.approx(epoch_lr(t, 2000)) and 0.0002 * 0.98 <= epoch_lr(t, 1000) <= 0.0002


def test_pretrain_on_a_test_split_too_small_for_r_precision_still_saves(tmp_path, capsys):
    from t2igan.cli import main

    tiny = ["train.max_steps=2", "train.batch_size=8", "data.image_size=32", "data.train_args={num_images: 32}",
            "data.test_args={num_images: 3}", "model.embed_dim=16", "model.text_hidden_dim=8",
            "model.text_emb_dim=8", "model.cnn_channels=4"]
    run = tmp_path / "damsm-run"
    assert main(["pretrain", "damsm", "damsm-shapes", *tiny, "--run-dir", str(run), "--no-progress"]) == 0
    assert "R-precision of real test images not computed" in capsys.readouterr().out
    model, vocab = load_damsm(run)
    assert model.config.vocab_size == len(vocab)


def test_paper_form_has_one_default_the_official_form():
    """DAMSM_PAPER_FORM (False: the official code's relevance) is the default of every function and
    config; -cub/-coco presets use it, -shapes presets choose the paper's form."""
    import inspect

    from t2igan.config import list_presets, load_preset
    from t2igan.models import damsm as damsm_module
    from t2igan.models.attngan import AttnGANConfig
    from t2igan.models.ssagan import SSAGANConfig

    assert damsm_module.DAMSM_PAPER_FORM is False
    for fn in (damsm_module.word_relevance, damsm_module.damsm_word_loss, damsm_module.damsm_loss):
        assert inspect.signature(fn).parameters["paper_form"].default is False
    assert DAMSMConfig().paper_form is False
    # the GANs' DAMSM term takes its form from the DAMSM run (None), without a run the default form
    assert AttnGANConfig().damsm_paper_form is None and SSAGANConfig().damsm_paper_form is None
    checked = 0
    for name in list_presets():
        preset = load_preset(name)
        args = preset.get("model_args", {})
        key = "paper_form" if preset["model"] == "damsm" else "damsm_paper_form"
        if name.endswith(("-cub", "-coco")) and preset["model"] in ("damsm", "attngan", "ssagan", "mirrorgan", "drgan"):
            assert args.get(key, False) is False, name
            checked += 1
        if name == "damsm-shapes":
            assert args[key] is True, name
        if name in ("attngan-shapes", "mirrorgan-shapes", "drgan-shapes"):  # read from the damsm-shapes run
            assert key not in args and "damsm_gamma1" not in args, name
    assert checked >= 8
