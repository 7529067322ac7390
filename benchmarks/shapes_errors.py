"""Where a Shapes model's attribute errors come from: one- vs two-object scenes, swapped attributes,
confusions.

`t2igan eval RUN --metrics shapes` gives one accuracy per attribute. This script reads the same 1,000
test captions (seed 0, the Shapes probe at the run's resolution) and splits them:

* accuracy of colour, shape and size for one-object scenes and for each object of two-object scenes;
* for two-object scenes, how often the probe reads both colours right, the two colours swapped
  (each object drawn in the other's colour: an attribute-binding error), both objects in one of
  the two colours, or something else;
* the confusion matrix of each attribute (rows: the caption's value, columns: the probe's reading).

    python benchmarks/shapes_errors.py shapes-dfgan
    python benchmarks/shapes_errors.py runs/demo-dfgan-shapes --n 1000
    python benchmarks/shapes_errors.py shapes-dfgan --dry-run      # check that the run can be read

Writes ``benchmarks/results/shapes_errors.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent


def main() -> None:
    from t2igan.data.shapes import LABEL_CLASSES
    from t2igan.evaluate import build_eval_dataset, test_captions
    from t2igan.metrics.shapes_probe import PROBE_KEYS, labels_tensor, load_or_train_probe
    from t2igan.pipeline import Text2ImagePipeline
    from t2igan.runs import resolve_run_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--out", default=str(HERE / "results" / "shapes_errors.json"))
    p.add_argument("--dry-run", action="store_true", help="check that the run can be read and exit")
    args = p.parse_args()
    if args.dry_run:
        from dry_run import check_runs

        check_runs([args.run])
        return

    pipe = Text2ImagePipeline.from_pretrained(resolve_run_dir(args.run))
    data = pipe.config["experiment"]["data"]
    captions = test_captions(build_eval_dataset(data, "test"), args.n)
    probe, _, _ = load_or_train_probe(data.get("image_size", 64))
    preds = torch.cat([probe.predict(b.images)[0] for b in pipe.generate_batches(captions.captions, seed=0)])
    labels = labels_tensor(captions.attributes)
    col = {k: i for i, k in enumerate(PROBE_KEYS)}
    two = labels[:, col["count"]] == LABEL_CLASSES["count"].index(2)

    result: dict = {"run": args.run, "n": args.n, "accuracy": {}, "confusion": {}}
    print(f"{'attribute':<10}{'1 object':>10}{'2: first':>10}{'2: second':>11}")
    for attr in ("colour", "shape", "size"):
        acc = {}
        for name, rows, k in (("one", ~two, 0), ("two_first", two, 0), ("two_second", two, 1)):
            c = col[f"{attr}{k}"]
            acc[name] = float((preds[rows, c] == labels[rows, c]).float().mean())
        result["accuracy"][attr] = acc
        print(f"{attr:<10}" + "".join(f"{100 * v:>10.1f}" for v in acc.values()))
        names = LABEL_CLASSES[f"{attr}0"]
        conf = torch.zeros(len(names), len(names), dtype=torch.long)
        for k in (0, 1):
            c = col[f"{attr}{k}"]
            present = labels[:, c] >= 0
            conf.index_put_((labels[present, c], preds[present, c]), torch.ones(int(present.sum()), dtype=torch.long),
                            accumulate=True)
        result["confusion"][attr] = {"names": list(names), "rows_true": conf.tolist()}

    t0, t1 = labels[two, col["colour0"]], labels[two, col["colour1"]]
    p0, p1 = preds[two, col["colour0"]], preds[two, col["colour1"]]
    differ = t0 != t1
    right = (p0 == t0) & (p1 == t1)
    swapped = (p0 == t1) & (p1 == t0) & differ
    one_colour = (p0 == p1) & ((p0 == t0) | (p0 == t1)) & differ
    split = {"both_right": right, "swapped": swapped, "one_colour_for_both": one_colour,
             "other": ~(right | swapped | one_colour)}
    result["two_object_colours"] = {k: float(v.float().mean()) for k, v in split.items()}
    print("two-object scenes, colours: " + ", ".join(f"{k.replace('_', ' ')} {100 * v:.1f} %"
                                                     for k, v in result["two_object_colours"].items()))
    for attr in ("colour", "shape"):
        names = result["confusion"][attr]["names"]
        print(f"{attr} confusion (rows: caption, columns: probe)")
        print(" " * 10 + "".join(f"{n[:7]:>8}" for n in names))
        for name, row in zip(names, result["confusion"][attr]["rows_true"]):
            print(f"{name[:9]:>9} " + "".join(f"{v:>8d}" for v in row))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
