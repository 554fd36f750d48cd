"""On-disk index: immutable generations, switched atomically, so a reader never sees half a write.

Layout of an index folder (`$RAG_HOME/indexes/NAME`, or any folder given as a path):

    CURRENT           one line: the name of the live generation, replaced atomically
    write.lock        held by the one process allowed to write (filelock)
    gen-000007/       a complete, never-modified generation:
        params.json     format version, embedder name/id, dim, FAISS kind, counts, roots
        chunks.sqlite   tables `files` (path, sha256, size, mtime) and `chunks` (text + metadata)
        vectors.faiss   IndexIDMap2 over IndexFlatIP (exact), or HNSW above APPROX_THRESHOLD
        bm25/           the bm25s index over the same chunks, plus bm25_ids.npy

A writer builds `gen-N.tmp/`, fsyncs it, renames it to `gen-N/`, then replaces
CURRENT. Killing the writer at any moment leaves CURRENT on the previous
generation, which is complete; leftover `*.tmp` folders are removed by the next writer.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rag.config import Settings
from rag.errors import IndexCorrupt, IndexNotFound, UsageError

FORMAT = "pocketrag-index"
FORMAT_VERSION = 1
# Above this many chunks the index is HNSW (approximate, ~10x faster queries at 1M
# chunks, recall ~0.98); below it exact inner-product search is fast enough (< 20 ms).
APPROX_THRESHOLD = 100_000
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
KEEP_GENERATIONS = 2

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Everything pocketrag itself puts in an index folder (see the layout above).
_LAYOUT = re.compile(r"CURRENT|CURRENT\..+\.tmp|write\.lock|gen-\d{6}(\.tmp)?")
SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, chunks INTEGER NOT NULL, indexed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, title TEXT NOT NULL, location TEXT NOT NULL,
    text TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, tokens INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
"""


def is_path_name(name: str) -> bool:
    """True when `name` is a folder path (has a slash, or starts with '~' or '.')."""
    return "/" in name or os.sep in name or name.startswith(("~", "."))


def resolve_index_dir(name: str, settings: Settings) -> Path:
    """A plain name lives under `settings.indexes_dir`; anything with a slash is a folder path."""
    if is_path_name(name):
        return Path(name).expanduser().resolve()
    if not _NAME.match(name):
        raise UsageError(
            f"Invalid index name {name!r}: use letters, digits, '.', '_' or '-' "
            "(up to 64), or give a folder path."
        )
    return settings.indexes_dir / name


def damaged(label: str, exc: Exception, paths: Sequence[str | Path] = ()) -> IndexCorrupt:
    """`exc` (an IndexCorrupt) restated with what to do about it."""
    target = " ".join(shlex.quote(str(p)) for p in paths) or "PATH"
    return IndexCorrupt(
        f"Index {label!r} is damaged: {exc} Rebuild it with "
        f"`rag index {target} --name {shlex.quote(label)} --rebuild`."
    )


def holds_only_index_files(folder: Path) -> bool:
    """True when every entry of `folder` is one pocketrag writes (an empty folder too)."""
    return all(_LAYOUT.fullmatch(p.name) for p in folder.iterdir())


def list_index_dirs(settings: Settings) -> list[Path]:
    root = settings.indexes_dir
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "CURRENT").exists())


def current_generation_dir(index_dir: Path) -> Path | None:
    """The live generation folder, or None when the index was never completed."""
    pointer = index_dir / "CURRENT"
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise IndexCorrupt(f"Cannot read {pointer}: {exc}.") from None
    if not re.fullmatch(r"gen-\d{6}", name) or not (index_dir / name).is_dir():
        raise IndexCorrupt(f"{pointer} points to a missing generation ({name!r}).")
    return index_dir / name


@dataclass
class Generation:
    """One committed, read-only generation of an index."""

    dir: Path
    params: dict[str, Any]

    @property
    def number(self) -> int:
        return int(self.dir.name.split("-")[1])

    @classmethod
    def open(cls, gen_dir: Path) -> Generation:
        path = gen_dir / "params.json"
        try:
            params = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise IndexCorrupt(f"Cannot read {path}: {exc}.") from None
        if not isinstance(params, dict) or params.get("format") != FORMAT:
            raise IndexCorrupt(f"{path} is not a pocketrag index params file.")
        if params.get("format_version") != FORMAT_VERSION:
            raise IndexCorrupt(
                f"{path} has format version {params.get('format_version')}; this pocketrag "
                f"reads version {FORMAT_VERSION}."
            )
        for key in ("embedder", "dim", "chunks", "faiss"):
            if key not in params:
                raise IndexCorrupt(f"{path} lacks {key!r}.")
        return cls(gen_dir, params)

    def connect(self) -> sqlite3.Connection:
        """Read-only; `immutable=1` because a committed generation never changes."""
        path = self.dir / "chunks.sqlite"
        if not path.is_file():
            raise IndexCorrupt(f"Missing {path}.")
        _check_not_truncated(path)
        conn = sqlite3.connect(
            f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
        try:
            (count,) = conn.execute("SELECT count(*) FROM chunks").fetchone()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise IndexCorrupt(f"Cannot read {path}: {exc}.") from None
        if count != self.params["chunks"]:
            conn.close()
            raise IndexCorrupt(f"{path} holds {count} chunks, params say {self.params['chunks']}.")
        return conn

    def file_table(self) -> dict[str, tuple[str, int, int]]:
        """path -> (sha256, size, mtime_ns), to decide what changed."""
        conn = self.connect()
        try:
            rows = conn.execute("SELECT path, sha256, size, mtime_ns FROM files").fetchall()
        finally:
            conn.close()
        return {p: (h, s, m) for p, h, s, m in rows}

    def load_vectors(self, mmap: bool = False) -> Any:
        """The FAISS index (IDs are chunk ids); checked against params so damage shows early.

        `mmap=True` maps flat vectors instead of reading them: a cheap check, for `verify`.
        """
        import faiss

        path = self.dir / "vectors.faiss"
        if not path.is_file():
            raise IndexCorrupt(f"Missing {path}.")
        flags = (getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY) if mmap else 0
        try:
            index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
            raise IndexCorrupt(f"Cannot read {path}: {first}.") from None
        if index.ntotal != self.params["chunks"] or index.d != self.params["dim"]:
            raise IndexCorrupt(
                f"{path} holds {index.ntotal} vectors of dim {index.d}; params say "
                f"{self.params['chunks']} of dim {self.params['dim']}."
            )
        return index

    def verify(self) -> None:
        """Raise IndexCorrupt unless the vectors and chunks open and match params.

        Cheap enough for `rag indexes list`: vectors are memory-mapped, not read, and
        SQLite counts rows through its smallest index.
        """
        self.load_vectors(mmap=True)
        self.connect().close()


def _check_not_truncated(path: Path) -> None:
    """A truncated SQLite file can still count its rows; its header knows the real size."""
    with path.open("rb") as handle:
        head = handle.read(100)
    if len(head) < 100 or not head.startswith(b"SQLite format 3\x00"):
        return  # not SQLite at all: sqlite3 itself says so, in its own words
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    if head[24:28] == head[92:96] and path.stat().st_size < page_size * pages:
        raise IndexCorrupt(
            f"Cannot read {path}: truncated ({path.stat().st_size} of {page_size * pages} bytes)."
        )


def open_current(index_dir: Path, label: str) -> Generation:
    """The live generation of an index, or IndexNotFound."""
    if not index_dir.is_dir():
        raise IndexNotFound(
            f"No index named {label!r} (looked in {index_dir}). "
            "Create it with `rag index PATH --name NAME`, or see `rag indexes list`."
        )
    gen_dir = current_generation_dir(index_dir)
    if gen_dir is None:
        raise IndexNotFound(
            f"Index {label!r} at {index_dir} was never completed. "
            f"Run `rag index PATH --name {label}` to build it."
        )
    return Generation.open(gen_dir)


def vectors_of(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of an IndexIDMap2, so a new generation can reuse unchanged embeddings."""
    import faiss

    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    inner = faiss.downcast_index(index.index)
    vectors = inner.reconstruct_n(0, inner.ntotal) if inner.ntotal else None
    if vectors is None:
        vectors = np.zeros((0, index.d), dtype=np.float32)
    return ids, np.asarray(vectors, dtype=np.float32)


def make_faiss(ids: np.ndarray, vectors: np.ndarray, dim: int, threshold: int) -> tuple[Any, str]:
    """Exact IndexFlatIP up to `threshold` vectors, HNSW (inner product) above it."""
    import faiss

    if len(ids) > threshold:
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        kind = "hnsw"
    else:
        inner = faiss.IndexFlatIP(dim)
        kind = "flat"
    index = faiss.IndexIDMap2(inner)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index, kind


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for folder, _, names in os.walk(path):
        for n in names:
            with open(os.path.join(folder, n), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_dir(Path(folder))


def next_generation_name(index_dir: Path) -> str:
    numbers = [
        int(m.group(1))
        for p in index_dir.iterdir()
        if (m := re.fullmatch(r"gen-(\d{6})(?:\.tmp)?", p.name))
    ]
    return f"gen-{max(numbers, default=0) + 1:06d}"


def clean_stale(index_dir: Path) -> None:
    """Remove unfinished generations left by a killed writer (call only while holding the lock)."""
    for p in index_dir.glob("gen-*.tmp"):
        shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob("CURRENT.*.tmp"):
        p.unlink(missing_ok=True)


def commit_generation(index_dir: Path, tmp_dir: Path) -> Path:
    """Make a fully written `gen-N.tmp` live: fsync, rename, switch CURRENT, prune old ones."""
    _fsync_tree(tmp_dir)
    final = tmp_dir.with_name(tmp_dir.name[: -len(".tmp")])
    os.rename(tmp_dir, final)
    pointer_tmp = index_dir / f"CURRENT.{os.getpid()}.tmp"
    with open(pointer_tmp, "w", encoding="utf-8") as handle:
        handle.write(final.name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(pointer_tmp, index_dir / "CURRENT")
    _fsync_dir(index_dir)
    gens = sorted(p for p in index_dir.iterdir() if re.fullmatch(r"gen-\d{6}", p.name))
    for old in gens[:-KEEP_GENERATIONS]:  # the previous one stays for readers still on it
        shutil.rmtree(old, ignore_errors=True)
    return final


def new_params(
    name: str, embedder_name: str, embedder_id: str, dim: int, roots: list[str]
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "embedder": embedder_name,
        "embedder_id": embedder_id,
        "dim": dim,
        "faiss": "flat",
        "chunks": 0,
        "files": 0,
        "roots": roots,
        "created_at": time.time(),
        "updated_at": time.time(),
        "approx_threshold": APPROX_THRESHOLD,
    }


def disk_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
