"""What the frozen network behind ``model.d_backbone`` sees of Shapes images: for a DAMSM's image
backbone (pretrained) and the same network with the random weights of ``d_backbone=damsm_random``,
per map that the projected discriminator reads (``feature_maps`` of :mod:`t2igan.nn.image_encoder`'s backbones):

* ``shape``: accuracy of a linear probe (softmax regression on the map's channels, averaged over
  positions) that names the shape of one-object test scenes (5 shapes, chance 20 %), trained on
  training scenes; the last column reads all maps together;
* ``white bg``: how much the map changes, relative to its norm, when the grey background of a
  scene is turned white; ``other image``: the same for a different scene. A map that barely moves for
  the first is blind to the background, and a D that reads only such maps cannot hold G to it.

    OMP_NUM_THREADS=1 python benchmarks/shapes_backbone_reads.py --damsm shapes-damsm

Writes ``benchmarks/results/shapes_backbone_reads.json``.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from speed_common import RESULTS_DIR, print_table, write_json

from t2igan.data.shapes import ShapesDataset, attribute_labels
from t2igan.models.dfgan import RANDOM_BACKBONE_SEED
from t2igan.nn.image_encoder import SmallCNN
from t2igan.runs import load_damsm

GREY = 230 / 127.5 - 1  # the Shapes background in [-1, 1]


def scenes(split: str, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    data = ShapesDataset(split, image_size=size, num_images=n, max_objects=1)
    images = torch.stack([data.image_uint8(i).float() / 127.5 - 1 for i in range(n)])
    shapes = torch.tensor([attribute_labels(data.attributes(i))["shape0"] for i in range(n)])
    return images, shapes


def pooled_maps(backbone, images: torch.Tensor, batch: int = 250) -> list[torch.Tensor]:
    with torch.no_grad():
        parts = [backbone.feature_maps(images[i:i + batch]) for i in range(0, len(images), batch)]
    return [torch.cat([p[k].mean(dim=(2, 3)) for p in parts]) for k in range(len(parts[0]))]


def probe_accuracy(train_x, train_y, test_x, test_y, steps: int = 500) -> float:
    """Softmax regression (Adam, light L2) on standardised features; accuracy on the test scenes."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-5
    train_x, test_x = (train_x - mean) / std, (test_x - mean) / std
    torch.manual_seed(0)
    w = torch.zeros(train_x.shape[1], int(train_y.max()) + 1, requires_grad=True)
    b = torch.zeros(w.shape[1], requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.01)
    for _ in range(steps):
        loss = F.cross_entropy(train_x @ w + b, train_y) + 1e-3 * w.pow(2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return ((test_x @ w + b).argmax(1) == test_y).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--damsm", default="shapes-damsm", help="DAMSM run folder or bundled name (small-CNN backbone)")
    ap.add_argument("--size", type=int, default=32, help="side of the scenes (a GAN's image size)")
    ap.add_argument("--n-train", type=int, default=3000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--dry-run", action="store_true", help="check that the DAMSM can be read and exit")
    args = ap.parse_args()
    if args.dry_run:
        from dry_run import check_runs

        check_runs([args.damsm])
        return

    pretrained = load_damsm(args.damsm)[0].image_encoder.backbone.eval()
    if not isinstance(pretrained, SmallCNN):
        raise SystemExit("this diagnostic reads small-CNN DAMSMs (the Shapes ones)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_BACKBONE_SEED)
        random = SmallCNN(pretrained.image_size, pretrained.local[0].out_channels).eval()
    train_x, train_y = scenes("train", args.n_train, args.size)
    test_x, test_y = scenes("test", args.n_test, args.size)
    white = torch.where((test_x > GREY - 0.02).all(dim=1, keepdim=True), torch.ones_like(test_x), test_x)

    rows = []
    for name, backbone in (("pretrained", pretrained), ("random", random)):
        tr, te = pooled_maps(backbone, train_x), pooled_maps(backbone, test_x)
        with torch.no_grad():
            maps = backbone.feature_maps(test_x[:200])
            maps_white = backbone.feature_maps(white[:200])
            maps_other = backbone.feature_maps(test_x[:200].roll(1, 0))
        for k, m in enumerate(maps):
            rows.append({"backbone": name, "map": f"{m.shape[1]} x {m.shape[-1]} x {m.shape[-1]}",
                         "shape": probe_accuracy(tr[k], train_y, te[k], test_y),
                         "white_bg": ((m - maps_white[k]).norm() / m.norm()).item(),
                         "other_image": ((m - maps_other[k]).norm() / m.norm()).item()})
        rows.append({"backbone": name, "map": "all maps", "shape": probe_accuracy(torch.cat(tr, 1), train_y,
                                                                                 torch.cat(te, 1), test_y),
                     "white_bg": None, "other_image": None})
    pixel_white = ((test_x - white).norm() / test_x.norm()).item()
    pixel_other = ((test_x - test_x.roll(1, 0)).norm() / test_x.norm()).item()

    print(f"{args.damsm} backbone, one-object scenes at {args.size} px (chance 20 %); pixels: white bg "
          f"{pixel_white:.2f}, other image {pixel_other:.2f}")
    print_table(rows, [("backbone", "backbone", ""), ("map", "map", ""), ("shape", "shape probe", ".1%"),
                       ("white_bg", "white bg", ".2f"), ("other_image", "other image", ".2f")])
    write_json(RESULTS_DIR / "shapes_backbone_reads.json",
               {"damsm": args.damsm, "size": args.size, "n_train": args.n_train, "n_test": args.n_test,
                "pixels": {"white_bg": pixel_white, "other_image": pixel_other}, "rows": rows})


if __name__ == "__main__":
    main()
