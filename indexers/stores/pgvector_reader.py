"""Reading the pgvector store: dense search, BM25 in SQL and fetching chunks, each query
in one snapshot (see indexers/stores/pgvector.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from indexers.stores.base import ChunkRow, IndexState, iter_rows
from indexers.stores.pgvector_common import (
    K1,
    B,
    clean_text,
    fingerprint_of,
    vector_text,
)
from indexers.stores.pgvector_schema import PgSchema
from rag.core.errors import (
    IndexNotFound,
    RagError,
)

_BM25 = """
WITH q AS MATERIALIZED (
    SELECT DISTINCT lexeme FROM unnest(to_tsvector('english', %(query)s))
),
hits AS MATERIALIZED (
    SELECT c.id, c.tokens, u.lexeme, coalesce(array_length(u.positions, 1), 1) AS tf
    FROM {chunks} c CROSS JOIN LATERAL unnest(c.tsv) u
    WHERE c.tsv @@ (SELECT string_agg(quote_literal(lexeme), ' | ')::tsquery FROM q)
        AND u.lexeme IN (SELECT lexeme FROM q)
),
df AS (SELECT lexeme, count(*) AS n FROM hits GROUP BY lexeme)
SELECT h.id, sum(
    ln(1 + (%(docs)s - df.n + 0.5) / (df.n + 0.5))
    * h.tf * (%(k1)s + 1) / (h.tf + %(k1)s * (1 - %(b)s + %(b)s * h.tokens / %(avgdl)s))
) AS score
FROM hits h JOIN df USING (lexeme)
GROUP BY h.id ORDER BY score DESC, h.id LIMIT %(n)s
"""


class PgvectorReader:
    """Queries over one connection; each query's calls share one snapshot."""

    def __init__(self, schema: PgSchema, conn: Any, state: IndexState) -> None:
        self.schema, self.conn, self.state = schema, conn, state
        self._in_snapshot = False

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        try:
            if self.conn.closed or self.conn.broken:  # the server restarted since: reconnect
                self.conn.close()
                self.conn = self.schema.connect()
            with self.conn.transaction():
                self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                self._follow(self.schema.read_state(self.conn))
                if self.state.params.get("vectors") == "hnsw":
                    self.conn.execute("SET LOCAL hnsw.ef_search = 200")
                self._in_snapshot = True
                yield
        except Exception as exc:
            raise self.schema.as_rag_error(exc) from None
        finally:
            self._in_snapshot = False

    def _follow(self, state: IndexState | None) -> None:
        """Read the version this snapshot sees: `rag index` may have committed since the
        reader opened, and BM25's counts, `fingerprint` and `verify` must be that version's."""
        if state is not None and state.generation == self.state.generation:
            return
        label = self.schema.label
        if state is None:
            raise IndexNotFound(
                f"Index {label!r} ({self.schema.where()}) was removed while in use. "
                f"Rebuild it with `rag index PATH --name {label}`, or see `rag indexes list`."
            )
        if any(state.params.get(k) != self.state.params.get(k) for k in ("embedder_id", "dim")):
            raise RagError(
                f"Index {label!r} was rebuilt with another embedder while in use: run the "
                "command again."
            )
        self.state = state

    def _run(self, query: str, args: Any) -> list[Any]:
        try:
            return self.conn.execute(query, args).fetchall()
        except Exception as exc:
            raise self.schema.as_rag_error(exc) from None

    def dense(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        if n <= 0:
            return []
        q = vector_text(np.asarray(vector).reshape(-1))
        rows = self._run(
            f"SELECT id, -(embedding <#> %s::vector) FROM {self.schema.table('chunks')} "
            "ORDER BY embedding <#> %s::vector LIMIT %s",
            (q, q, n),
        )
        return [(int(i), float(s)) for i, s in rows]

    def bm25(self, query: str, n: int) -> list[tuple[int, float]]:
        docs = int(self.state.params.get("chunks", 0))
        if n <= 0 or not docs or not query.strip():
            return []
        avgdl = float(self.state.params.get("mean_tokens") or 1.0)
        rows = self._run(
            _BM25.format(chunks=self.schema.table("chunks")),
            {"query": clean_text(query), "docs": docs, "k1": K1, "b": B, "avgdl": avgdl, "n": n},
        )
        return [(int(i), float(s)) for i, s in rows]

    def fetch(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        rows = self._run(
            f'SELECT id, path, title, location, text, start, "end" FROM '
            f"{self.schema.table('chunks')} WHERE id = ANY(%s)",
            (list(map(int, ids)),),
        )
        return dict(iter_rows(rows))

    def fingerprint(self) -> dict[str, Any]:
        return fingerprint_of(self.schema.where(), self.state)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
