"""Vectors in segments: FAISS indexes of at most `SEGMENT_SIZE` vectors each.

Why segments rather than one FAISS file: writing one file needs every vector of the
index in memory at once, so indexing a 200 MB text file took gigabytes. A segment is
written as soon as it is full, so a build holds at most one segment (plus the batch
being embedded), whatever the size of the input. A new generation links the segments
it did not change from the previous one (hard links: no copy, no memory) and rewrites
only segments that lost chunks, have the wrong kind, or are small enough to merge.

A query searches every segment and merges the results by score; for exact (flat)
segments that is the exact top-k of the whole index.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.core.errors import IndexCorrupt
from rag.core.threads import faiss_threads, load_faiss

#: Vectors per segment: 16384 x 384 float32 = 24 MB for MiniLM, the most a build keeps.
SEGMENT_SIZE = 16_384
# HNSW above APPROX_THRESHOLD chunks in all (store.APPROX_THRESHOLD): ~10x faster queries.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128


@dataclass(frozen=True)
class Segment:
    """One segment file as params.json lists it: `{"file", "count", "kind"}`."""

    file: str
    count: int
    kind: str  # "flat" (exact) or "hnsw" (approximate)
    min_id: int = 0  # the range of chunk ids inside, so a writer knows which segments a
    max_id: int = -1  # deletion touches without reading them

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "count": self.count, "kind": self.kind,
                "min_id": self.min_id, "max_id": self.max_id}  # fmt: skip

    def may_hold(self, ids: np.ndarray) -> bool:
        return bool(len(ids)) and bool(((ids >= self.min_id) & (ids <= self.max_id)).any())

    @classmethod
    def from_dict(cls, data: Any) -> Segment:
        """A segment as params.json lists it; IndexCorrupt unless every field is sound (a
        segment file name of our own pattern, whole non-negative counts and ids)."""
        malformed = IndexCorrupt(f"params.json lists a malformed segment: {data!r}.")
        try:
            fields = [data[k] for k in ("file", "count", "kind", "min_id", "max_id")]
        except (KeyError, TypeError, IndexError):
            raise malformed from None
        name, count, kind, low, high = fields
        whole = all(isinstance(v, int) and not isinstance(v, bool) for v in (count, low, high))
        if not (
            whole
            and isinstance(name, str)
            and _SEGMENT_FILE.fullmatch(name)
            and kind in ("flat", "hnsw")
            and count >= 0
            and low >= 0
            and (high >= low or (count == 0 and high == -1))
        ):
            raise malformed
        return cls(name, count, kind, low, high)

    @property
    def number(self) -> int:
        return int(self.file.split("-")[1].split(".")[0])


_SEGMENT_FILE = re.compile(r"seg-\d{6,}\.faiss")


def segment_file(number: int) -> str:
    return f"seg-{number:06d}.faiss"


def make_index(ids: np.ndarray, vectors: np.ndarray, dim: int, kind: str) -> Any:
    """An IndexIDMap2 (FAISS ids = chunk ids) over an exact or an HNSW inner-product index."""
    faiss = load_faiss()
    faiss_threads(faiss)  # HNSW insertion runs on OpenMP threads
    if kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    else:
        inner = faiss.IndexFlatIP(dim)
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


def write_segment(
    folder: Path, number: int, ids: np.ndarray, vectors: np.ndarray, kind: str
) -> Segment:
    faiss = load_faiss()

    name = segment_file(number)
    index = make_index(ids, vectors, vectors.shape[1], kind)
    try:
        faiss.write_index(index, str(folder / name))
    except RuntimeError as exc:  # FAISS reports a failed fwrite (disk full) this way
        if not folder.is_dir():  # removed under the run: not a full disk
            raise OSError(errno.ENOENT, f"{folder} was removed while it was written") from None
        raise OSError(errno.ENOSPC, f"FAISS could not write {name}: {first_line(exc)}") from None
    low, high = (int(ids.min()), int(ids.max())) if len(ids) else (0, -1)
    return Segment(name, len(ids), kind, low, high)


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def read_segment(folder: Path, segment: Segment, dim: int, mmap: bool = False) -> Any:
    """Load one segment, checked against what params.json says it holds."""
    faiss = load_faiss()

    path = folder / segment.file
    if not path.is_file():
        raise IndexCorrupt(f"Missing {path}.")
    flags = (getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY) if mmap else 0
    try:
        index = faiss.read_index(str(path), flags)
    except RuntimeError as exc:
        raise IndexCorrupt(f"Cannot read {path}: {first_line(exc)}.") from None
    if index.ntotal != segment.count or index.d != dim:
        raise IndexCorrupt(
            f"{path} holds {index.ntotal} vectors of dim {index.d}; params say "
            f"{segment.count} of dim {dim}."
        )
    if segment.kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = HNSW_EF_SEARCH
    return index


def contents(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of a segment, to carry its surviving vectors into a rewrite."""
    faiss = load_faiss()

    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    inner = faiss.downcast_index(index.index)
    if not inner.ntotal:
        return ids, np.zeros((0, index.d), dtype=np.float32)
    return ids, np.asarray(inner.reconstruct_n(0, inner.ntotal), dtype=np.float32)


def link_or_copy(source: Path, target: Path) -> None:
    """A segment shared by two generations is one file on disk: segments never change."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def search(indexes: Iterable[Any], vector: np.ndarray, n: int) -> list[tuple[int, float]]:
    """Top-n (chunk id, inner product) over all segments, best first."""
    hits: list[tuple[int, float]] = []
    query = vector.reshape(1, -1)
    faiss_threads()  # per query, on the searching thread: the load may have changed
    for index in indexes:
        if index.ntotal == 0:
            continue
        scores, ids = index.search(query, min(n, int(index.ntotal)))
        hits += [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=False) if i >= 0]
    hits.sort(key=lambda hit: (-hit[1], hit[0]))
    return hits[:n]


class SegmentBuffer:
    """Vectors waiting for a segment: `add` flushes a full segment to `folder` at once.

    One array of a segment's size, filled in place and reused after every flush: a list of
    blocks joined at flush time held each vector twice (24 MB more for MiniLM at the peak
    of every segment write). `np.empty` only reserves the pages, so a small index never
    touches the whole array. `kind` may change between flushes (a run that passes the
    HNSW threshold writes its later segments as HNSW at once)."""

    def __init__(self, folder: Path, dim: int, kind: str, first_number: int, size: int) -> None:
        self.folder = folder
        self.dim = dim
        self.kind = kind
        self.size = size
        self.next_number = first_number
        self.written: list[Segment] = []
        self._ids: np.ndarray | None = None
        self._vectors: np.ndarray | None = None
        self._count = 0

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if self._ids is None or self._vectors is None:
            self._ids = np.empty(self.size, dtype=np.int64)
            self._vectors = np.empty((self.size, self.dim), dtype=np.float32)
        start = 0
        while start < len(ids):
            take = min(self.size - self._count, len(ids) - start)
            end = self._count + take
            self._ids[self._count : end] = ids[start : start + take]
            self._vectors[self._count : end] = vectors[start : start + take]
            self._count = end
            start += take
            if self._count >= self.size:
                self.flush()

    def discard(self, ids: range) -> set[int]:
        """Drop `ids` still in the buffer; return those already written (the caller's job)."""
        if self._ids is None or self._vectors is None or not self._count:
            return set(ids)
        held = self._ids[: self._count]
        gone = (held >= ids.start) & (held < ids.stop)
        kept = int((~gone).sum())
        found = {int(x) for x in held[gone]}
        self._ids[:kept] = held[~gone]
        self._vectors[:kept] = self._vectors[: self._count][~gone]
        self._count = kept
        return set(ids) - found

    def release(self) -> None:
        """Write what is left and give the array back (a commit's rewrite needs its own)."""
        self.flush()
        self._ids = self._vectors = None

    def flush(self) -> None:
        if not self._count or self._ids is None or self._vectors is None:
            return
        count, self._count = self._count, 0
        segment = write_segment(
            self.folder, self.next_number, self._ids[:count], self._vectors[:count], self.kind
        )
        self.written.append(segment)
        self.next_number += 1


def surviving(
    segments: Iterable[tuple[Path, Segment]], dim: int, dropped: set[int]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The vectors of (folder, segment) pairs minus `dropped`, one segment at a time."""
    gone = np.fromiter(dropped, dtype=np.int64) if dropped else None
    for folder, segment in segments:
        ids, vectors = contents(read_segment(folder, segment, dim))
        if gone is not None:
            keep = ~np.isin(ids, gone)
            ids, vectors = ids[keep], vectors[keep]
        yield ids, vectors
