"""The evaluation a pretraining run ends with (main process, model in eval mode): DAMSM's R-precision and
STREAM's caption scores of the real test images. Each gives ``(metrics.jsonl record or None, line to
print)`` pairs; a GAN run ends with none (``t2igan eval`` scores it)."""

from __future__ import annotations

from ..errors import T2IError


def damsm_r_precision(model, test_set, vocab, cfg, run_dir, progress: bool = True) -> list[tuple[dict | None, str]]:
    """R-precision of the real test images (:func:`t2igan.metrics.r_precision.dataset_r_precision`)."""
    from ..metrics.r_precision import dataset_r_precision

    c = model.config
    splits = min(c.rprec_splits, len(test_set))
    device = next(model.parameters()).device
    try:
        result = dataset_r_precision(model, vocab, test_set, max_words=cfg.data.max_words,
                                     num_captions=c.rprec_captions, splits=splits, seed=cfg.train.seed,
                                     device=device, damsm_name=str(run_dir), progress=progress)
    except T2IError as e:  # e.g. a test split too small for 99 mismatched captions: the weights are saved
        return [(None, f"R-precision of real test images not computed: {e}")]
    record = {"metric": "r_precision", "split": "test", "images": "real", **result}
    return [(record, f"R-precision of real test images: {100 * result['mean']:.2f} +- "
                     f"{100 * result['std']:.2f} % (chance {100 / c.rprec_captions:.0f}%, "
                     f"{result['num_images']} images, {splits} splits, DAMSM {run_dir})")]


def stream_captions(model, test_set, vocab, cfg, run_dir, progress: bool = True) -> list[tuple[dict | None, str]]:
    """:func:`t2igan.metrics.captions.evaluate_stream` of the real test images: BLEU-4 and, on Shapes,
    the attributes named."""
    from ..metrics.captions import evaluate_stream

    c = model.config
    try:
        result = evaluate_stream(model, vocab, test_set, beam=c.eval_beam, max_images=c.eval_images,
                                 seed=cfg.train.seed)
    except T2IError as e:  # e.g. a one-image test split: the weights are saved
        return [(None, f"captions of real test images not scored: {e}")]
    decoding = "greedy" if c.eval_beam == 1 else f"beam {c.eval_beam}"
    lines = [f"STREAM captions of {result['num_images']} real test images ({decoding}): "
             f"BLEU-4 {100 * result['bleu4']:.1f} (chance {100 * result['bleu4_chance']:.1f})"]
    if "attribute_accuracy" in result:
        lines.append(f"  attributes named correctly: {100 * result['attribute_accuracy']:.1f}% "
                     f"(chance {100 * result['attribute_accuracy_chance']:.1f}%), every attribute right: "
                     f"{100 * result['exact']:.1f}% (chance {100 * result['exact_chance']:.1f}%)")
    lines += [f"  {ex['caption']!r}  (a reference: {ex['reference']!r})" for ex in result["examples"][:3]]
    record = {"metric": "stream_captions", "split": "test", "images": "real", **result}
    return [(record, "\n".join(lines))]


# model name -> its end-of-run evaluation
FINAL_METRICS = {"damsm": damsm_r_precision, "stream": stream_captions}


def final_metrics(model, test_set, vocab, cfg, run_dir, progress: bool = True) -> list[tuple[dict | None, str]]:
    """The end-of-run evaluation of ``model`` (none for a GAN)."""
    evaluate = FINAL_METRICS.get(model.model_name)
    return evaluate(model, test_set, vocab, cfg, run_dir, progress) if evaluate else []
