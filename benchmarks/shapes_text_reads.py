"""What a text encoder's sentence feature tells apart, on Shapes captions.

A generator that reads only the sentence feature (DF-GAN, SSA-GAN) cannot draw a difference that its
text encoder maps to (nearly) the same vector. For random test scenes, each caption is written in one
canonical form and again with one thing changed, and the script prints the mean cosine similarity of
the two sentence features and how often it exceeds 0.98 ("blind"):

* one object: its shape, colour, size or position changed;
* two objects: the colours of the two swapped, or their shapes swapped (the words of the caption are
  the same, only which object they belong to changes: attribute binding).

    python benchmarks/shapes_text_reads.py shapes-damsm shapes-dfgan runs/demo-dfgan-shapes
    python benchmarks/shapes_text_reads.py shapes-damsm --dry-run     # check that the sources can be read

Each argument is a bundled model, a GAN run folder or a DAMSM run folder. Writes
``benchmarks/results/shapes_text_reads.json``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import torch

from shapes_d_reads import caption as one_object  # the canonical one-object caption (same folder)

HERE = Path(__file__).resolve().parent
CHANGES = ("shape", "colour", "size", "position", "colour swap", "shape swap")


def two_objects(a: dict, b: dict) -> str:
    return f"a {a['size']} {a['colour']} {a['shape']} left of a {b['size']} {b['colour']} {b['shape']}"


def caption_pairs(n: int, seed: int = 0) -> dict[str, list[tuple[str, str]]]:
    """``n`` (caption, changed caption) pairs for each of :data:`CHANGES`."""
    from t2igan.data.shapes import COLOURS, POSITIONS, SHAPES, SIZES

    rng = random.Random(seed)
    values = {"shape": SHAPES, "colour": COLOURS, "size": SIZES, "position": POSITIONS}

    def obj():
        return {k: rng.choice(v) for k, v in values.items()}

    pairs = {c: [] for c in CHANGES}
    for _ in range(n):
        for key in values:
            a = obj()
            b = dict(a, **{key: rng.choice([v for v in values[key] if v != a[key]])})
            pairs[key].append((one_object(a), one_object(b)))
        for key in ("colour", "shape"):
            a, b = obj(), obj()
            while a[key] == b[key]:
                b = obj()
            swapped_a, swapped_b = dict(a, **{key: b[key]}), dict(b, **{key: a[key]})
            pairs[f"{key} swap"].append((two_objects(a, b), two_objects(swapped_a, swapped_b)))
    return pairs


def load_text_encoder(source: str):
    """(text encoder in eval mode, vocabulary) of a bundled model, a GAN run or a DAMSM run."""
    from t2igan.pipeline import Text2ImagePipeline
    from t2igan.runs import load_damsm, read_config, resolve_run_dir

    run_dir = resolve_run_dir(source)
    if read_config(run_dir).get("model_name") == "damsm":
        damsm, vocab = load_damsm(run_dir)
        return damsm.text_encoder.eval(), vocab
    pipe = Text2ImagePipeline.from_pretrained(run_dir)
    return pipe.model.text_encoder.eval(), pipe.vocab


@torch.no_grad()
def sentence_cosines(text_encoder, vocab, pairs: list[tuple[str, str]]) -> torch.Tensor:
    from t2igan.data.text import encode_captions

    firsts, seconds = zip(*pairs)
    feats = []
    for captions in (firsts, seconds):
        tokens, lengths = encode_captions(vocab, list(captions), max_words=18, strict=True)
        feats.append(text_encoder(tokens, lengths).sent_emb)
    return torch.cosine_similarity(feats[0], feats[1], dim=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+")
    p.add_argument("--n", type=int, default=200, help="pairs per change")
    p.add_argument("--out", default=str(HERE / "results" / "shapes_text_reads.json"))
    p.add_argument("--dry-run", action="store_true", help="check that every source can be read and exit")
    args = p.parse_args()
    if args.dry_run:
        from dry_run import check_runs

        check_runs(args.sources)
        return

    pairs = caption_pairs(args.n)
    rows = []
    for source in args.sources:
        text_encoder, vocab = load_text_encoder(source)
        row = {"source": source}
        for change in CHANGES:
            cos = sentence_cosines(text_encoder, vocab, pairs[change])
            row[change] = {"mean_cos": float(cos.mean()), "blind": float((cos > 0.98).float().mean())}
        rows.append(row)

    print("mean cosine of the sentence features (fraction of pairs above 0.98) when one thing changes")
    print(f"{'source':<32}" + "".join(f"{c:>16}" for c in CHANGES))
    for row in rows:
        print(f"{row['source'][-32:]:<32}" + "".join(
            f"{row[c]['mean_cos']:>9.3f} ({100 * row[c]['blind']:3.0f}%)" for c in CHANGES))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": args.n, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
