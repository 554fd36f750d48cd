"""Index stores by name: `local` (FAISS + SQLite files, the default) and `pgvector`
(PostgreSQL with the pgvector extension). See `indexers.stores.base` for the seam.

Which store holds an index is recorded in its folder's marker file when the index is
created (`rag index --store NAME`, or the `store` setting), so every later command finds
the same store whatever the setting says by then.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from indexers.store import resolve_index_dir
from indexers.stores.base import IndexReader, IndexState, IndexStore, IndexWriter
from rag.config import Settings
from rag.errors import UsageError

#: (label, index folder, settings) -> the store of that index.
StoreFactory = Callable[[str, Path, Settings], IndexStore]


def _local(label: str, index_dir: Path, settings: Settings) -> IndexStore:
    from indexers.stores.local import LocalStore

    return LocalStore(label, index_dir, settings)


def _pgvector(label: str, index_dir: Path, settings: Settings) -> IndexStore:
    from indexers.stores.pgvector import PgvectorStore

    return PgvectorStore(label, index_dir, settings)


STORES: dict[str, StoreFactory] = {"local": _local, "pgvector": _pgvector}


def register_store(name: str, factory: StoreFactory) -> None:
    STORES[name] = factory


def recorded_store(index_dir: Path) -> str | None:
    """The store an existing index lives in (its marker's `store`; `local` for an index
    without one), or None when there is no index there."""
    from indexers import ownership

    try:
        data = json.loads((index_dir / ownership.MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("store"), str):
        return data["store"]
    try:
        return "local" if (index_dir / "CURRENT").exists() or data is not None else None
    except OSError:
        return "local"


def list_indexes(settings: Settings) -> list[IndexStore]:
    """Every index under `settings.indexes_dir`, each in its own store, by folder name."""
    from indexers.store import list_index_dirs

    local = list_index_dirs(settings)  # folders with a live generation, or unreadable ones
    try:
        others = [
            p
            for p in sorted(settings.indexes_dir.iterdir())
            if p not in local and p.is_dir() and recorded_store(p) not in (None, "local")
        ]
    except OSError:
        others = []
    return [open_store(p.name, settings) for p in sorted(local + others)]


def open_store(name: str, settings: Settings, kind: str | None = None) -> IndexStore:
    """The store of index `name` (a name or a folder path). `kind` asks for a store by name
    (`rag index --store`); it must agree with the store an existing index records."""
    index_dir = resolve_index_dir(name, settings)
    recorded = recorded_store(index_dir)
    if kind and recorded and kind != recorded:
        raise UsageError(
            f"Index {name!r} lives in the {recorded!r} store, not {kind!r}. Leave out "
            f"--store, or move it: `rag indexes remove {name}`, then `rag index PATH "
            f"--name {name} --store {kind}`."
        )
    chosen = recorded or kind or settings.store
    factory = STORES.get(chosen)
    if factory is None:
        raise UsageError(
            f"Unknown index store {chosen!r}; pick one of {', '.join(sorted(STORES))} "
            "(--store or the `store` setting)."
        )
    return factory(name, index_dir, settings)


__all__ = [
    "STORES",
    "list_indexes",
    "IndexReader",
    "IndexState",
    "IndexStore",
    "IndexWriter",
    "open_store",
    "recorded_store",
    "register_store",
]
