"""The `pgvector` store: an index kept in PostgreSQL with the pgvector extension.

For a corpus or a team that outgrows one laptop: the server can be shared, replicated and
backed up like any PostgreSQL database. Each index is one schema (`rag_<name>_<hash>`):

    meta    params (embedder, dim, counts, roots, ...) and the generation number
    files   path, sha256, size, mtime_ns: what `rag index` compares to skip unchanged files
    chunks  id, path, title, location, text, offsets, tokens, embedding vector(dim), and
            tsv, PostgreSQL's English text-search vector of the title and text (GIN index)

A `rag index` run is one transaction, so readers see the previous version until it
commits, and a killed run (its connection gone) is rolled back by the server. One writer
per index: a session advisory lock. Dense search is exact inner product (`<#>`) up to
APPROX_THRESHOLD chunks, then HNSW. BM25 (k1=1.2, b=0.75, as SQLite's FTS5 scores it)
is computed in SQL over the text-search vectors, with chunk length in tokens.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from indexers import ownership, store, target
from indexers.stores.base import FileTable, IndexState
from indexers.stores.pgvector_common import (
    CONNECT_TIMEOUT_S,
    KIND,
    URL_ENV,
    as_rag_error,
    fingerprint_of,
    first_line,
    schema_name,
    shown_url,
)
from indexers.stores.pgvector_reader import PgvectorReader
from indexers.stores.pgvector_writer import PgvectorWriter, writes_of
from rag.config import Settings
from rag.errors import (
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
    StoreUnavailable,
    UsageError,
)


class PgvectorStore:
    kind = KIND

    def __init__(self, label: str, index_dir: Path, settings: Settings, url: str = "") -> None:
        self.label = label
        self.index_dir = index_dir
        self.settings = settings
        self.url = url
        self.schema = self._recorded_schema() or schema_name(label, index_dir)
        self._writing: Any = None  # the connection of a `rag index` run, inside writing()

    def _recorded_schema(self) -> str | None:
        try:
            data = json.loads((self.index_dir / ownership.MARKER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        schema = data.get("schema") if isinstance(data, dict) else None
        return schema if isinstance(schema, str) and re.fullmatch(r"[a-z0-9_]+", schema) else None

    def where(self) -> str:
        return f"{shown_url(self.url)} schema {self.schema}"

    # -- connections ------------------------------------------------------------------
    def connect(self, autocommit: bool = True) -> Any:
        """A connection, or a one-line error naming the setting when there is none."""
        if not self.url:
            raise UsageError(
                f"Index {self.label!r} is in the pgvector store, but no server is set: add "
                f'a [stores.pgvector] section with url = "postgresql://USER@HOST:5432/DB" '
                f"to {self.settings.home / 'config.toml'} (or set {URL_ENV})."
            )
        try:
            import psycopg
        except ImportError:
            raise UsageError(
                "The pgvector store needs psycopg: pip install 'pocketrag[postgres]'."
            ) from None
        try:
            return psycopg.connect(
                self.url, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S
            )
        except (psycopg.Error, ValueError) as exc:
            raise StoreUnavailable(
                f"Cannot reach the pgvector store at {shown_url(self.url)} "
                f"({first_line(exc, self.url)}). Start "
                f"the server, or fix [stores.pgvector] url in "
                f"{self.settings.home / 'config.toml'} (or {URL_ENV})."
            ) from None

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        conn = self.connect()
        try:
            yield conn
        except Exception as exc:
            raise as_rag_error(exc, self) from None
        finally:
            conn.close()

    def _table(self, name: str) -> str:
        return f'"{self.schema}".{name}'

    def _read_state(self, conn: Any) -> IndexState | None:
        exists = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name = 'meta'",
            (self.schema,),
        ).fetchone()
        if not exists:
            return None
        rows = dict(conn.execute(f"SELECT key, value FROM {self._table('meta')}").fetchall())
        if "params" not in rows:
            return None  # created, never committed
        params, generation = rows["params"], rows.get("generation")
        if not isinstance(params, dict) or not isinstance(generation, int):
            raise IndexCorrupt(f"The meta table of schema {self.schema} is not pocketrag's.")
        store.check_params(Path(self.schema), params)
        return IndexState(params, generation)

    # -- the IndexStore seam -------------------------------------------------------------
    def state(self, *, allow_outdated: bool = False) -> IndexState | None:
        if self._writing is not None:
            return self._read_state(self._writing)
        if not self.index_dir.exists():
            return None
        with self._session() as conn:
            return self._read_state(conn)

    def file_table(self, state: IndexState) -> FileTable:
        conn = self._writing
        with contextlib.nullcontext(conn) if conn is not None else self._session() as c:
            rows = c.execute(
                f"SELECT path, sha256, size, mtime_ns FROM {self._table('files')}"
            ).fetchall()
        return {p: (h, int(s), int(m)) for p, h, s, m in rows}

    @contextlib.contextmanager
    def writing(self, roots: Sequence[Path], wait: float) -> Iterator[None]:
        if store.is_path_name(self.label):
            target.check_target(self.index_dir, self.label, roots)
        conn = self.connect(autocommit=True)
        made: list[Path] = []
        marker_is_ours = False
        completed = False
        try:
            self._lock(conn, wait)
            try:
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except Exception as exc:
                raise StoreUnavailable(
                    f"The PostgreSQL server at {shown_url(self.url)} cannot load pgvector "
                    f"({first_line(exc, self.url)}). Install the extension there "
                    "(CREATE EXTENSION vector), or use another [stores.pgvector] url."
                ) from None
            made = target.make_index_dir(self.index_dir)
            if not ownership.has_marker(self.index_dir):
                marker_is_ours = True
                ownership.write_marker(self.index_dir, store=KIND, schema=self.schema)
            completed = self._read_state(conn) is not None
            conn.autocommit = False
            self._writing = conn
            yield
        except BaseException as exc:
            with contextlib.suppress(Exception):
                conn.rollback()
                conn.autocommit = True
                if not completed and self._read_state(conn) is None:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            if not completed:
                if made and made[0] == self.index_dir:
                    import shutil

                    shutil.rmtree(self.index_dir, ignore_errors=True)
                elif marker_is_ours:
                    (self.index_dir / ownership.MARKER).unlink(missing_ok=True)
            if isinstance(exc, Exception) and not isinstance(exc, OSError):
                raise as_rag_error(exc, self) from None
            raise
        finally:
            self._writing = None
            with contextlib.suppress(Exception):
                # Released now, not when the server notices the closed connection: a run
                # started right after this one must not find the lock still held.
                conn.rollback()
                conn.autocommit = True
                conn.execute("SELECT pg_advisory_unlock_all()")
            with contextlib.suppress(Exception):
                conn.close()

    def _lock(self, conn: Any, wait: float) -> None:
        deadline = time.monotonic() + wait
        while True:
            (got,) = conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (self.schema,)
            ).fetchone()
            if got:
                return
            if time.monotonic() >= deadline:
                raise IndexBusy(
                    f"Another `rag index` is writing index {self.label!r} "
                    f"({self.where()}). Wait for it to finish, or pass --wait SECONDS to "
                    "queue behind it."
                )
            time.sleep(0.2)

    def writer(
        self, params: dict[str, Any], base: IndexState | None, approx_threshold: int
    ) -> PgvectorWriter:
        if self._writing is None:
            raise RuntimeError("writer() outside writing()")
        with writes_of(self):
            return PgvectorWriter(self, self._writing, params, base, approx_threshold)

    def reader(self) -> PgvectorReader:
        conn = self.connect()
        try:
            state = self._read_state(conn)
        except Exception as exc:
            conn.close()
            raise as_rag_error(exc, self) from None
        if state is None:
            conn.close()
            if not self.index_dir.exists():
                raise IndexNotFound(
                    f"No index named {self.label!r} (looked in {self.index_dir}). Create it "
                    "with `rag index PATH --name NAME`, or see `rag indexes list`."
                )
            raise IndexNotFound(
                f"Index {self.label!r} ({self.where()}) was never completed. "
                f"Run `rag index PATH --name {self.label}` to build it."
            )
        return PgvectorReader(self, conn, state)

    def fingerprint(self) -> dict[str, Any] | None:
        with self._session() as conn:
            state = self._read_state(conn)
        return fingerprint_of(self, state) if state is not None else None

    def verify(self) -> IndexState:
        reader = self.reader()
        try:
            with reader.snapshot():
                (count,) = reader.conn.execute(
                    f"SELECT count(*) FROM {self._table('chunks')}"
                ).fetchone()
                dims = reader.conn.execute(
                    f"SELECT DISTINCT vector_dims(embedding) FROM "
                    f"(SELECT embedding FROM {self._table('chunks')} LIMIT 1) s"
                ).fetchall()
        except Exception as exc:
            raise as_rag_error(exc, self) from None
        finally:
            reader.close()
        params = reader.state.params
        if count != params["chunks"]:
            raise IndexCorrupt(
                f"Schema {self.schema} holds {count} chunks, its params say {params['chunks']}."
            )
        if dims and dims[0][0] != params["dim"]:
            raise IndexCorrupt(f"Schema {self.schema} holds {dims[0][0]}-dim vectors.")
        return reader.state

    def stats(self) -> dict[str, Any]:
        with self._session() as conn:
            (size,) = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (self.schema,),
            ).fetchone()
        return {"store": KIND, "where": self.where(), "bytes": int(size)}

    def remove(self) -> list[str]:
        if not self.index_dir.is_dir():
            raise IndexNotFound(
                f"No index named {self.label!r} (looked in {self.index_dir}). "
                "See `rag indexes list`."
            )
        with self._session() as conn:
            (got,) = conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (self.schema,)
            ).fetchone()
            if not got:
                raise IndexBusy(
                    f"`rag index` is writing {self.label!r} right now; remove it after that."
                )
            conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
            conn.execute("SELECT pg_advisory_unlock_all()")
        return ownership.remove_index(self.index_dir, self.label)
