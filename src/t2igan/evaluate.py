"""Evaluate a trained run: generate images from test captions, score them, append to ``metrics.jsonl``.

    results = evaluate("runs/00003-dfgan-cub", n=30000)   # the metrics that apply to the run
    results = evaluate("runs/00003-dfgan-shapes", metrics=["fid", "is", "rprec", "shapes"], n=30000)

Without ``metrics`` a run gets the ones that apply to it (:func:`default_metrics`): ``shapes`` and
``rprec`` on Shapes, ``fid``, ``is`` and ``rprec`` elsewhere; one whose network or DAMSM is not there is
left out with a line that says why and how to get it (:func:`skipped_metrics`). Metrics asked for by
name fail instead, before any image is generated.

Captions: image ``k % N`` of the test split with its caption number ``(k // N) % C`` for
``k = 0 .. n-1`` (every test caption once before any repeats, as the official evaluations go over all
test captions); noise from one generator seeded with ``seed`` (the model's own truncation unless
``truncation`` is given). ``n`` counts every generated image: with ``shapes`` half of them (at most one
per held-out test image) come from the held-out-pair captions. Images are scored batch by batch as
they are generated, so only features are kept in memory. A Frechet distance (``fid``, ``shapes_fid``)
of fewer images than :data:`MIN_RELIABLE_N` is warned about and recorded with ``reliable: false``.

Metrics, as the papers' evaluation code computes them:

* ``fid``: :mod:`t2igan.metrics.fid` over pool3 features of the FID Inception (its weights file is
  needed); reference statistics from ``fid_stats`` (an ``.npz``, see ``t2igan eval-stats``) or, if
  none is given, computed from all real test images of the run's data set.
* ``is``: :mod:`t2igan.metrics.inception_score`, 10 splits, class probabilities of one of three
  networks: ``fid``, the same 2015 TF Inception as the original IS code (``softmax(pool3 W)``, no bias);
  ``imagenet``, torchvision's ImageNet Inception-v3; ``cub``, StackGAN's CUB-fine-tuned Inception
  (:mod:`t2igan.metrics.inception_cub`). The input protocol (:mod:`t2igan.metrics.is_protocols`) is
  ``torch`` or ``paper`` (the papers' evaluation code). Both default by the run's data set
  (:data:`IS_DEFAULTS`): the papers' setting on CUB (``cub``, ``paper``) and COCO (``fid``, ``paper``),
  otherwise ``fid`` with ``torch``, so numbers on other data stay comparable with earlier ones.
* ``rprec``: :mod:`t2igan.metrics.r_precision` with a pretrained DAMSM (``damsm``, a run folder or a
  bundled name; default: the DAMSM the run was trained with, which favours the run -- the record says
  which one scored it --, and on Shapes the bundled ``shapes-damsm``).
* ``shapes`` (Shapes runs only): :mod:`t2igan.metrics.shapes_probe` -- attribute accuracy on the
  ``test`` captions and on the ``test_heldout`` captions (held-out colour-shape pairs), and Shapes-FID
  on the probe's features (domain-specific, not comparable with Inception FID).
* ``diversity``: :mod:`t2igan.metrics.diversity` -- does each caption give a distribution? Precision,
  recall, density and coverage of the ``n`` images against the real test images and the mean pairwise
  distance of ``k`` seeds of one caption (Inception pool3 features; the Shapes probe's on Shapes), and
  on Shapes the entropy and coverage of what ``k`` seeds draw where a caption leaves size or place
  unsaid, their feature spread against real renders of the caption, and their faithfulness to what it
  names.

Each result is one JSON line in ``<run>/metrics.jsonl``: ``metric``, ``value`` (and ``std`` where
there is one), ``n``, ``seed``, ``run``, ``time`` and metric-specific details.
"""

from __future__ import annotations

import datetime
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .errors import T2IError, did_you_mean

METRICS = ("fid", "is", "rprec", "shapes", "diversity")
METRICS_FILE = "metrics.jsonl"
SHAPES_DAMSM = "shapes-damsm"  # the bundled DAMSM that scores R-precision of Shapes runs by default
# Below these numbers of images a Frechet distance is mostly its small-sample bias, which grows as 1/n
# (Chong & Forsyth, "Effectively Unbiased FID and Inception Score", CVPR 2020): FID over the 2048 pool3
# features (the papers use 30,000 images), Shapes-FID over the probe's features (benchmarks/RESULTS.md,
# "How many images a Frechet distance needs"). A record below them says ``reliable: false``.
MIN_RELIABLE_N = {"fid": 10000, "shapes_fid": 1000}
IS_NETWORKS = ("fid", "imagenet", "cub")
# data set -> (IS network, IS protocol) its papers reported: CUB with StackGAN's fine-tuned Inception and
# code, COCO with the 2015 TF Inception and improved-gan's code; other data sets: ("fid", "torch")
IS_DEFAULTS = {"cub": ("cub", "paper"), "coco": ("fid", "paper")}


def default_is_settings(dataset: str, network: str | None = None, protocol: str | None = None) -> tuple[str, str]:
    """``(network, protocol)`` for the IS of a run on ``dataset``: what is given, else the data set's default
    (:data:`IS_DEFAULTS`); the default protocol is ``paper`` on the papers' data sets wherever the network
    has one (``fid``, ``cub``), else ``torch``."""
    paper_network, _ = IS_DEFAULTS.get(dataset, ("fid", "torch"))
    network = network or paper_network
    if protocol is None:
        protocol = "paper" if dataset in IS_DEFAULTS and network in ("fid", "cub") else "torch"
    return network, protocol


@dataclass
class TestCaptions:
    """The evaluation captions and what is known about each."""

    captions: list[str]
    image_idx: list[int]  # source test image of each caption
    class_ids: list[int]  # -1: no class
    attributes: list[dict] | None = None  # Shapes scenes
    pool: list[str] = field(default_factory=list)  # every caption of every test image (R-precision pool)
    pool_image_idx: list[int] = field(default_factory=list)
    pool_class_ids: list[int] = field(default_factory=list)


def class_id_of(dataset, i: int) -> int:
    ids = getattr(dataset, "class_ids", None)
    return int(ids[i]) if ids is not None else -1


def test_captions(dataset, n: int) -> TestCaptions:
    """``n`` captions cycling over the images of ``dataset``, then over their caption numbers."""
    num_images = len(dataset)
    all_caps = [dataset.captions(i) for i in range(num_images)]
    caps, idx, cls, attrs = [], [], [], []
    shapes = hasattr(dataset, "attributes")
    for k in range(n):
        i = k % num_images
        image_caps = all_caps[i]
        caps.append(image_caps[(k // num_images) % len(image_caps)])
        idx.append(i)
        cls.append(class_id_of(dataset, i))
        if shapes:
            attrs.append(dataset.attributes(i))
    out = TestCaptions(caps, idx, cls, attrs if shapes else None)
    for i, image_caps in enumerate(all_caps):
        out.pool += image_caps
        out.pool_image_idx += [i] * len(image_caps)
        out.pool_class_ids += [class_id_of(dataset, i)] * len(image_caps)
    return out


def build_eval_dataset(data: dict, split: str = "test", image_size: int | None = None):
    """The run's data set (from its config's ``data`` section) for ``split``."""
    from .data.datasets import build_dataset

    kwargs = dict(data.get("test_args") or {}) if split != "train" else dict(data.get("train_args") or {})
    return build_dataset(data.get("dataset", "shapes"), root=data.get("root"), split=split,
                         image_size=image_size or data.get("image_size", 64), **kwargs)


def real_image_batches(dataset, batch_size: int, limit: int | None = None):
    """Batches (B, 3, S, S) in [-1, 1] of the data set's images (first caption's item; no augmentation
    on the test split)."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    for s in range(0, n, batch_size):
        yield torch.stack([dataset.get_item(i, 0)["image"] for i in range(s, min(s + batch_size, n))])


# ---------------------------------------------------------------------------------------------------
# scorers: prepare (fail early: missing weights), consume batches, finish into records
# ---------------------------------------------------------------------------------------------------


class InceptionScorer:
    """FID and/or IS; one Inception pass per batch where FID and IS share network and input."""

    def __init__(self, want_fid: bool, want_is: bool, weights: str | None, is_network: str, fid_stats: str | None,
                 device, batch_size: int, is_protocol: str = "torch", is_weights: str | None = None, seed: int = 0):
        from .metrics.inception import build_inception, resolve_weights_path
        from .metrics.is_protocols import check_protocol

        self.want_fid, self.want_is, self.device, self.batch_size = want_fid, want_is, device, batch_size
        self.is_network, self.is_protocol, self.seed = is_network, is_protocol, seed
        if is_network not in IS_NETWORKS:
            raise T2IError(f"unknown IS network {is_network!r}; choose one of {', '.join(IS_NETWORKS)}")
        if want_is:
            check_protocol(is_protocol, is_network)
        if is_network == "fid" and is_weights:
            if weights and Path(weights) != Path(is_weights):
                raise T2IError("the fid network serves FID and IS: give its weights once (--inception-weights)")
            weights = is_weights
        need_fid_net = want_fid or (want_is and is_network == "fid")
        self.net = build_inception("fid", path=weights, device=device) if need_fid_net else None
        self.weights = str(resolve_weights_path("fid", weights)) if need_fid_net else None
        self.is_net, self.is_weights = None, self.weights
        if want_is and is_network == "imagenet":
            self.is_net = build_inception("imagenet", path=is_weights, device=device)
            self.is_weights = str(resolve_weights_path("imagenet", is_weights))
        elif want_is and is_network == "cub":
            from .metrics.inception_cub import load_cub_inception

            self.is_net, file = load_cub_inception(is_weights, device=device)
            self.is_weights = str(file)
        self.fid_stats = None
        if want_fid and fid_stats:
            from .metrics.fid import load_statistics

            self.fid_stats = load_statistics(fid_stats)
            self.reference = str(fid_stats)
        self.pool3, self.probs = [], []

    @torch.no_grad()
    def add(self, images: torch.Tensor) -> None:
        for chunk in torch.split(images, self.batch_size):
            chunk = chunk.to(self.device)
            pool3 = None
            if self.want_fid:
                pool3 = self.net(chunk, output="pool3")  # (B, 2048)
                self.pool3.append(pool3.float().cpu().numpy())
            if self.want_is:
                self.probs.append(self.is_probs(chunk, pool3).double().cpu().numpy())

    def is_probs(self, chunk: torch.Tensor, fid_pool3: torch.Tensor | None) -> torch.Tensor:
        """Class probabilities (B, C) of the IS network under the IS protocol."""
        from .metrics.is_protocols import improved_gan_input, stackgan_input

        paper = self.is_protocol == "paper"
        if self.is_network == "fid":
            if paper:  # the 2015 TF graph's own resize and normalisation
                pool3 = self.net.pool3(improved_gan_input(chunk, self.net.input_range))
            else:
                pool3 = fid_pool3 if fid_pool3 is not None else self.net(chunk, output="pool3")
            # original IS code: softmax(pool3 @ W) of the 2015 network, no bias
            return torch.softmax(pool3 @ self.net.fc.weight.t(), dim=1)
        if self.is_network == "cub":
            x = stackgan_input(chunk, self.is_net.input_range) if paper else self.is_net.preprocess(chunk)
            return self.is_net.class_probs(x.to(self.device))
        return self.is_net(chunk, output="probs")

    @torch.no_grad()
    def reference_statistics(self, dataset, progress: bool):
        from tqdm import tqdm

        from .metrics.fid import feature_statistics

        if self.fid_stats is not None:
            return self.fid_stats
        feats = []
        batches = real_image_batches(dataset, self.batch_size)
        total = -(-len(dataset) // self.batch_size)
        for images in tqdm(batches, total=total, desc="FID reference (real test images)", disable=not progress):
            feats.append(self.net(images.to(self.device), output="pool3").float().cpu().numpy())
        self.reference = f"real test images ({len(dataset)}), computed"
        return feature_statistics(np.concatenate(feats))

    def finish(self, dataset, progress: bool) -> list[dict]:
        from .metrics.fid import feature_statistics, frechet_distance
        from .metrics.inception_score import inception_score
        from .metrics.is_protocols import stackgan_selection

        records = []
        if self.want_fid:
            mu, sigma = feature_statistics(np.concatenate(self.pool3))
            ref_mu, ref_sigma = self.reference_statistics(dataset, progress)
            records.append({"metric": "fid", "value": frechet_distance(mu, sigma, ref_mu, ref_sigma),
                            "reference": self.reference, "inception": self.weights})
        if self.want_is:
            probs = np.concatenate(self.probs)
            if self.is_protocol == "paper" and self.is_network == "cub":  # StackGAN: shuffled, whole batches of 64
                probs = probs[stackgan_selection(len(probs), self.seed)]
            splits = min(10, len(probs))
            mean, std = inception_score(probs, splits=splits)
            records.append({"metric": "is", "value": mean, "std": std, "splits": splits, "inception": self.is_weights,
                            "is_network": self.is_network, "is_protocol": self.is_protocol,
                            "images_scored": len(probs)})
        return records


class RPrecisionScorer:
    def __init__(self, damsm_path: str, captions: TestCaptions, max_words: int, device, batch_size: int,
                 trained_with: str | None):
        from .metrics.r_precision import damsm_features
        from .runs import load_damsm, resolve_run_dir

        self.damsm, self.vocab = load_damsm(damsm_path, device)
        self.path = str(resolve_run_dir(damsm_path, file_ok=True))
        self.trained_with = trained_with
        self.captions, self.device, self.batch_size = captions, device, batch_size
        damsm_max_words = _damsm_max_words(self.path, max_words)
        _, self.sent_emb = damsm_features(self.damsm, self.vocab, captions=captions.captions,
                                          max_words=damsm_max_words, batch_size=batch_size, device=device)
        _, self.pool_emb = damsm_features(self.damsm, self.vocab, captions=captions.pool,
                                          max_words=damsm_max_words, batch_size=batch_size, device=device)
        self.image_emb = []

    @torch.no_grad()
    def add(self, images: torch.Tensor) -> None:
        for chunk in torch.split(images, self.batch_size):
            self.image_emb.append(self.damsm.image_encoder(chunk.to(self.device))[1].float().cpu())

    def finish(self, seed: int) -> list[dict]:
        from .metrics.r_precision import r_precision
        from .runs import BUNDLED_DIR, is_bundled

        image_emb = torch.cat(self.image_emb)
        c = self.captions
        result = r_precision(image_emb, self.sent_emb, self.pool_emb, group_ids=c.image_idx,
                             pool_group_ids=c.pool_image_idx, class_ids=c.class_ids, pool_class_ids=c.pool_class_ids,
                             splits=min(10, len(image_emb)), seed=seed, damsm=self.path)
        same = self.trained_with is not None and Path(self.trained_with).resolve() == Path(self.path).resolve()
        # a bundled DAMSM by its name, not by where the package happens to be installed
        damsm = str(Path(self.path).resolve().relative_to(BUNDLED_DIR.resolve())) if is_bundled(self.path) else self.path
        return [{"metric": "rprec", "value": result["mean"], "std": result["std"], "splits": result["splits"],
                 "num_captions": result["num_captions"], "damsm": damsm, "damsm_used_in_training": same}]


def _damsm_max_words(damsm_dir: str, default: int) -> int:
    from .runs import read_config

    try:
        return int(read_config(damsm_dir)["experiment"]["data"].get("max_words", default))
    except (KeyError, TypeError, ValueError):  # T2IError is a ValueError
        return default


class ShapesScorer:
    def __init__(self, image_size: int, probe_path: str | None, device, progress: bool):
        from .metrics.shapes_probe import labels_tensor, load_or_train_probe

        self.probe, self.info, self.path = load_or_train_probe(image_size, probe_path, device=device, progress=progress)
        self.labels_tensor = labels_tensor
        self.device = device
        self.preds, self.feats, self.heldout_preds = [], [], []

    @torch.no_grad()
    def add(self, images: torch.Tensor, heldout: bool = False) -> None:
        preds, feats = self.probe.predict(images.to(self.device))
        if heldout:
            self.heldout_preds.append(preds.cpu())
        else:
            self.preds.append(preds.cpu())
            self.feats.append(feats.cpu())

    def finish(self, captions: TestCaptions, heldout_attributes: list[dict], real_dataset) -> list[dict]:
        from .metrics.shapes_probe import attribute_accuracy, read_dataset, shapes_fid

        probe_acc = self.info.get("accuracy", {}).get("test", {}).get("mean")
        records = []
        acc = attribute_accuracy(torch.cat(self.preds), self.labels_tensor(captions.attributes))
        records.append({"metric": "shapes_attr", "value": acc["mean"], "exact": acc["exact"],
                        "per_attribute": acc["per_attribute"], "probe": str(self.path),
                        "probe_real_accuracy": probe_acc})
        if self.heldout_preds:
            acc = attribute_accuracy(torch.cat(self.heldout_preds), self.labels_tensor(heldout_attributes))
            records.append({"metric": "shapes_attr_heldout", "value": acc["mean"], "exact": acc["exact"],
                            "per_attribute": acc["per_attribute"], "n": acc["num_images"], "probe": str(self.path)})
        _, _, real_feats = read_dataset(self.probe, real_dataset, device=self.device)
        fake_feats = torch.cat(self.feats)
        if len(fake_feats) >= 2:
            records.append({"metric": "shapes_fid", "value": shapes_fid(fake_feats.numpy(), real_feats.numpy()),
                            "reference": f"real test images ({len(real_dataset)})", "probe": str(self.path),
                            "note": "Frechet distance of Shapes-probe features: domain-specific, not Inception FID"})
        return records


class DiversityScorer:
    """The ``diversity`` metric (:mod:`t2igan.metrics.diversity`): features of the ``n`` generated test
    images (for precision / recall / density / coverage against the real test images), then, in
    :meth:`finish`, ``k`` seeds of ``num_captions`` test captions (per-caption diversity) and, on
    Shapes, ``k`` seeds of ``num_captions`` captions of each open form against ``k`` real renders."""

    def __init__(self, shapes: bool, image_size: int, k: int, num_captions: int, probe_path: str | None,
                 inception_weights: str | None, device, batch_size: int, progress: bool):
        if not isinstance(k, int) or k < 2:
            raise T2IError(f"diversity needs at least 2 seeds per caption (--k), got {k}")
        if not isinstance(num_captions, int) or num_captions < 1:
            raise T2IError(f"diversity needs at least 1 caption (--diversity-captions), got {num_captions}")
        self.shapes, self.k, self.num_captions = shapes, k, num_captions
        self.device, self.batch_size, self.image_size = device, batch_size, image_size
        if shapes:
            from .metrics.shapes_probe import load_or_train_probe

            self.probe, _, path = load_or_train_probe(image_size, probe_path, device=device, progress=progress)
            self.feature_name = f"Shapes probe {path}"
        else:
            from .metrics.inception import build_inception, resolve_weights_path

            self.net = build_inception("fid", path=inception_weights, device=device)
            self.feature_name = f"Inception pool3 {resolve_weights_path('fid', inception_weights)}"
        self.fake_feats = []

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        out = []
        for chunk in torch.split(images, self.batch_size):
            chunk = chunk.to(self.device)
            feats = self.probe.predict(chunk)[1] if self.shapes else self.net(chunk, output="pool3")
            out.append(feats.float().cpu())
        return torch.cat(out)

    def add(self, images: torch.Tensor) -> None:
        self.fake_feats.append(self.features(images))

    def real_features(self, test_set, limit: int) -> torch.Tensor:
        if self.shapes:
            from .metrics.shapes_probe import read_dataset

            return read_dataset(self.probe, test_set, device=self.device)[2][:limit]
        return torch.cat([self.features(b) for b in real_image_batches(test_set, self.batch_size, limit)])

    @torch.no_grad()
    def _generate(self, pipe, captions: list[str], seed: int, truncation, with_preds: bool = False):
        """Images of ``captions`` read by the feature network: features (and, on Shapes, probe labels)."""
        feats, preds = [], []
        for batch in pipe.generate_batches(captions, seed=seed, truncation=truncation, batch_size=self.batch_size):
            if with_preds:
                p, f = self.probe.predict(batch.images.to(self.device))
                preds.append(p.cpu())
                feats.append(f.float().cpu())
            else:
                feats.append(self.features(batch.images))
        return torch.cat(feats), (torch.cat(preds) if with_preds else None)

    def finish(self, pipe, test_set, captions: TestCaptions, seed: int, truncation, progress: bool) -> list[dict]:
        from tqdm import tqdm

        from .metrics.diversity import (mean_pairwise_distance, open_captions,
                                        precision_recall_density_coverage, real_renders, shapes_diversity)

        k, common = self.k, {"k": self.k, "features": self.feature_name}
        fake = torch.cat(self.fake_feats)
        m = min(len(fake), len(test_set), 10000)  # as many real as generated samples (Naeem et al.: 10,000)
        real = self.real_features(test_set, m)
        prdc = precision_recall_density_coverage(real, fake[:m])
        records = [{"metric": f"prdc_{name}", "value": v, "num_real": m, "num_fake": m,
                    "neighbours": 5, "features": self.feature_name} for name, v in prdc.items()]

        test = list(dict.fromkeys(captions.captions))[: self.num_captions]
        bar = tqdm(total=len(test), desc="diversity: seeds per test caption", disable=not progress)
        spreads = []
        for caption in test:
            feats, _ = self._generate(pipe, [caption] * k, seed + 3, truncation)
            spreads.append(mean_pairwise_distance(feats))
            bar.update(1)
        bar.close()
        real_spread = mean_pairwise_distance(real[:1000])
        value = float(np.mean(spreads))
        records.append({"metric": "caption_diversity", "value": value, "relative": value / real_spread,
                        "real_spread": real_spread, "captions": len(test), **common})
        if not self.shapes:
            return records

        open_caps = open_captions(self.num_captions)
        fake_feats, fake_preds = self._generate(pipe, [c.caption for c in open_caps for _ in range(k)], seed + 2,
                                                truncation, with_preds=True)
        reals = [real_renders(c, k, self.image_size) for c in open_caps]
        real_preds, real_feats = self.probe.predict(torch.cat(reals).to(self.device))
        result = shapes_diversity(open_caps, k, fake_preds, fake_feats, real_preds.cpu(), real_feats.float().cpu())
        common |= {"captions": len(open_caps), "forms": sorted({c.form for c in open_caps})}
        for name in ("entropy", "coverage", "features", "faithfulness"):
            records.append({"metric": f"diversity_{name}", **result[name], **common})
        # the same four numbers on the open captions: k seeds of each against k real renders of it
        prdc = precision_recall_density_coverage(real_feats.float().cpu(), fake_feats)
        records += [{"metric": f"open_prdc_{name}", "value": v, "num_real": len(fake_feats),
                     "num_fake": len(fake_feats), "neighbours": 5, **common} for name, v in prdc.items()]
        return records


# ---------------------------------------------------------------------------------------------------
# driver
# ---------------------------------------------------------------------------------------------------


def training_damsm(model_config: dict) -> str | None:
    """The DAMSM run a model was trained with: its ``damsm_weights`` (a DAMSM run folder or a file in
    it) when that is a DAMSM run."""
    from .runs import read_config, resolve_run_dir

    path = model_config.get("damsm_weights")
    if not path:
        return None
    try:
        run_dir = resolve_run_dir(path, file_ok=True)
        config = read_config(run_dir)
    except (OSError, ValueError):  # T2IError is a ValueError
        return None
    return str(run_dir) if config.get("model_name") == "damsm" else None


def parse_metrics(metrics) -> list[str]:
    names = [m.strip() for m in metrics.split(",")] if isinstance(metrics, str) else list(metrics)
    names = [m for m in names if m]
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        hint = "".join(did_you_mean(m, METRICS) for m in unknown)
        raise T2IError(f"unknown metric(s) {unknown or metrics!r}{hint}; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def default_metrics(dataset: str) -> list[str]:
    """The metrics that apply to a run on ``dataset``: the Shapes probe and R-precision (with the bundled
    ``shapes-damsm``) on Shapes, FID, IS and R-precision elsewhere."""
    return ["shapes", "rprec"] if dataset == "shapes" else ["fid", "is", "rprec"]


def skipped_metrics(dataset: str, damsm: str | None, inception_weights: str | None, is_network: str,
                    is_weights: str | None) -> dict[str, str]:
    """Why each metric of :data:`METRICS` is left out of the defaults of a run on ``dataset`` (and how to
    ask for it): one that does not apply, or whose network is not here (weights a path was given for are
    not checked here: a wrong path stays an error)."""
    from .metrics.inception import resolve_weights_path
    from .metrics.inception_cub import resolve_cub_weights

    def missing(find, *args) -> str | None:
        try:
            find(*args)
        except T2IError as e:
            return str(e)
        return None

    skipped = {}
    if dataset == "shapes":
        for name in ("fid", "is"):
            skipped[name] = (f"Inception features mean little on Shapes images (shapes_fid and the attribute probe "
                             f"measure them); ask for it with --metrics {name}")
    else:
        skipped["shapes"] = f"the Shapes probe reads Shapes runs only; this run was trained on {dataset!r}"
        if not inception_weights:
            skipped["fid"] = missing(resolve_weights_path, "fid")
        if not is_weights:
            find = {"fid": (resolve_weights_path, "fid"), "imagenet": (resolve_weights_path, "imagenet"),
                    "cub": (resolve_cub_weights,)}[is_network]
            skipped["is"] = missing(*find) if is_network != "fid" or not inception_weights else None
    if not damsm:
        skipped["rprec"] = ("the run names no DAMSM to score it with; pass --damsm RUN (a DAMSM run folder or a "
                            "bundled name; `t2igan pretrain damsm damsm-cub`)")
    return {name: why for name, why in skipped.items() if why}


def shapes_split(n: int, heldout_images: int) -> tuple[int, int]:
    """How the ``shapes`` metric shares ``n`` images: ``(test captions, held-out-pair captions)``, half
    each, the held-out part at most one per held-out test image."""
    heldout = min(n // 2, heldout_images)
    return n - heldout, heldout


def reliability(record: dict, scored: int, reference: int | None) -> dict:
    """``reliable`` (and the threshold) for a Frechet distance over ``scored`` generated images against
    ``reference`` real ones (None: a statistics file, size unknown); see :data:`MIN_RELIABLE_N`."""
    least = MIN_RELIABLE_N[record["metric"]]
    smallest = min(scored, reference) if reference is not None else scored
    return {**record, "reliable": smallest >= least, "min_reliable_n": least}


def evaluate(run_dir: str | Path, metrics=None, n: int = 30000, batch_size: int = 50, seed: int = 0,
             damsm: str | None = None, inception_weights: str | None = None, is_network: str | None = None,
             fid_stats: str | None = None, probe: str | None = None, device: str | None = None,
             progress: bool = True, write: bool = True, probe_size: int | None = None,
             truncation: float | None = None, is_protocol: str | None = None,
             is_weights: str | None = None, k: int = 32, diversity_captions: int = 8,
             truncation_form: str | None = None, say=None) -> list[dict]:
    """Generate ``n`` images from test captions of the run and compute ``metrics``; returns the records
    (also appended to ``<run_dir>/metrics.jsonl`` when ``write``). ``metrics`` None: the ones that apply to
    the run (:func:`default_metrics`), each one left out told to ``say`` (default: printed) with
    the reason and how to ask for it (:func:`skipped_metrics`). ``n`` counts every generated image: on
    Shapes the ``shapes`` metric gives half to held-out-pair captions (:func:`shapes_split`). A Frechet
    distance of fewer images than :data:`MIN_RELIABLE_N` is recorded with ``reliable: false`` and warned
    about. ``damsm`` (R-precision) defaults to the DAMSM the run was trained with, on Shapes to
    :data:`SHAPES_DAMSM`; a run folder or a bundled name. ``probe_size``: the side at which the
    Shapes probe reads the images (default: the run's image size); give one size to compare runs
    trained at different sizes (images are resized to it, antialiased when shrinking). ``truncation``:
    the noise truncation (0: none; default: the model's own), recorded in every record;
    ``truncation_form``: how a DF-GAN-family model applies it (``scaled`` or ``clip``, default: its own).
    ``is_network`` (fid | imagenet | cub), ``is_protocol`` (torch | paper; see
    :mod:`t2igan.metrics.is_protocols`) and ``is_weights`` (the IS network's weights file) default by the
    run's data set (:func:`default_is_settings`). ``k``: seeds per caption of the diversity metric, over
    ``diversity_captions`` test captions (and on Shapes as many captions of each open form)."""
    from tqdm import tqdm

    from .pipeline import Text2ImagePipeline

    say = say or (lambda line: print(line, flush=True))
    names = parse_metrics(metrics) if metrics is not None else None
    if n < 2:
        raise T2IError(f"--n must be at least 2, got {n}")
    from .runs import is_bundled, resolve_run_dir

    run_dir = resolve_run_dir(run_dir)
    write = write and not is_bundled(run_dir)  # a bundled model's folder is part of the package: read-only
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    pipe = Text2ImagePipeline.from_pretrained(run_dir, device=device)
    truncation = pipe.default_truncation(truncation)
    if truncation_form is not None:
        from .models.base import TRUNCATION_FORMS

        if not hasattr(pipe.model.config, "truncation_form"):
            raise T2IError(f"--truncation-form: the {pipe.model_name} model has no truncation form (DF-GAN, SSA-GAN)")
        if truncation_form not in TRUNCATION_FORMS:
            raise T2IError(f"truncation form must be one of {', '.join(TRUNCATION_FORMS)}, got {truncation_form!r}")
        pipe.model.config.truncation_form = truncation_form
    pipe.noise(1, seed, truncation)  # a bad truncation fails here, before any scorer is built
    experiment = pipe.config.get("experiment", {})
    data = experiment.get("data", {})
    dataset = data.get("dataset", "shapes")
    is_shapes = dataset == "shapes"
    trained_with = training_damsm(pipe.config.get("model_config", {}))
    damsm = damsm or trained_with or (SHAPES_DAMSM if is_shapes else None)
    is_network, is_protocol = default_is_settings(dataset, is_network, is_protocol)
    if names is None:  # the metrics that apply, each one left out said with its reason
        skipped = skipped_metrics(dataset, damsm, inception_weights, is_network, is_weights)
        names = [m for m in default_metrics(dataset) if m not in skipped]
        for name in METRICS:
            if name in skipped:
                say(f"{name}: skipped: {skipped[name]}")
        if not names:
            raise T2IError(f"no metric can score {run_dir} as things are (each one skipped says why)")
    if "shapes" in names and not is_shapes:
        raise T2IError(f"the shapes metric needs a Shapes run; {run_dir} was trained on {dataset!r}")
    if "rprec" in names and not damsm:
        raise T2IError("rprec needs a pretrained DAMSM: pass --damsm RUN (a DAMSM run folder or a bundled name; "
                       "`t2igan pretrain damsm ...`)")
    if "diversity" in names and (not isinstance(k, int) or k < 2):
        raise T2IError(f"diversity needs at least 2 seeds per caption (--k), got {k}")
    try:
        test_set = build_eval_dataset(data, "test")
    except T2IError as err:
        if "diversity" in names:
            raise T2IError(f"diversity compares generated with real test images, and the run's data set "
                           f"({dataset} at {data.get('root')}) has none here: {err}") from None
        raise
    if "diversity" in names and len(test_set) <= 5:
        raise T2IError(f"diversity compares generated with real test images: {len(test_set)} found, more than 5 needed")
    heldout_set = build_eval_dataset(data, "test_heldout") if "shapes" in names else None
    n_test, n_heldout = shapes_split(n, len(heldout_set)) if heldout_set is not None else (n, 0)
    captions = test_captions(test_set, n_test)
    start = time.time()

    # prepare every scorer first: missing weights fail before any image is generated
    scorers = {}
    if "fid" in names or "is" in names:
        scorers["inception"] = InceptionScorer("fid" in names, "is" in names, inception_weights, is_network,
                                               fid_stats, device, batch_size, is_protocol, is_weights, seed)
    if "rprec" in names:
        scorers["rprec"] = RPrecisionScorer(damsm, captions, pipe.max_words, device, batch_size, trained_with)
    heldout = None
    if "shapes" in names:
        image_size = probe_size or data.get("image_size", 64)
        scorers["shapes"] = ShapesScorer(image_size, probe, device, progress)
        shapes_real_set = build_eval_dataset(data, "test", image_size=image_size)
        heldout = test_captions(heldout_set, n_heldout)

    if "diversity" in names:
        diversity_size = probe_size or data.get("image_size", 64)
        scorers["diversity"] = DiversityScorer(is_shapes, diversity_size, k, diversity_captions, probe,
                                               inception_weights, device, batch_size, progress)
        diversity_real_set = build_eval_dataset(data, "test", image_size=diversity_size) if is_shapes else test_set

    bar = tqdm(total=n, desc=f"eval {run_dir.name}", unit="img", disable=not progress)
    # the pipeline's lenient batches: no caption dropped or reordered (one with only unknown words is warned about)
    for batch in pipe.generate_batches(captions.captions, seed=seed, truncation=truncation, batch_size=batch_size):
        for scorer in scorers.values():
            scorer.add(batch.images)
        bar.update(len(batch.images))
    if heldout is not None and heldout.captions:
        for batch in pipe.generate_batches(heldout.captions, seed=seed + 1, truncation=truncation,
                                           batch_size=batch_size):
            scorers["shapes"].add(batch.images, heldout=True)
            bar.update(len(batch.images))
    bar.close()

    records = []
    if "inception" in scorers:
        records += scorers["inception"].finish(test_set, progress)
    if "rprec" in scorers:
        records += scorers["rprec"].finish(seed)
    if "shapes" in scorers:
        records += scorers["shapes"].finish(captions, heldout.attributes, shapes_real_set)
    if "diversity" in scorers:
        records += scorers["diversity"].finish(pipe, diversity_real_set, captions, seed, truncation, progress)
    stamp = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    common = {"n": n_test, "seed": seed, "truncation": truncation, "run": str(run_dir), "time": stamp,
              **({"truncation_form": pipe.model.config.truncation_form}
                 if hasattr(pipe.model.config, "truncation_form") else {}),
              "eval_seconds": round(time.time() - start, 1)}
    records = [{**r, **{k: v for k, v in common.items() if k not in r}} for r in records]
    reference = {"fid": None if fid_stats else len(test_set), "shapes_fid": len(test_set)}
    for i, r in enumerate(records):
        if r["metric"] in MIN_RELIABLE_N:
            records[i] = r = reliability(r, r["n"], reference[r["metric"]])
            if not r["reliable"]:
                say(f"warning: {r['metric']} of {r['n']:,} generated images against {reference[r['metric']] or 'the'} "
                    f"real ones is not reliable (a Frechet distance of fewer than {r['min_reliable_n']:,} images is "
                    f"mostly its small-sample bias); recorded with reliable: false")
    if write:
        with open(run_dir / METRICS_FILE, "a") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    return records


PERCENT_METRICS = ("rprec", "shapes_attr", "shapes_attr_heldout", "diversity_entropy", "diversity_coverage",
                   "diversity_features", "diversity_faithfulness", "prdc_precision", "prdc_recall", "prdc_coverage",
                   "open_prdc_precision", "open_prdc_recall", "open_prdc_coverage")


def format_table(records: list[dict]) -> str:
    """A plain-text table: metric | value | +- | details."""
    rows = [("metric", "value", "std", "details")]
    for r in records:
        value = r["value"]
        if r["metric"] in PERCENT_METRICS:
            shown, std = f"{100 * value:.2f}%", (f"{100 * r['std']:.2f}%" if "std" in r else "")
        else:
            shown, std = f"{value:.4g}", (f"{r['std']:.3g}" if "std" in r else "")
        details = []
        if "damsm" in r:
            details.append(f"DAMSM {r['damsm']}" + (" (used in training)" if r.get("damsm_used_in_training") else ""))
        if "per_attribute" in r:
            details.append(" ".join(f"{k} {100 * v:.1f}" for k, v in r["per_attribute"].items() if v == v))
        if isinstance(r.get("real"), dict) and "value" in r["real"]:
            details.append(f"real renders {100 * r['real']['value']:.1f}")
        elif r["metric"] == "diversity_faithfulness":
            details.append(f"real renders {100 * r['real']:.1f}")
        elif r["metric"] == "diversity_features":
            details.append(f"mean pairwise distance {r['fake']:.3g}, real renders {r['real']:.3g}")
        elif r["metric"] == "caption_diversity":
            details.append(f"{100 * r['relative']:.1f}% of the real test images' spread ({r['real_spread']:.3g})")
        if "reference" in r:
            details.append(f"ref {r['reference']}")
        rows.append((r["metric"], shown, std, "; ".join(details)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [f"{a:<{widths[0]}}  {b:>{widths[1]}}  {c:>{widths[2]}}  {d}".rstrip() for a, b, c, d in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return "\n".join(lines)


@torch.no_grad()
def dataset_statistics(data: dict, split: str = "test", inception_weights: str | None = None,
                       batch_size: int = 50, limit: int | None = None, device: str | None = None,
                       progress: bool = True) -> tuple[np.ndarray, np.ndarray, int]:
    """FID reference statistics (mu, sigma, number of images) of a data set's real images."""
    from tqdm import tqdm

    from .metrics.fid import feature_statistics
    from .metrics.inception import build_inception

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    net = build_inception("fid", path=inception_weights, device=device)
    dataset = build_eval_dataset(data, split)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    feats = []
    for images in tqdm(real_image_batches(dataset, batch_size, count), total=-(-count // batch_size),
                       desc=f"pool3 {split}", disable=not progress):
        feats.append(net(images.to(device), output="pool3").float().cpu().numpy())
    mu, sigma = feature_statistics(np.concatenate(feats))
    return mu, sigma, count
