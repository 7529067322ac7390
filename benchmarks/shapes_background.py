"""Does a Shapes model paint the data's background, and how much of its probe score hangs on it?

Shapes images are one or two objects on a flat light-grey background (``BACKGROUND_RGB``). A model
whose background drifts (the multi-stage GANs with batch norm in their stage discriminators drift to
near-white) loses points that have nothing to do with its caption: the probe, trained on real
renders, reads a wrong background as more objects and other colours. For each run this script
generates the 1,000 test captions of ``t2igan eval --metrics shapes`` (seed 0) and prints:

* the background the model paints: the per-channel median of the pixels that differ from the median
  image colour by little (0-255, beside the data's);
* the probe's mean attribute accuracy and count / colour accuracy, as ``eval`` reads them;
* the same with every near-white pixel (all channels above 0.6 in [-1, 1], i.e. above 204 of 255)
  set to the data's background, a diagnostic only: the shipped metric is the first one.

    python benchmarks/shapes_background.py shapes-mirrorgan shapes-dfgan runs/00001-mirrorgan-shapes
    python benchmarks/shapes_background.py shapes-dfgan --dry-run    # check that the runs exist, score nothing

Writes ``benchmarks/results/shapes_background.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F

HERE = Path(__file__).resolve().parent


def painted_background(images: torch.Tensor) -> list[float]:
    """Per-channel median (0-255) of the pixels within 0.15 of each image's median colour."""
    flat = images.permute(0, 2, 3, 1).reshape(images.shape[0], -1, 3)
    median = flat.median(dim=1, keepdim=True).values
    near = (flat - median).abs().amax(-1) < 0.15
    return [round(float(v), 1) for v in ((flat[near].median(dim=0).values + 1) * 127.5)]


def main() -> None:
    from t2igan.data.shapes import BACKGROUND_RGB
    from t2igan.evaluate import build_eval_dataset, test_captions
    from t2igan.metrics.shapes_probe import attribute_accuracy, labels_tensor, load_or_train_probe
    from t2igan.pipeline import Text2ImagePipeline
    from t2igan.runs import resolve_run_dir

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+")
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--out", default=str(HERE / "results" / "shapes_background.json"))
    p.add_argument("--dry-run", action="store_true", help="check that every run can be read and exit")
    args = p.parse_args()
    if args.dry_run:
        from dry_run import check_runs

        check_runs(args.runs)
        return

    data_bg = torch.tensor(BACKGROUND_RGB, dtype=torch.float32).view(1, 3, 1, 1) / 127.5 - 1
    rows = []
    print(f"data background {list(BACKGROUND_RGB)}")
    print(f"{'run':<34}{'background':>22}{'mean':>7}{'count':>7}{'colour':>8}   {'near-white -> data bg':>22}")
    for run in args.runs:
        pipe = Text2ImagePipeline.from_pretrained(resolve_run_dir(run))
        data = pipe.config["experiment"]["data"]
        size = data.get("image_size", 64)
        captions = test_captions(build_eval_dataset(data, "test"), args.n)
        labels = labels_tensor(captions.attributes)
        probe, _, _ = load_or_train_probe(size)
        images = torch.cat([b.images for b in pipe.generate_batches(captions.captions, seed=0)])
        if images.shape[-1] != size:
            images = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        snapped = torch.where(images.amin(dim=1, keepdim=True) > 0.6, data_bg.expand_as(images), images)
        row = {"run": run, "background": painted_background(images)}
        for name, x in (("as_is", images), ("near_white_to_data_bg", snapped)):
            acc = attribute_accuracy(probe.predict(x)[0], labels)
            row[name] = {"mean": acc["mean"], **acc["per_attribute"]}
        rows.append(row)
        a, s = row["as_is"], row["near_white_to_data_bg"]
        print(f"{run[-34:]:<34}{str(row['background']):>22}{100 * a['mean']:>7.1f}{100 * a['count']:>7.1f}"
              f"{100 * a['colour']:>8.1f}   {100 * s['mean']:>7.1f} (count {100 * s['count']:.1f})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": args.n, "data_background": list(BACKGROUND_RGB), "runs": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
