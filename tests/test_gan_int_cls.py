"""GAN-INT-CLS: networks, the CLS and INT terms, char-CNN-RNN embeddings, interpolation and
style-transfer sampling."""

import io
import json
import pickle
import struct

import numpy as np
import pytest
import torch

import t2igan.models.gan_int_cls as gic
from t2igan import Text2ImagePipeline, create_model
from t2igan.cli import main
from t2igan.commands.style import style_output_path, style_transfer
from t2igan.config import TrainConfig, resolve_config
from t2igan.data.embeddings import (
    EMBEDDINGS_FILENAME,
    CaptionEmbeddingDataset,
    attach_caption_embeddings,
    read_char_cnn_rnn_embeddings,
)
from t2igan.data.text import Vocabulary
from t2igan.errors import T2IError
from t2igan.runs import save_run
from t2igan.losses import bce_logits_loss
from t2igan.visualize import to_pil

B, S = 6, 16
WORDS = "a red blue green circle square star on the left right top bottom small large".split()
VOCAB = Vocabulary(["<pad>", "<unk>"] + WORDS)


def split_embeddings(root, split: str):
    """Where the StackGAN layout keeps a split's embeddings: ``<root>/<split>/char-CNN-RNN-embeddings.pickle``."""
    return root / split / EMBEDDINGS_FILENAME


def tiny(**kw):
    torch.manual_seed(0)
    args = dict(vocab_size=len(VOCAB), image_size=S, ngf=8, ndf=8, text_emb_dim=16, text_hidden_dim=8,
                text_proj_dim=16, z_dim=12)
    args.update(kw)
    return create_model("gan_int_cls", **args)


def batch(seed=0, emb_dim=None):
    g = torch.Generator().manual_seed(seed)
    b = {
        "image": torch.rand(B, 3, S, S, generator=g) * 2 - 1,
        "tokens": torch.randint(2, len(VOCAB), (B, 5), generator=g),
        "lengths": torch.tensor([5, 4, 5, 3, 2, 5]),
    }
    if emb_dim:
        b["sent_emb"] = torch.randn(B, emb_dim, generator=g)
    return b


# ---------------------------------------------------------------------------------------------- networks


@pytest.mark.parametrize("architecture", ["paper", "official"])
@pytest.mark.parametrize("size", [16, 32, 64])
def test_networks_reach_every_power_of_two_size(architecture, size):
    m = tiny(image_size=size, architecture=architecture).eval()
    b = batch()
    out = m.generate(b["tokens"][:2], b["lengths"][:2], m.noise(2))
    assert out.images.shape == (2, 3, size, size) and out.images.abs().max() <= 1
    feats = m.discriminator.features(out.images)
    assert feats.shape[2:] == (4, 4)  # D reduces to 4x4 before the text is joined
    assert m.discriminator.logits(feats, torch.randn(2, 16)).shape == (2,)


def test_official_channel_plan_and_bad_configs():
    assert gic.g_channels(128, 64) == [1024, 512, 256, 128]  # ngf*8 at 4x4 ... ngf at 32x32
    assert gic.d_channels(64, 64) == [64, 128, 256, 512]
    assert gic.g_channels(32, 32) == [128, 64, 32]
    with pytest.raises(T2IError, match="power of two"):
        tiny(image_size=48)
    with pytest.raises(T2IError, match="variant"):
        tiny(variant="gan_int_cls_plus")
    with pytest.raises(T2IError, match="text_source"):
        tiny(text_source="clip")


# ---------------------------------------------------------------------------------------------- CLS


def test_d_cls_loss_weights_the_three_pairs():
    real, fake, wrong = torch.tensor([2.0, 1.0]), torch.tensor([-1.0, 0.5]), torch.tensor([0.3, -0.2])
    expected = bce_logits_loss(real, True) + 0.5 * bce_logits_loss(wrong, False) + 0.5 * bce_logits_loss(fake, False)
    assert gic.d_cls_loss(real, fake, wrong, 0.5).item() == pytest.approx(expected.item())
    plain = bce_logits_loss(real, True) + bce_logits_loss(fake, False)
    assert gic.d_cls_loss(real, fake, None).item() == pytest.approx(plain.item())


def test_cls_term_pairs_real_images_with_mismatched_text(monkeypatch):
    m = tiny(variant="gan_cls", text_source="embeddings", embedding_dim=10)
    b = batch(emb_dim=10)
    torch.manual_seed(1)
    loss, logs = m.compute_loss("d", b, {})
    # recompute the wrong-pair logits by hand: the same real images, every caption rolled by one
    D = m.discriminator
    wrong = D.logits(D.features(b["image"]), torch.roll(b["sent_emb"], 1, 0))
    assert logs["d_wrong"] == pytest.approx(wrong.mean().item(), abs=1e-5)
    assert logs["d_wrong"] != pytest.approx(logs["d_real"], abs=1e-4)
    # with the "mismatched" text replaced by the right text, the wrong pair equals the real pair
    monkeypatch.setattr(gic, "mismatched", lambda x: x)
    torch.manual_seed(1)
    same_loss, same = m.compute_loss("d", b, {})
    assert same["d_wrong"] == pytest.approx(same["d_real"], abs=1e-5)
    assert same_loss.item() != pytest.approx(loss.item(), abs=1e-4)


def train_d_only(variant, steps=40):
    """D alone on one batch of real images with distinct text (fakes from a fixed G)."""
    m = tiny(variant=variant, text_source="embeddings", embedding_dim=10)
    b = batch(emb_dim=10)
    opt = torch.optim.Adam(m.discriminator.parameters(), 2e-3, betas=(0.5, 0.999))
    for _ in range(steps):
        loss, _ = m.compute_loss("d", b, {})
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    with torch.no_grad():
        feats = m.discriminator.features(b["image"])
        right = m.discriminator.logits(feats, b["sent_emb"]).mean().item()
        wrong = m.discriminator.logits(feats, torch.roll(b["sent_emb"], 3, 0)).mean().item()
    return right - wrong


def test_only_cls_teaches_d_to_reject_real_images_with_wrong_text():
    gap_cls = train_d_only("gan_cls")
    gap_plain = train_d_only("gan")
    assert gap_cls > 1.0  # D scores (real, right text) well above (real, wrong text)
    assert gap_cls > gap_plain + 1.0


# ---------------------------------------------------------------------------------------------- INT


def test_interpolated_embeddings_lie_between_their_ends():
    e = torch.randn(8, 5)
    for beta in (0.0, 0.25, 0.5, 1.0):
        t = gic.interpolate_embeddings(e, beta)
        a, c = e[:4], e[4:]
        assert t.shape == (4, 5)
        assert torch.allclose(t, beta * a + (1 - beta) * c, atol=1e-6)
        # on the segment: |a - t| + |t - c| = |a - c|
        assert torch.allclose((a - t).norm(dim=1) + (t - c).norm(dim=1), (a - c).norm(dim=1), atol=1e-5)
    assert torch.equal(gic.interpolate_embeddings(e, 1.0), e[:4])
    assert torch.equal(gic.interpolate_embeddings(e, 0.0), e[4:])


def test_int_trains_g_on_interpolated_embeddings():
    seen = []

    def run(variant):
        m = tiny(variant=variant, text_source="embeddings", embedding_dim=10, interp_beta=0.25)
        b = batch(emb_dim=10)
        state = {}
        m.compute_loss("d", b, state)
        handle = m.generator.register_forward_pre_hook(lambda mod, args: seen.append(args[1].detach().clone()))
        loss, logs = m.compute_loss("g", b, state)
        handle.remove()
        return m, b, loss, logs

    seen.clear()
    _, b, _, logs = run("gan")
    assert seen == [] and "d_interp" not in logs  # plain GAN reuses the D phase's fakes only
    m, b, loss, logs = run("gan_int")
    assert len(seen) == 1 and "d_interp" in logs
    assert torch.allclose(seen[0], 0.25 * b["sent_emb"][:3] + 0.75 * b["sent_emb"][3:], atol=1e-6)
    # G's gradient flows through the interpolated fakes
    loss.backward()
    assert m.generator.text_proj[0].weight.grad.abs().sum() > 0


def test_g_interp_loss_forms():
    fake, interp = torch.tensor([0.5, -0.5, 1.0, 2.0]), torch.tensor([0.1, -1.0])
    bce_f = torch.nn.functional.softplus(-fake)  # BCE(logit, 1)
    bce_i = torch.nn.functional.softplus(-interp)
    paper = gic.g_interp_loss(fake, interp, 1.0, "paper")
    official = gic.g_interp_loss(fake, interp, 1.0, "official")
    assert paper.item() == pytest.approx((bce_f.mean() + bce_i.mean()).item(), rel=1e-6)
    assert official.item() == pytest.approx(((bce_f.sum() + bce_i.sum()) / 6).item(), rel=1e-6)
    assert gic.g_interp_loss(fake, None).item() == pytest.approx(bce_f.mean().item(), rel=1e-6)


# ---------------------------------------------------------------------------------------------- training


def test_d_and_g_steps_update_only_their_networks_and_joint_encoder_learns():
    m = tiny(text_encoder_mode="joint_d")
    opts = {k: torch.optim.Adam(g) for k, g in m.optimizer_groups(TrainConfig()).items()}
    g0 = [p.clone() for p in m.generator.parameters()]
    t0 = [p.clone() for p in m.text_encoder.parameters()]
    state = {}
    loss, _ = m.compute_loss("d", batch(), state)
    opts["d"].zero_grad(); loss.backward(); opts["d"].step()
    assert all(torch.equal(a, b) for a, b in zip(g0, m.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(t0, m.text_encoder.parameters()))
    d1 = [p.clone() for p in m.discriminator.parameters()]
    t1 = [p.clone() for p in m.text_encoder.parameters()]
    loss, _ = m.compute_loss("g", batch(), state)
    opts["g"].zero_grad(); loss.backward(); opts["g"].step()
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.generator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(d1, m.discriminator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(t1, m.text_encoder.parameters()))


def test_lr_factor_halves_every_100_epochs():
    m = tiny()
    assert [m.lr_factor(e) for e in (0, 99, 100, 250)] == [1.0, 1.0, 0.5, 0.25]
    assert tiny(lr_decay_every_epochs=0).lr_factor(1000) == 1.0


def test_shapes_presets_select_the_four_variants():
    for variant in ("gan", "gan_cls", "gan_int", "gan_int_cls"):
        cfg = resolve_config(f"{variant}-shapes")
        assert cfg.model == "gan_int_cls" and cfg.model_args["variant"] == variant
    for name in ("gan_int_cls-cub", "gan_int_cls-flowers"):
        cfg = resolve_config(name)
        assert cfg.model_args["text_source"] == "embeddings" and cfg.train.batch_size == 64
        assert cfg.model_args["ngf"] == 128 and cfg.model_args["ndf"] == 64 and cfg.data.image_size == 64


# ---------------------------------------------------------------------------------------------- embeddings


class Python2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2 wrote it (the released StackGAN files): bytes as ``str`` (BINSTRING)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_python2_str(self, obj):
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_python2_str


def write_embeddings(path, n=3, c=10, d=1024, as_list=True):
    """A char-CNN-RNN-embeddings.pickle: N arrays (C, D), protocol 2, numpy 1.x module names."""
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal((c, d)).astype(np.float32) for _ in range(n)]
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Python2Pickler(buf, protocol=2).dump(arrays if as_list else np.stack(arrays))
    path.write_bytes(buf.getvalue().replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
    return np.stack(arrays)


def test_read_char_cnn_rnn_embeddings(tmp_path):
    path = split_embeddings(tmp_path, "train")
    assert path == tmp_path / "train" / "char-CNN-RNN-embeddings.pickle"
    expected = write_embeddings(path)
    got = read_char_cnn_rnn_embeddings(path)
    assert got.shape == (3, 10, 1024) and got.dtype == np.float32
    assert np.array_equal(got, expected)
    write_embeddings(tmp_path / "arr.pickle", as_list=False)
    assert np.array_equal(read_char_cnn_rnn_embeddings(tmp_path / "arr.pickle"), expected)


def test_bad_embeddings_files_are_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pickle").write_bytes(pickle.dumps([Evil()], protocol=2))
    with pytest.raises(T2IError, match="evil.pickle.*not allowed"):
        read_char_cnn_rnn_embeddings(tmp_path / "evil.pickle")
    (tmp_path / "ragged.pickle").write_bytes(pickle.dumps([np.zeros((10, 4)), np.zeros((9, 4))], protocol=2))
    with pytest.raises(T2IError, match="ragged.pickle"):
        read_char_cnn_rnn_embeddings(tmp_path / "ragged.pickle")
    with pytest.raises(T2IError, match="not found"):
        read_char_cnn_rnn_embeddings(tmp_path / "missing.pickle")


class FakeImages(torch.utils.data.Dataset):
    """3 images x 2 captions; item i is image i % 3 with caption i // 3."""

    num_images = 3
    keys = ["cls/a", "cls/b", "cls/c"]

    def __len__(self):
        return 6

    def __getitem__(self, i):
        return {"image": torch.zeros(3, S, S), "caption": f"caption {i}", "image_idx": i % 3,
                "caption_idx": i // 3, "key": self.keys[i % 3]}

    def captions(self, i):
        return [f"caption {i}"]


def test_embedding_dataset_adds_the_items_caption_embedding(tmp_path):
    write_embeddings(split_embeddings(tmp_path, "test"), n=3, c=4, d=6)
    ds = attach_caption_embeddings(FakeImages(), tmp_path, "test")  # test split: no averaging
    emb = read_char_cnn_rnn_embeddings(split_embeddings(tmp_path, "test"))
    for i in range(len(ds)):
        item = ds[i]
        assert torch.equal(item["sent_emb"], torch.from_numpy(emb[i % 3, i // 3]))
    assert ds.captions(0) == ["caption 0"]  # the base data set's API passes through
    # training: the mean of the item's caption and 3 more of the same image (one-hot rows count them)
    onehot = np.tile(np.eye(4, dtype=np.float32)[None], (3, 1, 1))  # (N=3, C=4, D=4)
    avg = CaptionEmbeddingDataset(FakeImages(), onehot, captions_per_embedding=4, train=True)
    torch.manual_seed(0)
    for i in range(6):
        counts = avg[i]["sent_emb"] * 4
        assert torch.allclose(counts, counts.round()) and counts.sum() == pytest.approx(4)
        assert counts[i // 3] >= 1
    with pytest.raises(T2IError, match="3 images"):
        CaptionEmbeddingDataset(type("Big", (FakeImages,), {"num_images": 5})(), onehot)


def test_embedding_rows_follow_filenames_pickle_by_key(tmp_path):
    """The embeddings follow <split>/filenames.pickle; a data set holding other images, or in another
    order, still gets each image's own row."""
    emb = write_embeddings(split_embeddings(tmp_path, "train"), n=4, c=2, d=3)
    order = ["cls/c", "cls/x", "cls/a", "cls/b"]  # the file's order differs from the data set's
    (tmp_path / "train" / "filenames.pickle").write_bytes(pickle.dumps(order, protocol=2))
    ds = attach_caption_embeddings(FakeImages(), tmp_path, "train", train=False)
    for i in range(6):
        item = ds[i]
        assert torch.equal(item["sent_emb"], torch.from_numpy(emb[order.index(item["key"]), i // 3]))
    (tmp_path / "train" / "filenames.pickle").write_bytes(pickle.dumps(order[:3] + ["cls/y"], protocol=2))
    with pytest.raises(T2IError, match="no embeddings for 1 images.*cls/b"):
        attach_caption_embeddings(FakeImages(), tmp_path, "train")


def test_embeddings_model_trains_from_batch_and_refuses_free_text(tmp_path):
    m = tiny(text_source="embeddings", embedding_dim=10)
    assert m.text_encoder is None and not m.text_encoder_trainable
    opts = {k: torch.optim.Adam(g) for k, g in m.optimizer_groups(TrainConfig()).items()}
    b = batch(emb_dim=10)
    state = {}
    for phase in ("d", "g"):
        loss, _ = m.compute_loss(phase, b, state)
        opts[phase].zero_grad(); loss.backward(); opts[phase].step()
    with pytest.raises(T2IError, match="sent_emb"):
        m.compute_loss("d", {k: v for k, v in b.items() if k != "sent_emb"}, {})
    with pytest.raises(T2IError, match="cannot encode free-text"):
        m.generate(b["tokens"], b["lengths"], m.noise(B))
    m.eval()
    assert m.generator(m.noise(B), b["sent_emb"]).shape == (B, 3, S, S)  # images from precomputed embeddings
    save_run(tmp_path, {}, m, VOCAB)
    pipe = Text2ImagePipeline.from_pretrained(tmp_path, device="cpu")
    with pytest.raises(T2IError, match="cannot encode free-text"):
        pipe(["a red circle"])


# ---------------------------------------------------------------------------------------------- sampling


def close(a, b, tol=1):
    """Two PIL images equal up to ``tol`` grey levels (batches of other sizes round differently)."""
    return np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).max() <= tol


def far(a, b):
    return np.abs(np.asarray(a, dtype=int) - np.asarray(b, dtype=int)).mean() > 2


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("gic_run")
    m = tiny(architecture="official")
    # a few D/G steps so that the batch-norm running statistics are not the identity
    opts = {k: torch.optim.Adam(g) for k, g in m.optimizer_groups(TrainConfig()).items()}
    for step in range(3):
        state = {}
        for phase in ("d", "g"):
            loss, _ = m.compute_loss(phase, batch(step), state)
            opts[phase].zero_grad(); loss.backward(); opts[phase].step()
    with torch.no_grad():  # spread the outputs over the colour range (a fresh DCGAN G draws flat grey)
        m.generator.layers[-1][0].weight.mul_(40)
        m.text_encoder.embedding.weight.mul_(20)  # and let the (untrained, near-equal) sentences differ
        m.generator.text_proj[0].weight.mul_(20)
    save_run(path, {"data": {"max_words": 8}}, m, VOCAB)
    return path


def test_interpolation_rows_are_deterministic_and_end_at_the_captions(run_dir):
    pipe = Text2ImagePipeline.from_pretrained(run_dir, device="cpu")
    a, b = "a red circle on the left", "a small blue star at the top"
    row = pipe.interpolate(a, b, steps=5, seed=3)
    again = pipe.interpolate(a, b, steps=5, seed=3)
    other = pipe.interpolate(a, b, steps=5, seed=4)
    assert len(row) == 5
    assert all(x.tobytes() == y.tobytes() for x, y in zip(row, again))
    assert all(far(x, y) for x, y in zip(row, other))
    # the ends are the two captions generated alone with the same noise
    assert close(row[0], pipe([a], n=1, seed=3)[0])
    assert close(row[-1], pipe([b], n=1, seed=3)[0])
    # the walk moves steadily away from caption A
    dist = [np.abs(np.asarray(row[0], dtype=int) - np.asarray(im, dtype=int)).mean() for im in row]
    assert dist[-1] > 2 and all(x < y for x, y in zip(dist[:-1], dist[1:]))


def test_style_transfer_shares_noise_along_rows(run_dir, tmp_path, capsys):
    pipe = Text2ImagePipeline.from_pretrained(run_dir, device="cpu")
    caps = ["a red circle", "a blue square", "a green star"]
    rows = style_transfer(pipe, caps, n=2, seed=5)
    assert [len(r) for r in rows] == [3, 3]
    # row r renders every caption with noise vector r of the 2 drawn from the seed
    noise = pipe.noise(2, 5, None)
    for r in range(2):
        for j, cap in enumerate(caps):
            assert close(rows[r][j], to_pil(pipe.generate([cap], noise[r: r + 1])[0])[0])
    assert all(far(x, y) for x, y in zip(rows[0], rows[1]))
    again = style_transfer(pipe, caps, n=2, seed=5)
    assert all(x.tobytes() == y.tobytes() for r, s in zip(rows, again) for x, y in zip(r, s))
    out = tmp_path / "grid.png"
    assert main(["sample", str(run_dir), *caps, "--n", "2", "--style-transfer", "-o", str(out),
                 "--device", "cpu"]) == 0
    assert out.is_file() and style_output_path(out).is_file()
    assert "style transfer: 2 noise vectors x 3 captions" in capsys.readouterr().out
    assert main(["sample", str(run_dir), "zzz qqq", "--style-transfer", "-o", str(out), "--device", "cpu"]) == 2


def test_interpolate_cli_writes_a_row(run_dir, tmp_path):
    out = tmp_path / "walk.png"
    assert main(["sample", str(run_dir), "--interpolate", "a red circle", "a blue star", "--steps", "4",
                 "-o", str(out), "--device", "cpu"]) == 0
    assert out.is_file()


def test_shapes_preset_trains_end_to_end(tmp_path):
    from t2igan.training import Trainer

    cfg = resolve_config("gan_int_cls-shapes", [
        "data.train_args={num_images: 32}", "data.test_args={num_images: 8}", "model.ngf=8", "model.ndf=8",
        "model.text_emb_dim=16", "model.text_hidden_dim=8", "train.batch_size=8", "train.max_steps=3",
        "train.log_every=1", "train.sample_every=3", "train.num_sample_captions=4",
    ])
    run = Trainer(cfg, tmp_path, progress=False).fit()
    logs = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logs] == [1, 2, 3]
    assert all({"d_wrong", "d_interp", "g_loss"} <= set(entry) for entry in logs)
    assert (run / "samples" / "step-00000003.png").is_file()
    images = Text2ImagePipeline.from_pretrained(run, device="cpu")(["a red circle"], n=2, seed=0)
    assert images[0].size == (32, 32)


def test_trainer_applies_the_per_epoch_lr_schedule(tmp_path):
    from t2igan.config import resolve_config
    from t2igan.training import Trainer

    cfg = resolve_config("gan_int_cls-shapes", [
        "data.image_size=32", "data.train_args={num_images: 16}", "data.test_args={num_images: 4}",
        "model.ngf=8", "model.ndf=8", "model.text_emb_dim=8", "model.text_hidden_dim=8",
        "model.lr_decay=0.5", "model.lr_decay_every_epochs=1", "train.batch_size=8", "train.max_steps=5",
        "train.sample_every=0", "train.checkpoint_every=100",
    ])
    t = Trainer(cfg, tmp_path, progress=False)
    t.fit()
    # 2 batches per epoch: steps 1-2 epoch 0, 3-4 epoch 1, 5 epoch 2 -> factor 0.25
    for opt in t.optimizers.values():
        for g in opt.param_groups:
            assert g["lr"] == g["initial_lr"] * 0.25
