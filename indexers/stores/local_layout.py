"""On-disk index: immutable generations, switched atomically, so a reader never sees half a write.

Layout of an index folder (`$RAG_HOME/indexes/NAME`, or any folder given as a path):

    pocketrag-index.json  marker: this folder is a pocketrag index (and nothing else is)
    CURRENT               one line: the name of the live generation, replaced atomically
    write.lock            held by the one process allowed to write (filelock)
    gen-000007/           a complete, never-modified generation:
        params.json         format version, embedder name/id, dim, counts, roots, segments
        chunks.sqlite       tables `files`, `chunks` (text + metadata) and `chunks_fts` (BM25)
        seg-000012.faiss    vectors, at most segments.SEGMENT_SIZE per file (IndexIDMap2 over
        seg-000013.faiss    IndexFlatIP, or HNSW above APPROX_THRESHOLD chunks in all)

A writer builds `gen-N.tmp/`, fsyncs it, renames it to `gen-N/`, then replaces
CURRENT. Killing the writer at any moment leaves CURRENT on the previous
generation, which is complete; leftover `*.tmp` folders are removed by the next writer.
Segments a new generation did not change are hard links to the previous one's files.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexers.stores.base import OldFormat, check_params
from indexers.stores.local_segments import Segment, read_segment
from rag.core.config import Settings
from rag.core.errors import IndexCorrupt, IndexNotFound, RagError
from rag.core.files import fsync_dir, read_small_text, storage_error

FORMAT = "pocketrag-index"
FORMAT_VERSION = 2
# Above this many chunks the segments are HNSW (approximate, ~10x faster queries at 1M
# chunks, recall ~0.98); below it exact inner-product search is fast enough (< 20 ms).
APPROX_THRESHOLD = 100_000
KEEP_GENERATIONS = 2
#: Past this many chunks `rag index` suggests pgvector (benchmarks/scale.py, README: Stores).
PGVECTOR_ABOVE = 1_000_000
#: What a query process holds per chunk besides its float32 vector: the HNSW graph's
#: links (M=32: ~260 bytes) and the id map (8 bytes).
GRAPH_BYTES_PER_CHUNK = 268

GENERATION = re.compile(r"gen-\d{6}")
#: What a generation folder holds (committed, or `.tmp` while written): nothing else.
GENERATION_FILES = re.compile(
    r"chunks\.sqlite(-journal)?|params\.json|\.params\.json\.\d+\.tmp|seg-\d{6,}\.faiss"
)
#: CURRENT holds a generation's name: anything longer is not a pointer pocketrag wrote.
POINTER_BYTES = 4096
#: BM25 over the chunks lives in SQLite's FTS5, kept in step with `chunks` by triggers: it
#: is updated per chunk (no rebuild of the whole index per change) and stays on disk.
FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL, chunks INTEGER NOT NULL, indexed_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, path TEXT NOT NULL, title TEXT NOT NULL, location TEXT NOT NULL,
    text TEXT NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL, tokens INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_path ON chunks(path);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    title, text, content='chunks', content_rowid='id', tokenize='{FTS_TOKENIZER}');
CREATE TRIGGER IF NOT EXISTS chunks_fts_insert AFTER INSERT ON chunks BEGIN
    INSERT INTO chunks_fts(rowid, title, text) VALUES (new.id, new.title, new.text);
END;
CREATE TRIGGER IF NOT EXISTS chunks_fts_delete AFTER DELETE ON chunks BEGIN
    INSERT INTO chunks_fts(chunks_fts, rowid, title, text)
    VALUES ('delete', old.id, old.title, old.text);
END;
"""


def list_index_dirs(settings: Settings) -> list[Path]:
    """The folders under `settings.indexes_dir` that hold an index; one that cannot be looked
    into (no permission) is listed too, so that `rag indexes list` names it and its error."""
    from rag.core.files import storage_error

    root = settings.indexes_dir
    try:
        if not root.is_dir():
            return []
        entries = sorted(root.iterdir())
    except OSError as exc:
        raise storage_error(root, exc, "list") from None

    def holds_index(folder: Path) -> bool:
        try:
            return folder.is_dir() and (folder / "CURRENT").exists()
        except OSError:
            return True

    return [p for p in entries if holds_index(p)]


def unreadable(path: Path, exc: OSError | ValueError) -> RagError:
    """Why a file of an index cannot be read: no permission is the user's to fix (a
    StorageError saying read, never write); anything else (a FIFO, a device, a huge or
    undecodable file in its place) is damage, IndexCorrupt."""
    if isinstance(exc, PermissionError):
        return storage_error(path, exc, "read")
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
    return IndexCorrupt(f"Cannot read {path}: {reason}.")


def current_generation_dir(index_dir: Path) -> Path | None:
    """The live generation folder, or None when the index was never completed."""
    pointer = index_dir / "CURRENT"
    try:
        name = read_small_text(pointer, POINTER_BYTES).strip()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise unreadable(pointer, exc) from None
    if not GENERATION.fullmatch(name) or not (index_dir / name).is_dir():
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

    @property
    def segments(self) -> list[Segment]:
        return [Segment.from_dict(s) for s in self.params.get("segments", [])]

    @classmethod
    def open(cls, gen_dir: Path) -> Generation:
        path = gen_dir / "params.json"
        try:
            params = json.loads(read_small_text(path))
        except RecursionError:
            raise IndexCorrupt(f"Cannot read {path}: nested too deeply.") from None
        except (OSError, ValueError) as exc:
            raise unreadable(path, exc) from None
        if not isinstance(params, dict) or params.get("format") != FORMAT:
            raise IndexCorrupt(f"{path} is not a pocketrag index params file.")
        version = params.get("format_version")
        if isinstance(version, int) and version < FORMAT_VERSION:
            raise OldFormat(
                f"{path} is format version {version}; this pocketrag reads version "
                f"{FORMAT_VERSION}."
            )
        if version != FORMAT_VERSION:
            raise IndexCorrupt(
                f"{path} has format version {version}; this pocketrag reads version "
                f"{FORMAT_VERSION}."
            )
        for key in ("embedder", "dim", "chunks", "faiss", "segments"):
            if key not in params:
                raise IndexCorrupt(f"{path} lacks {key!r}.")
        check_params(path, params)
        generation = cls(gen_dir, params)
        listed = sum(s.count for s in generation.segments)
        if listed != params["chunks"]:
            raise IndexCorrupt(
                f"{path} lists {listed} vectors in segments for {params['chunks']} chunks."
            )
        return generation

    def connect(self) -> sqlite3.Connection:
        """Read-only; `immutable=1` because a committed generation never changes."""
        path = self.dir / "chunks.sqlite"
        try:
            if not path.is_file():
                raise IndexCorrupt(f"Missing {path}.")
            _check_not_truncated(path)
        except OSError as exc:
            raise unreadable(path, exc) from None
        conn = sqlite3.connect(
            f"file:{path}?mode=ro&immutable=1", uri=True, check_same_thread=False
        )
        try:
            (count,) = conn.execute("SELECT count(*) FROM chunks").fetchone()
            lost = _bm25_lost_chunk(conn)
        except (sqlite3.DatabaseError, _NotText) as exc:
            conn.close()
            raise IndexCorrupt(f"Cannot read {path}: {exc}.") from None
        if count != self.params["chunks"]:
            conn.close()
            raise IndexCorrupt(f"{path} holds {count} chunks, params say {self.params['chunks']}.")
        if lost is not None:
            conn.close()
            raise IndexCorrupt(
                f"The BM25 index in {path} is damaged: it does not find chunk {lost} by its "
                "own words."
            )
        return conn

    def file_table(self) -> dict[str, tuple[str, int, int]]:
        """path -> (sha256, size, mtime_ns), to decide what changed."""
        conn = self.connect()
        try:
            rows = conn.execute("SELECT path, sha256, size, mtime_ns FROM files").fetchall()
        except sqlite3.DatabaseError as exc:  # damage, not a disk that cannot be written
            raise IndexCorrupt(f"Cannot read {self.dir / 'chunks.sqlite'}: {exc}.") from None
        finally:
            conn.close()
        return {p: (h, s, m) for p, h, s, m in rows}

    def load_segments(self, mmap: bool = False) -> list[Any]:
        """Every segment's FAISS index (ids are chunk ids), checked against params.

        `mmap=True` maps flat vectors instead of reading them: a cheap check, for `verify`.
        """
        return [read_segment(self.dir, s, self.params["dim"], mmap) for s in self.segments]

    def verify(self) -> None:
        """Raise IndexCorrupt unless every part opens and matches params: the vectors, the
        chunks and the BM25 index. `rag indexes list/info` and every query use this one check.

        Cheap enough for `rag indexes list`: vectors are memory-mapped, not read, and
        SQLite counts rows through its smallest index.
        """
        self.load_segments(mmap=True)
        self.connect().close()


#: A word as FTS5's unicode61 tokenizer sees one: letters and digits, never `_` (a separator
#: to it), so that a chunk starting with a line of underscores is still found by a word.
_WORD = re.compile(r"[^\W_]+")


class _NotText(Exception):
    pass


def _bm25_lost_chunk(conn: sqlite3.Connection) -> int | None:
    """A chunk (the first or the last) that the BM25 index cannot find by a word of its own
    text, or None. FTS5 reads a damaged index as an empty one, silently; this probe makes
    that a damaged index for every reader alike, at the cost of two tiny queries."""
    rows = conn.execute(
        "SELECT id, text FROM chunks WHERE id IN "
        "((SELECT min(id) FROM chunks), (SELECT max(id) FROM chunks))"
    ).fetchall()
    for chunk_id, text in rows:
        if not isinstance(text, str):
            raise _NotText(f"chunk {chunk_id} holds {type(text).__name__}, not text")
        word = _WORD.search(text)
        if word is None:
            continue
        found = conn.execute(
            "SELECT 1 FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid = ?",
            (f'"{word.group(0)}"', chunk_id),
        ).fetchone()
        if found is None:
            return int(chunk_id)
    return None


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


def _fsync_tree(path: Path) -> None:
    for folder, _, names in os.walk(path):
        for n in names:
            with open(os.path.join(folder, n), "rb") as handle:
                os.fsync(handle.fileno())
        fsync_dir(folder)


def next_generation_name(index_dir: Path) -> str:
    numbers = [
        int(m.group(1))
        for p in index_dir.iterdir()
        if (m := re.fullmatch(r"gen-(\d{6})(?:\.tmp)?", p.name))
    ]
    return f"gen-{max(numbers, default=0) + 1:06d}"


def is_generation_dir(folder: Path) -> bool:
    """Whether `folder` (named `gen-N` or `gen-N.tmp`) is one pocketrag wrote: a real
    folder whose params.json is pocketrag's, or (unfinished, or damaged: a FIFO or a link
    in place of a file) one that holds nothing but entries named as a generation's files,
    none a folder. A user's folder that only has the name is not, and nothing deletes it."""
    try:
        if folder.is_symlink() or not folder.is_dir():
            return False
        try:
            params = json.loads(read_small_text(folder / "params.json"))
        except (OSError, ValueError, RecursionError):
            params = None
        if isinstance(params, dict) and params.get("format") == FORMAT:
            return True
        return all(
            GENERATION_FILES.fullmatch(p.name) and (p.is_symlink() or not p.is_dir())
            for p in folder.iterdir()
        )
    except OSError:
        return False


def foreign_generations(index_dir: Path) -> list[str]:
    """The entries of `index_dir` named like a generation that are not one."""
    return sorted(
        p.name
        for p in index_dir.iterdir()
        if re.fullmatch(r"gen-\d{6}(\.tmp)?", p.name) and not is_generation_dir(p)
    )


def clean_stale(index_dir: Path) -> None:
    """Remove unfinished generations left by a killed writer (call only while holding the lock)."""
    for p in index_dir.glob("gen-*.tmp"):
        if is_generation_dir(p):
            shutil.rmtree(p, ignore_errors=True)
    for p in index_dir.glob("CURRENT.*.tmp"):
        if p.is_file() and not p.is_symlink():
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
    fsync_dir(index_dir)
    gens = sorted(p for p in index_dir.iterdir() if GENERATION.fullmatch(p.name))
    for old in gens[:-KEEP_GENERATIONS]:  # the previous one stays for readers still on it
        if is_generation_dir(old):  # a folder only named like one is never pruned
            shutil.rmtree(old, ignore_errors=True)
    return final


def new_params(
    name: str,
    embedder_name: str,
    embedder_id: str,
    runtime: str,
    dim: int,
    roots: list[str],
    exclude: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "segments": [],
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "embedder": embedder_name,
        "embedder_id": embedder_id,
        "embedder_runtime": runtime,  # int8 vectors differ from float ones: see embedders
        "dim": dim,
        "faiss": "flat",
        "chunks": 0,
        "files": 0,
        "roots": roots,
        "exclude": exclude or [],  # --exclude globs: later updates and --watch skip the same
        "created_at": time.time(),
        "updated_at": time.time(),
        "approx_threshold": APPROX_THRESHOLD,
    }


def disk_size(path: Path) -> int:
    """Bytes on disk; a segment shared by two generations (a hard link) counts once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for p in path.rglob("*"):
        if p.is_file():
            stat = p.stat()
            if (stat.st_dev, stat.st_ino) not in seen:
                seen.add((stat.st_dev, stat.st_ino))
                total += stat.st_size
    return total
