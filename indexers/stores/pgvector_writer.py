"""Writing one `rag index` run into the pgvector store: one open transaction of the
writing session, committed whole (see indexers/stores/pgvector.py)."""

from __future__ import annotations

import contextlib
import functools
import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from indexers.chunking import Chunk
from indexers.stores.base import IndexState
from indexers.stores.pgvector_common import (
    KIND,
    clean_text,
    vector_text,
)
from indexers.stores.pgvector_owner import owner_row
from indexers.stores.pgvector_schema import PgSchema


@contextlib.contextmanager
def writes_of(schema: PgSchema) -> Iterator[None]:
    """A database error while writing as a RagError: never mistaken by `rag index` for a
    file that failed to load (it skips those and goes on)."""
    try:
        yield
    except Exception as exc:
        raise schema.as_rag_error(exc, writing=True) from None


def _writing_method(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapped(self: PgvectorWriter, *args: Any, **kwargs: Any) -> Any:
        with writes_of(self.schema):
            return method(self, *args, **kwargs)

    return wrapped


class PgvectorWriter:
    """The changes of one `rag index` run, in one open transaction of the writing session."""

    def __init__(
        self,
        schema: PgSchema,
        conn: Any,
        params: dict[str, Any],
        base: IndexState | None,
        approx_threshold: int,
    ) -> None:
        self.schema, self.conn, self.params = schema, conn, params
        self.base = base
        self.approx_threshold = approx_threshold
        self.dim = int(params["dim"])
        t = schema.table
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema.name}"')
        if base is None:  # a new embedder may give vectors of another size: a new table
            (old_dim,) = conn.execute(
                "SELECT (SELECT atttypmod FROM pg_attribute WHERE attrelid = c.oid "
                "AND attname = 'embedding') FROM (SELECT to_regclass(%s) AS oid) c",
                (t("chunks"),),
            ).fetchone()
            if old_dim is not None and old_dim != self.dim:
                conn.execute(f"DROP TABLE {t('chunks')}")
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t('meta')} (key text PRIMARY KEY, value jsonb NOT NULL)"
        )
        ident = schema.identity
        if not ident.attached and ident.index_id:  # whose it is, committed with the data
            conn.execute(
                f"INSERT INTO {t('meta')} VALUES ('owner', %s::jsonb) ON CONFLICT DO NOTHING",
                (owner_row(schema.label, ident.index_id),),
            )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t('files')} (path text PRIMARY KEY, "
            "sha256 text NOT NULL, size bigint NOT NULL, mtime_ns bigint NOT NULL, "
            "chunks integer NOT NULL, indexed_at double precision NOT NULL)"
        )
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t('chunks')} (id bigint PRIMARY KEY, "
            "path text NOT NULL, title text NOT NULL, location text NOT NULL, "
            'text text NOT NULL, start integer NOT NULL, "end" integer NOT NULL, '
            f"tokens integer NOT NULL, embedding vector({self.dim}) NOT NULL, "
            "tsv tsvector GENERATED ALWAYS AS "
            "(to_tsvector('english', title || ' ' || text)) STORED)"
        )
        conn.execute(f"CREATE INDEX IF NOT EXISTS chunks_path ON {t('chunks')} (path)")
        conn.execute(f"CREATE INDEX IF NOT EXISTS chunks_tsv ON {t('chunks')} USING gin (tsv)")
        if base is None:  # from nothing (a new index or --rebuild): no row of the old stays.
            # DELETE, not TRUNCATE: TRUNCATE locks readers out until the run commits, and
            # then shows them an empty table instead of the version they started reading.
            conn.execute(f"DELETE FROM {t('chunks')}")
            conn.execute(f"DELETE FROM {t('files')}")
        (last,) = conn.execute(f"SELECT coalesce(max(id), 0) FROM {t('chunks')}").fetchone()
        self.next_id = int(last) + 1
        self.added: dict[str, int] = {}

    @_writing_method
    def remove_paths(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        if paths:
            t = self.schema.table
            self.conn.execute(f"DELETE FROM {t('chunks')} WHERE path = ANY(%s)", (paths,))
            self.conn.execute(f"DELETE FROM {t('files')} WHERE path = ANY(%s)", (paths,))

    @_writing_method
    def add_chunks(self, path: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        columns = 'id, path, title, location, text, start, "end", tokens, embedding'
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY {self.schema.table('chunks')} ({columns}) FROM STDIN") as copy,
        ):
            for chunk, vector in zip(chunks, vectors, strict=True):
                copy.write_row(
                    (
                        self.next_id, clean_text(path), clean_text(chunk.title),
                        clean_text(chunk.location), clean_text(chunk.text), chunk.start,
                        chunk.end, chunk.tokens,
                        vector_text(vector),
                    )
                )  # fmt: skip
                self.next_id += 1
        self.added[path] = self.added.get(path, 0) + len(chunks)

    @_writing_method
    def add_file(self, path: str, sha256: str, size: int, mtime_ns: int) -> None:
        self.conn.execute(
            f"INSERT INTO {self.schema.table('files')} VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, chunks = excluded.chunks, "
            "indexed_at = excluded.indexed_at",
            (clean_text(path), sha256, size, mtime_ns, self.added.get(path, 0), time.time()),
        )

    @_writing_method
    def discard_file(self, path: str) -> None:
        self.conn.execute(
            f"DELETE FROM {self.schema.table('chunks')} WHERE path = %s", (clean_text(path),)
        )
        self.added.pop(path, None)

    @_writing_method
    def commit(self) -> IndexState:
        t = self.schema.table
        (chunks, tokens) = self.conn.execute(
            f"SELECT count(*), coalesce(avg(tokens), 0) FROM {t('chunks')}"
        ).fetchone()
        (files,) = self.conn.execute(f"SELECT count(*) FROM {t('files')}").fetchone()
        approximate = chunks > self.approx_threshold
        if approximate:
            self.conn.execute(
                f"CREATE INDEX IF NOT EXISTS chunks_hnsw ON {t('chunks')} "
                "USING hnsw (embedding vector_ip_ops)"
            )
        else:
            self.conn.execute(f'DROP INDEX IF EXISTS "{self.schema.name}".chunks_hnsw')
        generation = (self.base.generation if self.base else 0) + 1
        self.params.update(
            chunks=int(chunks), files=int(files), vectors="hnsw" if approximate else "exact",
            mean_tokens=float(tokens), approx_threshold=self.approx_threshold,
            updated_at=time.time(), store=KIND,
        )  # fmt: skip
        self.params.pop("faiss", None)
        self.params.pop("segments", None)
        for key, value in (("params", self.params), ("generation", generation)):
            self.conn.execute(
                f"INSERT INTO {t('meta')} VALUES (%s, %s::jsonb) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )
        self.conn.commit()
        return IndexState(self.params, generation)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.rollback()
