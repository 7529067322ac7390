"""BLEU [Papineni et al., "BLEU: a Method for Automatic Evaluation of Machine Translation", ACL 2002],
corpus level, for STREAM's captions."""

from __future__ import annotations

import math
from collections import Counter

from ..errors import T2IError


def _ngrams(words: list[str], n: int) -> Counter:
    return Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(hypotheses: list[list[str]], references: list[list[list[str]]], max_n: int = 4) -> float:
    """Corpus BLEU [Papineni et al., ACL 2002]: n-gram precisions (n = 1..max_n) clipped by the most
    counts in any reference, pooled over the corpus, geometric mean with uniform weights, times the
    brevity penalty ``exp(1 - r / c)`` when the total hypothesis length ``c`` is below ``r`` (the sum of
    each hypothesis's closest reference length, the shorter on ties). No smoothing: 0 when some
    order has no match."""
    if len(hypotheses) != len(references):
        raise T2IError(f"BLEU: {len(hypotheses)} hypotheses but {len(references)} reference sets")
    matches, totals = [0] * max_n, [0] * max_n
    hyp_len = ref_len = 0
    for hyp, refs in zip(hypotheses, references):
        hyp_len += len(hyp)
        ref_len += min((abs(len(r) - len(hyp)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(hyp, n)
            most: Counter = Counter()
            for r in refs:
                most |= _ngrams(r, n)  # elementwise max of the counts
            matches[n - 1] += sum(min(c, most[g]) for g, c in counts.items())
            totals[n - 1] += max(0, len(hyp) - n + 1)
    if min(matches) == 0:
        return 0.0
    log_precision = sum(math.log(m / t) for m, t in zip(matches, totals)) / max_n
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / max(hyp_len, 1))
    return brevity * math.exp(log_precision)
