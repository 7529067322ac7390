"""What every registered model (and the DAMSM and STREAM that GANs load) promises, checked on a tiny
instance of each: the checks timm and diffusers run over all their models.

For each name in ``list_models()`` (a model without an entry in ``conftest.TINY_MODELS`` fails):

* output shapes: images ``(B, 3, S, S)`` in [-1, 1], attention maps ``(B, T, h, w)``, masks
  ``(B, 1, h, w)`` in [0, 1], every phase's loss a finite scalar with float logs;
* the same seed gives the same weights and the same images (batching aside), another seed others;
* each phase's optimizer step changes only that phase's networks (G in ``g``, D in ``d``, every
  parameter in at most one phase), and the frozen parts (parameters in no optimizer, with their
  modules' buffers, and the DAMSM image encoder built on first use) never change;
* the DAMSM critic (AttnGAN, MirrorGAN, DR-GAN, SSA-GAN) is a submodule that ``.to()`` moves and
  casts, in no optimizer, and never in ``state_dict()``; so is the frozen backbone of the DF-GAN
  family's projected D (``d_backbone``), and DF-GAN and SSA-GAN pass every check with that D too;
* ``save_run`` / ``load_run`` is bit exact, the moving-average generator included;
* the state-dict key names equal those pinned in ``tests/fixtures/state_dict_keys.json`` (bundled
  checkpoints are loaded by these names: a rename must be deliberate; to pin new keys run
  ``python tests/test_model_contract.py --write-keys``);
* one step of the shared :class:`Trainer` from the model's ``-shapes`` preset trains G and D, and the
  run folder it writes generates through :class:`Text2ImagePipeline`, seeded.

DAMSM and STREAM: output shapes, determinism, one optimizer step (with a frozen Inception backbone
that must not move), bit-exact save/load, pinned keys, one ``t2igan pretrain`` step from its preset.
"""

import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODELS, TINY_SIZE, tiny_model_overrides

from t2igan import Text2ImagePipeline, list_models
from t2igan.cli import main
from t2igan.config import TrainConfig, resolve_config
from t2igan.data.text import Vocabulary
from t2igan.runs import load_run, save_run
from t2igan.training import Trainer

KEYS_FILE = Path(__file__).parent / "fixtures" / "state_dict_keys.json"
V, B = 30, 4
MODELS = list_models()
VOCAB = Vocabulary(["<pad>", "<unk>"] + [f"w{i}" for i in range(V - 2)])
# the DF-GAN family's projected discriminator (model.d_backbone) on a tiny random small-CNN backbone
PROJECTED = dict(d_backbone="damsm_random", damsm_backbone="small_cnn", damsm_image_size=TINY_SIZE, damsm_cnn_channels=4)
# every model as its tiny config, and the options that change which networks a model has
VARIANTS = [pytest.param(name, {}, id=name) for name in MODELS] + \
    [pytest.param(name, PROJECTED, id=f"{name}-projected") for name in ("dfgan", "ssagan")]

pytestmark = pytest.mark.filterwarnings("ignore:.*(no damsm_weights|no stream_weights).*:UserWarning")


def clone_state(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed_keys(before: dict, module) -> set:
    after = module.state_dict()
    return {k for k, v in before.items() if not torch.equal(v, after[k])}


def noise_for(model, seed: int) -> torch.Tensor:
    return model.noise(B, generator=torch.Generator().manual_seed(seed))


def test_every_registered_model_has_a_tiny_config():
    assert set(MODELS) == set(TINY_MODELS), "add a tiny config to tests/conftest.py TINY_MODELS"
    assert {"attngan", "dfgan", "drgan", "gan_int_cls", "mirrorgan", "ssagan"} <= set(MODELS)


# ---------------------------------------------------------------------------------------------------
# the GAN families
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_output_shapes(name, extra, tiny_model, random_batch):
    model = tiny_model(name, V, **extra)
    batch = random_batch(V)
    T = batch["tokens"].shape[1]
    with torch.no_grad():
        out = model.eval().generate(batch["tokens"], batch["lengths"], noise_for(model, 0))
    assert out.images.shape == (B, 3, TINY_SIZE, TINY_SIZE)
    assert torch.isfinite(out.images).all() and out.images.abs().max() <= 1
    for maps in out.extras.get("attention", []):
        assert maps.shape[:2] == (B, T) and maps.ndim == 4
    for mask in out.extras.get("masks", []):
        assert mask.shape[:2] == (B, 1) and mask.ndim == 4 and 0 <= mask.min() and mask.max() <= 1
    stages = out.extras.get("stage_images")
    if stages:
        assert [s.shape[-1] for s in stages] == sorted(s.shape[-1] for s in stages)
        assert torch.equal(stages[-1], out.images)
    model.train()
    state: dict = {}
    for phase in model.phases:
        loss, logs = model.compute_loss(phase, batch, state)
        assert loss.ndim == 0 and torch.isfinite(loss), phase
        assert logs and all(isinstance(v, float) for v in logs.values()), phase


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_same_seed_same_images(name, extra, tiny_model, random_batch):
    a, b = tiny_model(name, V, **extra).eval(), tiny_model(name, V, **extra).eval()
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    batch = random_batch(V)
    with torch.no_grad():
        first = a.generate(batch["tokens"], batch["lengths"], noise_for(a, 1)).images
        again = b.generate(batch["tokens"], batch["lengths"], noise_for(b, 1)).images
        other = a.generate(batch["tokens"], batch["lengths"], noise_for(a, 2)).images
        alone = a.generate(batch["tokens"][:1], batch["lengths"][:1], noise_for(a, 1)[:1]).images
    assert torch.equal(first, again)
    assert (first - other).abs().amax(dim=(1, 2, 3)).min() > 0  # the noise reaches every image
    torch.testing.assert_close(alone, first[:1], rtol=0, atol=1e-5)  # the batch does not matter


def frozen_keys(model, trained: set) -> set:
    """State-dict keys of the frozen parts: a parameter no optimizer trains, or a buffer whose nearest
    module holding parameters (itself or an ancestor: spectral norm keeps its vectors one level
    below the weight) has none that an optimizer trains."""
    modules = dict(model.named_modules())
    keys = set()
    for key in model.state_dict():
        prefix = key.rsplit(".", 1)[0] if "." in key else ""
        param = dict(model.named_parameters()).get(key)
        if param is not None:
            if id(param) not in trained:
                keys.add(key)
            continue
        while prefix and not list(modules[prefix].parameters()):
            prefix = prefix.rsplit(".", 1)[0] if "." in prefix else ""
        if not any(id(p) in trained for p in modules[prefix].parameters()):
            keys.add(key)
    return keys


def critic_image_encoder(model):
    """The frozen DAMSM image encoder of a model's DAMSM critic (built on first use), or None."""
    critic = getattr(model, "damsm_critic", None)
    return None if critic is None else critic.encoder


def frozen_networks(model) -> dict:
    """The frozen networks that come from their own files (never in the state dict): the DAMSM
    critic's image encoder (once built) and the backbone a projected discriminator reads."""
    nets = {"DAMSM image encoder": critic_image_encoder(model), "D's backbone": getattr(model, "feature_network", None)}
    return {k: v for k, v in nets.items() if v is not None}


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_each_phase_updates_only_its_own_networks(name, extra, tiny_model, random_batch):
    model = tiny_model(name, V, **extra).train()
    groups = model.optimizer_groups(TrainConfig())
    assert set(groups) == {model.optimizer_name(phase) for phase in model.phases}
    key_of = {id(p): k for k, p in model.named_parameters()}
    owned = {phase: {key_of[id(p)] for g in gs for p in g["params"]} for phase, gs in groups.items()}
    for p1 in owned:
        for p2 in owned:
            assert p1 == p2 or not owned[p1] & owned[p2], f"parameters in both {p1} and {p2}"
    gen = {k for k in key_of.values() if k.startswith("generator.")}
    disc = {k for k in key_of.values() if k.startswith("discriminator.")}
    assert gen and gen <= owned["g"] and disc and disc <= owned["d"]
    trained = [p for gs in groups.values() for g in gs for p in g["params"]]
    assert all(p.requires_grad for p in trained), "an optimizer holds weights that are frozen (requires_grad False)"
    frozen = frozen_keys(model, {id(p) for p in trained})
    params = set(key_of.values())

    optimizers = {phase: torch.optim.Adam(gs) for phase, gs in groups.items()}
    start = clone_state(model)
    frozen_before: dict = {}
    for step in range(2):  # the second step checks the lazily built frozen DAMSM image encoder
        state: dict = {}
        for phase in model.phases:
            before = clone_state(model)
            loss, _ = model.compute_loss(phase, random_batch(V, seed=step), state)
            name = model.optimizer_name(phase)  # the optimizer this phase steps (SSA-GAN: d_gp -> d)
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            optimizers[name].step()
            moved = changed_keys(before, model) & params
            assert moved <= owned[name], f"{phase} changed {sorted(moved - owned[name])[:5]}"
            main_net = "discriminator." if name == "d" else "generator."
            assert any(k.startswith(main_net) for k in moved), f"{phase} changed no {main_net}"
        for what, net in frozen_networks(model).items():
            assert not any(p.requires_grad for p in net.parameters()) and not net.training, what
            if what in frozen_before:
                assert not changed_keys(frozen_before[what], net), f"the frozen {what} changed"
            frozen_before[what] = clone_state(net)
    moved_frozen = changed_keys(start, model) & frozen
    assert not moved_frozen, f"frozen parts changed: {sorted(moved_frozen)[:5]}"


@pytest.mark.parametrize("name", ["attngan", "drgan", "mirrorgan", "ssagan"])
def test_damsm_critic_is_a_submodule_that_moves_but_is_never_saved(name, tiny_model, random_batch):
    """The frozen DAMSM image encoder is in the module tree (``.to()``, ``.half()`` and DDP see it),
    in no optimizer, in eval mode, and out of ``state_dict()`` / ``load_state_dict()``."""
    model = tiny_model(name, V).train()
    critic = model.damsm_critic
    batch = random_batch(V)
    text = model.encode_text(batch["tokens"], batch["lengths"])
    with pytest.warns(UserWarning, match="no damsm_weights"):
        loss, logs = critic(torch.rand(B, 3, TINY_SIZE, TINY_SIZE) * 2 - 1, text)
    assert torch.isfinite(loss) and {"damsm_w", "damsm_s"} <= set(logs)
    encoder = critic.encoder
    assert encoder is not None and not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    assert dict(model.named_modules())["damsm_critic.encoder"] is encoder
    trained = {id(p) for gs in model.optimizer_groups(TrainConfig()).values() for g in gs for p in g["params"]}
    assert not trained & {id(p) for p in encoder.parameters()}
    keys = model.state_dict()
    assert not any(k.startswith("damsm_critic") for k in keys)
    assert sorted(keys) == pinned_keys()[name]
    model.load_state_dict(keys)  # strict: the critic's weights are not expected either
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in encoder.parameters())
    model.float()
    assert all(p.dtype == torch.float32 for p in encoder.parameters())


@pytest.mark.parametrize("name", ["dfgan", "ssagan"])
def test_projected_d_backbone_is_a_submodule_that_moves_but_is_never_saved(name, tiny_model, random_batch):
    """``d_backbone``: the frozen network D reads is the model's ``feature_network`` (in the module tree,
    so ``.to()`` moves and casts it), held by D by reference, in no optimizer, in eval mode, and out of
    ``state_dict()``; D's fixed random projections are buffers saved with D."""
    model = tiny_model(name, V, **PROJECTED).train()
    backbone = model.feature_network
    assert model.discriminator.backbone is backbone and dict(model.named_modules())["feature_network"] is backbone
    assert not backbone.training and not any(p.requires_grad for p in backbone.parameters())
    trained = {id(p) for gs in model.optimizer_groups(TrainConfig()).values() for g in gs for p in g["params"]}
    assert not trained & {id(p) for p in backbone.parameters()}
    keys = model.state_dict()
    assert not any(k.startswith("feature_network.") for k in keys)
    assert {k for k in keys if k.startswith("discriminator.ccm.")} and \
        not any(k.startswith("discriminator.backbone") for k in keys)
    model.load_state_dict(keys)  # strict: the backbone's weights are not expected
    model.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in backbone.parameters())
    feats = model.discriminator.features(random_batch(V)["image"].double())  # D reads the cast backbone
    assert feats.dtype == torch.float64 and torch.isfinite(feats).all()
    model.float()
    assert all(p.dtype == torch.float32 for p in backbone.parameters())


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_save_load_round_trip_is_bit_exact(name, extra, tiny_model, random_batch, tmp_path):
    model = tiny_model(name, V, **extra).eval()
    ema = tiny_model(name, V, seed=1, **extra).eval().generator  # another generator plays the moving average
    save_run(tmp_path, {"data": {"max_words": 18}}, model, VOCAB, ema)
    loaded, vocab, config = load_run(tmp_path)
    assert config["model_name"] == name and vocab.words == VOCAB.words
    saved, back = model.state_dict(), loaded.state_dict()
    assert set(saved) == set(back)
    ema_sd = ema.state_dict()
    for k in saved:
        expected = ema_sd[k[len("generator."):]] if k.startswith("generator.") else saved[k]
        assert torch.equal(expected, back[k]), k
    batch = random_batch(V)
    with torch.no_grad():
        want = model.generate(batch["tokens"], batch["lengths"], noise_for(model, 0), ema).images
        got = loaded.generate(batch["tokens"], batch["lengths"], noise_for(model, 0)).images
    assert torch.equal(want, got)


def pinned_keys() -> dict:
    return json.loads(KEYS_FILE.read_text())


def current_keys() -> dict:
    """Sorted state-dict key names of each tiny model, DAMSM and STREAM."""
    from t2igan import create_model

    keys = {name: sorted(create_model(name, vocab_size=V, **TINY_MODELS[name]).state_dict()) for name in MODELS}
    keys["damsm"] = sorted(tiny_damsm().state_dict())
    keys["stream"] = sorted(tiny_stream().state_dict())
    return keys


@pytest.mark.parametrize("name", MODELS + ["damsm", "stream"])
def test_state_dict_keys_are_pinned(name, tiny_model):
    pinned = pinned_keys()
    assert name in pinned, f"no pinned keys for {name}: run python tests/test_model_contract.py --write-keys"
    if name == "damsm":
        keys = tiny_damsm().state_dict()
    elif name == "stream":
        keys = tiny_stream().state_dict()
    else:
        keys = tiny_model(name, V).state_dict()
    assert sorted(keys) == pinned[name]


@pytest.mark.parametrize("name,extra", VARIANTS)
def test_one_trainer_step_then_pipeline_generation(name, extra, tmp_path):
    cfg = resolve_config(f"{name}-shapes", [
        f"data.image_size={TINY_SIZE}", "data.train_args={num_images: 8}", "data.test_args={num_images: 4}",
        "train.batch_size=4", "train.max_steps=1", "train.num_sample_captions=2", "train.device=cpu",
        *tiny_model_overrides(name), *(f"model.{k}={v}" for k, v in extra.items())])
    trainer = Trainer(cfg, tmp_path, progress=False)
    before = clone_state(trainer.model)
    trainer.fit()
    moved = changed_keys(before, trainer.model)
    assert any(k.startswith("generator.") for k in moved) and any(k.startswith("discriminator.") for k in moved)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in log] == [1]
    assert all(v == v and abs(v) != float("inf") for v in log[0].values() if isinstance(v, float))
    assert (tmp_path / "checkpoints" / "step-00000001.safetensors").is_file()

    pipe = Text2ImagePipeline.from_pretrained(tmp_path, device="cpu")
    assert pipe.model_name == name
    captions = ["a red circle", "a small blue square at the top"]
    images = pipe(captions, n=2, seed=0)
    assert len(images) == 4 and all(im.size == (TINY_SIZE, TINY_SIZE) for im in images)
    assert [im.tobytes() for im in pipe(captions, n=2, seed=0, batch_size=1)] == [im.tobytes() for im in images]
    assert [im.tobytes() for im in pipe(captions, n=2, seed=1)] != [im.tobytes() for im in images]


# ---------------------------------------------------------------------------------------------------
# DAMSM and STREAM
# ---------------------------------------------------------------------------------------------------


def tiny_damsm(backbone: str = "small_cnn", seed: int = 0):
    from t2igan.models.damsm import DAMSM, DAMSMConfig

    torch.manual_seed(seed)
    return DAMSM(DAMSMConfig(vocab_size=V, embed_dim=16, text_emb_dim=8, text_hidden_dim=8, backbone=backbone,
                             image_size=TINY_SIZE, cnn_channels=4))


def tiny_stream(seed: int = 0):
    from t2igan.models.stream import StreamCaptioner, StreamConfig

    torch.manual_seed(seed)
    return StreamCaptioner(StreamConfig(vocab_size=V, backbone="small_cnn", image_size=TINY_SIZE, cnn_channels=4,
                                        embed_dim=8, hidden_dim=12, inject="every", max_len=6))


def step_changes(model, loss_fn) -> set:
    """Keys one Adam step on ``loss_fn(model)`` changes (over the model's trainable parameters)."""
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-3)
    before = clone_state(model.train())
    loss = loss_fn(model)
    assert loss.ndim == 0 and torch.isfinite(loss)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return changed_keys(before, model)


def test_damsm_contract(random_batch, tmp_path):
    from t2igan.runs import load_damsm

    batch = random_batch(V)
    model = tiny_damsm().eval()
    with torch.no_grad():
        text = model.text_encoder(batch["tokens"], batch["lengths"])
        regions, image_emb = model.image_encoder(batch["image"])
        again = tiny_damsm().eval().image_encoder(batch["image"])
    T = batch["tokens"].shape[1]
    assert text.word_embs.shape == (B, 16, T) and text.sent_emb.shape == (B, 16)
    assert regions.shape[:2] == (B, 16) and regions.ndim == 4 and image_emb.shape == (B, 16)
    assert torch.equal(regions, again[0]) and torch.equal(image_emb, again[1])

    moved = step_changes(model, lambda m: m.losses(batch["image"], batch["tokens"], batch["lengths"])[0])
    assert any(k.startswith("text_encoder.") for k in moved) and any(k.startswith("image_encoder.") for k in moved)

    save_run(tmp_path, {"data": {"max_words": 18}}, model.eval(), VOCAB)
    loaded, vocab = load_damsm(tmp_path)
    assert vocab.words == VOCAB.words
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_damsm_inception_backbone_stays_frozen(random_batch):
    batch = random_batch(V, lengths=(5, 3))
    model = tiny_damsm("inception")
    backbone = {f"image_encoder.backbone.{k}" for k in model.image_encoder.backbone.state_dict()}
    moved = step_changes(model, lambda m: m.losses(batch["image"], batch["tokens"], batch["lengths"])[0])
    assert not moved & backbone
    assert any(k.startswith("image_encoder.") for k in moved) and any(k.startswith("text_encoder.") for k in moved)


def test_stream_contract(random_batch, tmp_path):
    from t2igan.models.stream import caption_cross_entropy
    from t2igan.runs import load_stream

    batch = random_batch(V)
    model = tiny_stream().eval()
    with torch.no_grad():
        logits = model(batch["image"], batch["tokens"], batch["lengths"])
        again = tiny_stream().eval()(batch["image"], batch["tokens"], batch["lengths"])
    assert logits.shape == (B, int(batch["lengths"].max()) + 1, V)
    assert torch.equal(logits, again)
    words = model.greedy(batch["image"])
    assert len(words) == B and all(len(w) <= 6 and all(0 < i < V for i in w) for w in words)

    def loss_fn(m):
        return caption_cross_entropy(m(batch["image"], batch["tokens"], batch["lengths"]), batch["tokens"],
                                     batch["lengths"])

    moved = step_changes(model, loss_fn)
    for part in ("encoder.", "embedding.", "lstm.", "out."):
        assert any(k.startswith(part) for k in moved), part

    save_run(tmp_path, {"data": {"max_words": 18}}, model.eval(), VOCAB)
    loaded, vocab = load_stream(tmp_path)
    assert vocab.words == VOCAB.words
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    assert loaded.greedy(batch["image"]) == model.greedy(batch["image"])


PRETRAIN_SMALL = {"damsm": ["model.embed_dim=16", "model.text_emb_dim=8", "model.text_hidden_dim=8",
                             "model.cnn_channels=4"],
                  "stream": ["model.embed_dim=8", "model.hidden_dim=12", "model.cnn_channels=4", "model.max_len=4"]}


@pytest.mark.parametrize("what", ["damsm", "stream"])
def test_pretraining_runs_the_shared_trainer_with_its_hooks(what, tmp_path, monkeypatch):
    """DAMSM and STREAM train through :class:`Trainer`: one phase, their own Adam, no moving average,
    the model's clipping (DAMSM: the text encoder at 0.25) and per-epoch lr, checkpoints and resume."""
    from t2igan.config import resolve_config

    clipped = []
    real_clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda ps, n: clipped.append((list(ps), n)) or real_clip(ps, n))
    tiny = [f"data.image_size={TINY_SIZE}", "data.train_args={num_images: 8}", "data.test_args={num_images: 4}",
            "train.batch_size=4", "train.device=cpu", "train.checkpoint_every=1", *PRETRAIN_SMALL[what]]
    tiny.append("model.grad_clip=1.5" if what == "stream" else "model.rprec_captions=4")
    trainer = Trainer(resolve_config(f"{what}-shapes", [*tiny, "train.max_steps=2"]), tmp_path, progress=False)
    model = trainer.model
    assert trainer.ema is None and list(trainer.optimizers) == list(model.phases) and len(model.phases) == 1
    assert [p for g in trainer.optimizers[model.phases[0]].param_groups for p in g["params"]] == \
        model.trainable_parameters()
    trainer.fit()
    want = (list(model.text_encoder.parameters()), 0.25) if what == "damsm" else (model.trainable_parameters(), 1.5)
    assert len(clipped) == 2 and all(ps == want[0] and n == want[1] for ps, n in clipped)
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 2
    resumed = Trainer(resolve_config(f"{what}-shapes", [*tiny, "train.max_steps=3"]), tmp_path, progress=False)
    resumed.fit(resume=True)
    assert resumed.step == 3 and resumed.epoch == 1  # 2 batches per epoch
    lr = resumed.optimizers[model.phases[0]].param_groups[0]["lr"]
    assert lr == pytest.approx(0.002 * 0.98 if what == "damsm" else 0.003)  # DAMSM: x 0.98 after epoch 0


@pytest.mark.parametrize("what", ["damsm", "stream"])
def test_one_pretraining_step_from_the_preset(what, tmp_path, capsys):
    from t2igan.runs import load_damsm, load_stream

    run = tmp_path / "run"
    rc = main(["pretrain", what, f"{what}-shapes", f"data.image_size={TINY_SIZE}", "data.train_args={num_images: 8}",
               "data.test_args={num_images: 4}", "train.batch_size=4", "train.max_steps=1", "train.device=cpu",
               *PRETRAIN_SMALL[what], "--run-dir", str(run), "--no-progress"])
    assert rc == 0
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert log[0]["step"] == 1
    model, vocab = (load_damsm if what == "damsm" else load_stream)(run)
    assert len(vocab) == model.config.vocab_size
    capsys.readouterr()


if __name__ == "__main__" and sys.argv[1:] == ["--write-keys"]:
    KEYS_FILE.parent.mkdir(exist_ok=True)
    KEYS_FILE.write_text(json.dumps(current_keys(), indent=1) + "\n")
    print(f"wrote {KEYS_FILE}")
