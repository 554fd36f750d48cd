"""The IndexStore seam: one small Protocol for everything about where chunks and vectors live.

`rag index` (indexers/build.py) decides which files changed and embeds them; it hands the
store chunks with their vectors through an `IndexWriter`. The retriever asks an
`IndexReader` for dense and BM25 candidates and fuses them itself. `rag indexes` and the
eval manifest only call these methods, so a new backend is one module plus a registry
entry: nothing else in pocketrag knows how a store keeps its data.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from indexers.chunking import Chunk
from rag.core.config import Settings, expand_path
from rag.core.errors import IndexCorrupt, UsageError
from rag.core.names import NAME, is_path_name

#: (path, title, location, text, start, end) of one chunk, as a reader fetches it by id.
ChunkRow = tuple[str, str, str, str, int, int]
#: path -> (sha256, size, mtime_ns): what `rag index` compares to decide what changed.
FileTable = dict[str, tuple[str, int, int]]


@dataclass
class IndexState:
    """One committed version of an index: its params (embedder, dim, counts, roots, ...)
    and a number that grows with every commit. `outdated`: written by an older pocketrag,
    readable only to learn its roots and embedder (the next `rag index` re-embeds it)."""

    params: dict[str, Any]
    generation: int
    outdated: bool = False
    handle: Any = field(default=None, repr=False, compare=False)  # the store's own object


class IndexWriter(Protocol):
    """The changes of one `rag index` run; nothing is visible to readers before `commit`."""

    def remove_paths(self, paths: Iterable[str]) -> None: ...

    def add_chunks(self, path: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None: ...

    def add_file(self, path: str, sha256: str, size: int, mtime_ns: int) -> None: ...

    def discard_file(self, path: str) -> None: ...

    def commit(self) -> IndexState: ...

    def abort(self) -> None: ...


class IndexReader(Protocol):
    """One consistent view of an index for queries."""

    state: IndexState

    def snapshot(self) -> AbstractContextManager[None]:
        """Calls made inside see one committed version, even if a writer commits meanwhile."""
        ...

    def dense(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]: ...

    def bm25(self, query: str, n: int) -> list[tuple[int, float]]: ...

    def fetch(self, ids: Sequence[int]) -> dict[int, ChunkRow]: ...

    def fingerprint(self) -> dict[str, Any]:
        """What an eval manifest records to prove a resumed run reads the same index:
        `generation`, `params_sha256` and `embedder` at least."""
        ...

    def close(self) -> None: ...


class IndexStore(Protocol):
    """One index (by its name or folder) in one kind of store."""

    kind: str  # the registry name: "local", "pgvector"
    label: str  # the name the user gave
    index_dir: Path  # the folder that records the index (for a local store: its data too)

    def where(self) -> str:
        """Where the data lives, for messages and `rag indexes info`."""
        ...

    def state(self, *, allow_outdated: bool = False) -> IndexState | None:
        """The live version, or None when the index was never completed. Raises
        IndexNotFound (no index), IndexCorrupt (damage), OldFormat (unless allowed)."""
        ...

    def file_table(self, state: IndexState) -> FileTable: ...

    def writing(self, roots: Sequence[Path], wait: float) -> AbstractContextManager[None]:
        """Held around a whole `rag index` run: the one-writer lock (IndexBusy after `wait`
        seconds) and, when the run fails, removing what it created and nothing else."""
        ...

    def writer(
        self, params: dict[str, Any], base: IndexState | None, approx_threshold: int | None
    ) -> IndexWriter:
        """A writer starting from `base` (None: from nothing, as for --rebuild); exact
        search up to `approx_threshold` chunks, approximate above (None: the store's own)."""
        ...

    def reader(self) -> IndexReader: ...

    def fingerprint(self) -> dict[str, Any] | None:
        """The live version's fingerprint (see IndexReader.fingerprint), read cheaply;
        None when the index was never completed."""
        ...

    def verify(self) -> IndexState:
        """The live version after checking every part opens and agrees (vectors, chunks,
        BM25); IndexCorrupt otherwise. Cheap enough for `rag indexes list`."""
        ...

    def stats(self) -> dict[str, Any]:
        """Store-specific facts for `rag indexes info`: at least `store`, `where`, `bytes`."""
        ...

    def remove(self) -> list[str]:
        """Delete the index; return entries kept because pocketrag did not write them."""
        ...


def iter_rows(rows: Iterable[Sequence[Any]]) -> Iterator[tuple[int, ChunkRow]]:
    """(id, ChunkRow) from database rows `(id, path, title, location, text, start, end)`."""
    for row in rows:
        yield int(row[0]), (row[1], row[2], row[3], row[4], row[5], row[6])


# --- what every store shares: index names, damage reports, params checks --------------


def resolve_index_dir(name: str, settings: Settings) -> Path:
    """A plain name lives under `settings.indexes_dir`; anything with a slash is a folder path."""
    if is_path_name(name):
        return expand_path(name).resolve()
    if not NAME.match(name):
        raise UsageError(
            f"Invalid index name {name!r}: use letters, digits, '.', '_' or '-' "
            "(up to 64), or give a folder path."
        )
    return settings.indexes_dir / name


def damaged(label: str, exc: Exception, paths: Sequence[str | Path] = ()) -> IndexCorrupt:
    """`exc` (an IndexCorrupt) restated with what to do about it."""
    target = " ".join(shlex.quote(str(p)) for p in paths) or "PATH"
    if isinstance(exc, OldFormat):
        return IndexCorrupt(
            f"Index {label!r} was written by an older pocketrag ({exc}) Update it with "
            f"`rag index --name {shlex.quote(label)}`: that re-embeds its files into the "
            "current format."
        )
    return IndexCorrupt(
        f"Index {label!r} is damaged: {exc} Rebuild it with "
        f"`rag index {target} --name {shlex.quote(label)} --rebuild`."
    )


class OldFormat(IndexCorrupt):
    """A generation written by an older pocketrag: readable by a rebuild, not by queries."""


def _whole(value: Any, low: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


def check_params(path: Path, params: dict[str, Any]) -> None:
    """IndexCorrupt unless the values every reader and writer relies on have their types:
    a hand-edited or damaged params.json is a damaged index, not a traceback."""
    problems = {
        "embedder": isinstance(params.get("embedder"), str) and params["embedder"].strip(),
        "dim": _whole(params.get("dim"), 1),
        "chunks": _whole(params.get("chunks")),
        # the local store's own keys (Generation.open requires them; other stores lack them)
        "faiss": "faiss" not in params or isinstance(params["faiss"], str),
        "segments": "segments" not in params or isinstance(params["segments"], list),
        "roots": isinstance(params.get("roots", []), list)
        and all(isinstance(r, str) for r in params.get("roots", [])),
        "exclude": isinstance(params.get("exclude", []), list)
        and all(isinstance(r, str) for r in params.get("exclude", [])),
        **{
            key: key not in params or _whole(params[key])
            for key in ("files", "next_chunk_id", "next_segment")
        },
    }
    bad = [key for key, fine in problems.items() if not fine]
    if bad:
        shown = ", ".join(f"{key}={params.get(key)!r}"[:80] for key in bad)
        raise IndexCorrupt(f"{path} holds values of the wrong kind ({shown}).")
