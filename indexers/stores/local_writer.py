"""Writing one new generation of an index, streamed: chunks and vectors go to disk as they come.

A `GenerationWriter` starts from the previous generation (a copy of its SQLite file; its
segments are reused by reference), takes the changes of one `rag index` run file by file,
and commits a complete `gen-N/`. What it holds in memory at any time is bounded by one
vector segment plus the batch being added, never by the size of the files or the index.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexers.chunking import Chunk
from indexers.stores import local_layout
from indexers.stores import local_segments as seg
from rag.core.errors import IndexCorrupt
from rag.core.files import storage_error, write_atomic
from rag.core.threads import load_faiss

#: Bytes copied per step from the previous generation's SQLite file.
_COPY_BLOCK = 1 << 20
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


def _copy_database(source: Path, target: Path) -> None:
    """The previous generation's chunks, the new one's starting point. A failure names
    the file it is about: the live generation's only if reading it failed (a full disk is
    the new file that cannot be written; shutil.copyfile would name its source)."""
    try:
        src = open(source, "rb")  # noqa: SIM115 - closed below, its errors told apart
    except OSError as exc:
        raise local_layout.unreadable(source, exc) from None
    with src:
        try:
            out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _CLOEXEC, 0o644)
        except OSError as exc:
            raise storage_error(target, exc) from None
        try:
            while True:
                try:
                    block = memoryview(src.read(_COPY_BLOCK))
                except OSError as exc:
                    raise local_layout.unreadable(source, exc) from None
                if not block:
                    return
                while block:
                    try:
                        block = block[os.write(out, block) :]
                    except OSError as exc:
                        raise storage_error(target, exc) from None
        finally:
            os.close(out)


class GenerationWriter:
    def __init__(
        self,
        index_dir: Path,
        prev: local_layout.Generation | None,
        params: dict[str, Any],
        *,
        approx_threshold: int = local_layout.APPROX_THRESHOLD,
        segment_size: int | None = None,
    ) -> None:
        self.index_dir = index_dir
        self.prev = prev
        self.params = params
        self.dim = int(params["dim"])
        self.approx_threshold = approx_threshold
        self.segment_size = segment_size or seg.SEGMENT_SIZE
        self.tmp = index_dir / (local_layout.next_generation_name(index_dir) + ".tmp")
        self.tmp.mkdir()
        db = self.tmp / "chunks.sqlite"
        if prev is not None:
            _copy_database(prev.dir / "chunks.sqlite", db)
        self.conn = sqlite3.connect(str(db))
        # The file is private to this run until commit fsyncs it: no journal needed, and a
        # crash leaves only a .tmp folder that the next run removes.
        self.conn.execute("PRAGMA journal_mode=OFF")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.executescript(local_layout.SCHEMA)
        (last_id,) = self.conn.execute("SELECT coalesce(max(id), 0) FROM chunks").fetchone()
        self.next_id = max(int(last_id), int(params.get("next_chunk_id", 0)) - 1) + 1
        self._old = [(prev.dir, s) for s in prev.segments] if prev is not None else []
        first_segment = max([s.number for _, s in self._old] + [0]) + 1
        first_segment = max(first_segment, int(params.get("next_segment", 1)))
        self.buffer = seg.SegmentBuffer(
            self.tmp, self.dim, self._kind(int(params["chunks"])), first_segment, self.segment_size
        )
        self.dropped: set[int] = set()
        self.chunks = int(params["chunks"])
        # Files are added one after another, so each one's new chunk ids are one range.
        self._new_ids: dict[str, range] = {}

    def _kind(self, chunks: int) -> str:
        return "hnsw" if chunks > self.approx_threshold else "flat"

    def remove_paths(self, paths: Iterable[str]) -> None:
        """Forget every chunk and the file record of `paths` (changed or gone files)."""
        for path in paths:
            ids = [r[0] for r in self.conn.execute("SELECT id FROM chunks WHERE path=?", (path,))]
            self.conn.execute("DELETE FROM chunks WHERE path=?", (path,))
            self.conn.execute("DELETE FROM files WHERE path=?", (path,))
            self.dropped.update(ids)
            self.chunks -= len(ids)

    def add_chunks(self, path: str, chunks: Sequence[Chunk], vectors: np.ndarray) -> None:
        ids = np.arange(self.next_id, self.next_id + len(chunks), dtype=np.int64)
        self.next_id += len(chunks)
        self.conn.executemany(
            "INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (int(i), path, c.title, c.location, c.text, c.start, c.end, c.tokens)
                for i, c in zip(ids, chunks, strict=True)
            ],
        )
        earlier = self._new_ids.get(path, range(int(ids[0]), int(ids[0])))
        self._new_ids[path] = range(earlier.start, int(ids[-1]) + 1)
        self.chunks += len(chunks)
        # Past the threshold, what is still to be written is HNSW already: the commit then
        # rebuilds only the flat segments written before (at 1M chunks, 6 of 62).
        self.buffer.kind = self._kind(self.chunks)
        self.buffer.add(ids, vectors)

    def add_file(self, path: str, sha256: str, size: int, mtime_ns: int) -> None:
        """The file's chunks are all in: record it, so the next run can skip it."""
        count = len(self._new_ids.get(path, range(0)))
        self.conn.execute(
            "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
            (path, sha256, size, mtime_ns, count, time.time()),
        )

    def discard_file(self, path: str) -> None:
        """A file that failed part-way: its chunks and vectors from this run leave again."""
        ids = self._new_ids.pop(path, range(0))
        if not ids:
            return
        self.conn.execute("DELETE FROM chunks WHERE path=?", (path,))
        self.dropped |= self.buffer.discard(ids)
        self.chunks -= len(ids)

    def commit(self) -> local_layout.Generation:
        """Finish the segments and the database, then make the generation live."""
        self.buffer.release()
        kind = self._kind(self.chunks)
        half = self.segment_size // 2
        candidates = self._old + [(self.tmp, s) for s in self.buffer.written]
        dropped = np.fromiter(self.dropped, dtype=np.int64, count=len(self.dropped))
        keep: list[tuple[Path, seg.Segment]] = []
        redo: list[tuple[Path, seg.Segment]] = []
        small: list[tuple[Path, seg.Segment]] = []
        for folder, segment in candidates:
            if segment.kind != kind or self._touched(folder, segment, dropped):
                redo.append((folder, segment))  # lost chunks, or the wrong kind now
            elif segment.count < half:
                small.append((folder, segment))
            else:
                keep.append((folder, segment))
        if len(small) + len(redo) > 1:  # small ones merge with each other and the rewrites
            redo += small
        else:
            keep += small
        rewrite = seg.SegmentBuffer(
            self.tmp, self.dim, kind, self.buffer.next_number, self.segment_size
        )
        for ids, vectors in seg.surviving(redo, self.dim, self.dropped):
            rewrite.add(ids, vectors)
        rewrite.flush()
        final = []
        for folder, segment in keep:
            if folder != self.tmp:
                seg.link_or_copy(folder / segment.file, self.tmp / segment.file)
            final.append(segment)
        final += rewrite.written
        for folder, segment in redo:  # this run's own segments that were merged away
            if folder == self.tmp:
                (self.tmp / segment.file).unlink(missing_ok=True)
        (n_files,) = self.conn.execute("SELECT count(*) FROM files").fetchone()
        (n_chunks,) = self.conn.execute("SELECT count(*) FROM chunks").fetchone()
        if n_chunks != sum(s.count for s in final):  # the previous generation lied about
            raise IndexCorrupt(  # its segments (their id ranges): it is damaged
                f"{self.prev.dir if self.prev else self.tmp}: the vectors do not match the "
                f"chunks ({n_chunks} chunks, {sum(s.count for s in final)} vectors)."
            )
        self._compact()
        self.conn.close()
        self.params.update(
            chunks=int(n_chunks),
            files=int(n_files),
            faiss=kind,
            segments=[s.as_dict() for s in final],
            next_chunk_id=self.next_id,
            next_segment=rewrite.next_number,
            approx_threshold=self.approx_threshold,
            segment_size=self.segment_size,
            updated_at=time.time(),
        )
        write_atomic(self.tmp / "params.json", json.dumps(self.params, indent=2) + "\n")
        final_dir = local_layout.commit_generation(self.index_dir, self.tmp)
        return local_layout.Generation.open(final_dir)

    def _touched(self, folder: Path, segment: seg.Segment, dropped: np.ndarray) -> bool:
        """Whether a segment holds a dropped id; read only when its id range says it may."""
        if not len(dropped) or not segment.may_hold(dropped):
            return False
        faiss = load_faiss()

        # Keep the index in a name: `id_map` belongs to it, and reading it after FAISS freed
        # a temporary index gives garbage ids (then a touched segment looks untouched).
        index = seg.read_segment(folder, segment, self.dim)
        ids = faiss.vector_to_array(index.id_map)
        return bool(np.isin(ids, dropped).any())

    def _compact(self) -> None:
        """Give back space once a quarter of the file is free pages (deletions)."""
        self.conn.commit()
        (free,) = self.conn.execute("PRAGMA freelist_count").fetchone()
        (pages,) = self.conn.execute("PRAGMA page_count").fetchone()
        if pages and free / pages > 0.25:
            self.conn.execute("VACUUM")

    def abort(self) -> None:
        """Close the database and remove the unfinished `.tmp` folder (this run's own)."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
