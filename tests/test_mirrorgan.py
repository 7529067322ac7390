"""MirrorGAN: GLAM's sentence attention, the STREAM captioner (teacher forcing, greedy and beam decoding,
pretraining on Shapes), the caption loss reaching G while STREAM stays frozen, and the CLI."""

import itertools
import json

import pytest
import torch
from conftest import make_batch

from t2igan import create_model
from t2igan.training.build import build_model
from t2igan.cli import main
from t2igan.config import TrainConfig, resolve_config
from t2igan.data.shapes import ShapesDataset
from t2igan.errors import T2IError
from t2igan.data.shapes import parse_shapes_caption
from t2igan.metrics.bleu import corpus_bleu
from t2igan.metrics.shapes_probe import PROBE_KEYS, probe_labels, scene_labels
from t2igan.models.mirrorgan import SentenceAttention
from t2igan.models.stream import END_ID, StreamCaptioner, StreamConfig, caption_cross_entropy, caption_loss
from t2igan.runs import load_run, load_stream, save_run
from t2igan.training import Trainer
from t2igan.visualize import to_pil

B, T = 4, 6
LENGTHS = torch.tensor([6, 4, 5, 3])


def tiny_stream(vocab_size=12, seed=0, **kw):
    torch.manual_seed(seed)
    args = dict(vocab_size=vocab_size, backbone="small_cnn", image_size=16, cnn_channels=4, embed_dim=8,
                hidden_dim=12, max_len=8)
    args.update(kw)
    return StreamCaptioner(StreamConfig(**args)).eval()


def tiny_mirrorgan(vocab_size=30, **kw):
    torch.manual_seed(0)
    args = dict(vocab_size=vocab_size, image_size=32, base_size=16, num_stages=2, ngf=4, ndf=4, num_residual=1,
                c_dim=8, text_emb_dim=16, text_hidden_dim=8, damsm_backbone="small_cnn", damsm_weight=0.0)
    if not kw.get("stream_weights"):  # a random STREAM this small; a STREAM run brings its own architecture
        args.update(stream_backbone="small_cnn", stream_image_size=32, stream_cnn_channels=4, stream_embed_dim=8,
                    stream_hidden_dim=12)
    args.update(kw)
    return build_model("mirrorgan", **args)


def batch(vocab_size=30, seed=0, size=32):
    return make_batch(vocab_size, LENGTHS, size, seed, class_ids=True)


@pytest.fixture(scope="module")
def stream_run(tmp_path_factory):
    """A tiny STREAM pretrained for a few seconds on 32 px Shapes (shared by several tests)."""
    run = tmp_path_factory.mktemp("stream") / "run"
    cfg = resolve_config("stream-shapes", [
        "data.image_size=32", "data.train_args={num_images: 1000}", "data.test_args={num_images: 200}",
        "model.cnn_channels=8", "model.embed_dim=32", "model.hidden_dim=64", "model.inject=every",
        "train.batch_size=32", "train.max_steps=300", "model.lr=0.01", "train.log_every=100"])
    Trainer(cfg, run, progress=False).fit()
    return run


# -- GLAM ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("conv", [True, False])
def test_sentence_attention_is_a_softmax_over_channels_of_the_projected_sentence(conv):
    torch.manual_seed(0)
    att = SentenceAttention(feat_dim=5, c_dim=7, conv=conv)
    h, c_code = torch.randn(B, 5, 3, 3), torch.randn(B, 7)
    context, alpha = att(h, c_code)
    assert context.shape == alpha.shape == (B, 5, 3, 3)
    assert torch.allclose(alpha.sum(dim=1), torch.ones(B, 3, 3), atol=1e-6)
    sent = att.project(c_code)[:, :, None, None]  # V s_ca
    scores = h * sent if not conv else att.conv(h * sent)
    assert torch.allclose(alpha, scores.softmax(dim=1), atol=1e-6)
    assert torch.allclose(context, alpha * sent, atol=1e-6)
    # another sentence gives another context at the same pixels
    other, _ = att(h, torch.randn(B, 7))
    assert not torch.allclose(context, other)


def test_glam_generator_uses_the_sentence_and_keeps_attngan_outputs():
    m = tiny_mirrorgan(num_stages=3, image_size=64).eval()
    b = batch(size=64)
    out = m.generate(b["tokens"], b["lengths"], m.noise(B, generator=torch.Generator().manual_seed(0)))
    assert out.images.shape == (B, 3, 64, 64)
    assert [tuple(a.shape) for a in out.extras["attention"]] == [(B, T, 16, 16), (B, T, 32, 32)]
    for beta in out.extras["attention"]:
        for i, n in enumerate(b["lengths"].tolist()):
            assert torch.all(beta[i, n:] == 0)
    stage = m.generator.stages[0]
    assert stage.fuse.in_channels == 3 * 4 and stage.fuse.out_channels == 2 * 4  # [f, att_w, att_s] -> 2 ngf
    # zeroing the sentence attention's projection changes the image: the sentence path is used
    with torch.no_grad():
        for s in m.generator.stages:
            s.sentence_attention.project.weight.zero_()
            s.sentence_attention.project.bias.zero_()
    again = m.generate(b["tokens"], b["lengths"], m.noise(B, generator=torch.Generator().manual_seed(0)))
    assert not torch.allclose(out.images, again.images)


# -- STREAM: loss and decoding ----------------------------------------------------------------------


def test_caption_cross_entropy_scores_words_and_end_token_and_ignores_padding():
    torch.manual_seed(0)
    tokens = torch.tensor([[3, 4, 5], [6, 0, 0]])
    lengths = torch.tensor([3, 1])
    logits = torch.randn(2, 4, 9)
    loss = caption_cross_entropy(logits, tokens, lengths)
    logp = logits.log_softmax(dim=2)
    targets = [(0, 0, 3), (0, 1, 4), (0, 2, 5), (0, 3, END_ID), (1, 0, 6), (1, 1, END_ID)]
    expected = -sum(logp[b, t, w] for b, t, w in targets) / len(targets)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    # what sits in the padding (tokens or logits after the end) does not matter
    noisy_tokens, noisy_logits = tokens.clone(), logits.clone()
    noisy_tokens[1, 1:] = 7
    noisy_logits[1, 2:] = 100.0
    assert caption_cross_entropy(noisy_logits, noisy_tokens, lengths).item() == pytest.approx(loss.item(), rel=1e-6)


@pytest.mark.parametrize("inject", ["init", "every"])
def test_teacher_forcing_is_causal_and_matches_step_by_step_decoding(inject):
    m = tiny_stream(inject=inject)
    images = torch.rand(2, 3, 16, 16) * 2 - 1
    tokens = torch.tensor([[3, 4, 5, 6], [7, 8, 0, 0]])
    logits = m(images, tokens, torch.tensor([4, 2]))
    assert logits.shape == (2, 5, 12)
    # changing a later word changes nothing before it
    changed = tokens.clone()
    changed[0, 2] = 9
    logits2 = m(images, changed, torch.tensor([4, 2]))
    assert torch.allclose(logits[:, :3], logits2[:, :3]) and not torch.allclose(logits[0, 3], logits2[0, 3])
    # the same logits come from feeding the image, then the words, one step at a time
    feats = m.encoder(images)
    hidden, state = m.lstm(feats[:, None] if inject == "init" else torch.cat([feats, feats], 1)[:, None])
    steps = [m.out(hidden[:, 0])]
    for t in range(2):
        word = m.embedding(tokens[:, t])
        hidden, state = m.lstm((word if inject == "init" else torch.cat([word, feats], 1))[:, None], state)
        steps.append(m.out(hidden[:, 0]))
    assert torch.allclose(torch.stack(steps, 1)[0], logits[0, :3], atol=1e-5)
    # another image changes the predictions (with "every" at each step also through the input)
    assert not torch.allclose(m(images.flip(0), tokens, torch.tensor([4, 2]))[1], logits[1])


@pytest.mark.slow
def test_greedy_decoding_stops_at_the_end_token(stream_run):
    m = tiny_stream()
    images = torch.rand(6, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        m.out.bias.zero_()
        m.out.bias[END_ID] = 50.0  # the end token always wins: empty captions
    assert m.greedy(images) == [[]] * 6
    with torch.no_grad():
        m.out.bias[END_ID] = -50.0  # the end token never wins: max_len words
    assert all(len(c) == 5 and END_ID not in c for c in m.greedy(images, max_len=5))
    # a trained captioner: each caption is the argmax path, and where it stopped the argmax was the end token
    m, _ = load_stream(stream_run)
    ds = ShapesDataset("test", num_images=6, image_size=32)
    images = torch.stack([ds.get_item(i, 0)["image"] for i in range(6)])
    captions = m.greedy(images, max_len=18)
    assert all(3 < len(c) < 18 for c in captions)
    for b, caption in enumerate(captions):
        assert END_ID not in caption
        n = len(caption)
        logits = m(images[b:b + 1], torch.tensor([caption]), torch.tensor([n]))
        predicted = logits[0].argmax(dim=1).tolist()
        assert predicted == caption + [END_ID]
    assert [c[:3] for c in m.greedy(images, max_len=3)] == [c[:3] for c in captions]  # max_len cuts it short
    assert m.beam_search(images, beam=1, max_len=18) == captions  # beam 1 is greedy


@pytest.mark.parametrize("inject", ["init", "every"])
def test_beam_search_finds_the_most_likely_caption_when_the_beam_covers_everything(inject):
    m = tiny_stream(vocab_size=4, seed=1, inject=inject)  # words 1..3 and the end token
    with torch.no_grad():
        m.out.bias[END_ID] = 0.5
    images = torch.rand(3, 3, 16, 16) * 2 - 1
    max_len = 3

    def log_prob(image, words):
        tokens = torch.tensor([words + [0]]) if words else torch.zeros(1, 1, dtype=torch.long)
        lengths = torch.tensor([max(len(words), 1)])
        logp = m(image[None], tokens, lengths)[0].log_softmax(dim=1)
        total = sum(logp[t, w] for t, w in enumerate(words))
        return total + (logp[len(words), END_ID] if len(words) < max_len else 0.0)

    all_captions = [list(c) for n in range(max_len + 1) for c in itertools.product([1, 2, 3], repeat=n)]
    with torch.no_grad():
        found = m.beam_search(images, beam=len(all_captions), max_len=max_len)
        greedy = m.greedy(images, max_len=max_len)
        narrow = m.beam_search(images, beam=3, max_len=max_len)
        for b in range(3):
            scores = [float(log_prob(images[b], c)) for c in all_captions]
            best = all_captions[max(range(len(scores)), key=scores.__getitem__)]
            assert found[b] == best
            assert float(log_prob(images[b], found[b])) >= float(log_prob(images[b], greedy[b])) - 1e-6
            assert float(log_prob(images[b], narrow[b])) <= float(log_prob(images[b], best)) + 1e-6
    with pytest.raises(T2IError, match="beam width"):
        m.beam_search(images, beam=0)


# -- MirrorGAN: the STREAM loss reaches G, STREAM stays frozen ----------------------------------------


def test_caption_loss_gradient_reaches_the_generator_and_stream_stays_frozen():
    m = tiny_mirrorgan(stream_lambda=20.0)
    m.train()
    assert not m.stream.training and not m.text_encoder.training
    assert all(not p.requires_grad for p in m.stream.parameters())
    groups = m.optimizer_groups(TrainConfig())
    in_opt = {id(p) for gs in groups.values() for g in gs for p in g["params"]}
    assert not {id(p) for p in m.stream.parameters()} & in_opt
    stream_before = {k: v.clone() for k, v in m.stream.state_dict().items()}

    b = batch()
    state = {}
    m.compute_loss("d", b, state)
    fake = state["fakes"][-1]
    loss, logs = caption_loss(m.stream, fake, b["tokens"], b["lengths"])
    m.generator.zero_grad(set_to_none=True)
    loss.backward()
    # the caption loss of the last stage reaches the last stage's head, its GLAM attention (word and
    # sentence paths) and CA, but not the first stage's image head; STREAM gets no gradient
    assert m.generator.to_rgb[1][0].weight.grad.abs().sum() > 0
    assert m.generator.stages[0].sentence_attention.project.weight.grad.abs().sum() > 0
    assert m.generator.stages[0].word_attention.project.weight.grad.abs().sum() > 0
    assert m.generator.ca.fc.weight.grad.abs().sum() > 0
    assert m.generator.to_rgb[0][0].weight.grad is None
    assert all(p.grad is None for p in m.stream.parameters())
    assert 0.0 <= logs["stream_word_acc"] <= 1.0

    # the G loss adds lambda x L_stream; a G step changes G and nothing of STREAM (BN statistics included)
    opts = {k: torch.optim.Adam(g) for k, g in groups.items()}
    state = {}
    m.compute_loss("d", b, state)
    with pytest.warns(UserWarning, match="randomly initialised STREAM"):
        g_loss, logs = m.compute_loss("g", b, state)
    adv = logs["g_adv0"] + logs["g_adv1"]
    assert logs["g_loss"] == pytest.approx(adv + logs["kl"] + 20.0 * logs["stream"], rel=1e-4)
    opts["g"].zero_grad(set_to_none=True)
    g_loss.backward()
    opts["g"].step()
    assert all(torch.equal(v, m.stream.state_dict()[k]) for k, v in stream_before.items())
    # and lambda = 0 removes the term
    m0 = tiny_mirrorgan(stream_lambda=0.0)
    state = {}
    m0.compute_loss("d", b, state)
    assert "stream" not in m0.compute_loss("g", b, state)[1]


@pytest.mark.slow
def test_generator_learns_to_be_redescribed(stream_run):
    """Against the frozen pretrained STREAM, G learns to draw one batch of captions so that the
    STREAM reads them back: its caption loss falls."""
    from t2igan.data.text import encode_captions

    _, vocab = load_stream(stream_run)
    m = tiny_mirrorgan(vocab_size=len(vocab), stream_weights=str(stream_run), stream_lambda=1.0)
    ds = ShapesDataset("test", num_images=B)
    tokens, lengths = encode_captions(vocab, [ds.captions(i)[0] for i in range(B)], 18)
    b = dict(batch(), tokens=tokens, lengths=lengths)
    opt = torch.optim.Adam(m.generator.parameters(), 2e-3, betas=(0.5, 0.999))
    mismatched = b["tokens"].roll(1, 0), b["lengths"].roll(1, 0)  # each image with another scene's caption
    own, other = [], []
    for _ in range(25):
        torch.manual_seed(0)
        state = {}
        m.compute_loss("d", dict(b), state)
        loss, _ = caption_loss(m.stream, state["fakes"][-1], b["tokens"], b["lengths"])
        with torch.no_grad():
            other.append(caption_loss(m.stream, state["fakes"][-1], *mismatched)[0].item())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        own.append(loss.item())
    # the loss of the images' own captions falls (to the tiny STREAM's floor), and by more than that of
    # other captions: the images now show their captions' content, not just Shapes-like pictures
    assert own[-1] < 0.93 * own[0]
    assert own[0] - own[-1] > (other[0] - other[-1]) + 0.03


# -- caption metrics ---------------------------------------------------------------------------------


def test_shapes_captions_parse_back_to_their_scenes():
    ds = ShapesDataset("test", num_images=150, captions_per_image=10)
    for i in range(150):
        truth = [probe_labels(ds.attributes(i))[k] for k in PROBE_KEYS]
        for caption in ds.captions(i):
            assert scene_labels(parse_shapes_caption(caption)) == truth, caption
    # an incomplete caption names what it can; the rest is unknown (-1)
    labels = dict(zip(PROBE_KEYS, scene_labels(parse_shapes_caption("a red circle"))))
    assert labels["count"] == 0 and labels["colour0"] == 0 and labels["size0"] == -1 and labels["shape1"] == -1


def test_corpus_bleu():
    ref = "a small red circle on the left".split()
    assert corpus_bleu([ref], [[ref]]) == pytest.approx(1.0)
    assert corpus_bleu([["blue", "star", "at", "top"]], [[ref]]) == 0.0
    hyp = "a small red circle on the right".split()  # 6 of 7 unigrams, 5/6 bigrams, 4/5, 3/4; same length
    expected = (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25
    assert corpus_bleu([hyp], [[ref, "a tiny red disc at the left".split()]]) == pytest.approx(expected)
    short = "a small red circle on".split()  # brevity penalty exp(1 - 7/5)
    assert corpus_bleu([short], [[ref]]) == pytest.approx(torch.tensor(1 - 7 / 5).exp().item())


# -- pretraining, loading, vocabularies, CLI -----------------------------------------------------------


@pytest.mark.slow
def test_pretrained_shapes_captioner_names_attributes_far_above_chance(stream_run):
    metrics = json.loads((stream_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert metrics["num_images"] == 200
    # chance: real captions of other images (a fluent captioner that ignores the image)
    assert metrics["attribute_accuracy"] > metrics["attribute_accuracy_chance"] + 0.25
    assert metrics["bleu4"] > metrics["bleu4_chance"] + 0.1
    log = [json.loads(line) for line in (stream_run / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert [r["step"] for r in log if "loss" in r] == [1, 100, 200, 300] and losses[-1] < losses[0]
    assert metrics["step"] == 300 and metrics["metric"] == "stream_captions"
    stream, vocab = load_stream(stream_run)
    assert not stream.training and stream.config.image_size == 32 and stream.config.vocab_size == len(vocab)
    # the loaded captioner gives the same captions as it did when scored
    ds = ShapesDataset("test", num_images=5, image_size=32)
    images = torch.stack([ds.get_item(i, 0)["image"] for i in range(5)])
    from t2igan.models.stream import caption_images

    assert caption_images(stream, vocab, images) == [e["caption"] for e in metrics["examples"]]


@pytest.mark.slow
def test_stream_vocabulary_must_match_the_data(stream_run):
    stream, vocab = load_stream(stream_run)
    m = tiny_mirrorgan(vocab_size=len(vocab), stream_weights=str(stream_run))
    assert m.config.stream_embed_dim == 32 and m.config.stream_image_size == 32  # taken from the run
    assert torch.equal(m.stream.out.weight, stream.out.weight)
    # a value that disagrees with the run is refused, naming both (it used to be overwritten silently)
    with pytest.raises(T2IError, match=r"stream_embed_dim=99 but the STREAM in .* has embed_dim=32"):
        tiny_mirrorgan(vocab_size=len(vocab), stream_weights=str(stream_run), stream_embed_dim=99)
    m = tiny_mirrorgan(vocab_size=len(vocab), stream_weights=str(stream_run), stream_embed_dim=32)
    assert m.config.stream_hidden_dim == stream.config.hidden_dim  # an agreeing value is accepted
    with pytest.raises(T2IError, match="vocabulary"):
        tiny_mirrorgan(vocab_size=len(vocab) + 1, stream_weights=str(stream_run))
    with pytest.raises(T2IError, match="not found"):
        tiny_mirrorgan(stream_weights=str(stream_run / "missing"))


@pytest.mark.slow
def test_caption_and_sample_mirror_commands(stream_run, tmp_path, capsys):
    ds = ShapesDataset("test", num_images=2, image_size=32)
    paths = []
    for i in range(2):
        paths.append(tmp_path / f"img{i}.png")
        to_pil(ds.get_item(i, 0)["image"][None])[0].save(paths[-1])
    assert main(["caption", str(stream_run), *map(str, paths)]) == 0
    greedy = capsys.readouterr().out.strip().splitlines()
    assert len(greedy) == 2 and greedy[0].startswith(f"{paths[0]}: ") and len(greedy[0]) > len(f"{paths[0]}: ") + 5
    assert main(["caption", str(stream_run), str(paths[0]), "--beam", "3"]) == 0
    assert capsys.readouterr().out.startswith(f"{paths[0]}: ")
    assert main(["caption", str(stream_run), str(tmp_path / "nope.png")]) == 2
    assert "cannot read image" in capsys.readouterr().err

    # a MirrorGAN run carries its STREAM: sample --mirror and caption work from it alone
    stream, vocab = load_stream(stream_run)
    m = tiny_mirrorgan(vocab_size=len(vocab), stream_weights=str(stream_run))
    run = tmp_path / "mirror-run"
    save_run(run, {"data": {"max_words": 18}}, m, vocab)
    loaded, _, _ = load_run(run)
    assert loaded.config.stream_weights is None
    assert all(torch.equal(a, b) for a, b in zip(loaded.stream.state_dict().values(), stream.state_dict().values()))
    out = tmp_path / "s.png"
    assert main(["sample", str(run), "a red circle on the left", "a big blue square", "--n", "1", "--mirror",
                 "-o", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [line for line in lines if "  ->  " in line]
    assert len(rows) == 3 and rows[1].startswith("a red circle on the left") and rows[2].startswith("a big blue square")
    assert main(["caption", str(run), str(paths[0])]) == 0
    assert capsys.readouterr().out.startswith(f"{paths[0]}: ")
    # a model without a STREAM: one-line error, unless a STREAM run is given
    save_run(tmp_path / "attn", {"data": {"max_words": 18}},
             create_model("attngan", vocab_size=len(vocab), image_size=32, base_size=16, num_stages=2, ngf=4, ndf=4,
                          num_residual=1, c_dim=8, text_emb_dim=16, text_hidden_dim=8, damsm_weight=0.0), vocab)
    assert main(["sample", str(tmp_path / "attn"), "a red circle", "--n", "1", "--mirror", "-o", str(out)]) == 2
    assert "no STREAM" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "attn"), "a red circle", "--n", "2", "--mirror", "--stream", str(stream_run),
                 "-o", str(out)]) == 0
    assert len([line for line in capsys.readouterr().out.splitlines() if "  ->  " in line]) == 3


def test_pretrain_command_and_presets(tmp_path, capsys):
    assert main(["pretrain", "stream", "stream-shapes", "--dry-run"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["model_args"]["backbone"] == "small_cnn" and d["data"]["image_size"] == 64
    assert main(["pretrain", "stream", "stream-cub", "--dry-run"]) == 0
    d = json.loads(capsys.readouterr().out)
    args = d["model_args"]
    assert (args["backbone"], args["embed_dim"], args["hidden_dim"], args["inject"]) == ("inception", 256, 512, "init")
    assert args["lr"] == 0.001 and d["train"]["batch_size"] == 128 and d["train"]["max_steps"] == 13800
    assert main(["pretrain", "stream", "stream-shapes", "model.colour=1", "--dry-run"]) == 2
    assert main(["pretrain", "stream", "damsm-shapes", "--dry-run"]) == 2
    assert "not stream" in capsys.readouterr().err
    assert main(["pretrain", "damsm", "damsm-shapes", "--dry-run"]) == 0  # damsm still works
    capsys.readouterr()
    # a tiny run on a test split of one image still saves a loadable STREAM
    run = tmp_path / "one"
    assert main(["pretrain", "stream", "stream-shapes", "data.image_size=32", "data.train_args={num_images: 16}",
                 "data.test_args={num_images: 1}", "model.cnn_channels=4", "model.embed_dim=8", "model.hidden_dim=8",
                 "train.batch_size=8", "train.max_steps=2", "--run-dir", str(run), "--no-progress"]) == 0
    assert "not scored" in capsys.readouterr().out
    assert load_stream(run)[0].config.hidden_dim == 8

    cub = resolve_config("mirrorgan-cub")
    a = cub.model_args
    assert (a["ngf"], a["ndf"], a["num_residual"], a["damsm_weight"], a["stream_lambda"]) == (32, 64, 2, 0.0, 10.0)
    assert cub.train.batch_size == 12 and cub.train.max_steps == 650 * (8855 // 12)
    # COCO: MirrorGAN's own settings (train_bird.yml) on AttnGAN's COCO sizes (coco_attn2.yml)
    coco, attn_coco = resolve_config("mirrorgan-coco"), resolve_config("attngan-coco")
    for key in ("base_size", "num_stages", "ngf", "ndf", "num_residual", "z_dim", "c_dim"):
        assert coco.model_args[key] == attn_coco.model_args[key], key
    assert {k: coco.model_args[k] for k in ("damsm_weight", "stream_lambda", "sentence_attention_conv")} == \
        {k: cub.model_args[k] for k in ("damsm_weight", "stream_lambda", "sentence_attention_conv")}
    assert coco.data == attn_coco.data and coco.train.max_steps == 120 * (82783 // 12)
    assert (coco.train.batch_size, coco.train.lr_g, tuple(coco.train.betas_g)) == (12, 2e-4, (0.5, 0.999))
    shapes, attn = resolve_config("mirrorgan-shapes"), resolve_config("attngan-shapes")
    same = ("base_size", "num_stages", "ngf", "ndf", "num_residual", "z_dim", "c_dim", "damsm_backbone",
            "damsm_weight", "damsm_gamma1", "damsm_gamma2", "damsm_gamma3", "damsm_paper_form", "kl_weight")
    assert {k: shapes.model_args.get(k) for k in same} == {k: attn.model_args.get(k) for k in same}
    assert shapes.train == attn.train and shapes.data == attn.data


@pytest.mark.slow
def test_trains_end_to_end_on_tiny_shapes_with_a_frozen_pretrained_stream(stream_run, tmp_path):

    cfg = resolve_config("mirrorgan-shapes", [
        "data.image_size=32", "model.base_size=16", "data.train_args={num_images: 32}",
        "data.test_args={num_images: 8}", f"data.vocab={stream_run / 'vocab.json'}", "model.damsm_weights=null",
        f"model.stream_weights={stream_run}",
        "model.damsm_weight=0", "model.ngf=4", "model.ndf=4", "model.c_dim=8", "model.text_emb_dim=16",
        "model.text_hidden_dim=8", "train.batch_size=8", "train.max_steps=2", "train.sample_every=2",
        "train.checkpoint_every=2", "train.num_sample_captions=2",
    ])
    run = Trainer(cfg, tmp_path / "run", progress=False).fit()
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert all("stream" in r and "g_loss" in r for r in log if "g_loss" in r)
    model, _, config = load_run(run)
    assert model.model_name == "mirrorgan" and config["model_config"]["stream_inject"] == "every"
    pretrained, _ = load_stream(stream_run)
    assert all(torch.equal(a, b) for a, b in zip(model.stream.state_dict().values(), pretrained.state_dict().values()))
