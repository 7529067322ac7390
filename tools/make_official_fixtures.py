"""Golden fixtures from the official implementations, for ``tests/test_fidelity.py``.

Given a local checkout of an official repository, this builds its models with small sizes and
fixed seeds, perturbs every weight (official zero/one initialisations would hide a wrong mapping),
runs them, and writes weights, inputs and outputs to ``tests/fixtures/official/<family>.safetensors``
with the repository's commit in the file's metadata. The official code never enters t2igan: only
the numbers it produced.

    python tools/make_official_fixtures.py ssagan --official-dir ../text2image
    python tools/make_official_fixtures.py attngan --official-dir ../AttnGAN
    python tools/make_official_fixtures.py damsm --official-dir ../AttnGAN
    python tools/make_official_fixtures.py dfgan --official-dir ../DF-GAN
    python tools/make_official_fixtures.py mirrorgan --official-dir ../MirrorGAN

Needs numpy and scipy besides t2igan's dependencies (the official DF-GAN sampler uses scipy). The
official code is old (PyTorch 0.4 - 1.x, a global ``cfg``, ``.cuda()`` calls); each family's
builder imports the official modules with compatibility shims (``official_shims.py``) applied at import time (a stub
``cfg`` holding the small sizes, textual size substitutions listed next to each builder), never
editing the checkout. Large inputs are stored small and up-sampled by nearest-neighbour repetition
(exact), large outputs are stored on a strided sub-grid (``SUBGRID``): every stored pixel depends on
the whole network, so a wrong mapping still shows.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

from official_shims import (SEED, SUBGRID, Cfg, cfg_tree, half_exact, import_official, official_function, perturb,
                            prefixed, stub_module, subgrid, upsample, write)

# ---------------------------------------------------------------------------------------------
# SSA-GAN (wtliao/text2image, model.py + main.py's training step)

SSAGAN = {"ngf": 1, "ndf": 1, "nz": 8, "nw": 8, "mask_hidden": 4, "batch": 3, "lr_g": 1e-4, "lr_d": 4e-4}
SSAGAN_PATCHES = [  # the sentence size (256) and the mask predictor width (100) are literals in model.py
    ("nn.Linear(256, 256)", "nn.Linear(NW, NW)"),
    ("nn.Linear(256, num_features)", "nn.Linear(NW, num_features)"),
    ("nn.Conv2d(ndf * 16 + 256, ndf * 2, 3, 1, 1, bias=False)", "nn.Conv2d(ndf * 16 + NW, ndf * 2, 3, 1, 1, bias=False)"),
    ("y = y.view(-1, 256, 1, 1)", "y = y.view(-1, NW, 1, 1)"),
    ("nn.Conv2d(8 * ngf, 100, 3, 1, 1)", "nn.Conv2d(8 * ngf, MH, 3, 1, 1)"),
    ("nn.Conv2d(out_ch, 100, 3, 1, 1)", "nn.Conv2d(out_ch, MH, 3, 1, 1)"),
    ("BatchNorm(100)", "BatchNorm(MH)"),
    ("nn.Conv2d(100, 1, 1, 1, 0)", "nn.Conv2d(MH, 1, 1, 1, 0)"),
]


def ssagan_ma_gp(netD, imgs, sent_emb):
    """main.py's MA-GP block (CPU): k = 2, p = 6 on the concatenated gradient."""
    x = imgs.data.requires_grad_()
    e = sent_emb.data.requires_grad_()
    out = netD.COND_DNET(netD(x), e)
    grads = torch.autograd.grad(outputs=out, inputs=(x, e), grad_outputs=torch.ones(out.size()),
                                retain_graph=True, create_graph=True, only_inputs=True)
    grad = torch.cat((grads[0].view(grads[0].size(0), -1), grads[1].view(grads[1].size(0), -1)), dim=1)
    return 2.0 * torch.mean(torch.sqrt(torch.sum(grad ** 2, dim=1)) ** 6)


def build_ssagan(official_dir: Path) -> Path:
    c = SSAGAN
    sys.path.insert(0, str(official_dir))
    model = import_official(official_dir, "model.py", "ssagan_official_model", SSAGAN_PATCHES,
                            {"NW": c["nw"], "MH": c["mask_hidden"]})
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    netG, netD = model.NetG(c["ngf"], c["nz"]), model.NetD(c["ndf"])
    perturb(netG, gen)
    perturb(netD, gen)
    B = c["batch"]
    noise = half_exact(torch.randn(B, c["nz"], generator=gen))
    sent_emb = half_exact(torch.randn(B, c["nw"], generator=gen))
    real_small = half_exact(torch.rand(B, 3, 8, 8, generator=gen) * 2 - 1)
    imgs = upsample(real_small, 256)
    t = {"input.noise": noise, "input.sent_emb": sent_emb, "input.real_small": real_small}
    t.update(prefixed("official.netG.", netG.state_dict()))
    t.update(prefixed("official.netD.", netD.state_dict()))

    with torch.no_grad():
        netG.eval()
        fake_eval, masks_eval = netG(noise, sent_emb)
        t["eval.image"] = subgrid(fake_eval)
        t.update({f"eval.mask{i}": subgrid(m) for i, m in enumerate(masks_eval)})
        feats = netD(imgs)
        t["eval.d_features"] = feats
        t["eval.d_logits"] = netD.COND_DNET(feats, sent_emb).flatten()

    # one official training step (main.py): D on the hinge loss, D on MA-GP, G; Adam(0.0, 0.9)
    netG.train(), netD.train()
    opt_g = torch.optim.Adam(netG.parameters(), lr=c["lr_g"], betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(netD.parameters(), lr=c["lr_d"], betas=(0.0, 0.9))
    real_features = netD(imgs)
    errD_real = torch.nn.ReLU()(1.0 - netD.COND_DNET(real_features, sent_emb)).mean()
    errD_mismatch = torch.nn.ReLU()(1.0 + netD.COND_DNET(real_features[:(B - 1)], sent_emb[1:B])).mean()
    fake, masks = netG(noise, sent_emb)
    errD_fake = torch.nn.ReLU()(1.0 + netD.COND_DNET(netD(fake.detach()), sent_emb)).mean()
    errD = errD_real + (errD_fake + errD_mismatch) / 2.0
    opt_d.zero_grad(), errD.backward(), opt_d.step()
    d_loss = ssagan_ma_gp(netD, imgs, sent_emb)
    opt_d.zero_grad(), d_loss.backward(), opt_d.step()
    errG = -netD.COND_DNET(netD(fake), sent_emb).mean()
    opt_g.zero_grad(), errG.backward(), opt_g.step()
    t["train.image"] = subgrid(fake)
    t.update({f"train.mask{i}": subgrid(m) for i, m in enumerate(masks)})
    t.update({"train.errD": errD.reshape(1), "train.errD_real": errD_real.reshape(1),
              "train.errD_mismatch": errD_mismatch.reshape(1), "train.errD_fake": errD_fake.reshape(1),
              "train.ma_gp": d_loss.reshape(1), "train.errG": errG.reshape(1)})
    t.update(prefixed("after.netG.", {k: v for k, v in netG.state_dict().items() if k in ("fc.weight", "block3.c1.weight", "conv_img.0.running_mean")}))
    t.update(prefixed("after.netD.", {k: v for k, v in netD.state_dict().items() if k in ("conv_img.weight", "COND_DNET.joint_conv.0.weight")}))
    meta = {"sizes": c, "image_size": 256, "subgrid": SUBGRID,
            "notes": "model.py with the sentence size 256 -> NW and the mask width 100 -> MH substituted; "
                     "the training step is main.py's (CPU, without the DAMSM term)"}
    return write("ssagan", t, meta, official_dir)

# ---------------------------------------------------------------------------------------------
# AttnGAN (taoxugit/AttnGAN, code/model.py, code/miscc/losses.py, code/trainer.py's training step)

ATTNGAN = {"ngf": 1, "ndf": 1, "nz": 8, "ncf": 4, "nef": 8, "emb": 6, "r_num": 1, "vocab": 12, "words": 5,
           "batch": 3, "lr": 2e-4, "gamma1": 4.0, "gamma2": 5.0, "gamma3": 10.0, "lambda": 5.0}
ATTNGAN_PATCHES = [(".data[0]", ".item()")]  # PyTorch 0.3 scalar access in the loss logs


def attngan_cfg(c: dict) -> Cfg:
    return cfg_tree({
        "CUDA": False, "RNN_TYPE": "LSTM", "TREE": {"BRANCH_NUM": 3, "BASE_SIZE": 64},
        "TEXT": {"EMBEDDING_DIM": c["nef"], "WORDS_NUM": c["words"]},
        "GAN": {"DF_DIM": c["ndf"], "GF_DIM": c["ngf"], "Z_DIM": c["nz"], "CONDITION_DIM": c["ncf"],
                "R_NUM": c["r_num"], "B_ATTENTION": True, "B_DCGAN": False},
        "TRAIN": {"FLAG": True, "BATCH_SIZE": c["batch"],
                  "SMOOTH": {"GAMMA1": c["gamma1"], "GAMMA2": c["gamma2"], "GAMMA3": c["gamma3"],
                             "LAMBDA": c["lambda"]}},
    })


def import_attngan(code_dir: Path, c: dict):
    """The official ``model`` and ``miscc.losses`` modules with a stub ``cfg`` (and no torchvision:
    only the DAMSM image encoder, not built here, uses it)."""
    stub_module("miscc.config", cfg=attngan_cfg(c))
    stub_module("torchvision", models=types.SimpleNamespace())
    import_official(code_dir, "GlobalAttention.py", "GlobalAttention")
    model = import_official(code_dir, "model.py", "model")
    losses = import_official(code_dir, "miscc/losses.py", "miscc.losses", ATTNGAN_PATCHES)
    return model, losses


class TinyImageEncoder(torch.nn.Module):
    """A stand-in DAMSM image encoder for the G loss (the Inception one needs torchvision and 100 MB
    of weights): region features = 1x1 conv of the image pooled to 5x5, code = linear of its mean.
    ``tests/test_fidelity.py`` builds the same from the stored weights."""

    def __init__(self, nef: int):
        super().__init__()
        self.emb_features = torch.nn.Conv2d(3, nef, 1, bias=False)
        self.emb_cnn_code = torch.nn.Linear(3, nef)

    def forward(self, x):
        pooled = F.adaptive_avg_pool2d(x, 5)
        return self.emb_features(pooled), self.emb_cnn_code(pooled.mean((2, 3)))


def capture_ca_noise(netG) -> dict:
    """Record the eps of CA's reparametrisation (drawn from the global RNG by the official code)."""
    seen = {}

    def hook(module, inputs, outputs):
        c_code, mu, logvar = outputs
        seen["eps"] = ((c_code - mu) / logvar.mul(0.5).exp()).detach()

    netG.ca_net.register_forward_hook(hook)
    return seen


def build_attngan(official_dir: Path) -> Path:
    c = ATTNGAN
    model, losses = import_attngan(official_dir / "code", c)
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    B = c["batch"]
    text_encoder = model.RNN_ENCODER(c["vocab"], ninput=c["emb"], nhidden=c["nef"])
    netG = model.G_NET()
    netsD = [model.D_NET64(), model.D_NET128(), model.D_NET256()]
    image_encoder = TinyImageEncoder(c["nef"])
    for net in [text_encoder, netG, image_encoder] + netsD:
        perturb(net, gen)
    captions = torch.randint(1, c["vocab"], (B, c["words"]), generator=gen)
    cap_lens = torch.tensor([c["words"], c["words"] - 1, c["words"] - 2])  # sorted, as prepare_data does
    for i, n in enumerate(cap_lens.tolist()):
        captions[i, n:] = 0
    noise = half_exact(torch.randn(B, c["nz"], generator=gen))
    real_small = half_exact(torch.rand(B, 3, 8, 8, generator=gen) * 2 - 1)
    reals = [upsample(real_small, s) for s in (64, 128, 256)]  # each stage's real image
    t = {"input.captions": captions, "input.cap_lens": cap_lens, "input.noise": noise, "input.real_small": real_small}
    for name, net in [("text_encoder", text_encoder), ("netG", netG), ("image_encoder", image_encoder),
                      ("netD0", netsD[0]), ("netD1", netsD[1]), ("netD2", netsD[2])]:
        t.update(prefixed(f"official.{name}.", net.state_dict()))

    text_encoder.eval()
    with torch.no_grad():
        words_embs, sent_emb = text_encoder(captions, cap_lens, text_encoder.init_hidden(B))
    t["text.words_embs"], t["text.sent_emb"] = words_embs, sent_emb
    # G and D on full-length captions: the official attention mask is laid out batch-major against
    # query-major scores, so with padding it masks other captions' words (t2igan's documented fix)
    full = torch.randint(1, c["vocab"], (B, c["words"]), generator=gen)
    t["input.full_captions"] = full
    with torch.no_grad():
        words_embs, sent_emb = text_encoder(full, torch.full((B,), c["words"]), text_encoder.init_hidden(B))
    mask = full == 0
    eps = capture_ca_noise(netG)

    netG.eval()
    [d.eval() for d in netsD]
    with torch.no_grad():
        imgs, atts, mu, logvar = netG(noise, sent_emb, words_embs, mask)
        t["eval.eps"] = eps["eps"]
        t.update({f"eval.image{i}": subgrid(x) for i, x in enumerate(imgs)})
        t.update({f"eval.attention{i}": subgrid(a) for i, a in enumerate(atts)})
        t["eval.mu"], t["eval.logvar"] = mu, logvar
        for i, d in enumerate(netsD):
            feats = d(reals[i])
            t[f"eval.d{i}_features"] = feats
            t[f"eval.d{i}_cond_prob"] = d.COND_DNET(feats, sent_emb)
            t[f"eval.d{i}_uncond_prob"] = d.UNCOND_DNET(feats)

    # one official training step (trainer.py): every D on discriminator_loss, then G on
    # generator_loss + KL_loss; Adam(0.5, 0.999), lr 2e-4
    netG.train()
    [d.train() for d in netsD]
    opt_g = torch.optim.Adam(netG.parameters(), lr=c["lr"], betas=(0.5, 0.999))
    opts_d = [torch.optim.Adam(d.parameters(), lr=c["lr"], betas=(0.5, 0.999)) for d in netsD]
    real_labels, fake_labels, match_labels = torch.ones(B), torch.zeros(B), torch.arange(B)
    fake_imgs, _, mu, logvar = netG(noise, sent_emb, words_embs, mask)
    t["train.eps"] = eps["eps"]
    t.update({f"train.image{i}": subgrid(x) for i, x in enumerate(fake_imgs)})
    for i, d in enumerate(netsD):
        d.zero_grad()
        errD = losses.discriminator_loss(d, reals[i], fake_imgs[i], sent_emb, real_labels, fake_labels)
        errD.backward()
        opts_d[i].step()
        t[f"train.errD{i}"] = errD.reshape(1)
    netG.zero_grad()
    errG_total, _ = losses.generator_loss(netsD, image_encoder, fake_imgs, real_labels, words_embs, sent_emb,
                                          match_labels, torch.full((B,), c["words"]), None)
    kl = losses.KL_loss(mu, logvar)
    (errG_total + kl).backward()
    opt_g.step()
    t["train.errG_total"], t["train.kl"] = errG_total.reshape(1), kl.reshape(1)
    keep_g = ("ca_net.fc.weight", "h_net1.fc.0.weight", "h_net2.att.conv_context.weight", "img_net3.img.0.weight",
              "h_net3.residual.0.block.0.weight", "h_net1.fc.1.running_mean")
    t.update(prefixed("after.netG.", {k: v for k, v in netG.state_dict().items() if k in keep_g}))
    for i, d in enumerate(netsD):
        keep = {"img_code_s16.0.weight", "COND_DNET.jointConv.0.weight", "UNCOND_DNET.outlogits.0.weight"}
        t.update(prefixed(f"after.netD{i}.", {k: v for k, v in d.state_dict().items() if k in keep}))
    meta = {"sizes": c, "subgrid": SUBGRID,
            "notes": "code/model.py, code/miscc/losses.py with a stub cfg; trainer.py's step on CPU; the DAMSM image "
                     "encoder in the G loss is a tiny stand-in (TinyImageEncoder) with the official loss code"}
    return write("attngan", t, meta, official_dir)

# ---------------------------------------------------------------------------------------------
# DAMSM (taoxugit/AttnGAN, code/miscc/losses.py: words_loss, sent_loss)

DAMSM = dict(ATTNGAN, batch=4, regions=5)
DAMSM_PATCHES = ATTNGAN_PATCHES + [("masks = torch.ByteTensor(masks)", "masks = torch.from_numpy(masks).bool()")]


def build_damsm(official_dir: Path) -> Path:
    """The word and sentence losses, their attention maps and their gradients, with and without
    same-class masking, on perturbed inputs (region features stand for the image encoder's)."""
    import numpy as np

    c = DAMSM
    stub_module("miscc.config", cfg=attngan_cfg(c))
    import_official(official_dir / "code", "GlobalAttention.py", "GlobalAttention")
    losses = import_official(official_dir / "code", "miscc/losses.py", "miscc.losses", DAMSM_PATCHES)
    gen = torch.Generator().manual_seed(SEED)
    B, D, T, R = c["batch"], c["nef"], c["words"], c["regions"]
    regions = half_exact(torch.randn(B, D, R, R, generator=gen))
    words = half_exact(torch.randn(B, D, T, generator=gen))
    code = half_exact(torch.randn(B, D, generator=gen))
    sent = half_exact(torch.randn(B, D, generator=gen))
    cap_lens = torch.tensor([T, T - 1, T - 1, T - 3])
    for i, n in enumerate(cap_lens.tolist()):
        words[i, :, n:] = 0  # padding positions, as pad_packed_sequence leaves them
    t = {"input.regions": regions, "input.words": words, "input.code": code, "input.sent": sent,
         "input.cap_lens": cap_lens, "input.class_ids": torch.tensor([1, 2, 1, 3])}
    labels = torch.arange(B)
    for name, class_ids in (("plain", None), ("classes", np.array([1, 2, 1, 3]))):
        x = [v.clone().requires_grad_(True) for v in (regions, words, code, sent)]
        w0, w1, att = losses.words_loss(x[0], x[1], labels, cap_lens, class_ids, B)
        s0, s1 = losses.sent_loss(x[2], x[3], labels, class_ids, B)
        (w0 + w1 + s0 + s1).backward()
        t.update({f"{name}.w0": w0.reshape(1), f"{name}.w1": w1.reshape(1), f"{name}.s0": s0.reshape(1),
                  f"{name}.s1": s1.reshape(1)})
        t.update({f"{name}.attention{i}": a[0] for i, a in enumerate(att)})  # (words_i, R, R)
        t.update({f"{name}.grad_{k}": v.grad for k, v in zip(("regions", "words", "code", "sent"), x)})
    meta = {"sizes": c, "notes": "code/miscc/losses.py (words_loss, sent_loss) with a stub cfg; uint8 -> bool masks"}
    return write("damsm", t, meta, official_dir)

# ---------------------------------------------------------------------------------------------
# DF-GAN (tobran/DF-GAN, code/models/GAN.py, code/lib/modules.py's training step, lib/utils.py's sampler)

DFGAN = {"ngf": 2, "ndf": 2, "nz": 8, "cond": 8, "imsize": 64, "batch": 3, "lr_g": 1e-4, "lr_d": 4e-4,
         "trunc_rate": 0.88, "noise_samples": 20000}


def build_dfgan(official_dir: Path) -> Path:
    c = DFGAN
    code = official_dir / "code"
    gan = import_official(code, "models/GAN.py", "dfgan_official_gan")
    import numpy as np

    truncated_noise = official_function(code, "lib/utils.py", "truncated_noise", {"np": np})
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    netG = gan.NetG(c["ngf"], c["nz"], c["cond"], c["imsize"], 3)
    netD, netC = gan.NetD(c["ndf"], c["imsize"], 3), gan.NetC(c["ndf"], c["cond"])
    for net in (netG, netD, netC):
        perturb(net, gen)
    B = c["batch"]
    noise = half_exact(torch.randn(B, c["nz"], generator=gen))
    sent_emb = half_exact(torch.randn(B, c["cond"], generator=gen))
    real_small = half_exact(torch.rand(B, 3, 8, 8, generator=gen) * 2 - 1)
    imgs = upsample(real_small, c["imsize"])
    t = {"input.noise": noise, "input.sent_emb": sent_emb, "input.real_small": real_small}
    for name, net in (("netG", netG), ("netD", netD), ("netC", netC)):
        t.update(prefixed(f"official.{name}.", net.state_dict()))
    with torch.no_grad():
        t["eval.image"] = subgrid(netG(noise, sent_emb))
        feats = netD(imgs)
        t["eval.d_features"], t["eval.d_logits"] = feats, netC(feats, sent_emb).flatten()
    # the official sampler: trunc_rate * truncnorm(-2, 2) (scipy), as statistics of many draws
    z = torch.from_numpy(truncated_noise(c["noise_samples"], c["nz"], c["trunc_rate"], seed=SEED))
    t["sampler.std"], t["sampler.max_abs"] = z.std().reshape(1), z.abs().max().reshape(1)
    # one official training step (lib/modules.py train): hinge + mismatched (features rolled) + MA-GP in
    # one D step, then G; Adam(0.0, 0.9)
    opt_g = torch.optim.Adam(netG.parameters(), lr=c["lr_g"], betas=(0.0, 0.9))
    opt_d = torch.optim.Adam(list(netD.parameters()) + list(netC.parameters()), lr=c["lr_d"], betas=(0.0, 0.9))
    imgs, sent = imgs.clone().requires_grad_(), sent_emb.clone().requires_grad_()
    real_features = netD(imgs)
    pred_real = netC(real_features, sent)
    errD_real = torch.nn.ReLU()(1.0 - pred_real).mean()
    mis_features = torch.cat((real_features[1:], real_features[0:1]), dim=0)
    errD_mis = torch.nn.ReLU()(1.0 + netC(mis_features, sent)).mean()
    fake = netG(noise, sent)
    errD_fake = torch.nn.ReLU()(1.0 + netC(netD(fake.detach()), sent)).mean()
    grads = torch.autograd.grad(outputs=pred_real, inputs=(imgs, sent), grad_outputs=torch.ones(pred_real.size()),
                                retain_graph=True, create_graph=True, only_inputs=True)
    grad = torch.cat((grads[0].view(grads[0].size(0), -1), grads[1].view(grads[1].size(0), -1)), dim=1)
    errD_MAGP = 2.0 * torch.mean(torch.sqrt(torch.sum(grad ** 2, dim=1)) ** 6)
    errD = errD_real + (errD_fake + errD_mis) / 2.0 + errD_MAGP
    opt_d.zero_grad(), errD.backward(), opt_d.step()
    errG = -netC(netD(fake), sent).mean()
    opt_g.zero_grad(), errG.backward(), opt_g.step()
    t.update({"train.errD": errD.reshape(1), "train.ma_gp": errD_MAGP.reshape(1), "train.errG": errG.reshape(1)})
    t.update(prefixed("after.netG.", {k: v for k, v in netG.state_dict().items()
                                      if k in ("fc.weight", "GBlocks.1.fuse2.affine1.fc_gamma.linear2.bias")}))
    t.update(prefixed("after.netD.", {"conv_img.weight": netD.conv_img.weight}))
    t.update(prefixed("after.netC.", {"joint_conv.0.weight": netC.joint_conv[0].weight}))
    meta = {"sizes": c, "subgrid": SUBGRID,
            "notes": "code/models/GAN.py; lib/modules.py's train() step and MA_GP on CPU; lib/utils.py truncated_noise"}
    return write("dfgan", t, meta, official_dir)

# ---------------------------------------------------------------------------------------------
# MirrorGAN (qiaott/MirrorGAN, model.py G_NET with GLAttention.py's GLAM)

MIRRORGAN = dict(ATTNGAN, batch=3)
MIRRORGAN_PATCHES = [("nn.Linear(100, idf)", "nn.Linear(NC, idf)")]  # the CA code size is a literal


def build_mirrorgan(official_dir: Path) -> Path:
    c = MIRRORGAN
    stub_module("cfg.config", cfg=attngan_cfg(c))
    stub_module("torchvision", models=types.SimpleNamespace())
    import_official(official_dir, "GLAttention.py", "GLAttention", MIRRORGAN_PATCHES, {"NC": c["ncf"]})
    model = import_official(official_dir, "model.py", "mirrorgan_official_model")
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    B = c["batch"]
    netG = model.G_NET()
    perturb(netG, gen)
    noise = half_exact(torch.randn(B, c["nz"], generator=gen))
    sent_emb = half_exact(torch.randn(B, c["nef"], generator=gen))
    words_embs = half_exact(torch.randn(B, c["nef"], c["words"], generator=gen))
    mask = torch.zeros(B, c["words"], dtype=torch.bool)  # full-length captions (see build_attngan)
    t = {"input.noise": noise, "input.sent_emb": sent_emb, "input.words_embs": words_embs}
    t.update(prefixed("official.netG.", netG.state_dict()))
    eps = capture_ca_noise(netG)
    for mode in ("eval", "train"):
        netG.train(mode == "train")
        with torch.no_grad():
            imgs, atts, mu, logvar = netG(noise, sent_emb, words_embs, mask)
        t[f"{mode}.eps"], t[f"{mode}.mu"], t[f"{mode}.logvar"] = eps["eps"], mu, logvar
        t.update({f"{mode}.image{i}": subgrid(x) for i, x in enumerate(imgs)})
        t.update({f"{mode}.attention{i}": subgrid(a) for i, a in enumerate(atts)})
    meta = {"sizes": c, "subgrid": SUBGRID,
            "notes": "model.py G_NET and GLAttention.py with a stub cfg; the sentence projection's input size "
                     "(literal 100, the CA code size) -> NC. D_NETs are AttnGAN's (see attngan.safetensors)"}
    return write("mirrorgan", t, meta, official_dir)


BUILDERS = {"mirrorgan": build_mirrorgan, "dfgan": build_dfgan, "ssagan": build_ssagan, "attngan": build_attngan, "damsm": build_damsm}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("family", choices=sorted(BUILDERS))
    p.add_argument("--official-dir", required=True, type=Path, help="a git checkout of the official repository")
    args = p.parse_args(argv)
    if not args.official_dir.is_dir():
        sys.exit(f"error: --official-dir {args.official_dir} is not a directory")
    torch.set_num_threads(1)
    BUILDERS[args.family](args.official_dir.resolve())


if __name__ == "__main__":
    main()
