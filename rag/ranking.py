"""Merge passages from several sources into one ranking.

Scores from different retrievers are not comparable (a web engine gives only a
rank, a dense index a cosine, BM25 an unbounded number), so sources compete by
reciprocal-rank fusion (Cormack et al., 2009): a passage earns 1/(K + rank) in
each list it appears in, and the sums decide. That is fair in two ways: no
source wins by the scale of its scores (BM25's 25.0 does not beat a web rank),
and at equal ranks the sources alternate (rank 1 of each list before rank 2 of
any). Each retriever's own order is what carries its scores into the fusion.

Near duplicates (the same page found by two sources, a snippet contained in a
fetched page) are one item: their contributions add up, so agreement between
sources raises a passage, and only the copy the fused order meets first is kept.
`Passage.score` stays the retriever's own score (what `rag search` shows); the
fused score is `meta["fused_score"]` and the agreement count `meta["found_by"]`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace

from rag.types import Passage

RRF_K = 60
DUPLICATE_JACCARD = 0.8
CONTAINMENT = 0.9
_WORD = re.compile(r"\w+")


def _shingles(text: str, size: int = 3) -> frozenset[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < size:
        return frozenset({tuple(words)}) if words else frozenset()
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def is_near_duplicate(a: frozenset, b: frozenset) -> bool:
    """Jaccard overlap of word 3-shingles, or one passage (nearly) contained in the other."""
    if not a or not b:
        return False
    shared = len(a & b)
    return shared / len(a | b) >= DUPLICATE_JACCARD or shared / min(len(a), len(b)) >= CONTAINMENT


class _Group:
    """One piece of evidence and every list that found it."""

    __slots__ = ("passage", "shingles", "score", "best_rank", "first_list", "lists")

    def __init__(self, passage: Passage, shingles: frozenset, rank: int, list_index: int) -> None:
        self.passage = passage
        self.shingles = shingles
        self.score = 0.0
        self.best_rank = rank
        self.first_list = list_index
        self.lists: set[int] = set()


def merge_ranked(
    lists: Sequence[Sequence[Passage]],
    *,
    weights: Sequence[float] | None = None,
    k: int = RRF_K,
) -> list[Passage]:
    """One best-first ranking from several best-first lists, near-duplicates merged.

    `weights` (default all 1.0) scale each list's contributions, for a caller
    that trusts one source more. Returned passages are copies; inputs are untouched.
    """
    weights = list(weights) if weights is not None else [1.0] * len(lists)
    if len(weights) != len(lists):
        raise ValueError("one weight per list")
    groups: list[_Group] = []
    by_location: dict[str, _Group] = {}
    # Visit rank 1 of every list, then rank 2...: a duplicate is attached to the copy
    # that the fused order meets first, whichever list it came from.
    depth = max((len(p) for p in lists), default=0)
    for rank in range(1, depth + 1):
        for list_index, passages in enumerate(lists):
            if rank > len(passages):
                continue
            passage = passages[rank - 1]
            group = by_location.get(passage.location) if passage.location else None
            shingles = _shingles(passage.text)
            if group is None:
                group = next((g for g in groups if is_near_duplicate(shingles, g.shingles)), None)
            if group is None:
                group = _Group(passage, shingles, rank, list_index)
                groups.append(group)
            if passage.location:
                by_location.setdefault(passage.location, group)
            if list_index not in group.lists:  # one vote per list, from its best copy
                group.lists.add(list_index)
                group.score += weights[list_index] / (k + rank)
    ordered = sorted(
        enumerate(groups), key=lambda item: (-item[1].score, item[1].best_rank, item[0])
    )
    merged = []
    for _, group in ordered:
        p = group.passage
        meta = {**p.meta, "fused_score": round(group.score, 8), "found_by": len(group.lists)}
        merged.append(replace(p, meta=meta))
    return merged
