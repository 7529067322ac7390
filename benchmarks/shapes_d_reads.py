"""What a trained DF-GAN / SSA-GAN discriminator reads, on real and on generated Shapes images.

For one-object test scenes, each caption is written in one canonical form and again with one
attribute changed (shape, colour, position or size). For real images and for the run's generated
images of the same captions it prints how often D's contrastive head (``contrastive_weight`` > 0)
prefers the true caption over the changed one, with the mean cosine margin, and D's mean matching
logit. If D reads a generated image's shape as well as a real one's while the Shapes probe reads
the shape at chance, G is satisfying D with something that is not the shape.

    python benchmarks/shapes_d_reads.py runs/demo-dfgan-shapes            # its newest checkpoint
    python benchmarks/shapes_d_reads.py RUN --step 8000 --n 400
    python benchmarks/shapes_d_reads.py RUN --dry-run                     # check that RUN can be read

Needs a checkpoint (model.safetensors of a run or a bundled model has no D). Writes
``benchmarks/results/shapes_d_reads.json``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent
PLACES = {"centre": "in the centre", "left": "on the left", "right": "on the right", "top": "at the top",
          "bottom": "at the bottom"}


def caption(obj: dict) -> str:
    return f"a {obj['size']} {obj['colour']} {obj['shape']} {PLACES[obj['position']]}"


def main() -> None:
    from t2igan.data.shapes import COLOURS, POSITIONS, SHAPES, SIZES, ShapesDataset
    from t2igan.data.text import encode_captions
    from t2igan.hub import load_safetensors
    from t2igan.runs import load_run
    from t2igan.training.checkpoints import list_checkpoints

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest)")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--out", default=str(HERE / "results" / "shapes_d_reads.json"))
    p.add_argument("--dry-run", action="store_true", help="check that the run can be read and exit")
    args = p.parse_args()
    if args.dry_run:
        from dry_run import check_runs

        check_runs([args.run])
        return

    torch.manual_seed(0)
    model, vocab, config = load_run(args.run)
    checkpoints = dict(list_checkpoints(Path(args.run)))
    if not checkpoints:
        raise SystemExit(f"{args.run} has no checkpoint (D is not in model.safetensors)")
    step = args.step if args.step is not None else max(checkpoints)
    weights = load_safetensors(checkpoints[step])
    model.load_state_dict({k[len("model."):]: v for k, v in weights.items() if k.startswith("model.")}, strict=False)
    model.eval()
    D = model.discriminator
    if not hasattr(D, "image_proj"):
        raise SystemExit("this run's D has no contrastive head (contrastive_weight 0)")
    size = model.config.image_size
    data = ShapesDataset("test", image_size=size, max_objects=1, num_images=args.n)
    rng = random.Random(0)
    captions = {k: [] for k in ("true", "shape", "colour", "position", "size")}
    for i in range(len(data)):
        obj = data.attributes(i)["objects"][0]
        captions["true"].append(caption(obj))
        for key, names in (("shape", SHAPES), ("colour", COLOURS), ("position", POSITIONS), ("size", SIZES)):
            captions[key].append(caption(dict(obj, **{key: rng.choice([n for n in names if n != obj[key]])})))

    def sentences(texts):
        tokens, lengths = encode_captions(vocab, texts, 18)
        return model.encode_text(tokens, lengths).sent_emb

    result = {"run": args.run, "step": step, "n": len(data)}
    with torch.no_grad():
        sent = {k: sentences(v) for k, v in captions.items()}
        real = torch.stack([data.image_uint8(i).float() / 127.5 - 1 for i in range(len(data))])
        fake = model.generator(model.noise(len(data)), sent["true"])
        if isinstance(fake, tuple):  # SSA-GAN's generator also returns its masks
            fake = fake[0]
        for name, images in (("real", real), ("generated", fake)):
            feats = D.features(images)
            image_emb, text_emb = D.embeddings(feats, sent["true"])
            image_emb = F.normalize(image_emb, dim=1)
            true_cos = (image_emb * F.normalize(text_emb, dim=1)).sum(1)
            row = {"d_logit": D.logits(feats, sent["true"]).mean().item()}
            for key in ("shape", "colour", "position", "size"):
                other = (image_emb * F.normalize(D.embeddings(feats, sent[key])[1], dim=1)).sum(1)
                row[key] = {"prefers_true": (true_cos > other).float().mean().item(),
                            "margin": (true_cos - other).mean().item()}
            result[name] = row
    print(f"{args.run} step {step}, {len(data)} one-object test captions; D prefers the true caption over one "
          "with this attribute changed (mean cosine margin)")
    print("| images | D logit | shape | colour | position | size |\n|---|---|---|---|---|---|")
    for name in ("real", "generated"):
        r = result[name]
        cells = " | ".join(f"{100 * r[k]['prefers_true']:.1f} % ({r[k]['margin']:.3f})"
                           for k in ("shape", "colour", "position", "size"))
        print(f"| {name} | {r['d_logit']:.2f} | {cells} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
