"""BM25 over the index's chunks (bm25s) and reciprocal rank fusion with the dense results.

Why hybrid: MiniLM misses exact names, numbers and rare words that BM25 matches
trivially, and BM25 misses paraphrases. RRF fuses the two rankings without
having to calibrate their scores against each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rag.errors import IndexCorrupt

# Weighted RRF. The textbook k=60 with equal weights lost 4 points of recall@5 against
# dense alone on the NQ corpus of benchmarks/retrieval.py (0.934 vs 0.973): MiniLM is
# strong there and BM25 pulled lexical look-alikes into the top 5. A small k (the top
# ranks dominate) and half weight for BM25 kept dense quality (0.976) while a passage
# that BM25 ranks first still gets a large boost (exact names, codes, rare words).
RRF_K = 10
DENSE_WEIGHT = 1.0
BM25_WEIGHT = 0.5
BM25_DIR = "bm25"
IDS_FILE = "bm25_ids.npy"


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)  # type: ignore[return-value]


def build_bm25(ids: np.ndarray, texts: Sequence[str], out_dir: Path) -> None:
    """Index `texts` (row i is chunk ids[i]) and save into `out_dir/bm25`."""
    import bm25s

    retriever = bm25s.BM25()
    target = out_dir / BM25_DIR
    target.mkdir(parents=True, exist_ok=True)
    if len(texts):
        retriever.index(_tokenize(texts), show_progress=False)
        retriever.save(str(target), show_progress=False)
    np.save(target / IDS_FILE, np.asarray(ids, dtype=np.int64))


class BM25Index:
    """A loaded bm25s index mapping its row numbers back to chunk ids."""

    def __init__(self, gen_dir: Path) -> None:
        import bm25s

        folder = gen_dir / BM25_DIR
        try:
            self.ids = np.load(folder / IDS_FILE)
            self.retriever = (
                bm25s.BM25.load(str(folder), show_progress=False) if len(self.ids) else None
            )
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorrupt(f"Cannot read the BM25 index in {folder}: {exc}.") from None

    def search(self, query: str, n: int) -> list[tuple[int, float]]:
        """Top-n (chunk id, BM25 score), best first; chunks sharing no query term are dropped."""
        if self.retriever is None or n <= 0:
            return []
        tokens = _tokenize([query])
        vocab: dict[str, Any] = self.retriever.vocab_dict
        tokens = [[t for t in tokens[0] if t in vocab]]
        if not tokens[0]:
            return []
        n = min(n, len(self.ids))
        rows, scores = self.retriever.retrieve(tokens, k=n, show_progress=False, n_threads=1)
        return [
            (int(self.ids[r]), float(s))
            for r, s in zip(rows[0], scores[0], strict=False)
            if float(s) > 0.0
        ]


def rrf(
    rankings: Sequence[Sequence[int]],
    weights: Sequence[float] | None = None,
    k: int = RRF_K,
) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion: score(d) = sum of weight / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranking, weight in zip(rankings, weights or [1.0] * len(rankings), strict=True):
        for rank, doc in enumerate(ranking, start=1):
            scores[doc] = scores.get(doc, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))
