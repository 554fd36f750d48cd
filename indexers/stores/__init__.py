"""Index stores by name: `local` (FAISS + SQLite files, the default) and `pgvector`
(PostgreSQL with the pgvector extension). See `indexers.stores.base` for the seam.

Which store holds an index is recorded in its folder's marker file when the index is
created (`rag index --store NAME`, or the `store` setting), so every later command finds
the same store whatever the setting says by then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from indexers.stores.base import (
    IndexReader,
    IndexState,
    IndexStore,
    IndexWriter,
    OldFormat,
    damaged,
    resolve_index_dir,
)
from rag.core import plugins
from rag.core.config import Settings
from rag.core.errors import RagError, StoreUnavailable, UsageError
from rag.core.files import read_small_text


def recorded_store(index_dir: Path) -> str | None:
    """The store an existing index lives in (its marker's `store`; `local` for an index
    without one), or None when there is no index there."""
    from indexers.stores import ownership

    try:
        data = json.loads(read_small_text(index_dir / ownership.MARKER, ownership.MARKER_BYTES))
    except (OSError, ValueError, RecursionError):  # a FIFO, a device, garbage: no marker
        data = None
    if isinstance(data, dict) and isinstance(data.get("store"), str):
        return data["store"]
    try:
        return "local" if (index_dir / "CURRENT").exists() or data is not None else None
    except OSError:
        return "local"


def list_indexes(settings: Settings) -> list[IndexStore]:
    """Every index under `settings.indexes_dir`, each in its own store, by folder name."""
    from indexers.stores.local_layout import list_index_dirs

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


def row(index: IndexStore, state: IndexState) -> dict[str, Any]:
    """What `rag indexes info --json` prints of an index (and `rag serve`, `rag mcp` list)."""
    p = state.params
    stats = index.stats()
    return {
        "name": index.label, "path": str(index.index_dir), "chunks": p["chunks"],
        "files": p.get("files", 0), "embedder": p["embedder"], "dim": p["dim"],
        "faiss": p.get("faiss"), "roots": p.get("roots", []), "exclude": p.get("exclude", []),
        "generation": state.generation,
        "format_version": p.get("format_version"), "updated_at": p.get("updated_at"),
        "store": stats["store"], "where": stats["where"], "bytes": stats["bytes"],
    }  # fmt: skip


def summary(index: IndexStore) -> dict[str, Any]:
    """One index's row for `rag indexes list`; a damaged index gets `error` instead (and
    `old` when an older pocketrag wrote it: not damaged, `rag index --name` updates it;
    `unavailable` when its store's server cannot be reached or is not set)."""
    where = {"name": index.label, "path": str(index.index_dir)}
    try:
        state = index.verify()
    except OldFormat as exc:
        return {**where, "error": str(damaged(index.label, exc)), "old": True}
    except (StoreUnavailable, UsageError) as exc:  # its server, not the index: no rebuild
        return {**where, "error": str(exc), "unavailable": True}
    except Exception as exc:  # a damaged index is listed, not fatal to the listing
        return {**where, "error": str(exc)}
    return row(index, state)


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
    if recorded and recorded not in plugins.parts("store"):
        raise UsageError(
            f"Index {name!r} lives in the {recorded!r} store, which no installed package "
            f"provides (known: {', '.join(sorted(plugins.parts('store')))}). Install the "
            "plugin that provides it."
        )
    store = plugins.create(
        "store", chosen, settings, name, index_dir, hint=" (--store or the `store` setting)"
    )
    return checked_store(chosen, store)


#: What every store has (IndexStore's methods): a factory that made anything else made no store.
STORE_METHODS = tuple(
    sorted(m for m, v in vars(IndexStore).items() if callable(v) and not m.startswith("_"))
)


def checked_store(kind: str, store: object) -> IndexStore:
    """`store`, if it has IndexStore's methods: a plugin factory that returns None or some
    other object is one line naming the plugin, not an AttributeError deep in a build."""
    missing = [m for m in STORE_METHODS if not callable(getattr(store, m, None))]
    if not missing:
        return store  # type: ignore[return-value]
    what = f"its factory made {type(store).__name__}, not a store (no {', '.join(missing[:3])})"
    if plugins.plugin_of("store", kind) is not None:
        raise plugins.plugin_failure("store", kind, what)
    raise RagError(f"Index store {kind!r}: {what}.")


__all__ = [
    "list_indexes",
    "IndexReader",
    "IndexState",
    "IndexStore",
    "IndexWriter",
    "open_store",
    "recorded_store",
    "row",
    "summary",
]
