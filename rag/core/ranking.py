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
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import TypeVar

from rag.core.types import Passage

RRF_K = 60
DUPLICATE_JACCARD = 0.8
CONTAINMENT = 0.9
_WORD = re.compile(r"\w+")
Key = TypeVar("Key", bound=Hashable)


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


def rrf(
    rankings: Sequence[Sequence[Key]],
    weights: Sequence[float] | None = None,
    *,
    k: int = RRF_K,
) -> list[tuple[Key, float]]:
    """Weighted reciprocal-rank fusion of best-first rankings of keys: (key, score), best first.

    A key earns weight / (k + rank) from each ranking it is in (rank from 1, its position
    in that ranking; a key repeated in one ranking votes once, from its best rank). Equal
    scores go to the smaller key. `weights` default to 1.0 each. Contributions are added in
    the order `merge_ranked` meets passages: rank 1 of every ranking, then rank 2...
    """
    weights = list(weights) if weights is not None else [1.0] * len(rankings)
    if len(weights) != len(rankings):
        raise ValueError("one weight per list")
    scores: dict[Key, float] = {}
    voted: list[set[Key]] = [set() for _ in rankings]
    depth = max((len(r) for r in rankings), default=0)
    for rank in range(1, depth + 1):
        for ranking, weight, seen in zip(rankings, weights, voted, strict=True):
            if rank > len(ranking) or ranking[rank - 1] in seen:
                continue
            key = ranking[rank - 1]
            seen.add(key)
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


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
    groups: list[tuple[Passage, frozenset]] = []  # a piece of evidence: its kept copy
    by_location: dict[str, int] = {}
    rankings: list[list[int]] = [[] for _ in lists]  # each list as group numbers
    # Visit rank 1 of every list, then rank 2...: a duplicate is attached to the copy
    # that the fused order meets first, whichever list it came from. Groups are numbered
    # in that order, so at equal scores `rrf` puts the one met first (best rank) first.
    depth = max((len(p) for p in lists), default=0)
    for rank in range(1, depth + 1):
        for list_index, passages in enumerate(lists):
            if rank > len(passages):
                continue
            passage = passages[rank - 1]
            group = by_location.get(passage.location) if passage.location else None
            shingles = _shingles(passage.text)
            if group is None:
                group = next(
                    (g for g, (_, s) in enumerate(groups) if is_near_duplicate(shingles, s)),
                    None,
                )
            if group is None:
                group = len(groups)
                groups.append((passage, shingles))
            if passage.location:
                by_location.setdefault(passage.location, group)
            rankings[list_index].append(group)
    found_by = Counter(g for ranking in rankings for g in set(ranking))
    merged = []
    for group, score in rrf(rankings, weights, k=k):
        p = groups[group][0]
        meta = {**p.meta, "fused_score": round(score, 8), "found_by": found_by[group]}
        merged.append(replace(p, meta=meta))
    return merged
