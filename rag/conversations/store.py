"""The conversations file, `$RAG_HOME/conversations.sqlite`, shared by `rag chat`,
`rag history` and `rag serve`.

Why SQLite in WAL mode: every change is one transaction, so a process killed mid-write
loses at most the turn it was writing, readers never see half of one, and a server and a
terminal chat can use the file at once. FTS5 indexes titles and turn texts in the same
transactions. The schema's version is the file's `user_version`.

A file SQLite cannot read, that is not this store's, or that a newer pocketrag wrote is
one error naming it (`ConversationsUnreadable`), never a traceback; it is never replaced
or repaired behind the user's back.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rag.conversations.values import (
    DEFAULT_LIST,
    MAX_ID,
    MAX_TURNS,
    UNTITLED,
    ConversationNotFound,
    ConversationsBusy,
    ConversationsUnreadable,
    check_limit,
    clean_title,
    default_title,
    encode_answer,
    fts_query,
    now,
)
from rag.core.errors import RagError, StorageError, UsageError
from rag.core.safe_text import replace_surrogates

FILE_NAME = "conversations.sqlite"
SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0

#: SQLite's primary result codes that are not damage (`sqlite3.Error.sqlite_errorcode`).
_BUSY, _LOCKED, _FULL, _CANTOPEN, _READONLY, _PERM, _IOERR = 5, 6, 13, 14, 8, 3, 10

SCHEMA = (
    """CREATE TABLE conversations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT,  -- NULL until the first question names it
        created TEXT NOT NULL,
        updated TEXT NOT NULL)""",
    """CREATE TABLE turns (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        question TEXT NOT NULL,
        search_query TEXT NOT NULL,
        answer TEXT NOT NULL,  -- the `rag ask --json` object
        created TEXT NOT NULL)""",
    "CREATE INDEX turns_of ON turns(conversation, id)",
    "CREATE INDEX conversations_by_update ON conversations(updated, id)",
    "CREATE VIRTUAL TABLE title_text USING fts5(title, tokenize = 'unicode61 remove_diacritics 2')",
    "CREATE VIRTUAL TABLE turn_text USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')",
    """CREATE TRIGGER conversation_added AFTER INSERT ON conversations BEGIN
        INSERT INTO title_text(rowid, title) VALUES (new.id, coalesce(new.title, ''));
    END""",
    """CREATE TRIGGER conversation_renamed AFTER UPDATE OF title ON conversations BEGIN
        UPDATE title_text SET title = coalesce(new.title, '') WHERE rowid = new.id;
    END""",
    """CREATE TRIGGER conversation_removed AFTER DELETE ON conversations BEGIN
        DELETE FROM title_text WHERE rowid = old.id;
    END""",
    """CREATE TRIGGER turn_removed AFTER DELETE ON turns BEGIN
        DELETE FROM turn_text WHERE rowid = old.id;
    END""",
    f"PRAGMA user_version = {SCHEMA_VERSION}",
)

_ROW = """SELECT c.id, c.title, c.created, c.updated,
    (SELECT count(*) FROM turns t WHERE t.conversation = c.id) FROM conversations c"""
_NEWEST_FIRST = "ORDER BY c.updated DESC, c.id DESC"
_MATCHES = """(c.id IN (SELECT rowid FROM title_text WHERE title_text MATCH :match)
    OR c.id IN (SELECT t.conversation FROM turns t JOIN turn_text ON turn_text.rowid = t.id
                WHERE turn_text MATCH :match))"""


class ConversationStore:
    """The conversations in one SQLite file. Each call opens its own connection, so one
    store serves many threads; reading a file that does not exist yet creates nothing."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    # --- reading ---------------------------------------------------------------------

    def find(self, query: str = "", limit: int = DEFAULT_LIST) -> list[dict[str, Any]]:
        """Conversations, most recently updated first; with `query`, those whose title or
        turns (question, search query, answer) hold every word of it."""
        limit = check_limit(limit)
        match = fts_query(query) if query.strip() else ""
        if match is None:
            return []
        where = f"WHERE {_MATCHES}" if match else ""
        with self._connect() as conn:
            if conn is None:
                return []
            rows = conn.execute(
                f"{_ROW} {where} {_NEWEST_FIRST} LIMIT :limit", {"match": match, "limit": limit}
            ).fetchall()
        return [_summary(row) for row in rows]

    def summary(self, ident: int) -> dict[str, Any]:
        """`{"id","title","created","updated","turns"}` (turns: how many)."""
        with self._connect() as conn:
            return self._summary_of(conn, ident)

    def get(self, ident: int) -> dict[str, Any]:
        """The conversation with all its turns, oldest first."""
        with self._connect() as conn:
            found = self._summary_of(conn, ident)
            rows = conn.execute(  # type: ignore[union-attr]
                "SELECT id, question, search_query, answer, created FROM turns "
                "WHERE conversation = ? ORDER BY id",
                (ident,),
            ).fetchall()
        return {**found, "turns": [_turn(row) for row in rows]}

    def recent_turns(self, ident: int, count: int) -> list[dict[str, Any]]:
        """The last `count` turns, oldest first: the history a new turn is asked with."""
        with self._connect() as conn:
            self._summary_of(conn, ident)
            rows = conn.execute(  # type: ignore[union-attr]
                "SELECT id, question, search_query, answer, created FROM turns "
                "WHERE conversation = ? ORDER BY id DESC LIMIT ?",
                (ident, max(count, 0)),
            ).fetchall()
        return [_turn(row) for row in reversed(rows)]

    # --- writing ---------------------------------------------------------------------

    def check(self) -> None:
        """Open (creating) the file now, so a damaged one is reported before any work."""
        with self._connect(write=True):
            pass

    def create(self, title: str | None = None) -> dict[str, Any]:
        """A new conversation; untitled (None) takes its first question as the title."""
        title = None if title is None else clean_title(title)
        stamp = now()
        with self._connect(write=True) as conn, _transaction(conn):
            cursor = conn.execute(
                "INSERT INTO conversations(title, created, updated) VALUES (?, ?, ?)",
                (title, stamp, stamp),
            )
            return self._summary_of(conn, int(cursor.lastrowid or 0))

    def add_turn(
        self, ident: int | None, question: str, search_query: str, answer: dict[str, Any]
    ) -> tuple[int, int]:
        """Store one finished turn in one transaction; (conversation id, turn id). With
        `ident` None the turn starts a new conversation, made in the same transaction."""
        question = replace_surrogates(question)
        search_query = replace_surrogates(search_query)
        stored = encode_answer(answer)
        text = str(answer.get("answer", ""))
        with self._connect(write=True) as conn, _transaction(conn):
            if ident is None:
                stamp = now()
                ident = int(conn.execute(
                    "INSERT INTO conversations(title, created, updated) VALUES (NULL, ?, ?)",
                    (stamp, stamp),
                ).lastrowid or 0)  # fmt: skip
            _room(self._summary_of(conn, ident))
            stamp = now()
            cursor = conn.execute(
                "INSERT INTO turns(conversation, question, search_query, answer, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (ident, question, search_query, stored, stamp),
            )
            turn = int(cursor.lastrowid or 0)
            conn.execute(
                "INSERT INTO turn_text(rowid, body) VALUES (?, ?)",
                (turn, "\n".join((question, search_query, replace_surrogates(text)))),
            )
            conn.execute(
                "UPDATE conversations SET updated = ?, title = coalesce(title, ?) WHERE id = ?",
                (stamp, default_title(question), ident),
            )
        return ident, turn

    def check_room(self, ident: int) -> dict[str, Any]:
        """The conversation's summary; a UsageError when it cannot take another turn."""
        return _room(self.summary(ident))

    def rename(self, ident: int, title: str) -> dict[str, Any]:
        title = clean_title(title)
        with self._connect(write=True) as conn, _transaction(conn):
            self._summary_of(conn, ident)
            conn.execute(
                "UPDATE conversations SET title = ?, updated = ? WHERE id = ?",
                (title, now(), ident),
            )
            return self._summary_of(conn, ident)

    def delete(self, ident: int) -> dict[str, Any]:
        """Remove a conversation and its turns; returns what it was."""
        with self._connect(write=True) as conn, _transaction(conn):
            found = self._summary_of(conn, ident)
            conn.execute("DELETE FROM turns WHERE conversation = ?", (ident,))
            conn.execute("DELETE FROM conversations WHERE id = ?", (ident,))
        return found

    # --- the file --------------------------------------------------------------------

    def _summary_of(self, conn: sqlite3.Connection | None, ident: int) -> dict[str, Any]:
        row = None
        if conn is not None and 0 <= ident <= MAX_ID:
            row = conn.execute(f"{_ROW} WHERE c.id = ?", (ident,)).fetchone()
        if row is None:
            raise ConversationNotFound(f"No conversation {ident}; see `rag history`.")
        return _summary(row)

    @contextlib.contextmanager
    def _connect(self, *, write: bool = False) -> Iterator[Any]:
        """A connection ready for use (schema made or checked), closed afterwards; None
        for a reader when the file does not exist. SQLite's errors become one line."""
        if not write and not self.path.exists():
            yield None
            return
        if write:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                from rag.core.files import storage_error

                raise storage_error(self.path.parent, exc, "create") from None
        try:
            conn = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        try:
            ready = self._prepare(conn, write)
            yield conn if ready else None
        except sqlite3.ProgrammingError:
            raise
        except sqlite3.Error as exc:
            raise self._error(exc) from None
        finally:
            conn.close()

    def _prepare(self, conn: sqlite3.Connection, write: bool) -> bool:
        """Check the file is this store's, at a version this code reads; make the schema
        in a new (empty) file when writing. False: an empty file, read before any write."""
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        version = self._version(conn)
        if version == SCHEMA_VERSION:
            return True
        if not write:
            return False
        conn.execute("PRAGMA journal_mode = WAL")
        with _transaction(conn):
            if self._version(conn) == 0:  # nobody made it meanwhile
                for statement in SCHEMA:
                    conn.execute(statement)
        return True

    def _version(self, conn: sqlite3.Connection) -> int:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise ConversationsUnreadable(
                f"The conversations file {self.path} was written by a newer pocketrag (schema "
                f"{version}; this one reads {SCHEMA_VERSION}). Upgrade pocketrag, or set "
                "RAG_HOME elsewhere."
            )
        if version == 0 and conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            raise ConversationsUnreadable(
                f"The file {self.path} is an SQLite database but not pocketrag's "
                "conversations; pocketrag leaves it as it is. Move it away to start a new one."
            )
        return version

    def _error(self, exc: sqlite3.Error) -> RagError:
        """SQLite's error restated: busy, disk full or not writable, else damaged."""
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        reason = str(exc) or type(exc).__name__
        if primary in (_BUSY, _LOCKED) or (primary is None and "locked" in reason):
            return ConversationsBusy(
                f"The conversations file {self.path} stayed locked by another process for "
                f"{BUSY_TIMEOUT_S:g} s ({reason}); try again."
            )
        if primary == _FULL or (primary is None and "full" in reason):
            return StorageError(
                f"Cannot write {self.path}: {reason}. Free some disk space and try again."
            )
        if primary in (_CANTOPEN, _READONLY, _PERM, _IOERR) or (
            primary is None and ("unable to open" in reason or "readonly" in reason)
        ):
            return StorageError(
                f"Cannot use {self.path}: {reason}. Check that it is a file and that its "
                "folder is writable (permissions, read-only mount)."
            )
        return ConversationsUnreadable(
            f"The conversations file {self.path} cannot be read: {reason}. pocketrag leaves "
            f"it as it is: move it away to start a new one (`sqlite3 FILE .recover` may save "
            "what it holds)."
        )


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (the write lock now, not at the first write) ... COMMIT; anything
    raised inside rolls it all back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _room(found: dict[str, Any]) -> dict[str, Any]:
    if found["turns"] >= MAX_TURNS:
        raise UsageError(
            f"Conversation {found['id']} has {MAX_TURNS} turns, the most one keeps; start a "
            "new one."
        )
    return found


def _summary(row: tuple[Any, ...]) -> dict[str, Any]:
    ident, title, created, updated, turns = row
    return {
        "id": ident,
        "title": title or UNTITLED,
        "created": created,
        "updated": updated,
        "turns": turns,
    }


def _turn(row: tuple[Any, ...]) -> dict[str, Any]:
    ident, question, search_query, answer, created = row
    try:
        data = json.loads(answer)
    except ValueError:  # written by hand or damaged: the turn is still shown
        data = {"answer": str(answer), "sources": [], "dropped": [], "warnings": []}
    return {
        "id": ident,
        "question": question,
        "search_query": search_query,
        "answer": data,
        "created": created,
    }
