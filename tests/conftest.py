"""Set-up shared by the test files: tiny model configs, tiny run configs, a tiny trained run folder.

Tiny means 32 px, widths 4-8, batches of 4-8: each model builds and steps in well under a second on
one CPU thread. ``TINY_MODELS`` must name every registered model (``tests/test_model_contract.py``
fails for a model without one).
"""

import pytest
import torch

# one thread: the suite is many small ops, and CI machines have 2 cores shared with other work
torch.set_num_threads(1)

TINY_SIZE = 32  # image side of every tiny model and run

# model name -> constructor arguments (without vocab_size) of a tiny model that exercises the
# family's losses: DAMSM / STREAM terms on (random, small-CNN) frozen encoders, trainable text
# encoders where the family offers one
TINY_MODELS = {
    "dfgan": dict(image_size=TINY_SIZE, nf=8, text_emb_dim=16, text_hidden_dim=8, text_encoder_mode="joint_d",
                  damsm_weights=None),  # the preset's is the bundled shapes-damsm, 300/128 wide
    "attngan": dict(image_size=TINY_SIZE, base_size=16, num_stages=2, ngf=4, ndf=4, num_residual=1, z_dim=8,
                    c_dim=8, text_emb_dim=16, text_hidden_dim=8, damsm_backbone="small_cnn", damsm_weight=1.0,
                    damsm_weights=None),
    "mirrorgan": dict(image_size=TINY_SIZE, base_size=16, num_stages=2, ngf=4, ndf=4, num_residual=1, z_dim=8,
                      c_dim=8, text_emb_dim=16, text_hidden_dim=8, damsm_backbone="small_cnn", damsm_weight=1.0,
                      stream_backbone="small_cnn", stream_image_size=TINY_SIZE, stream_cnn_channels=4,
                      stream_embed_dim=8, stream_hidden_dim=12, stream_lambda=1.0, damsm_weights=None),
    "drgan": dict(image_size=TINY_SIZE, base_size=16, num_stages=2, ngf=4, ndf=4, num_residual=1, num_refine=1,
                  z_dim=8, c_dim=8, text_emb_dim=16, text_hidden_dim=8, damsm_backbone="small_cnn", damsm_weight=1.0,
                  dnm_z_dim=8, dnm_ngf=4, damsm_weights=None),
    "ssagan": dict(image_size=TINY_SIZE, nf=4, z_dim=8, text_emb_dim=16, text_hidden_dim=8, mask_hidden=8,
                   d_max_mult=8, damsm_weight=0.1, damsm_backbone="small_cnn", text_encoder_mode="joint",
                   damsm_weights=None),
    "gan_int_cls": dict(image_size=TINY_SIZE, ngf=8, ndf=8, z_dim=8, text_emb_dim=16, text_hidden_dim=8,
                        text_proj_dim=16, text_encoder_mode="joint_d"),
}

# `section.key=value` overrides making the dfgan-shapes preset a run of seconds
TINY_RUN = [
    "model.text_encoder_mode=joint_d",  # the preset's frozen shapes-damsm text encoder is 300/128 wide
    "model.damsm_weights=null",
    f"data.image_size={TINY_SIZE}",
    "data.train_args={num_images: 64}",
    "data.test_args={num_images: 16}",
    "model.nf=8",
    "model.text_emb_dim=16",
    "model.text_hidden_dim=16",
    "train.batch_size=8",
]


def tiny_model_overrides(name: str) -> list[str]:
    """``model.key=value`` overrides that turn the ``<name>-shapes`` preset into the tiny model."""
    return [f"model.{k}={'null' if v is None else v}" for k, v in TINY_MODELS[name].items()]


@pytest.fixture
def tiny_model():
    """``tiny_model(name, vocab_size, seed=0, **overrides)``: the tiny model of a family (same
    arguments and seed, same weights)."""
    from t2igan import create_model

    def make(name: str, vocab_size: int = 30, seed: int = 0, **overrides):
        torch.manual_seed(seed)
        return create_model(name, vocab_size=vocab_size, **{**TINY_MODELS[name], **overrides})

    return make


def make_batch(vocab_size: int = 30, lengths=(6, 4, 5, 3), size: int = TINY_SIZE, seed: int = 0,
               zero_pad: bool = True, class_ids: bool = False) -> dict:
    """A training batch: random images in [-1, 1], random captions of ids >= 2 (zero after each length
    with ``zero_pad``), and ``class_id`` -1 (no class) with ``class_ids``."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.as_tensor(lengths).clone()
    B, T = len(lengths), int(lengths.max())
    batch = {"image": torch.rand(B, 3, size, size, generator=g) * 2 - 1,
             "tokens": torch.randint(2, vocab_size, (B, T), generator=g),
             "lengths": lengths}
    if zero_pad:
        batch["tokens"] = batch["tokens"] * (torch.arange(T) < lengths[:, None])
    if class_ids:
        batch["class_id"] = torch.full((B,), -1)
    return batch


def phase_step(model, phase: str, batch: dict, state: dict, optimizers: dict) -> dict:
    """One phase of a training step, as the trainer runs it; returns the phase's logs."""
    loss, logs = model.compute_loss(phase, batch, state)
    optimizer = optimizers[model.optimizer_name(phase)]  # SSA-GAN's d_gp phase steps D's optimizer
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return logs


def snapshot(module) -> list:
    return [p.detach().clone() for p in module.parameters()]


def changed(before: list, module) -> bool:
    """Whether any parameter of ``module`` differs from its :func:`snapshot`."""
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def shapes_vocab(size: int = 30):
    """A ``size``-word vocabulary starting with a few Shapes words (CLI tests sample "a red circle")."""
    from t2igan.data.text import Vocabulary

    words = ["<pad>", "<unk>", "a", "red", "circle", "green", "star"]
    return Vocabulary(words + [f"w{i}" for i in range(size - len(words))])


def save_and_reload(model, run_dir, vocab, batch: dict):
    """Write ``model`` as a run folder, load it back, and return the outputs of both (eval mode) for
    ``batch``'s captions with the same seeded noise."""
    from t2igan.runs import load_run, save_run

    save_run(run_dir, {"data": {"max_words": batch["tokens"].shape[1]}}, model, vocab)
    loaded, _, _ = load_run(run_dir)
    model.eval()
    noise = model.noise(len(batch["lengths"]), generator=torch.Generator().manual_seed(0))
    return (model.generate(batch["tokens"], batch["lengths"], noise),
            loaded.generate(batch["tokens"], batch["lengths"], noise))


@pytest.fixture
def random_batch():
    """:func:`make_batch` as a fixture."""
    return make_batch


@pytest.fixture(scope="session")
def tiny_trained_run(tmp_path_factory):
    """A run folder of a tiny DF-GAN trained for 2 steps on 32 px Shapes (shared, read-only)."""
    from t2igan.config import resolve_config
    from t2igan.training import Trainer

    run = tmp_path_factory.mktemp("tiny-run")
    cfg = resolve_config("dfgan-shapes", TINY_RUN + [
        "train.max_steps=2", "train.sample_every=100", "train.checkpoint_every=100", "train.num_sample_captions=4"])
    Trainer(cfg, run, progress=False).fit()
    return run
