"""R-precision [AttnGAN, Xu et al., CVPR 2018, Sec. 4.1]: does a DAMSM retrieve an image's own caption?

For each (image, true caption) pair, 99 mismatched captions are drawn (seeded) from a pool of captions
(the test captions): never a caption of the same source image and, where class ids are known (CUB),
never one of the same class, as the official evaluation draws them. The DAMSM's global image feature
is compared by cosine similarity with the sentence features of the 100 captions; the pair counts as a
hit when the true caption scores strictly highest (top-1, i.e. R = 1 relevant caption among the top
R = 1). The images are cut into ``splits`` consecutive parts; the result is the mean and standard
deviation of the hit rate over the parts (official: 10 splits).

Scored with the DAMSM a generator was trained against, R-precision favours that generator, so every
result names the DAMSM that scored it (``damsm``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..errors import T2IError


def draw_mismatched(group_ids: torch.Tensor, class_ids: torch.Tensor | None, pool_group_ids: torch.Tensor,
                    pool_class_ids: torch.Tensor | None, num: int, generator: torch.Generator,
                    chunk: int = 256) -> torch.Tensor:
    """(N, num) indices into the pool: for query i, ``num`` distinct pool captions of another source
    image (``pool_group_ids != group_ids[i]``) and, when ``class_ids[i] >= 0``, of another class."""
    out = []
    for s in range(0, len(group_ids), chunk):
        eligible = pool_group_ids[None, :] != group_ids[s:s + chunk, None]  # (n, M)
        if class_ids is not None and pool_class_ids is not None:
            cls = class_ids[s:s + chunk, None]
            eligible &= (cls < 0) | (pool_class_ids[None, :] != cls)
        short = eligible.sum(dim=1) < num
        if short.any():
            i = s + int(short.nonzero()[0, 0])
            raise T2IError(f"R-precision: caption {i} has only {int(eligible[i - s].sum())} mismatched captions "
                           f"in the pool, {num} needed (more test images or fewer captions per test)")
        keys = torch.rand(eligible.shape, generator=generator).masked_fill_(~eligible, -1.0)
        out.append(keys.topk(num, dim=1).indices)  # a uniform random subset of the eligible ones
    return torch.cat(out)


def r_precision(image_emb: torch.Tensor, sent_emb: torch.Tensor, pool_emb: torch.Tensor | None = None,
                group_ids: Sequence[int] | torch.Tensor | None = None,
                pool_group_ids: Sequence[int] | torch.Tensor | None = None,
                class_ids: Sequence[int] | torch.Tensor | None = None,
                pool_class_ids: Sequence[int] | torch.Tensor | None = None,
                num_captions: int = 100, splits: int = 10, seed: int = 0, damsm: str | None = None) -> dict:
    """Top-1 R-precision of images against their true captions among ``num_captions - 1`` mismatched ones.

    image_emb (N, D): DAMSM global features of the images; sent_emb (N, D): sentence features of each
    image's true caption; pool_emb (M, D): captions the mismatched ones are drawn from (default:
    ``sent_emb``). group_ids (N,) / pool_group_ids (M,): source image of each caption (captions of the
    same source image are never mismatches; default: every caption its own group). class_ids /
    pool_class_ids: class of each (-1: none), mismatches come from other classes.
    ``damsm`` names the DAMSM that made the features (recorded in the result: one that trained the generator favours it).
    Returns ``{"mean", "std", "splits", "num_captions", "num_images", "damsm"}`` (mean, std as fractions).
    """
    image_emb, sent_emb = image_emb.detach().float().cpu(), sent_emb.detach().float().cpu()
    n = image_emb.shape[0]
    if sent_emb.shape != image_emb.shape:
        raise T2IError(f"R-precision: {tuple(image_emb.shape)} image features vs {tuple(sent_emb.shape)} captions")
    if not 1 <= splits <= n:
        raise T2IError(f"R-precision needs 1 <= splits <= number of images, got splits={splits}, N={n}")
    if num_captions < 2:
        raise T2IError(f"R-precision needs at least 2 captions per test, got {num_captions}")
    own_pool = pool_emb is None
    pool_emb = sent_emb if own_pool else pool_emb.detach().float().cpu()
    group_ids = torch.arange(n) if group_ids is None else torch.as_tensor(group_ids).long()
    class_ids = None if class_ids is None else torch.as_tensor(class_ids).long()
    if own_pool:  # the true captions are the pool: their groups and classes are the pool's
        pool_group_ids, pool_class_ids = group_ids, class_ids
    elif pool_group_ids is None:  # a separate pool with no groups: none of it is a true caption
        pool_group_ids = -1 - torch.arange(pool_emb.shape[0])
    pool_group_ids = torch.as_tensor(pool_group_ids).long()
    pool_class_ids = None if pool_class_ids is None else torch.as_tensor(pool_class_ids).long()
    for name, ids, size in (("group_ids", group_ids, n), ("pool_group_ids", pool_group_ids, pool_emb.shape[0]),
                            ("class_ids", class_ids, n), ("pool_class_ids", pool_class_ids, pool_emb.shape[0])):
        if ids is not None and ids.shape != (size,):
            raise T2IError(f"R-precision: {name} has shape {tuple(ids.shape)}, expected ({size},)")

    gen = torch.Generator().manual_seed(seed)
    wrong = draw_mismatched(group_ids, class_ids, pool_group_ids, pool_class_ids, num_captions - 1, gen)  # (N, 99)
    image_n = torch.nn.functional.normalize(image_emb, dim=1)
    true_score = (image_n * torch.nn.functional.normalize(sent_emb, dim=1)).sum(1)  # (N,)
    pool_n = torch.nn.functional.normalize(pool_emb, dim=1)
    wrong_score = torch.einsum("nd,nkd->nk", image_n, pool_n[wrong])  # (N, 99)
    hits = (wrong_score < true_score[:, None]).all(dim=1).double().numpy()  # (N,)
    rates = [hits[k * n // splits:(k + 1) * n // splits].mean() for k in range(splits)]
    return {"mean": float(np.mean(rates)), "std": float(np.std(rates)), "splits": splits,
            "num_captions": num_captions, "num_images": n, "damsm": damsm}


@torch.no_grad()
def damsm_features(damsm, vocab, images=None, captions: Sequence[str] | None = None, max_words: int = 18,
                   batch_size: int = 50, device: str | torch.device = "cpu"):
    """DAMSM global image features (N, D) of ``images`` (a (N, 3, H, W) tensor in [-1, 1] or an
    iterable of such batches) and sentence features (M, D) of ``captions`` (tokenised with the DAMSM's
    own vocabulary, deterministically). Either may be None."""
    from ..data.text import encode_captions

    damsm = damsm.to(device).eval()
    image_emb = sent_emb = None
    if images is not None:
        batches = torch.split(images, batch_size) if torch.is_tensor(images) else images
        image_emb = torch.cat([damsm.image_encoder(b.to(device))[1].float().cpu() for b in batches])
    if captions is not None:
        feats = []
        for s in range(0, len(captions), batch_size):
            tokens, lengths = encode_captions(vocab, list(captions[s:s + batch_size]), max_words)
            feats.append(damsm.text_encoder(tokens.to(device), lengths.to(device)).sent_emb.float().cpu())
        sent_emb = torch.cat(feats)
    return image_emb, sent_emb


@torch.no_grad()
def dataset_r_precision(damsm, vocab, dataset, max_words: int = 18, num_captions: int = 100, splits: int = 10,
                        seed: int = 0, batch_size: int = 50, device: str | torch.device = "cpu",
                        max_images: int | None = None, damsm_name: str | None = None,
                        progress: bool = False) -> dict:
    """R-precision of a data set's real images (each with its first caption) under ``damsm``; the
    mismatched captions come from all captions of the other images. A DAMSM that matches real pairs
    well scores high here: the ceiling for generated images."""
    from tqdm import tqdm

    n = len(dataset) if max_images is None else min(max_images, len(dataset))
    pool, pool_groups, pool_classes, firsts, classes = [], [], [], [], []
    for i in range(n):
        caps = dataset.captions(i)
        cls = _class_id(dataset, i)
        firsts.append(caps[0])
        classes.append(cls)
        pool += caps
        pool_groups += [i] * len(caps)
        pool_classes += [cls] * len(caps)
    image_batches = (torch.stack([dataset.get_item(i, 0)["image"] for i in range(s, min(s + batch_size, n))])
                     for s in range(0, n, batch_size))
    image_batches = tqdm(image_batches, total=-(-n // batch_size), desc="R-precision images", disable=not progress)
    image_emb, _ = damsm_features(damsm, vocab, images=image_batches, batch_size=batch_size, device=device)
    _, pool_emb = damsm_features(damsm, vocab, captions=pool, max_words=max_words, batch_size=batch_size,
                                 device=device)
    _, sent_emb = damsm_features(damsm, vocab, captions=firsts, max_words=max_words, batch_size=batch_size,
                                 device=device)
    result = r_precision(image_emb, sent_emb, pool_emb, group_ids=list(range(n)), pool_group_ids=pool_groups,
                         class_ids=classes, pool_class_ids=pool_classes, num_captions=num_captions,
                         splits=splits, seed=seed, damsm=damsm_name)
    return result


def _class_id(dataset, i: int) -> int:
    class_ids = getattr(dataset, "class_ids", None)
    if class_ids is not None:
        return int(class_ids[i])
    return -1
