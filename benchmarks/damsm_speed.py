"""DAMSM loss speed: the library's vectorised ``damsm_loss`` against a per-caption Python loop.

AttnGAN's official ``words_loss`` scores the (image, caption) pairs of a batch one caption at a
time: each caption's words are repeated over the batch's images, attended over their regions and
scored (Eq. 7-10), and the scores are stacked into a (B, B) matrix. :func:`damsm_loss_loop` below is
such a loop, written from the paper's equations with the same conventions as the library
(official form of Eq. 10 when ``paper_form`` is off, same-class pairs masked, batch-mean
cross-entropy both ways, word and sentence terms summed: Eq. 14). Both run on the same inputs in the
same process, alternately, and the script reports

* that they agree: the largest absolute difference of the loss and of its gradients with respect to
  the region, global-image, word and sentence features;
* the median time of forward + backward of each and their ratio (loop / vectorised), and the same
  for the forward alone;

for the shapes of AttnGAN's DAMSM on CUB (batch 48 in pretraining, 20 in the GAN's G step; 17 x 17
Inception regions, 18 words, 256-d) and of the small CNN on Shapes (batch 16, 8 x 8 regions).

    OMP_NUM_THREADS=1 python benchmarks/damsm_speed.py --quick     # CPU, ~1 min
    python benchmarks/damsm_speed.py --device cuda                 # GPU
    python benchmarks/damsm_speed.py --dry-run                     # check the arguments only

Writes ``benchmarks/results/damsm_speed.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch import nn

from speed_common import RESULTS_DIR, environment, median, print_table, resolve_device, sync, write_json
from t2igan.models.damsm import damsm_loss
from t2igan.nn.text_encoder import TextFeatures

CASES = {  # name: (batch, regions side, words, feature size, paper_form)
    "cub-pretrain": (48, 17, 18, 256, False),
    "cub-gan-g-step": (20, 17, 18, 256, False),
    "shapes-small-cnn": (16, 8, 18, 256, True),
}
GAMMA1, GAMMA2, GAMMA3 = 4.0, 5.0, 10.0


def damsm_loss_loop(region_feats: torch.Tensor, image_emb: torch.Tensor, word_embs: torch.Tensor,
                    sent_emb: torch.Tensor, lengths: torch.Tensor, class_ids: torch.Tensor | None,
                    gamma1: float, gamma2: float, gamma3: float, paper_form: bool) -> torch.Tensor:
    """``L_1^w + L_2^w + L_1^s + L_2^s`` [AttnGAN, Eq. 7-14] with one loop iteration per caption.

    region_feats (B, D, h, w); image_emb (B, D); word_embs (B, D, T); sent_emb (B, D); lengths (B,)
    words per caption; class_ids (B,) or None.
    """
    B = region_feats.shape[0]
    regions = region_feats.flatten(2)  # (B, D, L)
    word_rel, sent_rel = [], []
    for i in range(B):
        n = int(lengths[i])
        words = word_embs[i, :, :n].unsqueeze(0).expand(B, -1, -1)  # (B, D, n): caption i for every image
        s = torch.bmm(regions.transpose(1, 2), words)  # (B, L, n) Eq. 7
        s_bar = s.softmax(dim=2)  # Eq. 8: over the words
        alpha = (gamma1 * s_bar).softmax(dim=1)  # Eq. 9: over the regions
        context = torch.bmm(regions, alpha)  # (B, D, n) c_t = sum_l alpha_lt v_l
        cos = F.cosine_similarity(context, words, dim=1)  # (B, n)
        rel = torch.log(torch.exp(gamma2 * cos).sum(dim=1))  # (B,) Eq. 10
        word_rel.append(rel / gamma2 if paper_form else rel)
        sent_rel.append(F.cosine_similarity(image_emb, sent_emb[i:i + 1].expand(B, -1), dim=1))  # (B,)
    labels = torch.arange(B, device=region_feats.device)
    loss = region_feats.new_zeros(())
    for rel in (torch.stack(word_rel, dim=1), torch.stack(sent_rel, dim=1)):  # (B images, B captions)
        scores = gamma3 * rel
        if class_ids is not None:
            same = (class_ids[:, None] == class_ids[None, :]) & ~torch.eye(B, dtype=torch.bool, device=scores.device)
            scores = scores.masked_fill(same, float("-inf"))
        loss = loss + F.cross_entropy(scores, labels) + F.cross_entropy(scores.t(), labels)  # Eq. 11-13
    return loss


class FixedFeatures(nn.Module):
    """Stands in for the DAMSM image encoder: returns given (region_feats, image_emb), so that only
    the loss is timed."""

    def __init__(self, region_feats: torch.Tensor, image_emb: torch.Tensor):
        super().__init__()
        self.region_feats, self.image_emb = region_feats, image_emb

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.region_feats, self.image_emb


def make_inputs(batch: int, side: int, words: int, dim: int, device, seed: int = 0) -> dict:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, words + 1, (batch,), generator=gen)
    lengths[0] = words  # at least one full-length caption, as collated batches have
    mask = torch.arange(words)[None, :] >= lengths[:, None]  # (B, T) True at padding
    word_embs = torch.randn(batch, dim, words, generator=gen).masked_fill(mask[:, None, :], 0.0)
    tensors = {
        "region_feats": torch.randn(batch, dim, side, side, generator=gen),
        "image_emb": torch.randn(batch, dim, generator=gen),
        "word_embs": word_embs,
        "sent_emb": torch.randn(batch, dim, generator=gen),
    }
    return {
        **{k: v.to(device).requires_grad_(True) for k, v in tensors.items()},
        "mask": mask.to(device),
        "lengths": lengths,
        "class_ids": torch.randint(0, 200, (batch,), generator=gen).to(device),
    }


def run_case(name: str, device: torch.device, reps: int) -> dict:
    batch, side, words, dim, paper_form = CASES[name]
    x = make_inputs(batch, side, words, dim, device)
    leaves = ["region_feats", "image_emb", "word_embs", "sent_emb"]
    encoder = FixedFeatures(x["region_feats"], x["image_emb"])
    dummy_images = torch.zeros(batch, 3, 8, 8, device=device)
    text = TextFeatures(word_embs=x["word_embs"], sent_emb=x["sent_emb"], mask=x["mask"])
    gammas = dict(gamma1=GAMMA1, gamma2=GAMMA2, gamma3=GAMMA3, paper_form=paper_form)

    def vectorised():
        return damsm_loss(encoder, dummy_images, text, x["class_ids"], **gammas)[0]

    def loop():
        return damsm_loss_loop(x["region_feats"], x["image_emb"], x["word_embs"], x["sent_emb"], x["lengths"],
                               x["class_ids"], **gammas)

    # agreement: loss and gradients
    results = {}
    for label, fn in (("vectorised", vectorised), ("loop", loop)):
        for k in leaves:
            x[k].grad = None
        loss = fn()
        loss.backward()
        results[label] = (loss.detach().double(), {k: x[k].grad.detach().double().clone() for k in leaves})
    loss_diff = (results["vectorised"][0] - results["loop"][0]).abs().item()
    grad_diff = max((results["vectorised"][1][k] - results["loop"][1][k]).abs().max().item() for k in leaves)
    grad_scale = max(results["loop"][1][k].abs().max().item() for k in leaves)

    def fwd_bwd(fn):
        def run():
            for k in leaves:
                x[k].grad = None
            fn().backward()
        return run

    def fwd(fn):
        def run():
            with torch.no_grad():
                fn()
        return run

    times = {key: [] for key in ("vec_fb", "loop_fb", "vec_f", "loop_f")}
    for fn in (vectorised, loop):  # warm-up
        fwd_bwd(fn)()
    for _ in range(reps):  # alternate, so that a change of machine load hits both alike
        for key, run in (("vec_fb", fwd_bwd(vectorised)), ("loop_fb", fwd_bwd(loop)),
                         ("vec_f", fwd(vectorised)), ("loop_f", fwd(loop))):
            sync(device)
            t0 = time.perf_counter()
            run()
            sync(device)
            times[key].append(time.perf_counter() - t0)
    med = {k: median(v) for k, v in times.items()}
    return {
        "case": name, "batch": batch, "regions": f"{side}x{side}", "words": words, "dim": dim,
        "paper_form": paper_form, "loss": results["loop"][0].item(),
        "loss_max_abs_diff": loss_diff, "grad_max_abs_diff": grad_diff, "grad_max_abs": grad_scale,
        "vectorised_fwd_bwd_ms": 1e3 * med["vec_fb"], "loop_fwd_bwd_ms": 1e3 * med["loop_fb"],
        "ratio_fwd_bwd": med["loop_fb"] / med["vec_fb"],
        "vectorised_fwd_ms": 1e3 * med["vec_f"], "loop_fwd_ms": 1e3 * med["loop_f"],
        "ratio_fwd": med["loop_f"] / med["vec_f"],
        "reps": reps, "times_s": {k: [round(t, 5) for t in v] for k, v in times.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--reps", type=int, default=None, help="timed repetitions (default 5 --quick, 20)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--time-limit", type=float, default=None,
                   help="seconds for the whole script: cases not started by then are skipped")
    p.add_argument("--out", default=str(RESULTS_DIR / "damsm_speed.json"))
    p.add_argument("--dry-run", action="store_true", help="check the arguments (and the imports) and exit")
    args = p.parse_args()
    if args.dry_run:
        print(f"ok    cases {', '.join(args.cases)}; damsm_loss from t2igan.models.damsm")
        return
    device = torch.device(resolve_device(args.device))
    torch.set_num_threads(args.threads)
    reps = args.reps or (5 if args.quick else 20)
    env = environment(str(device), args.threads)
    print(f"DAMSM loss on {env.get('gpu', env.get('cpu'))} ({device}), {args.threads} thread(s), "
          f"load average {env['load_average_1m']}", flush=True)
    t_start = time.perf_counter()
    rows, skipped = [], []
    for name in args.cases:
        if args.time_limit is not None and time.perf_counter() - t_start > args.time_limit:
            skipped.append(name)
            print(f"skip {name}: the time limit ({args.time_limit:.0f} s) was spent", flush=True)
            continue
        rows.append(run_case(name, device, reps))
    table = print_table(rows, [
        ("case", "case", ""), ("batch", "B", "d"), ("regions", "regions", ""), ("words", "T", "d"),
        ("dim", "D", "d"), ("vectorised_fwd_bwd_ms", "vec f+b ms", ".1f"), ("loop_fwd_bwd_ms", "loop f+b ms", ".1f"),
        ("ratio_fwd_bwd", "loop/vec f+b", ".2f"), ("vectorised_fwd_ms", "vec f ms", ".1f"),
        ("loop_fwd_ms", "loop f ms", ".1f"), ("ratio_fwd", "loop/vec f", ".2f"),
        ("loss_max_abs_diff", "|dloss|", ".1e"), ("grad_max_abs_diff", "|dgrad|", ".1e")])
    bad = [r["case"] for r in rows if r["loss_max_abs_diff"] > 1e-3 or r["grad_max_abs_diff"] > 1e-3 * max(1.0, r["grad_max_abs"])]
    if bad:
        print(f"WARNING: the vectorised and loop losses disagree in {bad}")
    write_json(args.out, {
        "benchmark": "damsm_speed",
        "what": "t2igan.models.damsm.damsm_loss (vectorised over all image-caption pairs) vs a per-caption "
                "Python loop of the same maths; same inputs, same process, alternating; median times",
        "environment": env, "wall_s": round(time.perf_counter() - t_start, 1), "agree": not bad,
        "settings": {"reps": reps, "threads": args.threads, "quick": args.quick, "time_limit_s": args.time_limit},
        "skipped": skipped,
        "rows": rows, "table": table,
    })


if __name__ == "__main__":
    main()
