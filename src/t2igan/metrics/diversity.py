"""Does each caption give a distribution? Diversity metrics of a text-to-image model.

A caption fixes what it says; the noise should choose everything it leaves unsaid. Two families of
numbers measure whether it does:

**Shapes, against ground truth** (:func:`shapes_diversity`). Captions in the forms of the data's
``omit_prob`` training captions (:data:`OPEN_FORMS`: one object without its size, without its place,
without either; two objects without their sizes), ``K`` seeds each, every image read by the Shapes
probe. For each attribute a caption leaves out:

* ``entropy``: the entropy of the values the probe reads over the ``K`` images, as a fraction of the
  data's entropy for that caption (``log |values|``: the data draws a left-out size or place
  uniformly). Plug-in entropy with the Miller-Madow correction ``(m - 1) / 2K`` (``m`` values seen),
  so ``K`` real renders score about 1 rather than ~0.96 at ``K`` = 32; clipped to [0, 1]. ``K``
  identical images score 0.
* ``coverage``: the share of the allowed values that appear at all (``K`` identical images:
  ``1 / |values|``; real renders: 1).

and per caption, over its ``K`` images:

* ``features``: intra-caption diversity, the mean pairwise L2 distance of the probe's penultimate
  features, as a ratio to the same distance over ``K`` real renders of the same caption (the left-out
  attributes drawn as the data draws them, with the data's layout jitter);
* ``faithfulness``: the fraction of the *named* attributes (count, relation, colour, shape, and size
  or place where the caption names them) the probe reads back: variety must not cost correctness.

**Any data** (CUB, COCO, folders, Shapes): features of generated against real test images (the FID
Inception's pool3 where its weights are there; the Shapes probe on Shapes):

* :func:`precision_recall_density_coverage`: precision and recall [Kynkaennemi et al., NeurIPS 2019]
  (the share of generated samples inside the real manifold, and of real samples inside the generated
  one; each manifold the union of k-nearest-neighbour balls), density and coverage [Naeem et al.,
  ICML 2020] (how many real balls hold a generated sample, divided by k; the share of real balls
  holding at least one). A generator that copies a few training images has high precision and low
  recall / coverage; one that draws one image per caption, low recall.
* :func:`mean_pairwise_distance` of ``K`` seeds of one caption (``caption_diversity``), also as a
  ratio to the mean pairwise distance of the real test images.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.shapes import LABEL_CLASSES, POSITIONS, SIZES, describe, render_scene, sample_attributes
from ..errors import T2IError
from .shapes_probe import PROBE_KEYS, scene_labels

# form -> (number of objects, what the caption leaves out); the forms of ShapesDataset(omit_prob > 0)
OPEN_FORMS = {
    "no_size": (1, ("size",)),
    "no_place": (1, ("position",)),
    "neither": (1, ("size", "position")),
    "two_no_sizes": (2, ("size",)),
}
PRDC_NEIGHBOURS = 5  # k of the k-nearest-neighbour balls [Naeem et al. 2020: k = 5]


@dataclass
class OpenCaption:
    """A caption that leaves attributes out, with the scene it was written from."""

    form: str  # a key of OPEN_FORMS
    caption: str
    scene: dict  # the full scene it was written from (attributes of ShapesDataset)
    omitted: tuple[str, ...]  # "size", "position"

    @property
    def open_keys(self) -> list[str]:
        """The probe keys of the left-out attributes (``size0``, ``size1``, ``position0``)."""
        count = len(self.scene["objects"])
        return [f"{attr}{k}" for attr in self.omitted for k in range(count)]

    def named_scene(self) -> dict:
        """The scene with the left-out attributes unknown (None)."""
        objects = [{k: (None if k in self.omitted else v) for k, v in obj.items()} for obj in self.scene["objects"]]
        return {"objects": objects, "relation": self.scene.get("relation")}

    def fill_in(self, rng: random.Random) -> dict:
        """A scene this caption describes: the left-out attributes drawn as the data draws them
        (uniformly; a place only for one object, two objects' places follow their relation)."""
        objects = []
        for obj in self.scene["objects"]:
            obj = dict(obj)
            if "size" in self.omitted:
                obj["size"] = rng.choice(SIZES)
            if "position" in self.omitted:
                obj["position"] = rng.choice(POSITIONS)
            objects.append(obj)
        return {"objects": objects, "relation": self.scene.get("relation")}


def open_captions(per_form: int, seed: int = 0, forms: Sequence[str] = tuple(OPEN_FORMS)) -> list[OpenCaption]:
    """``per_form`` captions of each form: random scenes (all (colour, shape) pairs allowed) described
    with the data's omitting templates; a pure function of ``(per_form, seed)``."""
    out = []
    for form in forms:
        count, omitted = OPEN_FORMS[form]
        for i in range(per_form):
            rng = random.Random(f"t2igan-open-caption/{seed}/{form}/{i}")
            scene = sample_attributes(rng, max_objects=count)
            while len(scene["objects"]) != count:
                scene = sample_attributes(rng, max_objects=count)
            out.append(OpenCaption(form, describe(scene, rng, omitted), scene, omitted))
    return out


def real_renders(caption: OpenCaption, k: int, image_size: int, seed: int = 0) -> torch.Tensor:
    """``k`` real Shapes renders (k, 3, S, S) in [-1, 1] of scenes ``caption`` describes."""
    rng = random.Random(f"t2igan-open-render/{seed}/{caption.caption}")
    images = [np.asarray(render_scene(caption.fill_in(rng), image_size, rng)) for _ in range(k)]
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def normalized_entropy(values: torch.Tensor | Sequence[int], num_values: int) -> float:
    """Entropy of the observed ``values`` (ints in ``0..num_values-1``) as a fraction of
    ``log(num_values)``: the plug-in estimate plus Miller-Madow's ``(m - 1) / 2N`` (m distinct values
    in N samples), clipped to [0, 1]. One value repeated gives 0; a uniform draw about 1."""
    values = torch.as_tensor(values).flatten().long()
    if num_values < 2 or len(values) == 0:
        return 0.0
    counts = torch.bincount(values.clamp(0, num_values - 1), minlength=num_values).double()
    p = counts[counts > 0] / counts.sum()
    h = float(-(p * p.log()).sum()) + (len(p) - 1) / (2 * len(values))
    return min(1.0, max(0.0, h / math.log(num_values)))


def value_coverage(values: torch.Tensor | Sequence[int], num_values: int) -> float:
    """The share of the ``num_values`` allowed values that appear in ``values``."""
    values = torch.as_tensor(values).flatten().long()
    return len(set(values.tolist()) & set(range(num_values))) / num_values


def mean_pairwise_distance(features: torch.Tensor) -> float:
    """Mean L2 distance over all pairs of rows of ``features`` (N, F); 0 for fewer than 2 rows."""
    features = torch.as_tensor(features).double().flatten(1)
    if len(features) < 2:
        return 0.0
    return float(torch.pdist(features).mean())


def _read_caption(preds: torch.Tensor, caption: OpenCaption) -> dict:
    """Per-image probe predictions (K, len(PROBE_KEYS)) of one caption -> its open attributes'
    entropy and coverage (by probe key) and the faithfulness to its named attributes."""
    out = {"entropy": {}, "coverage": {}}
    for key in caption.open_keys:
        j, n = PROBE_KEYS.index(key), len(LABEL_CLASSES[key])
        out["entropy"][key] = normalized_entropy(preds[:, j], n)
        out["coverage"][key] = value_coverage(preds[:, j], n)
    named = torch.tensor(scene_labels(caption.named_scene()), dtype=torch.long)  # (K,) -1 where unsaid
    present = named >= 0
    correct = (preds[:, present] == named[present]).double().mean(dim=1)  # (K,)
    out["faithfulness"] = float(correct.mean())
    return out


def _summarise(per_caption: list[dict], captions: list[OpenCaption], name: str) -> dict:
    """Mean over captions of one number (entropy or coverage) by form and left-out attribute:
    ``{"value": mean over (form, attribute), "per_attribute": {size, position}, "per_form": {form: {attr: v}}}``."""
    per_form: dict[str, dict[str, list[float]]] = {}
    for result, caption in zip(per_caption, captions):
        for key, v in result[name].items():
            per_form.setdefault(caption.form, {}).setdefault(key.rstrip("01"), []).append(v)
    per_form_mean = {f: {a: float(np.mean(v)) for a, v in attrs.items()} for f, attrs in per_form.items()}
    cells = [(a, v) for attrs in per_form_mean.values() for a, v in attrs.items()]
    per_attribute = {a: float(np.mean([v for b, v in cells if b == a])) for a in dict.fromkeys(a for a, _ in cells)}
    return {"value": float(np.mean([v for _, v in cells])), "per_attribute": per_attribute, "per_form": per_form_mean}


def shapes_diversity(captions: list[OpenCaption], k: int, fake_preds: torch.Tensor, fake_feats: torch.Tensor,
                     real_preds: torch.Tensor, real_feats: torch.Tensor) -> dict:
    """The Shapes diversity numbers (module docstring) of ``k`` generated and ``k`` real images per
    caption, stored caption-major: rows ``i*k .. (i+1)*k - 1`` belong to ``captions[i]``.
    ``*_preds``: probe labels (N, len(PROBE_KEYS)); ``*_feats``: probe features (N, F).

    Returns ``{"entropy", "coverage": {value, per_attribute, per_form, real: {...}},
    "features": {value (ratio), fake, real, per_form}, "faithfulness": {value, per_form, real}}``."""
    if k < 2:
        raise T2IError(f"diversity needs at least 2 images per caption, got k={k}")
    n = len(captions) * k
    if not (len(fake_preds) == len(real_preds) == len(fake_feats) == len(real_feats) == n):
        raise ValueError(f"expected {n} rows ({len(captions)} captions x {k}) of predictions and features")
    fake, real, spread = [], [], {"fake": {}, "real": {}}
    for i, caption in enumerate(captions):
        rows = slice(i * k, (i + 1) * k)
        fake.append(_read_caption(fake_preds[rows], caption))
        real.append(_read_caption(real_preds[rows], caption))
        spread["fake"].setdefault(caption.form, []).append(mean_pairwise_distance(fake_feats[rows]))
        spread["real"].setdefault(caption.form, []).append(mean_pairwise_distance(real_feats[rows]))
    out = {}
    for name in ("entropy", "coverage"):
        out[name] = _summarise(fake, captions, name) | {"real": _summarise(real, captions, name)}
    forms = list(spread["fake"])
    fake_spread = {f: float(np.mean(spread["fake"][f])) for f in forms}
    real_spread = {f: float(np.mean(spread["real"][f])) for f in forms}
    all_fake, all_real = (float(np.mean([v for f in forms for v in spread[s][f]])) for s in ("fake", "real"))
    out["features"] = {"value": all_fake / all_real if all_real > 0 else float("nan"), "fake": all_fake,
                       "real": all_real,
                       "per_form": {f: fake_spread[f] / real_spread[f] if real_spread[f] > 0 else float("nan")
                                    for f in forms}}
    faith = {f: float(np.mean([r["faithfulness"] for r, c in zip(fake, captions) if c.form == f])) for f in forms}
    faith_real = float(np.mean([r["faithfulness"] for r in real]))
    out["faithfulness"] = {"value": float(np.mean([r["faithfulness"] for r in fake])), "per_form": faith,
                           "real": faith_real}
    return out


# ---------------------------------------------------------------------------------------------------
# any data: precision, recall, density, coverage
# ---------------------------------------------------------------------------------------------------


def _kth_neighbour_radii(features: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """Distance of each row to its ``k``-th nearest other row (N,)."""
    radii = []
    for s in range(0, len(features), chunk):
        d = torch.cdist(features[s:s + chunk], features)  # (c, N), itself at distance 0
        radii.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(radii)


def precision_recall_density_coverage(real: torch.Tensor | np.ndarray, fake: torch.Tensor | np.ndarray,
                                      k: int = PRDC_NEIGHBOURS, chunk: int = 1024) -> dict[str, float]:
    """Precision, recall [Kynkaennemi et al. 2019] and density, coverage [Naeem et al. 2020] of
    ``fake`` (M, F) against ``real`` (N, F) features, with closed k-nearest-neighbour balls:

    * precision = share of fake samples inside some real ball ``B(x_i, NND_k(x_i))``;
    * recall    = share of real samples inside some fake ball ``B(y_j, NND_k(y_j))``;
    * density   = ``1/(kM) sum_j sum_i 1[y_j in B(x_i, NND_k(x_i))]`` (can exceed 1);
    * coverage  = share of real balls that hold at least one fake sample.
    """
    real = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if min(len(real), len(fake)) <= k:
        raise T2IError(f"precision/recall need more than k={k} real and generated samples, "
                       f"got {len(real)} and {len(fake)}")
    real_radii = _kth_neighbour_radii(real, k, chunk)  # (N,)
    fake_radii = _kth_neighbour_radii(fake, k, chunk)  # (M,)
    in_real_balls = torch.zeros(len(fake), dtype=torch.float64)  # per fake: how many real balls hold it
    real_covered = torch.zeros(len(real), dtype=torch.bool)
    real_recalled = torch.zeros(len(real), dtype=torch.bool)
    for s in range(0, len(real), chunk):
        d = torch.cdist(real[s:s + chunk], fake)  # (c, M)
        inside = d <= real_radii[s:s + chunk, None]
        in_real_balls += inside.double().sum(dim=0)
        real_covered[s:s + chunk] = inside.any(dim=1)
        real_recalled[s:s + chunk] = (d <= fake_radii[None, :]).any(dim=1)
    return {"precision": float((in_real_balls > 0).double().mean()),
            "recall": float(real_recalled.double().mean()),
            "density": float(in_real_balls.mean() / k),
            "coverage": float(real_covered.double().mean())}
