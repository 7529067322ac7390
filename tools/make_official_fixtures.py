"""Golden fixtures from the official implementations, for ``tests/test_fidelity.py``.

Given a local checkout of an official repository, this builds its models with small sizes and
fixed seeds, perturbs every weight (official zero/one initialisations would hide a wrong mapping),
runs them, and writes weights, inputs and outputs to ``tests/fixtures/official/<family>.safetensors``
with the repository's commit in the file's metadata. The official code never enters t2igan: only
the numbers it produced.

    python tools/make_official_fixtures.py ssagan --official-dir /tmp/text2image
    python tools/make_official_fixtures.py attngan --official-dir /tmp/AttnGAN
    python tools/make_official_fixtures.py dfgan --official-dir /tmp/DF-GAN
    python tools/make_official_fixtures.py mirrorgan --official-dir /tmp/MirrorGAN

The official code is old (PyTorch 0.4 - 1.x, a global ``cfg``, ``.cuda()`` calls); each family's
builder imports the official modules with compatibility shims applied at import time (a stub
``cfg`` holding the small sizes, textual size substitutions listed next to each builder), never
editing the checkout. Large inputs are stored small and up-sampled by nearest-neighbour repetition
(exact), large outputs are stored on a strided sub-grid (``SUBGRID``): every stored pixel depends on
the whole network, so a wrong mapping still shows.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

OUT_DIR = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "official"
SUBGRID = 8  # largest side of a stored image / mask: outputs are sampled on a strided grid
SEED = 0


# ---------------------------------------------------------------------------------------------
# shared helpers


def official_commit(official_dir: Path) -> str:
    try:
        return subprocess.run(["git", "-C", str(official_dir), "rev-parse", "HEAD"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (subprocess.CalledProcessError, FileNotFoundError):
        sys.exit(f"error: {official_dir} is not a git checkout (its commit is recorded in the fixtures)")


def import_official(official_dir: Path, relpath: str, name: str, patches=(), namespace: dict | None = None):
    """Import ``official_dir/relpath`` as module ``name`` after the textual ``(old, new)`` patches
    (each must occur); ``namespace`` seeds the module's globals (e.g. sizes the patches name)."""
    path = official_dir / relpath
    source = path.read_text()
    for old, new in patches:
        if old not in source:
            sys.exit(f"error: {path}: the shim expects {old!r}; is this the official commit?")
        source = source.replace(old, new)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    module.__dict__.update(namespace or {})
    sys.modules[name] = module
    exec(compile(source, str(path), "exec"), module.__dict__)
    return module


def stub_package(name: str, **attrs) -> types.ModuleType:
    """A module ``name`` (and its parent packages) holding ``attrs``, e.g. ``miscc.config.cfg``."""
    parts = name.split(".")
    for i in range(1, len(parts) + 1):
        sub = ".".join(parts[:i])
        if sub not in sys.modules or i == len(parts):
            sys.modules[sub] = sys.modules.get(sub) if i < len(parts) and sub in sys.modules else types.ModuleType(sub)
            sys.modules[sub].__path__ = []
        if i > 1:
            setattr(sys.modules[".".join(parts[:i - 1])], parts[i - 1], sys.modules[sub])
    sys.modules[name].__dict__.update(attrs)
    return sys.modules[name]


class Cfg(dict):
    """An attribute dict like the official ``easydict`` cfg."""

    def __getattr__(self, key):
        try:
            return self[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        self[key] = value


def cfg_tree(d: dict) -> Cfg:
    return Cfg({k: cfg_tree(v) if isinstance(v, dict) else v for k, v in d.items()})


@torch.no_grad()
def perturb(module: torch.nn.Module, gen: torch.Generator, scale: float = 0.1) -> None:
    """Move every parameter and float buffer off its initial value (running variances stay > 0)."""
    for name, t in list(module.named_parameters()) + list(module.named_buffers()):
        if not t.is_floating_point():
            continue
        noise = torch.randn(t.shape, generator=gen) * scale
        if name.endswith("running_var"):
            t.copy_(0.5 + torch.rand(t.shape, generator=gen))
        elif name.endswith(("gamma",)) and t.numel() == 1:  # residual gates start at 0
            t.copy_(0.3 + noise.abs())
        else:
            t.add_(noise)


def subgrid(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, C, H, W) on a strided grid of at most SUBGRID x SUBGRID positions."""
    step = max(1, x.shape[-1] // SUBGRID)
    return x[..., ::step, ::step].contiguous()


def upsample(small: torch.Tensor, size: int) -> torch.Tensor:
    """Nearest-neighbour repetition of a stored small image to ``size`` (exact, reproducible)."""
    return F.interpolate(small, size=(size, size), mode="nearest")


def prefixed(prefix: str, state: dict) -> dict:
    return {f"{prefix}{k}": v.detach().clone().contiguous() for k, v in state.items()}


def write(family: str, tensors: dict, meta: dict, official_dir: Path) -> Path:
    meta = {"family": family, "official_commit": official_commit(official_dir),
            "generated_by": "tools/make_official_fixtures.py", **meta}
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"{family}.safetensors"
    tensors = {k: v.detach().float().contiguous() if v.is_floating_point() else v.contiguous()
               for k, v in tensors.items()}
    save_file(tensors, str(path), {k: json.dumps(v) for k, v in meta.items()})
    print(f"{path}: {len(tensors)} tensors, {path.stat().st_size / 1024:.0f} KiB, commit {meta['official_commit']}")
    return path


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
    noise = torch.randn(B, c["nz"], generator=gen)
    sent_emb = torch.randn(B, c["nw"], generator=gen)
    real_small = torch.rand(B, 3, 8, 8, generator=gen) * 2 - 1
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


BUILDERS = {"ssagan": build_ssagan}


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
