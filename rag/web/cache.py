"""A small SQLite cache for search results and fetched pages, with a TTL.

Why: a repeated question, a chat follow-up or an eval run over hundreds of
questions should not hit a rate-limited engine again for an answer it gave an
hour ago. Entries are JSON keyed by a hash of everything that changes the result
(engine, query, region, ...); expired ones are ignored on read and purged on write.
One connection per call keeps it safe across the orchestrator's threads and
across processes (SQLite does the locking).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    created REAL NOT NULL,
    value TEXT NOT NULL
)
"""


def cache_key(kind: str, **parts: Any) -> str:
    """A stable key from named parts; the order they are passed in does not matter."""
    payload = json.dumps({"kind": kind, **parts}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class SearchCache:
    """JSON values under string keys, fresh for `ttl_s` seconds (0 or less: caching off)."""

    def __init__(self, path: Path, ttl_s: float, *, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.ttl_s = ttl_s
        self._clock = clock
        self._ready = False

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def _connect(self) -> sqlite3.Connection:
        if not self._ready:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=10)
        # A cache may lose its last write in a power cut; it must not cost an fsync per search.
        conn.execute("PRAGMA synchronous=OFF")
        if not self._ready:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(SCHEMA)
            conn.commit()
            self._ready = True
        return conn

    def get(self, key: str) -> Any | None:
        """The cached value, or None when absent, expired or the cache file is unreadable."""
        if not self.enabled:
            return None
        try:
            conn = self._connect()
            try:
                row = conn.execute(
                    "SELECT created, value FROM entries WHERE key = ?", (key,)
                ).fetchone()
            finally:
                conn.close()
        except sqlite3.Error:
            return None  # a broken cache must never break a search; it is only a shortcut
        if row is None or self._clock() - row[0] > self.ttl_s:
            return None
        try:
            return json.loads(row[1])
        except json.JSONDecodeError:
            return None

    def put(self, key: str, value: Any, *, kind: str = "search") -> None:
        """Store `value` (JSON-serialisable) and drop entries older than the TTL."""
        if not self.enabled:
            return
        now = self._clock()
        try:
            conn = self._connect()
            try:
                with conn:
                    conn.execute(
                        "INSERT OR REPLACE INTO entries (key, kind, created, value) "
                        "VALUES (?, ?, ?, ?)",
                        (key, kind, now, json.dumps(value, ensure_ascii=False)),
                    )
                    conn.execute("DELETE FROM entries WHERE created < ?", (now - self.ttl_s,))
            finally:
                conn.close()
        except sqlite3.Error:
            return

    def clear(self) -> None:
        if self.path.exists():
            self.path.unlink()
        self._ready = False
