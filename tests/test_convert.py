"""``t2igan convert``: official DF-GAN / DAMSM state dicts (built here with the official key names
and shapes, saved with torch.save) become run folders whose models compute what the official
modules compute."""

import pickle

import pytest
import torch
import torch.nn.functional as F

from t2igan import Text2ImagePipeline
from t2igan.cli import main
from t2igan.convert.attngan import convert_damsm
from t2igan.convert.dfgan import convert_dfgan
from t2igan.errors import T2IError
from t2igan.runs import load_run

NF, Z, HIDDEN, EMB, SIZE = 4, 100, 16, 12, 64  # DF-GAN 64 px: 4 D blocks, the last of equal widths
COND = 2 * HIDDEN
WORDS = ["<end>", "a", "bird", "red", "with", "wings", "small"]


def official_text_encoder(gen):
    """AttnGAN RNN_ENCODER: nn.Embedding ``encoder`` + bidirectional one-layer LSTM ``rnn``."""
    sd = {"encoder.weight": torch.randn(len(WORDS), EMB, generator=gen)}
    for suffix in ("", "_reverse"):
        sd[f"rnn.weight_ih_l0{suffix}"] = torch.randn(4 * HIDDEN, EMB, generator=gen) * 0.2
        sd[f"rnn.weight_hh_l0{suffix}"] = torch.randn(4 * HIDDEN, HIDDEN, generator=gen) * 0.2
        sd[f"rnn.bias_ih_l0{suffix}"] = torch.randn(4 * HIDDEN, generator=gen) * 0.2
        sd[f"rnn.bias_hh_l0{suffix}"] = torch.randn(4 * HIDDEN, generator=gen) * 0.2
    return sd


def official_dfgan(gen):
    """NetG / NetD / NetC state dicts of tobran/DF-GAN (code/models/GAN.py) for ngf = ndf = NF."""
    def r(*shape):
        return torch.randn(*shape, generator=gen) * 0.1

    g = {"fc.weight": r(NF * 8 * 16, Z), "fc.bias": r(NF * 8 * 16)}
    chs = [NF * min(2**k, 8) for k in range(4)][::-1]  # log2(64) - 1 = 5 levels -> 4 G blocks
    chs = [NF * 8] + chs  # [8nf, 8nf, 4nf, 2nf, nf]
    for i, (cin, cout) in enumerate(zip(chs[:-1], chs[1:])):
        p = f"GBlocks.{i}."
        g.update({p + "c1.weight": r(cout, cin, 3, 3), p + "c1.bias": r(cout),
                  p + "c2.weight": r(cout, cout, 3, 3), p + "c2.bias": r(cout)})
        if cin != cout:
            g.update({p + "c_sc.weight": r(cout, cin, 1, 1), p + "c_sc.bias": r(cout)})
        for fuse, ch in (("fuse1", cin), ("fuse2", cout)):
            for a in ("affine0", "affine1"):
                for fc in ("fc_gamma", "fc_beta"):
                    q = f"{p}{fuse}.{a}.{fc}."
                    g.update({q + "linear1.weight": r(ch, Z + COND), q + "linear1.bias": r(ch),
                              q + "linear2.weight": r(ch, ch), q + "linear2.bias": r(ch) + (fc == "fc_gamma")})
    g.update({"to_rgb.1.weight": r(3, NF, 3, 3), "to_rgb.1.bias": r(3)})
    d = {"conv_img.weight": r(NF, 3, 3, 3), "conv_img.bias": r(NF)}
    dchs = [NF, 2 * NF, 4 * NF, 8 * NF, 8 * NF]
    for i, (cin, cout) in enumerate(zip(dchs[:-1], dchs[1:])):
        p = f"DBlocks.{i}."
        d.update({p + "conv_r.0.weight": r(cout, cin, 4, 4), p + "conv_r.2.weight": r(cout, cout, 3, 3),
                  p + "conv_s.weight": r(cout, cin, 1, 1), p + "conv_s.bias": r(cout), p + "gamma": r(1) + 0.5})
    c = {"joint_conv.0.weight": r(2 * NF, 8 * NF + COND, 3, 3), "joint_conv.2.weight": r(1, 2 * NF, 4, 4)}
    return g, d, c


def official_generator_forward(g, noise, sent_emb):
    """NetG's computation written out with the official tensors (the reference for the mapping)."""
    cond = torch.cat([noise, sent_emb], 1)
    h = F.linear(noise, g["fc.weight"], g["fc.bias"]).view(noise.shape[0], 8 * NF, 4, 4)

    def fuse(h, p):
        for a in ("affine0", "affine1"):
            gamma = F.linear(F.relu(F.linear(cond, g[f"{p}.{a}.fc_gamma.linear1.weight"], g[f"{p}.{a}.fc_gamma.linear1.bias"])),
                             g[f"{p}.{a}.fc_gamma.linear2.weight"], g[f"{p}.{a}.fc_gamma.linear2.bias"])
            beta = F.linear(F.relu(F.linear(cond, g[f"{p}.{a}.fc_beta.linear1.weight"], g[f"{p}.{a}.fc_beta.linear1.bias"])),
                            g[f"{p}.{a}.fc_beta.linear2.weight"], g[f"{p}.{a}.fc_beta.linear2.bias"])
            h = F.leaky_relu(gamma[:, :, None, None] * h + beta[:, :, None, None], 0.2)
        return h

    for i in range(4):
        p = f"GBlocks.{i}"
        h = F.interpolate(h, scale_factor=2)
        sc = F.conv2d(h, g[f"{p}.c_sc.weight"], g[f"{p}.c_sc.bias"]) if f"{p}.c_sc.weight" in g else h
        res = F.conv2d(fuse(h, f"{p}.fuse1"), g[f"{p}.c1.weight"], g[f"{p}.c1.bias"], padding=1)
        res = F.conv2d(fuse(res, f"{p}.fuse2"), g[f"{p}.c2.weight"], g[f"{p}.c2.bias"], padding=1)
        h = sc + res
    return torch.tanh(F.conv2d(F.leaky_relu(h, 0.2), g["to_rgb.1.weight"], g["to_rgb.1.bias"], padding=1))


def official_discriminator_forward(d, c, images, sent_emb):
    """NetD then NetC, written out with the official tensors (shortcut conv before pooling)."""
    x = F.conv2d(images, d["conv_img.weight"], d["conv_img.bias"], padding=1)
    for i in range(4):
        p = f"DBlocks.{i}."
        res = F.leaky_relu(F.conv2d(x, d[p + "conv_r.0.weight"], stride=2, padding=1), 0.2)
        res = F.leaky_relu(F.conv2d(res, d[p + "conv_r.2.weight"], padding=1), 0.2)
        if d[p + "conv_r.0.weight"].shape[0] != d[p + "conv_r.0.weight"].shape[1]:
            x = F.conv2d(x, d[p + "conv_s.weight"], d[p + "conv_s.bias"])
        x = F.avg_pool2d(x, 2) + d[p + "gamma"] * res
    y = torch.cat([x, sent_emb[:, :, None, None].repeat(1, 1, 4, 4)], 1)
    y = F.leaky_relu(F.conv2d(y, c["joint_conv.0.weight"], padding=1), 0.2)
    return F.conv2d(y, c["joint_conv.2.weight"]).flatten()


@pytest.fixture
def official_files(tmp_path):
    gen = torch.Generator().manual_seed(0)
    g, d, c = official_dfgan(gen)
    te = official_text_encoder(gen)
    # trained with DataParallel: keys carry "module."
    torch.save({"model": {"netG": {f"module.{k}": v for k, v in g.items()}, "netD": d, "netC": c},
                "optimizers": {"optimizer_G": {"state": {}, "param_groups": []}}, "epoch": 600},
               tmp_path / "state_epoch_600.pth")
    torch.save(te, tmp_path / "text_encoder200.pth")
    ixtoword = dict(enumerate(WORDS))
    captions = [[[1, 2], [3, 2]], [[1, 6, 2]], ixtoword, {w: i for i, w in ixtoword.items()}]
    (tmp_path / "captions.pickle").write_bytes(pickle.dumps(captions, protocol=2))
    return tmp_path, g, d, c, te


def test_dfgan_conversion_computes_what_the_official_modules_compute(official_files):
    tmp, g, d, c, te = official_files
    out = tmp / "run"
    assert main(["convert", "dfgan", str(tmp / "state_epoch_600.pth"), "--text-encoder", str(tmp / "text_encoder200.pth"),
                 "--captions", str(tmp / "captions.pickle"), "-o", str(out)]) == 0
    model, vocab, config = load_run(out)
    assert config["model_config"]["nf"] == NF and config["model_config"]["image_size"] == SIZE
    assert len(vocab) == len(WORDS)
    assert torch.equal(model.text_encoder.embedding.weight, te["encoder.weight"])
    assert torch.equal(model.text_encoder.rnn.weight_hh_l0_reverse, te["rnn.weight_hh_l0_reverse"])

    torch.manual_seed(1)
    noise, sent_emb = torch.randn(2, Z), torch.randn(2, COND)
    with torch.no_grad():
        assert torch.allclose(model.generator(noise, sent_emb), official_generator_forward(g, noise, sent_emb), atol=1e-5)
        images = torch.rand(2, 3, SIZE, SIZE) * 2 - 1
        ours = model.discriminator.logits(model.discriminator.features(images), sent_emb)
        assert torch.allclose(ours, official_discriminator_forward(d, c, images, sent_emb), atol=1e-4)

    pipe = Text2ImagePipeline.from_pretrained(out, device="cpu")
    assert pipe(["a red bird"], n=2, seed=0)[0].size == (SIZE, SIZE)


def test_dfgan_errors_name_the_file(official_files):
    tmp, g, d, c, te = official_files
    bad = tmp / "bad.pth"
    torch.save({"model": {"netG": {**g, "extra.weight": torch.zeros(1)}, "netD": d, "netC": c}}, bad)
    with pytest.raises(T2IError, match=r"bad.pth: unexpected key 'netG.extra.weight'"):
        convert_dfgan(bad, tmp / "o1", captions=tmp / "captions.pickle")
    small = {**te, "encoder.weight": te["encoder.weight"][:5]}
    torch.save(small, tmp / "te_small.pth")
    with pytest.raises(T2IError, match="7 words but .*te_small.pth's embedding has 5 rows"):
        convert_dfgan(tmp / "state_epoch_600.pth", tmp / "o2", tmp / "te_small.pth", tmp / "captions.pickle")
    with pytest.raises(T2IError, match="--captions"):
        convert_dfgan(tmp / "state_epoch_600.pth", tmp / "o3", tmp / "text_encoder200.pth")


def test_official_file_that_would_run_code_is_refused(tmp_path):
    import os

    marker = tmp_path / "pwned"

    class RunsCode:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"encoder.weight": torch.zeros(2, 2), "x": RunsCode()}, tmp_path / "evil.pth")
    with pytest.raises(T2IError, match="cannot read .*evil.pth as a weights-only torch file"):
        convert_damsm(tmp_path / "evil.pth", tmp_path / "out", captions=None)
    assert not marker.exists()


def test_damsm_conversion_maps_text_and_image_encoders(official_files):
    from t2igan.nn.inception import ImageNetInceptionV3
    from t2igan.runs import load_damsm

    tmp, *_, te = official_files
    gen = torch.Generator().manual_seed(2)
    # CNN_ENCODER: torchvision Inception-v3 modules (no fc, no AuxLogits) + the two projections; a
    # 2018 file has no num_batches_tracked
    image = {k: torch.randn(v.shape, generator=gen) * 0.01 for k, v in ImageNetInceptionV3().state_dict().items()
             if not k.startswith(("fc.", "AuxLogits.")) and not k.endswith("num_batches_tracked")}
    image.update({"emb_features.weight": torch.randn(COND, 768, 1, 1, generator=gen),
                  "emb_cnn_code.weight": torch.randn(COND, 2048, generator=gen), "emb_cnn_code.bias": torch.randn(COND, generator=gen)})
    torch.save(image, tmp / "image_encoder200.pth")
    out = convert_damsm(tmp / "text_encoder200.pth", tmp / "damsm", tmp / "image_encoder200.pth", tmp / "captions.pickle")
    model, vocab = load_damsm(out)
    assert len(vocab) == len(WORDS) and model.config.embed_dim == COND
    assert torch.equal(model.text_encoder.rnn.weight_ih_l0, te["rnn.weight_ih_l0"])
    enc = model.image_encoder
    assert torch.equal(enc.emb_code.weight, image["emb_cnn_code.weight"])
    assert torch.equal(enc.emb_features.weight, image["emb_features.weight"])
    assert torch.equal(enc.backbone.net.Mixed_7c.branch_pool.conv.weight, image["Mixed_7c.branch_pool.conv.weight"])
    assert torch.equal(enc.backbone.net.Conv2d_1a_3x3.bn.running_var, image["Conv2d_1a_3x3.bn.running_var"])
