"""Shapes attribute accuracy and Shapes-FID: metrics of the built-in Shapes data set, read by a probe.

The probe (:class:`ShapesProbe`) is a small CNN with one classification head per attribute of
:data:`t2igan.data.shapes.LABEL_CLASSES` (count, relation, and shape / colour / size / position of
each object), trained on real Shapes images rendered on the fly (all (colour, shape) pairs, a seed of
its own, so it never sees the test images). Two-object scenes are read in a canonical order, object 0
being the left (or top) one (:func:`probe_labels`): a picture alone cannot tell which object a
caption names first.

* **Attribute accuracy** (:func:`attribute_accuracy`): a generated image comes from a test caption
  whose scene is known; the score of the image is the fraction of that scene's attributes the probe
  reads back (the keys with a label: 5 for one object, 10 for two), averaged over the images. Real
  test images score the probe's own accuracy: the ceiling.
* **Shapes-FID** (:func:`shapes_fid`): the Frechet distance (:func:`t2igan.metrics.fid.frechet_distance`)
  between the probe's penultimate features (256-d) of generated and real test images. It is a
  domain-specific distance, comparable only between runs scored with the same probe file, and not
  comparable with Inception FID values.

Probe weights are cached (:func:`load_or_train_probe`): ``$T2IGAN_CACHE/shapes_probe-<size>.safetensors``
(default ``~/.cache/t2igan``), trained with a fixed seed on first use; the file's metadata holds the
training settings and the accuracy per attribute measured on held-out real test images.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.shapes import INVERSE_RELATION, LABEL_CLASSES, ShapesDataset, attribute_labels, parse_shapes_caption
from ..errors import T2IError

PROBE_KEYS = tuple(LABEL_CLASSES)  # count, relation, shape0, colour0, size0, position0, shape1, ...
ATTRIBUTE_GROUPS = ("count", "relation", "shape", "colour", "size", "position")
PROBE_DATA_SEED = 7919  # the probe's training scenes: a Shapes seed of its own (test data uses 0)


def canonical_attributes(attributes: dict) -> dict:
    """The same scene with object 0 the left (or top) one: relation "right of" / "below" becomes
    "left of" / "above" with the objects swapped."""
    relation = attributes.get("relation")
    if relation in ("right of", "below"):
        a, b = attributes["objects"]
        return {"objects": [b, a], "relation": INVERSE_RELATION[relation]}
    return attributes


def probe_labels(attributes: dict) -> dict[str, int]:
    """Integer labels the probe predicts (canonical order; -1 where absent)."""
    return attribute_labels(canonical_attributes(attributes))


def labels_tensor(attributes_list: Sequence[dict]) -> torch.Tensor:
    """(N, K) long labels in :data:`PROBE_KEYS` order."""
    rows = [probe_labels(a) for a in attributes_list]
    return torch.tensor([[r[k] for k in PROBE_KEYS] for r in rows], dtype=torch.long)


class ShapesProbe(nn.Module):
    """A first conv (stride 2 above 32 px), stride-2 conv blocks down to 4 x 4, a 256-d feature layer
    (the Shapes-FID features), one linear head per attribute. Images in [-1, 1]; other sizes are
    resized to ``image_size``."""

    def __init__(
        self,
        image_size: int = 64,  # side of the images it reads (32..256, a power of two)
        channels: int = 32,  # channels of the first conv, doubled per down-sampling up to 8x
        feature_dim: int = 256,  # size of the penultimate features
    ):
        super().__init__()
        if image_size < 16 or image_size & (image_size - 1):
            raise T2IError(f"Shapes probe needs a power-of-two image_size >= 16, got {image_size}")
        self.image_size, self.channels, self.feature_dim = image_size, channels, feature_dim
        first_stride = 2 if image_size > 32 else 1  # objects stay >= 3 px at the first feature map
        layers: list[nn.Module] = [nn.Conv2d(3, channels, 3, stride=first_stride, padding=1),
                                   nn.BatchNorm2d(channels), nn.ReLU()]
        ch, size = channels, image_size // first_stride
        while size > 4:
            out = min(ch * 2, channels * 8)
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.BatchNorm2d(out), nn.ReLU()]
            ch, size = out, size // 2
        self.convs = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(ch * 16, feature_dim), nn.ReLU())
        self.heads = nn.ModuleDict({k: nn.Linear(feature_dim, len(v)) for k, v in LABEL_CLASSES.items()})

    def config(self) -> dict:
        return {"image_size": self.image_size, "channels": self.channels, "feature_dim": self.feature_dim}

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, H, W) in [-1, 1] -> penultimate features (B, feature_dim)."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise T2IError(f"Shapes probe expects images (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear",
                                   align_corners=False, antialias=images.shape[-1] > self.image_size)
        return self.fc(self.convs(images))

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Logits per attribute key."""
        feats = self.features(images)
        return {k: head(feats) for k, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels (B, K) in :data:`PROBE_KEYS` order, features (B, feature_dim))."""
        feats = self.features(images)
        preds = torch.stack([self.heads[k](feats).argmax(dim=1) for k in PROBE_KEYS], dim=1)
        return preds, feats


def probe_loss(logits: dict[str, torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Sum over attributes of the cross-entropy of the present labels (-1 = absent, ignored)."""
    total = 0.0
    for j, k in enumerate(PROBE_KEYS):
        target = labels[:, j]
        if (target >= 0).any():
            total = total + F.cross_entropy(logits[k], target, ignore_index=-1)
    return total


def _render_batch(dataset: ShapesDataset, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.stack([dataset.image_uint8(i) for i in indices]).float() / 127.5 - 1.0  # (B, 3, S, S)
    return images, labels_tensor([dataset.attributes(i) for i in indices])


def train_probe(image_size: int = 64, steps: int = 3000, batch_size: int = 64, lr: float = 2e-3, seed: int = 0,
                channels: int = 32, feature_dim: int = 256, noise_std: float = 0.05,
                device: str | torch.device = "cpu", progress: bool = True) -> ShapesProbe:
    """Train a probe on freshly rendered Shapes images (a new scene for every example), Adam with a
    cosine learning-rate decay; a little Gaussian pixel noise (``noise_std``) makes it less brittle
    on generated images."""
    from tqdm import tqdm

    torch.manual_seed(seed)
    data = ShapesDataset("test", image_size, num_images=steps * batch_size, seed=PROBE_DATA_SEED + seed, cache=False)
    probe = ShapesProbe(image_size, channels, feature_dim).to(device).train()
    opt = torch.optim.Adam(probe.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    bar = tqdm(range(steps), desc=f"shapes probe {image_size}px", unit="step", disable=not progress)
    for step in bar:
        images, labels = _render_batch(data, range(step * batch_size, (step + 1) * batch_size))
        images = images + noise_std * torch.randn_like(images)
        loss = probe_loss(probe(images.to(device)), labels.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    return probe.eval()


@torch.no_grad()
def read_dataset(probe: ShapesProbe, dataset: ShapesDataset, batch_size: int = 200,
                 device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The probe on every real image of ``dataset``: (predictions (N, K), labels (N, K), features (N, F))."""
    probe = probe.to(device).eval()
    preds, labels, feats = [], [], []
    for s in range(0, len(dataset), batch_size):
        images, lab = _render_batch(dataset, range(s, min(s + batch_size, len(dataset))))
        p, f = probe.predict(images.to(device))
        preds.append(p.cpu())
        labels.append(lab)
        feats.append(f.cpu())
    return torch.cat(preds), torch.cat(labels), torch.cat(feats)


def per_attribute_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Accuracy per attribute group (count, relation, shape, colour, size, position) over the present
    labels (both objects pooled)."""
    out = {}
    for group in ATTRIBUTE_GROUPS:
        cols = [j for j, k in enumerate(PROBE_KEYS) if k.rstrip("01") == group]
        p, t = preds[:, cols].flatten(), labels[:, cols].flatten()
        present = t >= 0
        out[group] = float((p[present] == t[present]).float().mean()) if present.any() else float("nan")
    return out


def attribute_accuracy(preds: torch.Tensor, labels: torch.Tensor) -> dict:
    """Per image, the fraction of its scene's attributes read back correctly; returns the mean over
    images (``mean``), the fraction of images read back entirely (``exact``) and the accuracy per
    attribute group (``per_attribute``)."""
    present = labels >= 0  # (N, K)
    correct = (preds == labels) & present
    per_image = correct.sum(1).double() / present.sum(1).clamp(min=1).double()  # (N,)
    return {"mean": float(per_image.mean()), "exact": float((per_image == 1).double().mean()),
            "per_attribute": per_attribute_accuracy(preds, labels), "num_images": int(len(labels))}


def scene_labels(scene: dict) -> list[int]:
    """Labels of a (possibly incomplete) scene in :data:`PROBE_KEYS` order,
    read in the probe's canonical object order (left or top object first); -1 where unknown."""
    if len(scene["objects"]) == 2:
        scene = canonical_attributes(scene)
    objects, relation = list(scene["objects"]), scene.get("relation")
    labels = {"count": LABEL_CLASSES["count"].index(len(objects)) if len(objects) in (1, 2) else -1,
              "relation": LABEL_CLASSES["relation"].index(relation) if relation else -1}
    for k in range(2):
        for key in ("shape", "colour", "size", "position"):
            value = objects[k].get(key) if k < len(objects) else None
            names = LABEL_CLASSES[f"{key}{k}"]
            labels[f"{key}{k}"] = names.index(value) if value in names else -1
    return [labels[k] for k in PROBE_KEYS]


def shapes_caption_accuracy(captions: list[str], attributes: list[dict]) -> dict:
    """How well captions name their Shapes scenes: :func:`attribute_accuracy`
    of the attributes read from each caption (:func:`t2igan.data.shapes.parse_shapes_caption`) against the true ones
    (``mean``: fraction of a scene's attributes named correctly, averaged; ``exact``: fraction of
    captions naming every attribute right)."""
    preds = torch.tensor([scene_labels(parse_shapes_caption(c)) for c in captions], dtype=torch.long)
    return attribute_accuracy(preds, labels_tensor(attributes))


def shapes_fid(fake_feats: torch.Tensor | np.ndarray, real_feats: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between probe features of generated and real images (domain-specific FID)."""
    from .fid import feature_statistics, frechet_distance

    mu1, s1 = feature_statistics(np.asarray(fake_feats, dtype=np.float64))
    mu2, s2 = feature_statistics(np.asarray(real_feats, dtype=np.float64))
    return frechet_distance(mu1, s1, mu2, s2)


# ---------------------------------------------------------------------------------------------------
# Weights: save, load, cache
# ---------------------------------------------------------------------------------------------------


PACKAGED_PROBE_DIR = Path(__file__).parent / "weights"  # probes shipped with the package (fp16)


def default_probe_path(image_size: int) -> Path:
    """The shipped probe for this size if there is one (so every user scores with the same probe),
    else ``$T2IGAN_CACHE/shapes_probe-<size>.safetensors`` (trained there on first use)."""
    from .inception import cache_dir

    name = f"shapes_probe-{image_size}.safetensors"
    packaged = PACKAGED_PROBE_DIR / name
    return packaged if packaged.is_file() else cache_dir() / name


def save_probe(probe: ShapesProbe, path: str | Path, info: dict | None = None, half: bool = False) -> None:
    """Weights + config + info as safetensors metadata; ``half`` stores fp16 (the shipped probes)."""
    from ..hub import save_safetensors

    meta = {"config": json.dumps(probe.config()), "info": json.dumps(info or {})}
    state = {k: (v.half() if half and v.is_floating_point() else v) for k, v in probe.state_dict().items()}
    save_safetensors(state, path, meta)


def load_probe(path: str | Path, device: str | torch.device = "cpu") -> tuple[ShapesProbe, dict]:
    """(probe in eval mode, info dict saved with it: training settings, held-out accuracy)."""
    from safetensors import safe_open

    from ..hub import load_safetensors_into

    path = Path(path)
    if not path.is_file():
        raise T2IError(f"Shapes probe file not found: {path}")
    try:
        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
        config, info = json.loads(meta["config"]), json.loads(meta.get("info", "{}"))
    except Exception as err:
        raise T2IError(f"{path} is not a Shapes probe file ({type(err).__name__}: {err})") from None
    probe = ShapesProbe(**config)
    load_safetensors_into(probe, path)
    return probe.to(device).eval(), info


def evaluate_probe(probe: ShapesProbe, image_size: int, num_images: int = 1000, device="cpu") -> dict:
    """Accuracy per attribute on held-out real images of the ``test`` and ``test_heldout`` splits."""
    out = {}
    for split in ("test", "test_heldout"):
        data = ShapesDataset(split, image_size, num_images=num_images, cache=False)
        preds, labels, _ = read_dataset(probe, data, device=device)
        acc = attribute_accuracy(preds, labels)
        out[split] = {"per_attribute": acc["per_attribute"], "mean": acc["mean"], "exact": acc["exact"]}
    return out


def load_or_train_probe(image_size: int, path: str | Path | None = None, device: str | torch.device = "cpu",
                        steps: int = 3000, seed: int = 0, progress: bool = True) -> tuple[ShapesProbe, dict, Path]:
    """The probe at ``path`` (default :func:`default_probe_path`); trained (seeded), measured on
    held-out real images and saved there first if the file does not exist."""
    path = Path(path) if path is not None else default_probe_path(image_size)
    if path.is_file():
        probe, info = load_probe(path, device)
        if probe.image_size != image_size:
            raise T2IError(f"Shapes probe {path} reads {probe.image_size} px images, not {image_size} px")
        return probe, info, path
    if progress:
        print(f"training the Shapes probe for {image_size} px images (once; cached at {path})", flush=True)
    start = time.time()
    probe = train_probe(image_size, steps=steps, seed=seed, device=device, progress=progress)
    info = {"steps": steps, "seed": seed, "train_time_s": round(time.time() - start, 1),
            "accuracy": evaluate_probe(probe, image_size, device=device)}
    save_probe(probe, path, info)
    return probe, info, path
