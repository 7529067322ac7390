"""The models and probes that ship inside the package: they load offline, generate deterministically
and still score what their model cards say (this guards the bundled files and the sampling path)."""

import json
import subprocess
import sys

import pytest
import torch

from t2igan.errors import T2IError
from t2igan.evaluate import evaluate
from t2igan.metrics.shapes_probe import PACKAGED_PROBE_DIR, default_probe_path, evaluate_probe, load_probe
from t2igan.pipeline import Text2ImagePipeline
from t2igan.runs import BUNDLED_DIR, bundled_card, bundled_names, resolve_run_dir

BUNDLED = bundled_names()
GENERATORS = [name for name in BUNDLED if bundled_card(name).get("model") != "damsm"]


def test_the_bundled_models_and_probes_are_there():
    assert {"shapes-dfgan", "shapes-ssagan", "shapes-mirrorgan", "shapes-damsm"} <= set(BUNDLED)
    for size in (32, 64):
        assert default_probe_path(size) == PACKAGED_PROBE_DIR / f"shapes_probe-{size}.safetensors"
    total = sum(p.stat().st_size for p in BUNDLED_DIR.rglob("*") if p.is_file())
    total += sum(p.stat().st_size for p in PACKAGED_PROBE_DIR.glob("*.safetensors"))
    assert total < 25 * 2**20  # the repository's budget for bundled binaries


@pytest.mark.parametrize("name", GENERATORS)
def test_bundled_model_generates_deterministically_offline(name):
    pipe = Text2ImagePipeline.from_pretrained(name, device="cpu")
    assert pipe.model.training is False
    a = pipe(["a red circle on the left", "a small blue square"], n=2, seed=3)
    b = pipe(["a red circle on the left", "a small blue square"], n=2, seed=3)
    c = pipe(["a red circle on the left", "a small blue square"], n=2, seed=4)
    assert len(a) == 4 and all(x.tobytes() == y.tobytes() for x, y in zip(a, b))
    assert any(x.tobytes() != y.tobytes() for x, y in zip(a, c))
    weights = BUNDLED_DIR / name / "model.safetensors"
    from safetensors import safe_open

    with safe_open(str(weights), "pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}
        assert "F16" in dtypes and dtypes <= {"F16", "I64"}  # floats in half precision (I64: BatchNorm counters)
        assert not any(k.startswith("discriminator.") for k in f.keys())


@pytest.mark.parametrize("name", GENERATORS)
def test_bundled_model_still_scores_its_model_card(name, tmp_path):
    card = bundled_card(name)
    before = sorted(p.name for p in (BUNDLED_DIR / name).iterdir())
    records = evaluate(name, metrics="shapes", n=200, seed=0, progress=False, device="cpu")
    by = {r["metric"]: r for r in records}
    assert by["shapes_attr"]["value"] >= card["probe"]["mean"] - 0.05
    for group, value in card["probe"]["per_attribute"].items():
        assert by["shapes_attr"]["per_attribute"][group] >= value - 0.10, group
    assert sorted(p.name for p in (BUNDLED_DIR / name).iterdir()) == before  # nothing written into the package


def test_bundled_damsm_still_reads_real_images_and_starts_a_gan_offline(tmp_path):
    """shapes-damsm: fp16, its card's real-image R-precision on 200 images, a clear error when asked
    for pictures, and a GAN started from it by name takes its text encoder and its vocabulary."""
    from t2igan.data.shapes import ShapesDataset
    from t2igan.metrics.r_precision import dataset_r_precision
    from t2igan.runs import load_damsm
    from t2igan.training.build import build_vocab
    from t2igan.config import resolve_config

    card = bundled_card("shapes-damsm")
    damsm, vocab = load_damsm("shapes-damsm")
    data = ShapesDataset("test", image_size=card["image_size"], random_caption=False, num_images=200)
    result = dataset_r_precision(damsm, vocab, data, num_captions=100, splits=2, seed=0)
    assert result["mean"] >= card["r_precision"]["mean"] - 0.08  # 200 images: a looser margin than 1000
    with pytest.raises(T2IError, match="damsm run makes no images"):
        Text2ImagePipeline.from_pretrained("shapes-damsm")
    cfg = resolve_config("dfgan-shapes", ["model.damsm_weights=shapes-damsm", "model.text_encoder_mode=frozen",
                                          "data.train_args={num_images: 8}"])
    assert build_vocab(cfg, None).words == vocab.words  # data.vocab unset: the DAMSM's own vocabulary
    from t2igan.training.build import build_model

    gan = build_model("dfgan", vocab_size=len(vocab), nf=4, image_size=32, damsm_weights="shapes-damsm",
                      text_encoder_mode="frozen")
    assert all(torch.equal(a.half().float(), b.float()) for a, b in
               zip(gan.text_encoder.state_dict().values(), damsm.text_encoder.state_dict().values()))


@pytest.mark.parametrize("size", [32, 64])
def test_shipped_probe_reads_real_images(size):
    probe, info = load_probe(default_probe_path(size))
    assert probe.image_size == size and info["stored"] == "fp16"
    accuracy = evaluate_probe(probe, size, num_images=200)
    assert accuracy["test"]["mean"] > 0.99 and accuracy["test_heldout"]["mean"] > 0.99


def test_unknown_name_is_one_clear_error_and_cli_lists_bundled():
    with pytest.raises(T2IError, match="no run folder and no bundled model named 'shapes-nosuch'.*shapes-dfgan"):
        resolve_run_dir("shapes-nosuch")
    out = subprocess.run([sys.executable, "-m", "t2igan", "list-pretrained"], capture_output=True, text=True, check=True)
    assert "shapes-dfgan" in out.stdout and "colour" in out.stdout
