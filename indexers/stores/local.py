"""The default store: FAISS segments and a SQLite file per generation, in the index folder.

Everything about generations, crash safety and damage checks is in `indexers.stores.local_layout`
(the on-disk format) and `indexers.stores.local_writer`; this class puts them behind the IndexStore
seam, together with the one-writer lock and the clean-up of a failed run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexers.hybrid import bm25_search
from indexers.stores import local_layout, local_segments, ownership
from indexers.stores.base import ChunkRow, FileTable, IndexState, OldFormat, damaged, iter_rows
from indexers.stores.local_writer import GenerationWriter
from rag.core.config import Settings
from rag.core.errors import IndexBusy, IndexCorrupt
from rag.core.files import read_small, read_small_text, storage_error
from rag.core.names import is_path_name


def _state(generation: local_layout.Generation, outdated: bool = False) -> IndexState:
    return IndexState(generation.params, generation.number, outdated, handle=generation)


class LocalStore:
    kind = "local"

    def __init__(self, label: str, index_dir: Path, settings: Settings) -> None:
        self.label = label
        self.index_dir = index_dir
        self.settings = settings

    def where(self) -> str:
        return str(self.index_dir)

    def state(self, *, allow_outdated: bool = False) -> IndexState | None:
        with self._reading():
            gen_dir = (
                local_layout.current_generation_dir(self.index_dir)
                if self.index_dir.is_dir()
                else None
            )
            if gen_dir is None:
                return None
            try:
                return _state(local_layout.Generation.open(gen_dir))
            except OldFormat:
                if not allow_outdated:
                    raise
                return _state(_old_format(gen_dir), outdated=True)

    def file_table(self, state: IndexState) -> FileTable:
        with self._reading():
            return state.handle.file_table()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """An OSError reading the index (a folder or file it may not read) as a
        StorageError that says reading, naming the file: never the CLI's "Cannot write
        the output", never "Cannot write" a file that is only read."""
        try:
            yield
        except OSError as exc:
            raise storage_error(exc.filename or self.index_dir, exc, "read") from None

    @contextlib.contextmanager
    def writing(self, roots: Sequence[Path], wait: float) -> Iterator[None]:
        from filelock import FileLock, Timeout

        # Writing only: its checks import the walk and every format's reader (about 60 ms),
        # which a cold `rag search` never needs.
        from indexers.stores import target

        index_dir, name = self.index_dir, self.label
        if is_path_name(name):
            target.check_target(index_dir, name, roots)
        elif index_dir.resolve() != self.settings.indexes_dir.resolve() / name:
            # $RAG_HOME/indexes/NAME is a link: where it leads gets a folder path's checks,
            # so a link into the documents never puts an index among them.
            where = index_dir.resolve()
            target.check_target(where, f"{name} (a link to {where})", roots)
        else:
            try:
                ownership.refuse_foreign(index_dir, name)
            except OSError as exc:
                raise storage_error(index_dir, exc, "read") from None
        made = target.make_index_dir(index_dir)
        lock_path = index_dir / "write.lock"
        try:
            lock_is_ours = not lock_path.exists()
            lock = FileLock(str(lock_path))
            lock.acquire(timeout=wait)
        except Timeout:
            raise IndexBusy(
                f"Another `rag index` is writing index {name!r} ({index_dir}). Wait for it "
                "to finish, or pass --wait SECONDS to queue behind it."
            ) from None
        except OSError as exc:  # read-only mount, no permission: nothing written to undo
            raise storage_error(lock_path, exc, "create or open the lock file") from None
        marker_is_ours = False
        try:
            local_layout.clean_stale(index_dir)
            if not ownership.has_marker(index_dir):
                marker_is_ours = True
                ownership.write_marker(index_dir)
            yield
        except BaseException:  # Ctrl-C too: remove what this run made, nothing else
            target.undo_failed_run(index_dir, made, lock_is_ours, marker_is_ours)
            raise
        finally:
            lock.release()

    def writer(
        self, params: dict[str, Any], base: IndexState | None, approx_threshold: int | None
    ) -> LocalWriter:
        prev = base.handle if base is not None else None
        if approx_threshold is None:
            approx_threshold = local_layout.APPROX_THRESHOLD
        return LocalWriter(self.index_dir, prev, params, approx_threshold=approx_threshold)

    def _live(self) -> local_layout.Generation:
        try:
            return local_layout.open_current(self.index_dir, self.label)
        except IndexCorrupt as exc:
            raise damaged(self.label, exc) from None

    def reader(self) -> LocalReader:
        with self._reading():
            return LocalReader(self.label, self._live())

    def fingerprint(self) -> dict[str, Any] | None:
        with self._reading():
            gen_dir = local_layout.current_generation_dir(self.index_dir)
        return generation_fingerprint(gen_dir) if gen_dir is not None else None

    def verify(self) -> IndexState:
        with self._reading():
            generation = local_layout.open_current(self.index_dir, self.label)
            generation.verify()
            return _state(generation)

    def stats(self) -> dict[str, Any]:
        with self._reading():
            size = local_layout.disk_size(self.index_dir)
        return {"store": self.kind, "where": self.where(), "bytes": size}

    def remove(self) -> list[str]:
        return ownership.remove_index(self.index_dir, self.label)


class LocalWriter(GenerationWriter):
    def commit(self) -> IndexState:  # type: ignore[override]
        return _state(super().commit())


class LocalReader:
    """One generation, opened once: FAISS segments in memory and its SQLite file."""

    def __init__(self, label: str, generation: local_layout.Generation) -> None:
        self.label = label
        self.generation = generation
        self.state = _state(generation)
        try:
            self.segments = generation.load_segments()
            self.conn = generation.connect()  # the chunks and their BM25 index
        except IndexCorrupt as exc:
            raise damaged(label, exc) from None

    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()  # a generation never changes

    def dense(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        if not self.state.params["chunks"] or n <= 0:
            return []
        return local_segments.search(self.segments, vector, n)

    def bm25(self, query: str, n: int) -> list[tuple[int, float]]:
        try:
            return bm25_search(self.conn, query, n)
        except IndexCorrupt as exc:
            raise damaged(self.label, exc) from None

    def fetch(self, ids: Sequence[int]) -> dict[int, ChunkRow]:
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        try:
            rows = self.conn.execute(
                f'SELECT id, path, title, location, text, start, "end" FROM chunks '
                f"WHERE id IN ({marks})",
                list(ids),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise damaged(self.label, IndexCorrupt(f"Cannot read its chunks: {exc}.")) from None
        return dict(iter_rows(rows))

    def fingerprint(self) -> dict[str, Any]:
        return generation_fingerprint(self.generation.dir)

    def close(self) -> None:
        self.conn.close()


def generation_fingerprint(gen_dir: Path) -> dict[str, Any]:
    """The folder, generation and embedder of a generation, and the SHA-256 of its
    params.json (counts, roots, update time). OSError/ValueError when it cannot be read."""
    raw = read_small(gen_dir / "params.json")
    params = json.loads(raw)
    return {
        "store": "local",
        "index_dir": str(gen_dir.parent),
        "generation": gen_dir.name,
        "embedder": params.get("embedder"),
        "embedder_id": params.get("embedder_id"),
        "chunks": params.get("chunks"),
        "params_sha256": hashlib.sha256(raw).hexdigest(),
    }


def _old_format(gen_dir: Path) -> local_layout.Generation:
    """An older generation's params, for its roots and embedder only."""
    path = gen_dir / "params.json"
    try:
        params = json.loads(read_small_text(path))
    except (OSError, ValueError) as exc:
        raise local_layout.unreadable(path, exc) from None
    roots = params.get("roots", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise IndexCorrupt(f"{gen_dir / 'params.json'} holds roots of the wrong kind: {roots!r}.")
    return local_layout.Generation(gen_dir, params)
