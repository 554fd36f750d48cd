"""BM25 over the index's chunks (SQLite FTS5) and reciprocal rank fusion with the dense results.

Why hybrid: MiniLM misses exact names, numbers and rare words that BM25 matches
trivially, and BM25 misses paraphrases. RRF fuses the two rankings without
having to calibrate their scores against each other.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

from rag.core import ranking
from rag.core.errors import IndexCorrupt

# Weighted RRF. The textbook k=60 with equal weights lost 4 points of recall@5 against
# dense alone on the NQ corpus of benchmarks/retrieval.py (0.934 vs 0.973): MiniLM is
# strong there and BM25 pulled lexical look-alikes into the top 5. A small k (the top
# ranks dominate) and half weight for BM25 kept dense quality (0.976) while a passage
# that BM25 ranks first still gets a large boost (exact names, codes, rare words).
RRF_K = 10
DENSE_WEIGHT = 1.0
BM25_WEIGHT = 0.5

_TERM = re.compile(r"\w\w+")
#: Function words that match nearly every chunk: they only slow a BM25 query down.
_STOPWORDS_TEXT = """
    a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for
    from further had has have having he her here hers herself him himself his how i if in
    into is it its itself just me more most my myself no nor not of off on once only or
    other our ours ourselves out over own same she should so some such than that the their
    theirs them themselves then there these they this those through to too under until up
    very was we were what when where which while who whom why will with would you your
    yours yourself yourselves"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())


def match_expression(query: str) -> str | None:
    """An FTS5 query matching any content word of `query` (each quoted: no FTS syntax)."""
    terms = [t for t in _TERM.findall(query.lower()) if t not in STOPWORDS]
    if not terms:
        return None
    return " OR ".join(f'"{t}"' for t in dict.fromkeys(terms))


def bm25_search(conn: sqlite3.Connection, query: str, n: int) -> list[tuple[int, float]]:
    """Top-n (chunk id, BM25 score), best first, from the index's FTS5 table (SQLite's
    bm25(): k1=1.2, b=0.75; porter-stemmed words). Chunks sharing no word are not returned."""
    expression = match_expression(query)
    if expression is None or n <= 0:
        return []
    try:
        rows = conn.execute(
            "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? "
            "ORDER BY rank LIMIT ?",
            (expression, n),
        ).fetchall()
    except sqlite3.DatabaseError as exc:
        raise IndexCorrupt(f"Cannot search the BM25 index: {exc}.") from None
    return [(int(i), float(s)) for i, s in rows]


def rrf(
    rankings: Sequence[Sequence[int]],
    weights: Sequence[float] | None = None,
    k: int = RRF_K,
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of chunk-id rankings (`rag.core.ranking.rrf`) with this
    module's k: score(d) = sum of weight / (k + rank), rank from 1."""
    return ranking.rrf(rankings, weights, k=k)
