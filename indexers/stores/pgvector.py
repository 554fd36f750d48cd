"""The `pgvector` store: an index kept in PostgreSQL with the pgvector extension.

For a corpus or a team that outgrows one laptop: the server can be shared, replicated and
backed up like any PostgreSQL database. Each index is one schema (`rag_<name>_<id>`, the
index's random id: whose it is and how other homes share it is `pgvector_owner`'s part):

    meta    params (embedder, dim, counts, roots, ...), the generation number and the
            owner (the index's id and name)
    files   path, sha256, size, mtime_ns: what `rag index` compares to skip unchanged files
    chunks  id, path, title, location, text, offsets, tokens, embedding vector(dim), and
            tsv, PostgreSQL's English text-search vector of the title and text (GIN index)

A `rag index` run is one transaction, so readers see the previous version until it
commits, and a killed run (its connection gone) is rolled back by the server. One writer
per index: a session advisory lock. Dense search is exact inner product (`<#>`) up to
APPROX_THRESHOLD chunks, then HNSW. BM25 (k1=1.2, b=0.75, as SQLite's FTS5 scores it)
is computed in SQL over the text-search vectors, with chunk length in tokens.

The store owns a `PgSchema` (pgvector_schema: the server, the schema, its tables and
committed version) and hands it to its reader and writer, which never reach back here.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from indexers.stores import ownership, target
from indexers.stores import pgvector_owner as owner
from indexers.stores.base import FileTable, IndexState
from indexers.stores.pgvector_common import KIND, fingerprint_of, first_line, shown_url
from indexers.stores.pgvector_reader import PgvectorReader
from indexers.stores.pgvector_schema import PgSchema
from indexers.stores.pgvector_writer import PgvectorWriter, writes_of
from rag.core.config import Settings
from rag.core.errors import (
    IndexBusy,
    IndexCorrupt,
    IndexNotFound,
    StoreUnavailable,
    UsageError,
)
from rag.core.names import is_path_name

#: Exact search up to this many chunks, HNSW above. pgvector's exact scan is slow where
#: FAISS's is not (benchmarks/scale.py: 43 ms at 10,000 chunks and 281 ms at 100,000,
#: against HNSW's 3.0 ms at 200,000 with recall@10 0.96; the local store's flat
#: segments, 14 ms at 100,000), so it switches a decade earlier than the local store.
APPROX_THRESHOLD = 10_000


class PgvectorStore:
    kind = KIND

    def __init__(self, label: str, index_dir: Path, settings: Settings, url: str = "") -> None:
        self.label = label
        self.index_dir = index_dir
        self.settings = settings
        # The schema this index uses: handed to the reader and writer. Its identity is
        # replaced as the store learns it (a claim, an attach).
        self.pg = PgSchema(
            url, label, owner.identity(label, index_dir), settings.home / "config.toml"
        )
        self._writing: Any = None  # the connection of a `rag index` run, inside writing()

    @property
    def url(self) -> str:
        return self.pg.url

    @property
    def identity(self) -> owner.Identity:
        return self.pg.identity

    @property
    def schema(self) -> str:
        return self.pg.name

    def where(self) -> str:
        return self.pg.where()

    # -- the IndexStore seam -------------------------------------------------------------
    def state(self, *, allow_outdated: bool = False) -> IndexState | None:
        if self._writing is not None:
            return self.pg.read_state(self._writing)
        if not self.index_dir.exists():
            return None
        with self.pg.session() as conn:
            return self.pg.read_state(conn)

    def file_table(self, state: IndexState) -> FileTable:
        conn = self._writing
        with contextlib.nullcontext(conn) if conn is not None else self.pg.session() as c:
            rows = c.execute(
                f"SELECT path, sha256, size, mtime_ns FROM {self.pg.table('files')}"
            ).fetchall()
        return {p: (h, int(s), int(m)) for p, h, s, m in rows}

    @contextlib.contextmanager
    def writing(self, roots: Sequence[Path], wait: float) -> Iterator[None]:
        if is_path_name(self.label):
            target.check_target(self.index_dir, self.label, roots)
        self.pg.identity = owner.identity(self.label, self.index_dir)  # as recorded right now
        if self.identity.attached and not self.identity.writable:
            raise UsageError(
                f"Index {self.label!r} ({self.where()}) is attached read-only: the home "
                "that created it updates it. To update it from here too, run `rag indexes "
                f"attach {self.label} --schema {self.schema} --writable`."
            )
        conn = self.pg.connect(autocommit=True)
        made: list[Path] = []
        marker_is_ours = locked = completed = False
        try:
            if not self.identity.attached:
                made = target.make_index_dir(self.index_dir)
                if not self.identity.recorded:
                    marker_is_ours = owner.create_marker(self.index_dir, self.identity)
                    if not marker_is_ours:  # another run in this home made it first: its id
                        self.pg.identity = owner.identity(self.label, self.index_dir)
            self._lock(conn, wait)
            locked = True
            self.pg.check_ours(conn)  # never `public` or another application's schema
            if not self.identity.attached:
                self._create_extension(conn)
            live = self.pg.read_state(conn)  # refuses another home's schema
            completed = live is not None
            if self.identity.attached:
                self._check_shared_update(live, roots)
            elif self.identity.index_id is None:  # a legacy index: this home claims it
                self.pg.identity = owner.claimed(self.identity)
                owner.rewrite_marker(self.index_dir, self.identity)
            conn.autocommit = False
            self._writing = conn
            yield
        except BaseException as exc:
            if locked and not completed and not self.identity.attached:
                self._undo_first_build(conn, made, marker_is_ours)
            if isinstance(exc, Exception) and not isinstance(exc, OSError):
                raise self.pg.as_rag_error(exc) from None
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

    def _create_extension(self, conn: Any) -> None:
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except Exception as exc:
            raise StoreUnavailable(
                f"The PostgreSQL server at {shown_url(self.url)} cannot load pgvector "
                f"({first_line(exc, self.url)}). Install the extension there "
                "(CREATE EXTENSION vector), or use another [stores.pgvector] url."
            ) from None

    def _undo_first_build(self, conn: Any, made: list[Path], marker_is_ours: bool) -> None:
        """A first build failed, holding the lock: remove the schema and what it made here."""
        with contextlib.suppress(Exception):
            conn.rollback()
            conn.autocommit = True
            # Only this index's own schema, never committed: check_ours refuses any other
            # (`public`, another application's or home's), read_state one with data.
            if self.pg.check_ours(conn) and self.pg.read_state(conn) is None:
                conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
        if not marker_is_ours:
            return
        if made and made[0] == self.index_dir:
            import shutil

            shutil.rmtree(self.index_dir, ignore_errors=True)
        else:
            (self.index_dir / ownership.MARKER).unlink(missing_ok=True)

    def _check_shared_update(self, live: IndexState | None, roots: Sequence[Path]) -> None:
        """An attached home updates the shared index only from the folders it records: any
        other folder would drop every file its owner indexed."""
        if live is None:
            raise IndexNotFound(self._gone())
        recorded = sorted(live.params.get("roots", []))
        if roots and sorted(map(str, roots)) != recorded:
            raise UsageError(
                f"Index {self.label!r} is shared from another home and indexes "
                f"{', '.join(recorded)}: an update from here reads those same folders "
                f"(`rag index --name {self.label}`), never others, so that it cannot drop "
                "the files the index holds."
            )

    def _gone(self) -> str:
        return (
            f"Index {self.label!r} is attached to schema {self.schema} at "
            f"{shown_url(self.url)}, which holds no index any more (the home that created "
            f"it removed it). `rag indexes detach {self.label}` forgets it here."
        )

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
        self, params: dict[str, Any], base: IndexState | None, approx_threshold: int | None
    ) -> PgvectorWriter:
        if self._writing is None:
            raise RuntimeError("writer() outside writing()")
        with writes_of(self.pg):
            if approx_threshold is None:
                approx_threshold = APPROX_THRESHOLD
            return PgvectorWriter(self.pg, self._writing, params, base, approx_threshold)

    def reader(self) -> PgvectorReader:
        conn = self.pg.connect()
        try:
            state = self.pg.read_state(conn)
        except Exception as exc:
            conn.close()
            raise self.pg.as_rag_error(exc) from None
        if state is None:
            conn.close()
            if not self.index_dir.exists():
                raise IndexNotFound(
                    f"No index named {self.label!r} (looked in {self.index_dir}). Create it "
                    "with `rag index PATH --name NAME`, or see `rag indexes list`."
                )
            if self.identity.attached:
                raise IndexNotFound(self._gone())
            raise IndexNotFound(
                f"Index {self.label!r} ({self.where()}) was never completed. "
                f"Run `rag index PATH --name {self.label}` to build it."
            )
        return PgvectorReader(self.pg, conn, state)

    def fingerprint(self) -> dict[str, Any] | None:
        with self.pg.session() as conn:
            state = self.pg.read_state(conn)
        return fingerprint_of(self.where(), state) if state is not None else None

    def verify(self) -> IndexState:
        reader = self.reader()
        try:
            with reader.snapshot():
                (count,) = reader.conn.execute(
                    f"SELECT count(*) FROM {self.pg.table('chunks')}"
                ).fetchone()
                dims = reader.conn.execute(
                    f"SELECT DISTINCT vector_dims(embedding) FROM "
                    f"(SELECT embedding FROM {self.pg.table('chunks')} LIMIT 1) s"
                ).fetchall()
        except Exception as exc:
            raise self.pg.as_rag_error(exc) from None
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
        with self.pg.session() as conn:
            (size,) = conn.execute(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind = 'r'",
                (self.schema,),
            ).fetchone()
        where = self.where()
        if self.identity.attached:
            where += f", attached {'writable' if self.identity.writable else 'read-only'}"
        return {"store": KIND, "where": where, "bytes": int(size)}

    def remove(self) -> list[str]:
        """Drop the schema, only from the home that created it (or, for a legacy index, the
        home whose marker names it); an attached home is told to detach."""
        self._require_dir()
        if self.identity.attached:
            raise UsageError(
                f"Index {self.label!r} is attached from another home ({self.where()}): "
                f"`rag indexes detach {self.label}` forgets it here and keeps its data; "
                "only the home that created it removes it."
            )
        with self.pg.session() as conn:
            (got,) = conn.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s))", (self.schema,)
            ).fetchone()
            if not got:
                raise IndexBusy(
                    f"`rag index` is writing {self.label!r} right now; remove it after that."
                )
            if self.pg.check_ours(conn):  # this index's schema, provably; else refused
                conn.execute(f'DROP SCHEMA "{self.schema}" CASCADE')
            conn.execute("SELECT pg_advisory_unlock_all()")
        return ownership.remove_index(self.index_dir, self.label)

    # -- sharing between homes ---------------------------------------------------------
    def attach(self, schema: str | None, writable: bool) -> IndexState:
        """Use another home's index here under this label: the schema given, or the one
        index on the server its creator named like this label. Its data is untouched."""
        if self.identity.recorded and not self.identity.attached:
            raise UsageError(
                f"Index {self.label!r} already exists in this home ({self.where()}). Attach "
                "the shared index under another name: `rag indexes attach OTHER_NAME "
                "--schema SCHEMA`."
            )
        if is_path_name(self.label):
            target.check_target(self.index_dir, self.label, [])
        if schema is not None and not owner.valid_schema(schema):
            raise UsageError(f"--schema {schema!r}: a schema is lower-case letters, digits, _.")
        with self.pg.session() as conn:
            chosen = schema or self._find_shared(conn)
            self.pg.identity = owner.Identity(chosen, None, attached=True, writable=writable)
            state = self.pg.read_state(conn)
            if state is None:
                raise UsageError(
                    f"Schema {chosen} at {shown_url(self.url)} holds no completed pocketrag "
                    "index. `rag indexes info NAME` in the home that created the index "
                    "shows its schema."
                )
            index_id = owner.owner_id((self.pg.meta(conn) or {}).get("owner"))
        self.pg.identity = owner.Identity(chosen, index_id, attached=True, writable=writable)
        target.make_index_dir(self.index_dir)
        owner.rewrite_marker(self.index_dir, self.identity)
        return state

    def _find_shared(self, conn: Any) -> str:
        """The schema of the one index on the server whose creator named it like this label
        (or a legacy schema of that name); a usage error naming the choices otherwise."""
        prefix = f"rag_{owner.readable(self.label)}_"
        legacy = owner.legacy_schema_name(self.label, self.index_dir)
        found: list[tuple[str, Any]] = []
        for (name,) in conn.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'meta' "
            "AND starts_with(table_schema, %s) ORDER BY 1",
            (prefix,),
        ).fetchall():
            if not owner.valid_schema(name):  # not a name pocketrag gives
                continue
            rows = dict(
                conn.execute(
                    f"SELECT key, value FROM \"{name}\".meta WHERE key IN ('owner', 'params')"
                ).fetchall()
            )
            creator = rows.get("owner")
            named = creator.get("name") if isinstance(creator, dict) else None
            if "params" in rows and (named == self.label or (creator is None and name == legacy)):
                found.append((name, rows["params"]))
        if len(found) == 1:
            return found[0][0]
        how = (
            f"Give its schema with --schema (`rag indexes info {self.label}` in the home that "
            "created it shows it)."
        )
        if not found:
            raise UsageError(f"No index named {self.label!r} at {shown_url(self.url)}. {how}")
        choices = ", ".join(
            f"{name} ({p.get('chunks', '?') if isinstance(p, dict) else '?'} chunks)"
            for name, p in found
        )
        raise UsageError(
            f"{len(found)} indexes named {self.label!r} at {shown_url(self.url)}: {choices}. {how}"
        )

    def detach(self) -> list[str]:
        """Forget an attached index (or one another home claimed) here; its data stays."""
        self._require_dir()
        if not self.identity.attached:
            with self.pg.session() as conn:
                rows = self.pg.meta(conn) or {}
            theirs = owner.owner_id(rows.get("owner"))
            if theirs is None or theirs == self.identity.index_id:
                raise UsageError(
                    f"Index {self.label!r} was created by this home ({self.where()}): there "
                    f"is nothing to detach. `rag indexes remove {self.label}` deletes it, "
                    "with its data on the server."
                )
        return ownership.remove_index(self.index_dir, self.label)

    def _require_dir(self) -> None:
        if not self.index_dir.is_dir():
            raise IndexNotFound(
                f"No index named {self.label!r} (looked in {self.index_dir}). "
                "See `rag indexes list`."
            )
