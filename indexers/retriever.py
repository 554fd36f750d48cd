"""`IndexRetriever`: the Retriever seam over an index (dense vectors + BM25, fused by RRF).

Opened through `rag.sources.build_retriever("index:NAME", settings)`, so `rag search`,
`rag ask` and the eval suite all query an index the same way. Opening runs the checks
of `rag indexes info` (a damaged index is IndexCorrupt, exit 1) and checks the embedder
(querying with a different model than the index was built with is a UsageError); the
model itself loads on the first query. The store (`indexers.stores`) finds candidates and
fetches chunks; fusing them is the retriever's own work, the same for every store.
"""

from __future__ import annotations

import threading
from typing import Any

from indexers import stores
from indexers.embedders import (
    Embedder,
    check_embedder,
    embed_query,
    get_embedder,
    runtime_for_index,
)
from indexers.hybrid import BM25_WEIGHT, DENSE_WEIGHT, rrf
from indexers.model_files import canonical_name
from rag.core.config import Settings
from rag.core.errors import IndexCorrupt, UsageError
from rag.core.types import Passage

CANDIDATES = 50  # per ranker before fusion; RRF needs depth beyond k to reorder well


class IndexRetriever:
    """Query one committed version of an index, in whichever store holds it; `name` is
    `index:NAME`."""

    def __init__(
        self,
        label: str,
        reader: stores.IndexReader,
        embedder_name: str,
        hybrid: bool,
        runtime: str = "onnx|torch",
    ) -> None:
        self.label = label
        self.name = f"index:{label}"
        self.reader = reader
        self.params = reader.state.params
        self.embedder_name = embedder_name
        self.hybrid = hybrid
        self.runtime = runtime  # the index's own kind of vectors: see runtime_for_index
        self._lock = threading.Lock()
        self._embedder: Embedder | None = None

    @classmethod
    def open(cls, name: str, settings: Settings) -> IndexRetriever:
        """Open index `name` (or a folder path) for querying with `settings.embedder`."""
        reader = stores.open_store(name, settings).reader()
        try:
            params = reader.state.params
            built_with = check_embedder(
                name, params, canonical_name(settings.embedder), building=False
            )
            runtime = runtime_for_index(
                params.get("embedder_runtime"), settings.embedder_runtime, name
            )
        except BaseException:
            reader.close()
            raise
        return cls(name, reader, built_with, settings.hybrid, runtime)

    def fingerprint(self) -> dict[str, Any]:
        """Which version of the index this retriever reads (for eval manifests)."""
        return self.reader.fingerprint()

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            embedder = get_embedder(self.embedder_name, self.runtime)
            if embedder.dim != self.params["dim"]:
                raise UsageError(
                    f"Embedder {self.embedder_name!r} gives {embedder.dim}-dim vectors; "
                    f"index {self.label!r} holds {self.params['dim']}-dim ones. "
                    f"Rebuild it with `rag index PATH --name {self.label} --rebuild`."
                )
            self._embedder = embedder
        return self._embedder

    def dense(self, query: str, n: int) -> list[tuple[int, float]]:
        """Top-n (chunk id, cosine similarity) from the store's vectors."""
        if not self.params["chunks"] or n <= 0:
            return []
        return self.reader.dense(embed_query(self.embedder, query), n)

    def sparse(self, query: str, n: int) -> list[tuple[int, float]]:
        return self.reader.bm25(query, n)

    def retrieve(self, query: str, k: int) -> list[Passage]:
        """The k best passages, best first. Score: RRF when hybrid, else cosine similarity."""
        if not query.strip():
            raise UsageError("The query is empty: give some words to search for.")
        if k <= 0:
            return []
        with self._lock, self.reader.snapshot():
            depth = max(CANDIDATES, k * 3)
            dense = self.dense(query, depth)
            if self.hybrid:
                sparse = self.sparse(query, depth)
                fused = rrf(
                    [[i for i, _ in dense], [i for i, _ in sparse]], [DENSE_WEIGHT, BM25_WEIGHT]
                )[:k]
                extra = {
                    "dense": {i: (r, s) for r, (i, s) in enumerate(dense, 1)},
                    "bm25": {i: (r, s) for r, (i, s) in enumerate(sparse, 1)},
                }
            else:
                fused, extra = (
                    dense[:k],
                    {"dense": {i: (r, s) for r, (i, s) in enumerate(dense, 1)}},
                )
            return self._passages(fused, extra)

    def _passages(
        self, ranked: list[tuple[int, float]], extra: dict[str, dict[int, tuple[int, float]]]
    ) -> list[Passage]:
        if not ranked:
            return []
        rows = self.reader.fetch([i for i, _ in ranked])
        passages = []
        for chunk_id, score in ranked:
            row = rows.get(chunk_id)
            if row is None or not all(isinstance(v, str) for v in row[:4]):
                what = "has no chunk row" if row is None else "has a chunk row that is not text"
                raise IndexCorrupt(
                    f"Index {self.label!r} is damaged: vector {chunk_id} {what}. "
                    f"Rebuild it with `rag index PATH --name {self.label} --rebuild`."
                )
            path, title, location, text, start, end = row
            meta: dict[str, Any] = {"path": path, "start": start, "end": end, "chunk_id": chunk_id}
            for ranker, hits in extra.items():
                if chunk_id in hits:
                    meta[f"{ranker}_rank"], meta[f"{ranker}_score"] = (
                        hits[chunk_id][0],
                        round(hits[chunk_id][1], 6),
                    )
            passages.append(Passage(text, title, location, self.name, float(score), meta))
        return passages

    def close(self) -> None:
        self.reader.close()


def search_index(name: str, query: str, k: int, settings: Settings) -> list[Passage]:
    """One-shot convenience for scripts: open, query, close."""
    retriever = IndexRetriever.open(name, settings)
    try:
        return retriever.retrieve(query, k)
    finally:
        retriever.close()


__all__ = ["IndexRetriever", "search_index"]
