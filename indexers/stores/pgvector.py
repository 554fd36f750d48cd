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
import hashlib
import json
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from indexers import ownership, store, target
from indexers.chunking import Chunk
from indexers.stores.base import ChunkRow, FileTable, IndexState, iter_rows
from rag.config import Settings
from rag.errors import IndexBusy, IndexCorrupt, IndexNotFound, StoreUnavailable, UsageError

KIND = "pgvector"
URL_ENV = "RAG_STORE_PGVECTOR_URL"
K1, B = 1.2, 0.75
CONNECT_TIMEOUT_S = 5


def shown_url(url: str) -> str:
    """`url` without its password, for messages and `rag indexes info`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def schema_name(label: str, index_dir: Path) -> str:
    """A schema per index: readable, and distinct for names that read alike (`a.b`, `a_b`)."""
    key = str(index_dir) if store.is_path_name(label) else label
    readable = re.sub(r"[^a-z0-9_]", "_", Path(label).name.lower())[:40]
    return f"rag_{readable}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(map(str, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def _clean(text: str) -> str:
    return text.replace("\x00", "")  # PostgreSQL text cannot hold NUL; SQLite could


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
                f"Index {self.label!r} is in the pgvector store, but no server is set: put "
                f'`[stores.pgvector]\\nurl = "postgresql://USER@HOST:5432/DB"` in '
                f"{self.settings.home / 'config.toml'} (or set {URL_ENV})."
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
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise StoreUnavailable(
                f"Cannot reach the pgvector store at {shown_url(self.url)} ({reason}). Start "
                f"the server, or fix [stores.pgvector] url in "
                f"{self.settings.home / 'config.toml'} (or {URL_ENV})."
            ) from None

    @contextlib.contextmanager
    def _session(self) -> Iterator[Any]:
        conn = self.connect()
        try:
            yield conn
        except Exception as exc:
            raise _as_rag_error(exc, self) from None
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
        store.check_params(Path(self.schema), {"faiss": "", "segments": [], **params})
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
                    f"({_first_line(exc)}). Install the extension there (CREATE EXTENSION "
                    "vector), or use another [stores.pgvector] url."
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
                raise _as_rag_error(exc, self) from None
            raise
        finally:
            self._writing = None
            with contextlib.suppress(Exception):
                conn.close()  # ends the session: its advisory lock goes with it

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
        return PgvectorWriter(self, self._writing, params, base, approx_threshold)

    def reader(self) -> PgvectorReader:
        conn = self.connect()
        try:
            state = self._read_state(conn)
        except Exception as exc:
            conn.close()
            raise _as_rag_error(exc, self) from None
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
        return _fingerprint(self, state) if state is not None else None

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
            raise _as_rag_error(exc, self) from None
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
        return ownership.remove_index(self.index_dir, self.label)


class PgvectorWriter:
    """The changes of one `rag index` run, in one open transaction of the writing session."""

    def __init__(
        self,
        index: PgvectorStore,
        conn: Any,
        params: dict[str, Any],
        base: IndexState | None,
        approx_threshold: int,
    ) -> None:
        self.index, self.conn, self.params = index, conn, params
        self.base = base
        self.approx_threshold = approx_threshold
        self.dim = int(params["dim"])
        t = index._table
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{index.schema}"')
        conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t('meta')} (key text PRIMARY KEY, value jsonb NOT NULL)"
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
        if base is None:  # from nothing (a new index or --rebuild): no row of the old stays
            conn.execute(f"TRUNCATE {t('chunks')}, {t('files')}")
        (last,) = conn.execute(f"SELECT coalesce(max(id), 0) FROM {t('chunks')}").fetchone()
        self.next_id = int(last) + 1
        self.added: dict[str, int] = {}

    def remove_paths(self, paths: Iterable[str]) -> None:
        paths = list(paths)
        if paths:
            t = self.index._table
            self.conn.execute(f"DELETE FROM {t('chunks')} WHERE path = ANY(%s)", (paths,))
            self.conn.execute(f"DELETE FROM {t('files')} WHERE path = ANY(%s)", (paths,))

    def add_chunks(self, path: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        columns = 'id, path, title, location, text, start, "end", tokens, embedding'
        with (
            self.conn.cursor() as cur,
            cur.copy(f"COPY {self.index._table('chunks')} ({columns}) FROM STDIN") as copy,
        ):
            for chunk, vector in zip(chunks, vectors, strict=True):
                copy.write_row(
                    (
                        self.next_id, _clean(path), _clean(chunk.title), _clean(chunk.location),
                        _clean(chunk.text), chunk.start, chunk.end, chunk.tokens,
                        vector_text(vector),
                    )
                )  # fmt: skip
                self.next_id += 1
        self.added[path] = self.added.get(path, 0) + len(chunks)

    def add_file(self, path: str, sha256: str, size: int, mtime_ns: int) -> None:
        self.conn.execute(
            f"INSERT INTO {self.index._table('files')} VALUES (%s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (path) DO UPDATE SET sha256 = excluded.sha256, size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, chunks = excluded.chunks, "
            "indexed_at = excluded.indexed_at",
            (_clean(path), sha256, size, mtime_ns, self.added.get(path, 0), time.time()),
        )

    def discard_file(self, path: str) -> None:
        self.conn.execute(
            f"DELETE FROM {self.index._table('chunks')} WHERE path = %s", (_clean(path),)
        )
        self.added.pop(path, None)

    def commit(self) -> IndexState:
        t = self.index._table
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
            self.conn.execute(f'DROP INDEX IF EXISTS "{self.index.schema}".chunks_hnsw')
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

    def __init__(self, index: PgvectorStore, conn: Any, state: IndexState) -> None:
        self.index, self.conn, self.state = index, conn, state
        self._in_snapshot = False

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        try:
            with self.conn.transaction():
                self.conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                if self.state.params.get("vectors") == "hnsw":
                    self.conn.execute("SET LOCAL hnsw.ef_search = 200")
                self._in_snapshot = True
                yield
        except Exception as exc:
            raise _as_rag_error(exc, self.index) from None
        finally:
            self._in_snapshot = False

    def _run(self, query: str, args: Any) -> list[Any]:
        try:
            return self.conn.execute(query, args).fetchall()
        except Exception as exc:
            raise _as_rag_error(exc, self.index) from None

    def dense(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        if n <= 0:
            return []
        q = vector_text(np.asarray(vector).reshape(-1))
        rows = self._run(
            f"SELECT id, -(embedding <#> %s::vector) FROM {self.index._table('chunks')} "
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
            _BM25.format(chunks=self.index._table("chunks")),
            {"query": _clean(query), "docs": docs, "k1": K1, "b": B, "avgdl": avgdl, "n": n},
        )
        return [(int(i), float(s)) for i, s in rows]

    def fetch(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        rows = self._run(
            f'SELECT id, path, title, location, text, start, "end" FROM '
            f"{self.index._table('chunks')} WHERE id = ANY(%s)",
            (list(map(int, ids)),),
        )
        return dict(iter_rows(rows))

    def fingerprint(self) -> dict[str, Any]:
        return _fingerprint(self.index, self.state)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


def _fingerprint(index: PgvectorStore, state: IndexState) -> dict[str, Any]:
    params = state.params
    canonical = json.dumps(params, sort_keys=True).encode()
    return {
        "store": KIND,
        "index_dir": index.where(),
        "generation": f"gen-{state.generation:06d}",
        "embedder": params.get("embedder"),
        "embedder_id": params.get("embedder_id"),
        "chunks": params.get("chunks"),
        "params_sha256": hashlib.sha256(canonical).hexdigest(),
    }


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _as_rag_error(exc: Exception, index: PgvectorStore) -> Exception:
    """A database failure as one line: the server went away, or the schema is damaged."""
    from rag.errors import RagError

    if isinstance(exc, RagError):
        return exc
    try:
        import psycopg
    except ImportError:  # pragma: no cover - psycopg raised it
        return exc
    if isinstance(exc, psycopg.OperationalError):
        return StoreUnavailable(
            f"Lost the pgvector store at {shown_url(index.url)} ({_first_line(exc)}). Check "
            "that the server is running, then run the command again."
        )
    if isinstance(exc, psycopg.Error):
        return IndexCorrupt(
            f"Index {index.label!r} in the pgvector store ({index.where()}) cannot be read: "
            f"{_first_line(exc)}. Rebuild it with `rag index PATH --name {index.label} "
            "--rebuild`."
        )
    return exc
