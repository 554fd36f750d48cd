"""Evidence selection: which candidates, and which of their sentences, a model reads.

`choose_evidence` is the one call `rag ask`, `rag chat`, `rag eval` and `rag search`
share: it reranks the fused candidates (`rerankers`), then keeps the best sentences
within the model's evidence budget (`selection`). With `reranker = "none"` the
retrievers' order stands and whole passages are packed, as before reranking existed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from rag.core.config import Settings
from rag.core.types import Passage
from rag.evidence.rerankers import NO_RERANK, Reranker, get_reranker
from rag.evidence.selection import (
    OVER_BUDGET,
    OVER_K,
    Selection,
    SelectionPolicy,
    budget_for,
    select_evidence,
)
from rag.packing import pack_passages

__all__ = ["RERANK_DEPTH", "Selection", "candidates_wanted", "choose_evidence", "load_reranker"]

#: Candidates per source that a reranker reads: the retrievers' top 10 hold the answer far
#: more often than their top 5, and reading 10 instead of 5 costs milliseconds.
RERANK_DEPTH = 10

_CACHE: dict[tuple[str, str], Reranker | None] = {}
_LOCK = threading.Lock()


def load_reranker(settings: Settings) -> Reranker | None:
    """The configured reranker, loaded once per process; None for `none`."""
    key = (settings.reranker.strip(), settings.embedder)
    with _LOCK:
        if key not in _CACHE:
            _CACHE[key] = get_reranker(settings.reranker, settings)
        return _CACHE[key]


def candidates_wanted(settings: Settings) -> int:
    """How many passages to ask each source for."""
    if settings.reranker.strip() == NO_RERANK:
        return settings.k
    return max(settings.k, RERANK_DEPTH)


def evidence_budget(settings: Settings, parameters: int | None, room: int) -> int:
    """The setting when given, else sized to the model; never more than the context has."""
    return max(0, min(room, settings.evidence_tokens or budget_for(parameters)))


def choose_evidence(
    question: str,
    candidates: Sequence[Passage],
    *,
    settings: Settings,
    parameters: int | None,
    room: int,
    count_tokens: Callable[[str], int],
) -> Selection:
    """The passages for the prompt, numbered in this order, and every candidate reranked."""
    budget = evidence_budget(settings, parameters, room)
    reranker = load_reranker(settings)
    if reranker is None:
        started = time.perf_counter()
        packed = pack_passages(candidates[: settings.k], budget=budget, count_tokens=count_tokens)
        kept = {p.location for p in packed}
        dropped = [
            replace(p, meta={**p.meta, "dropped": OVER_K if n >= settings.k else OVER_BUDGET})
            for n, p in enumerate(candidates)
            if p.location not in kept
        ]
        return Selection(packed, list(candidates), time.perf_counter() - started, dropped)
    policy = SelectionPolicy(
        budget=budget,
        cut=settings.relevance_cut,
        depth=RERANK_DEPTH * max(1, len({p.origin for p in candidates})),
        order=settings.evidence_order,
        max_sources=settings.k,
    )
    return select_evidence(
        question, candidates, reranker=reranker, policy=policy, count_tokens=count_tokens
    )
