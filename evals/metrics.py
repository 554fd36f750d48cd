"""Answer scoring and the statistics that say whether a difference is real.

Normalisation follows the SQuAD v1.1 evaluation script (lower case, strip
punctuation and the articles a/an/the, collapse whitespace), so EM and F1 are
comparable with published NQ-open and TriviaQA numbers. The primary metric is
"contains-answer" accuracy (PopQA, Self-RAG): a small model rarely answers with
exactly the gold string, but usually says it somewhere when it knows it.
"""

from __future__ import annotations

import math
import random
import re
import string
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower, drop punctuation, drop articles, collapse spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer."""
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in golds))


def _f1(prediction: str, gold: str) -> float:
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """SQuAD token F1, the best over the gold answers."""
    return max((_f1(prediction, g) for g in golds), default=0.0)


def _contains(haystack: str, needle: str) -> bool:
    """Whole-token containment on normalised text, so '1' is not found inside '1972'."""
    if not needle:
        return False
    return f" {needle} " in f" {haystack} "


def contains_answer(prediction: str, golds: Sequence[str]) -> float:
    """1.0 when a normalised gold answer appears (as whole tokens) in the normalised output."""
    pred = normalize_answer(prediction)
    return float(any(_contains(pred, normalize_answer(g)) for g in golds))


def answer_in_passages(passages: Iterable[str], golds: Sequence[str]) -> float:
    """Retrieval hit@k: 1.0 when a gold answer appears in any passage given to the model."""
    return float(any(contains_answer(p, golds) for p in passages))


def score_answer(
    prediction: str, golds: Sequence[str], passages: Sequence[str] | None
) -> dict[str, float | None]:
    """The per-answer metrics: `correct` (contains-answer), `em`, `f1` and `hit`.

    `passages` are the texts given to the model; None for a closed-book answer, whose
    `hit` is None (there was no retrieval to hit or miss). The runner and the report
    both score through here, so `rag eval report` re-scores exactly as a run scores.
    """
    return {
        "correct": contains_answer(prediction, golds),
        "em": exact_match(prediction, golds),
        "f1": round(token_f1(prediction, golds), 4),
        "hit": None if passages is None else answer_in_passages(passages, golds),
    }


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def bootstrap_ci(
    values: Sequence[float], *, resamples: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean. Seeded, so a report is reproducible."""
    n = len(values)
    if n == 0:
        return (float("nan"), float("nan"))
    rng = random.Random(seed)
    data = list(values)
    means = sorted(sum(rng.choices(data, k=n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    low = means[int(math.floor(tail * (resamples - 1)))]
    high = means[int(math.ceil((1 - tail) * (resamples - 1)))]
    return (low, high)


@dataclass(frozen=True)
class McNemar:
    """Paired outcome counts: `b` = only the baseline right, `c` = only the other right."""

    n: int
    b: int
    c: int
    p_value: float


def mcnemar_exact(baseline: Sequence[float], other: Sequence[float]) -> McNemar:
    """Exact (binomial) McNemar test on paired right/wrong outcomes, two-sided.

    Exact rather than chi-squared because eval runs are often small and the
    discordant counts low, where the chi-squared approximation is poor.
    """
    if len(baseline) != len(other):
        raise ValueError("McNemar needs paired outcomes of equal length")
    b = sum(1 for x, y in zip(baseline, other, strict=False) if x and not y)
    c = sum(1 for x, y in zip(baseline, other, strict=False) if y and not x)
    m = b + c
    if m == 0:
        return McNemar(len(baseline), b, c, 1.0)
    tail = sum(math.comb(m, i) for i in range(min(b, c) + 1)) / 2**m
    return McNemar(len(baseline), b, c, min(1.0, 2 * tail))
