"""One index's schema on one PostgreSQL server: how to reach it, its tables, its committed
version, and its failures as one-line pocketrag errors.

`PgvectorStore` owns one `PgSchema` and hands it to its reader and writer, so they reach the
server and the tables through it, never through the store (see indexers/stores/pgvector.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexers.stores import pgvector_owner as owner
from indexers.stores.base import IndexState, check_params
from indexers.stores.local_layout import FORMAT
from indexers.stores.pgvector_common import CONNECT_TIMEOUT_S, URL_ENV, first_line, shown_url
from rag.core.errors import IndexCorrupt, RagError, StoreUnavailable, UsageError


@dataclass
class PgSchema:
    """What identifies one index's schema on one server. `identity` is this home's claim
    on it, as the store last learnt it (a claim, an attach update it in place, and the
    reader and writer sharing this object see the change)."""

    url: str  # the server; "" when no [stores.pgvector] url is set
    label: str  # the index's name in this home
    identity: owner.Identity
    config: Path  # the config file that sets the url, for messages

    @property
    def name(self) -> str:
        return self.identity.schema

    def where(self) -> str:
        return f"{shown_url(self.url)} schema {self.name}"

    def table(self, name: str) -> str:
        return f'"{self.name}".{name}'

    # -- connections ------------------------------------------------------------------
    def connect(self, autocommit: bool = True) -> Any:
        """A connection, or a one-line error naming the setting when there is none."""
        if not self.url:
            raise UsageError(
                f"Index {self.label!r} is in the pgvector store, but no server is set: add "
                f'a [stores.pgvector] section with url = "postgresql://USER@HOST:5432/DB" '
                f"to {self.config} (or set {URL_ENV})."
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
                f"{self.config} (or {URL_ENV})."
            ) from None

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """A connection for a few statements, closed after; failures as pocketrag's."""
        conn = self.connect()
        try:
            yield conn
        except Exception as exc:
            raise self.as_rag_error(exc) from None
        finally:
            conn.close()

    # -- what the schema holds ----------------------------------------------------------
    def meta(self, conn: Any) -> dict[str, Any] | None:
        """The meta table's rows; None when the schema holds no index (never made, or
        dropped)."""
        exists = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s "
            "AND table_name = 'meta'",
            (self.name,),
        ).fetchone()
        if not exists:
            return None
        return dict(conn.execute(f"SELECT key, value FROM {self.table('meta')}").fetchall())

    def exists(self, conn: Any) -> bool:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.name,))
        return found.fetchone() is not None

    def check_ours(self, conn: Any) -> bool:
        """Whether the schema exists, after making sure that, if it does, it is provably
        this home's pocketrag index: named `rag_...`, with pocketrag's meta table whose
        owner row is this index's (or, a legacy schema without one, whose params are
        pocketrag's). Anything else (`public`, another application's schema, named by a
        hand-edited or foreign marker) is a UsageError: pocketrag never writes into it,
        nor drops it."""
        if not owner.is_pocketrag_name(self.name):
            raise self._not_ours("pocketrag's schemas are named rag_...")
        if not self.exists(conn):
            return False
        try:
            rows = self.meta(conn)
        except Exception:  # a `meta` table of another shape: not pocketrag's
            rows = None
        if rows is None:
            raise self._not_ours("it has no pocketrag meta table")
        owner.check(self.identity, rows.get("owner"), self.label, self.where())
        theirs = owner.owner_id(rows.get("owner"))
        params = rows.get("params")
        legacy = theirs is None and isinstance(params, dict) and params.get("format") == FORMAT
        if theirs is None and not legacy:
            raise self._not_ours("its meta table has no pocketrag owner or params")
        return True

    def _not_ours(self, why: str) -> UsageError:
        return UsageError(
            f"Index {self.label!r} names schema {self.name} at {shown_url(self.url)}, which "
            f"is not one pocketrag made ({why}): not writing into it or dropping it. Fix or "
            "delete the index's pocketrag-index.json that names it."
        )

    def read_state(self, conn: Any) -> IndexState | None:
        """The committed version, after checking the schema is this home's to use."""
        rows = self.meta(conn)
        if rows is None:
            return None
        owner.check(self.identity, rows.get("owner"), self.label, self.where())
        if "params" not in rows:
            return None  # created, never committed
        params, generation = rows["params"], rows.get("generation")
        if not isinstance(params, dict) or not isinstance(generation, int):
            raise IndexCorrupt(f"The meta table of schema {self.name} is not pocketrag's.")
        check_params(Path(self.name), params)
        return IndexState(params, generation)

    # -- failures -------------------------------------------------------------------------
    def as_rag_error(self, exc: Exception, writing: bool = False) -> Exception:
        """A database failure as one line: the server went away, it refused (a role
        without the rights to write), or the schema is damaged."""
        if isinstance(exc, RagError):
            return exc
        try:
            import psycopg
        except ImportError:  # pragma: no cover - psycopg raised it
            return exc
        url, label = self.url, self.label
        if isinstance(exc, psycopg.OperationalError):
            return StoreUnavailable(
                f"Lost the pgvector store at {shown_url(url)} ({first_line(exc, url)}). "
                "Check "
                "that the server is running, then run the command again."
            )
        if isinstance(exc, psycopg.errors.InsufficientPrivilege) or (
            writing and isinstance(exc, psycopg.Error)
        ):
            return StoreUnavailable(
                f"The pgvector store at {shown_url(url)} refused to "
                f"{'write' if writing else 'read'} index {label!r} "
                f"({first_line(exc, url)}). Grant the role in [stores.pgvector] url the "
                f"rights it needs on schema {self.name} (and CREATE on the database for a "
                "new index), or use another url."
            )
        if isinstance(exc, psycopg.Error):
            return IndexCorrupt(
                f"Index {label!r} in the pgvector store ({self.where()}) cannot be read: "
                f"{first_line(exc, url)}. Rebuild it with `rag index PATH --name {label} "
                "--rebuild`."
            )
        return exc
