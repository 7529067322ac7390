"""Bundle a trained Shapes run into the package as a pretrained model, or ship a Shapes probe.

    python tools/bundle_pretrained.py model RUN_DIR shapes-dfgan --command "t2igan train ..." \
        --hardware "2-core CPU, 1 thread" --train-time "38 CPU min"
    python tools/bundle_pretrained.py damsm DAMSM_RUN_DIR shapes-damsm --command "t2igan pretrain ..." ...
    python tools/bundle_pretrained.py probe CACHED_PROBE.safetensors

``model`` writes ``src/t2igan/pretrained/<name>/``: ``config.json`` (marked ``inference_only``),
``vocab.json``, ``model.safetensors`` (fp16, without the discriminator), ``grid.png`` (the demo
captions, 8 seeds each), ``card.json`` and ``MODEL_CARD.md``. The probe scores in the card are
measured on the bundled fp16 files themselves (``t2igan eval NAME --metrics shapes``), so the card
describes exactly what ships. ``damsm`` bundles a Shapes DAMSM (its card: the real-image R-precision
of the fp16 files). ``probe`` stores a probe in fp16 under ``src/t2igan/metrics/weights/``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from t2igan.evaluate import evaluate
from t2igan.hub import save_safetensors
from t2igan.metrics.shapes_probe import PACKAGED_PROBE_DIR, evaluate_probe, load_probe, save_probe
from t2igan.pipeline import Text2ImagePipeline
from t2igan.runs import BUNDLED_DIR, CONFIG_NAME, VOCAB_NAME, WEIGHTS_NAME, load_run, read_config
from t2igan.visualize import captioned_grid

DEMO_CAPTIONS = ["a red circle", "a blue square", "a green triangle", "a yellow star",
                 "a large purple circle on the left", "a small orange square at the top"]


def write_bundle(out: Path, run_dir: Path, config: dict, model, skip: tuple[str, ...] = ()) -> None:
    """A fresh ``out`` folder: ``config``, the run's vocabulary and the model's weights in fp16 (keys
    starting with one of ``skip`` left out), readable by everyone."""
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()
             if not (skip and k.startswith(skip))}
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    shutil.copy(run_dir / VOCAB_NAME, out / VOCAB_NAME)
    save_safetensors(state, out / WEIGHTS_NAME, {"format": "pt", "dtype": "float16"})
    for path in out.iterdir():
        path.chmod(0o644)


def bundle_model(args) -> None:
    run_dir, out = Path(args.run_dir), BUNDLED_DIR / args.name
    model, _, _ = load_run(run_dir)
    config = read_config(run_dir)
    config["inference_only"] = True
    config["model_config"] = {k: (None if k.endswith("_weights") else v) for k, v in config["model_config"].items()}
    write_bundle(out, run_dir, config, model, skip=tuple(f"{m}." for m in model.training_only_modules))

    records = evaluate(out, metrics="shapes,diversity", n=args.n, seed=0, write=False, progress=True, device="cpu")
    by_name = {r["metric"]: r for r in records}
    pipe = Text2ImagePipeline.from_pretrained(out, device="cpu")
    images = pipe(DEMO_CAPTIONS, n=8, seed=0)
    captioned_grid(images, [c for c in DEMO_CAPTIONS for _ in range(8)], ncol=8).save(out / "grid.png")
    exp = config["experiment"]
    card = {
        "name": args.name, "model": config["model_name"], "image_size": exp["data"]["image_size"],
        "steps": args.steps, "command": args.command, "hardware": args.hardware, "train_time": args.train_time,
        "probe": {"n": args.n, "seed": 0, "mean": by_name["shapes_attr"]["value"],
                  "exact": by_name["shapes_attr"]["exact"], "per_attribute": by_name["shapes_attr"]["per_attribute"],
                  "heldout_mean": by_name.get("shapes_attr_heldout", {}).get("value"),
                  "heldout_per_attribute": by_name.get("shapes_attr_heldout", {}).get("per_attribute"),
                  "shapes_fid": by_name.get("shapes_fid", {}).get("value")},
        "diversity": diversity_summary(by_name),
        "weights_mb": round((out / WEIGHTS_NAME).stat().st_size / 2**20, 2),
    }
    (out / "card.json").write_text(json.dumps(card, indent=2))
    write_model_card(out, card)
    print(json.dumps(card["probe"], indent=2))


def diversity_summary(by_name: dict) -> dict:
    """The card's diversity numbers (``t2igan eval NAME --metrics diversity``): the model's and real renders'."""
    entropy, coverage = by_name["diversity_entropy"], by_name["diversity_coverage"]
    features, faithful = by_name["diversity_features"], by_name["diversity_faithfulness"]
    return {"k": entropy["k"], "captions": entropy["captions"],
            "entropy": entropy["per_attribute"], "entropy_real": entropy["real"]["per_attribute"],
            "coverage": coverage["per_attribute"], "coverage_real": coverage["real"]["per_attribute"],
            "features": features["value"], "faithfulness": faithful["value"], "faithfulness_real": faithful["real"],
            "open_recall": by_name["open_prdc_recall"]["value"]}


def diversity_section(d: dict | None) -> str:
    if not d:
        return ""
    return f"""
## Does each caption give a distribution?

`t2igan eval NAME --metrics diversity --n 1000`: {d['captions']} captions that leave the size, the place or
both unsaid, {d['k']} seeds each, read by the probe (`README.md`, "Does each caption give a distribution?").

| | size entropy | place entropy | size coverage | place coverage | feature spread | named attributes right |
|---|---|---|---|---|---|---|
| this model | {d['entropy']['size']:.2f} | {d['entropy']['position']:.2f} | {d['coverage']['size']:.2f} | \
{d['coverage']['position']:.2f} | {d['features']:.2f} | {100 * d['faithfulness']:.1f} % |
| real renders | {d['entropy_real']['size']:.2f} | {d['entropy_real']['position']:.2f} | {d['coverage_real']['size']:.2f} | \
{d['coverage_real']['position']:.2f} | 1 | {100 * d['faithfulness_real']:.1f} % |

Entropy as a fraction of the data's; feature spread: the seeds' mean pairwise probe-feature distance over
that of real renders of the same caption. The first row of the grid below is 8 seeds of "a red circle".
"""


def write_model_card(out: Path, card: dict) -> None:
    p = card["probe"]
    groups = list(p["per_attribute"])
    held = p.get("heldout_per_attribute") or {}
    rows = [f"| test captions | {100 * p['mean']:.1f} | " + " | ".join(f"{100 * p['per_attribute'][g]:.1f}" for g in groups) + " |"]
    if held:
        rows.append(f"| held-out (colour, shape) captions | {100 * p['heldout_mean']:.1f} | "
                    + " | ".join(f"{100 * held[g]:.1f}" for g in groups) + " |")
    text = f"""# {card['name']}

{card['model']} trained on the built-in Shapes data at {card['image_size']} px, shipped in fp16 without its
discriminator ({card['weights_mb']} MB). Use it offline by name:

```bash
t2igan sample {card['name']} "a red circle on the left" --n 8 -o grid.png
t2igan eval {card['name']} --metrics shapes,diversity --n 1000
```

- Command: `{card['command']}`
- Steps: {card['steps']}
- Hardware: {card['hardware']}
- Training time: {card['train_time']}

## Probe scores

These fp16 weights on {p['n']} test captions (seed 0), read by the shipped {card['image_size']} px
Shapes probe: the percentage of each caption's attributes the probe reads back from the image.
Exact (every attribute right): {100 * p['exact']:.1f} %. Shapes-FID (probe features): {p['shapes_fid']:.0f}.

| captions | mean | {' | '.join(groups)} |
|---|---|{'---|' * len(groups)}
{chr(10).join(rows)}
{diversity_section(card.get("diversity"))}
## Samples

![grid](grid.png)

Rows: {', '.join(repr(c) for c in DEMO_CAPTIONS)}; 8 seeds each.
"""
    (out / "MODEL_CARD.md").write_text(text)


def bundle_damsm(args) -> None:
    """A DAMSM pretrained on Shapes, in fp16: the frozen text (and image) encoder the ``-shapes`` GAN
    presets start from (``model.damsm_weights=shapes-damsm``). Its card holds the real-image
    R-precision of the shipped fp16 files."""
    from t2igan.data.shapes import ShapesDataset
    from t2igan.metrics.r_precision import dataset_r_precision
    from t2igan.runs import load_damsm

    run_dir, out = Path(args.run_dir), BUNDLED_DIR / args.name
    model, _, _ = load_run(run_dir)
    config = read_config(run_dir)
    write_bundle(out, run_dir, config, model)
    damsm, vocab = load_damsm(out)
    exp = config["experiment"]
    test_set = ShapesDataset("test", image_size=exp["data"]["image_size"], random_caption=False)
    rprec = dataset_r_precision(damsm, vocab, test_set, max_words=exp["data"]["max_words"], num_captions=100,
                                splits=10, seed=0, device="cpu", damsm_name=args.name, progress=True)
    card = {"name": args.name, "model": "damsm", "image_size": exp["data"]["image_size"], "steps": args.steps,
            "command": args.command, "hardware": args.hardware, "train_time": args.train_time,
            "r_precision": {"mean": rprec["mean"], "std": rprec["std"], "num_images": rprec["num_images"],
                            "num_captions": 100, "splits": 10, "seed": 0},
            "weights_mb": round((out / WEIGHTS_NAME).stat().st_size / 2**20, 2)}
    (out / "card.json").write_text(json.dumps(card, indent=2))
    (out / "MODEL_CARD.md").write_text(f"""# {args.name}

A DAMSM (AttnGAN's text and image encoders, small-CNN image encoder) pretrained on the built-in Shapes
data at {card['image_size']} px, shipped in fp16 ({card['weights_mb']} MB). It is the frozen text encoder
of the `-shapes` GAN presets and the image encoder of their DAMSM loss; use it offline by name:

```bash
t2igan train dfgan-shapes model.damsm_weights={args.name}      # its vocab.json comes with it
```

- Command: `{card['command']}`
- Steps: {card['steps']}
- Hardware: {card['hardware']}
- Training time: {card['train_time']}

R-precision of these fp16 weights on the {rprec['num_images']} real Shapes test images (true caption among
100, 10 splits, seed 0): **{100 * rprec['mean']:.1f} +- {100 * rprec['std']:.1f} %** (chance 1 %).
""")
    print(json.dumps(card, indent=2))


def bundle_probe(args) -> None:
    probe, info = load_probe(args.probe)
    info = {**info, "stored": "fp16"}
    path = PACKAGED_PROBE_DIR / f"shapes_probe-{probe.image_size}.safetensors"
    save_probe(probe, path, info, half=True)
    shipped, _ = load_probe(path)
    print(f"wrote {path}: {path.stat().st_size / 2**20:.2f} MB")
    print(json.dumps(evaluate_probe(shipped, probe.image_size), indent=1))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("model")
    m.add_argument("run_dir")
    m.add_argument("name")
    m.add_argument("--command", required=True, help="the command that trained the run")
    m.add_argument("--hardware", required=True)
    m.add_argument("--train-time", required=True)
    m.add_argument("--steps", type=int, required=True)
    m.add_argument("--n", type=int, default=1000, help="test captions scored by the probe")
    m.set_defaults(func=bundle_model)
    d = sub.add_parser("damsm")
    d.add_argument("run_dir")
    d.add_argument("name")
    d.add_argument("--command", required=True, help="the command that trained the run")
    d.add_argument("--hardware", required=True)
    d.add_argument("--train-time", required=True)
    d.add_argument("--steps", type=int, required=True)
    d.set_defaults(func=bundle_damsm)
    q = sub.add_parser("probe")
    q.add_argument("probe", help="a probe file written by `t2igan shapes-probe`")
    q.set_defaults(func=bundle_probe)
    args = p.parse_args()
    torch.set_num_threads(1)
    args.func(args)


if __name__ == "__main__":
    main()
