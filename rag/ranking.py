"""Merge passages from several sources into one ranking.

Scores from different retrievers are not comparable (a web engine gives only a
rank, a dense index a cosine, BM25 an unbounded number), so sources compete by
reciprocal-rank fusion: each passage earns 1/(K + rank) in its own list. Near
duplicates (the same page found twice, a snippet inside a fetched page) keep
only their best-ranked copy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag.types import Passage

RRF_K = 60
DUPLICATE_JACCARD = 0.8
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
    return shared / len(a | b) >= DUPLICATE_JACCARD or shared / min(len(a), len(b)) >= 0.9


def merge_ranked(lists: Sequence[Sequence[Passage]]) -> list[Passage]:
    """One ranking from several best-first lists: fused by rank, near-duplicates dropped."""
    fused: list[tuple[float, int, Passage]] = []
    for list_index, passages in enumerate(lists):
        for rank, passage in enumerate(passages, start=1):
            fused.append((1.0 / (RRF_K + rank), -list_index, passage))
    # Equal fused scores (same rank in two lists) keep the order the sources were given in.
    fused.sort(key=lambda item: (item[0], item[1]), reverse=True)
    kept: list[Passage] = []
    kept_shingles: list[frozenset] = []
    seen_locations: set[str] = set()
    for _, _, passage in fused:
        if passage.location in seen_locations:
            continue
        shingles = _shingles(passage.text)
        if any(is_near_duplicate(shingles, other) for other in kept_shingles):
            continue
        kept.append(passage)
        kept_shingles.append(shingles)
        seen_locations.add(passage.location)
    return kept
