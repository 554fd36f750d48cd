"""`rag index`: bring an index in line with its folders, re-embedding only what changed.

Incremental: a file whose size and mtime match the last run is unchanged; otherwise
its SHA-256 decides. Changed files are re-read and re-embedded, files that are gone
(or now unreadable) leave the index, and `rebuild=True` starts from nothing.
Safe: one writer at a time (filelock; a second run waits `wait` seconds, then
refuses with IndexBusy), and every write goes to a new generation that becomes
live only by an atomic rename (see `indexers.store`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexers import store, target
from indexers.chunking import Chunk, chunk_documents, embedding_text
from indexers.discovery import Skip, discover
from indexers.embedders import Embedder, canonical_name, get_embedder
from indexers.hybrid import build_bm25
from indexers.loaders import LoadError, load_file
from rag.config import Settings
from rag.errors import IndexBusy, IndexCorrupt, RagError, UsageError
from rag.files import storage_error

EMBED_BATCH = 64
Progress = Callable[[str, int, int], None]  # (phase, done, total); phases: read, embed, write


@dataclass
class BuildReport:
    name: str
    index_dir: str
    files_seen: int = 0
    files_embedded: int = 0
    files_unchanged: int = 0
    files_removed: int = 0
    skipped: list[Skip] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks_added: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    generation: int = 0
    changed: bool = False
    created: bool = False  # the first build of this index

    def skip_reasons(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.skipped:
            key = s.reason.split(" (")[0].split(":")[0]
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "index_dir": self.index_dir,
            "files_read": self.files_embedded + self.files_unchanged,
            "files_embedded": self.files_embedded,
            "files_unchanged": self.files_unchanged,
            "files_removed": self.files_removed,
            "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped],
            "skip_reasons": self.skip_reasons(),
            "warnings": self.warnings,
            "chunks_added": self.chunks_added,
            "chunks": self.chunks_total,
            "seconds": round(self.seconds, 3),
            "generation": self.generation,
            "changed": self.changed,
            "created": self.created,
        }


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Changed:
    path: Path
    sha256: str
    size: int
    mtime_ns: int
    chunks: list[Chunk] = field(default_factory=list)


def _noop(phase: str, done: int, total: int) -> None:
    return None


def build_index(
    paths: Sequence[str | Path],
    name: str,
    settings: Settings,
    *,
    rebuild: bool = False,
    exclude: Sequence[str] = (),
    wait: float = 0.0,
    progress: Progress | None = None,
    approx_threshold: int = store.APPROX_THRESHOLD,
) -> BuildReport:
    """Create or update index `name` from `paths` (empty: the roots of the last run)."""
    from filelock import FileLock, Timeout

    started = time.perf_counter()
    progress = progress or _noop
    index_dir = store.resolve_index_dir(name, settings)
    for p in paths:  # fail on a bad path before creating anything
        if not Path(p).expanduser().exists():
            raise UsageError(f"No such file or folder: {p}. Check the path and try again.")
    if store.is_path_name(name):
        roots = [Path(p).expanduser().resolve() for p in paths]
        target.check_target(index_dir, name, roots)
    made = target.make_index_dir(index_dir)
    lock_path = index_dir / "write.lock"
    try:
        lock_is_ours = not lock_path.exists()
        lock = FileLock(str(lock_path))
        lock.acquire(timeout=wait)
    except Timeout:
        raise IndexBusy(
            f"Another `rag index` is writing index {name!r} ({index_dir}). Wait for it to "
            "finish, or pass --wait SECONDS to queue behind it."
        ) from None
    except OSError as exc:  # read-only mount, no permission: nothing written, nothing to undo
        raise storage_error(lock_path, exc, "create or open the lock file") from None
    try:
        store.clean_stale(index_dir)
        report = _build_locked(
            paths, name, index_dir, settings, rebuild, exclude, progress, approx_threshold
        )
    except BaseException as exc:  # Ctrl-C too: remove what this run made, nothing else
        target.undo_failed_run(index_dir, made, lock_is_ours)
        if isinstance(exc, IndexCorrupt):
            raise store.damaged(name, exc, paths) from None
        raise
    finally:
        lock.release()
    report.seconds = time.perf_counter() - started
    return report


def _build_locked(
    paths: Sequence[str | Path],
    name: str,
    index_dir: Path,
    settings: Settings,
    rebuild: bool,
    exclude: Sequence[str],
    progress: Progress,
    approx_threshold: int,
) -> BuildReport:
    report = BuildReport(name=name, index_dir=str(index_dir))
    report.created = not (index_dir / "CURRENT").exists()
    gen_dir = None if rebuild else store.current_generation_dir(index_dir)
    prev = store.Generation.open(gen_dir) if gen_dir else None
    wanted = canonical_name(settings.embedder)
    if prev is not None and canonical_name(prev.params["embedder"]) != wanted:
        raise UsageError(
            f"Index {name!r} was built with embedder {prev.params['embedder']!r}, not "
            f"{wanted!r}. Add --rebuild to re-embed everything with {wanted!r}, or keep "
            f"the old one with --embedder {prev.params['embedder']}."
        )
    roots = [str(Path(p).expanduser().resolve()) for p in paths]
    if not roots:
        if prev is None:
            raise UsageError(f"Give at least one PATH to build index {name!r}.")
        roots = list(prev.params.get("roots", []))
    found = discover(roots, exclude)
    own = (settings.home.resolve(), index_dir.resolve())  # never index pocketrag's own state
    ours = [p for p in found.files if any(p.is_relative_to(d) for d in own)]
    found.files = [p for p in found.files if p not in set(ours)]
    found.skipped += [Skip(str(p), "pocketrag data") for p in ours]
    report.skipped.extend(found.skipped)
    report.files_seen = len(found.files)
    old_files = prev.file_table() if prev else {}

    changed: list[_Changed] = []
    for path in found.files:
        try:
            stat = path.stat()
            key = str(path)
            old = old_files.get(key)
            # Same size and mtime_ns: unchanged, without hashing (rsync's quick check; git's
            # index does the same), so an unchanged re-run stays fast. An edit slips past
            # only if it keeps the size and the mtime too (a tool restoring mtime, or a
            # coarse-mtime filesystem within one tick); `--rebuild` re-reads every file.
            if old and old[1] == stat.st_size and old[2] == stat.st_mtime_ns:
                report.files_unchanged += 1
                continue
            digest = file_sha256(path)
        except OSError as exc:
            report.skipped.append(Skip(str(path), f"unreadable ({exc.strerror or exc})"))
            continue
        if old and old[0] == digest:
            report.files_unchanged += 1
            continue
        changed.append(_Changed(path, digest, stat.st_size, stat.st_mtime_ns))
    present = {str(p) for p in found.files}
    removed = {p for p in old_files if p not in present}

    if not found.files:
        raise UsageError(
            f"No indexable files in {', '.join(roots)}"
            + (f" ({_reasons(report)})" if report.skipped else " (empty)")
            + ". Point `rag index` at documents (txt, md, rst, html, pdf, json/jsonl, code)."
        )
    if prev is not None and not changed and not removed:
        report.chunks_total = int(prev.params["chunks"])
        report.generation = prev.number
        return report

    embedder = _read_and_chunk(changed, wanted, report, progress)
    failed = {str(c.path) for c in changed if not c.chunks}
    changed = [c for c in changed if c.chunks]
    removed |= failed & set(old_files)
    report.files_embedded = len(changed)
    report.files_removed = len(removed - failed)
    all_chunks = [ch for c in changed for ch in c.chunks]
    if prev is not None and not changed and not removed:
        report.chunks_total = int(prev.params["chunks"])
        report.generation = prev.number
        return report
    if prev is None and not all_chunks:
        raise UsageError(
            f"No text found in {', '.join(roots)} ({_reasons(report)}): nothing to index."
        )
    embedder = embedder or get_embedder(wanted)
    vectors = _embed(all_chunks, embedder, progress)
    progress("write", 0, 1)
    gen = _write_generation(
        index_dir, prev, name, wanted, embedder, roots, changed, removed, vectors,
        approx_threshold,
    )  # fmt: skip
    progress("write", 1, 1)
    report.chunks_added = len(all_chunks)
    report.chunks_total = int(gen.params["chunks"])
    report.generation = gen.number
    report.changed = True
    return report


def _reasons(report: BuildReport) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in report.skip_reasons().items())


def _read_and_chunk(
    changed: list[_Changed], embedder_name: str, report: BuildReport, progress: Progress
) -> Embedder | None:
    """Load and chunk each changed file; a bad file is skipped with its reason, never fatal.

    The embedder (seconds to load) is loaded only once some file has text, so a re-run
    whose only "changes" are files that still fail to load stays fast.
    """
    embedder: Embedder | None = None
    for i, item in enumerate(changed):
        progress("read", i, len(changed))
        try:
            loaded = load_file(item.path)
            if embedder is None:
                embedder = get_embedder(embedder_name)
            max_tokens = max(min(230, embedder.max_tokens - 26), 16)
            item.chunks = chunk_documents(
                loaded.documents, str(item.path), embedder.count_tokens, max_tokens,
                max(max_tokens // 6, 1),
            )  # fmt: skip
        except LoadError as exc:
            report.skipped.append(Skip(str(item.path), str(exc)))
            report.warnings.append(f"skipped {item.path}: {exc}")
            continue
        except RagError:
            raise
        except Exception as exc:  # a loader bug on one odd file must not stop the run
            reason = f"failed to read: {type(exc).__name__}: {exc}"
            report.skipped.append(Skip(str(item.path), reason))
            report.warnings.append(f"skipped {item.path}: {reason}")
            continue
        report.warnings.extend(f"{item.path}: {w}" for w in loaded.warnings)
    progress("read", len(changed), len(changed))
    return embedder


def _embed(chunks: list[Chunk], embedder: Embedder, progress: Progress) -> np.ndarray:
    """Embed in length-sorted batches (less padding), reporting progress per batch."""
    texts = [embedding_text(c.title, c.text) for c in chunks]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    progress("embed", 0, len(texts))
    for start in range(0, len(order), EMBED_BATCH):
        rows = order[start : start + EMBED_BATCH]
        vectors = embedder.embed([texts[i] for i in rows])
        if vectors.shape != (len(rows), embedder.dim):
            raise ValueError(f"embedder returned shape {vectors.shape}")
        out[rows] = vectors
        progress("embed", min(start + EMBED_BATCH, len(texts)), len(texts))
    return out


def _write_generation(
    index_dir: Path,
    prev: store.Generation | None,
    name: str,
    embedder_name: str,
    embedder: Embedder,
    roots: list[str],
    changed: list[_Changed],
    removed: set[str],
    vectors: np.ndarray,
    approx_threshold: int,
) -> store.Generation:
    """Write a complete new generation next to the live one, then switch to it."""
    tmp = index_dir / (store.next_generation_name(index_dir) + ".tmp")
    tmp.mkdir()
    if prev is not None:
        shutil.copyfile(prev.dir / "chunks.sqlite", tmp / "chunks.sqlite")
        ids, old_vectors = store.vectors_of(prev.load_vectors())
        params = dict(prev.params, roots=roots, updated_at=time.time())
    else:
        ids, old_vectors = np.zeros(0, np.int64), np.zeros((0, embedder.dim), np.float32)
        params = store.new_params(name, embedder_name, embedder.id, embedder.dim, roots)
    conn = sqlite3.connect(str(tmp / "chunks.sqlite"))
    try:
        conn.executescript(store.SCHEMA)
        drop = [str(c.path) for c in changed] + sorted(removed)
        dropped_ids: list[int] = []
        for path in drop:
            dropped_ids += [
                r[0] for r in conn.execute("SELECT id FROM chunks WHERE path=?", (path,))
            ]
            conn.execute("DELETE FROM chunks WHERE path=?", (path,))
            conn.execute("DELETE FROM files WHERE path=?", (path,))
        keep = ~np.isin(ids, np.asarray(dropped_ids, dtype=np.int64))
        ids, old_vectors = ids[keep], old_vectors[keep]
        (next_id,) = conn.execute("SELECT coalesce(max(id), 0) + 1 FROM chunks").fetchone()
        next_id = max(next_id, int(ids.max()) + 1 if len(ids) else 1)
        new_ids = np.arange(next_id, next_id + len(vectors), dtype=np.int64)
        rows = []
        now = time.time()
        position = 0
        for item in changed:
            for ch in item.chunks:
                rows.append((int(new_ids[position]), str(item.path), ch.title, ch.location,
                             ch.text, ch.start, ch.end, ch.tokens))  # fmt: skip
                position += 1
            conn.execute(
                "INSERT INTO files VALUES (?, ?, ?, ?, ?, ?)",
                (str(item.path), item.sha256, item.size, item.mtime_ns, len(item.chunks), now),
            )
        conn.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        conn.commit()
        all_ids = np.concatenate([ids, new_ids])
        all_vectors = np.concatenate([old_vectors, vectors]) if len(vectors) else old_vectors
        (n_files,) = conn.execute("SELECT count(*) FROM files").fetchone()
        texts = conn.execute("SELECT id, title, text FROM chunks ORDER BY id").fetchall()
        conn.execute("VACUUM")
    finally:
        conn.close()
    import faiss

    index, kind = store.make_faiss(all_ids, all_vectors, embedder.dim, approx_threshold)
    faiss.write_index(index, str(tmp / "vectors.faiss"))
    build_bm25(
        np.asarray([t[0] for t in texts], dtype=np.int64),
        [embedding_text(t[1], t[2]) for t in texts],
        tmp,
    )
    params.update(chunks=len(all_ids), files=int(n_files), faiss=kind)
    params["approx_threshold"] = approx_threshold
    (tmp / "params.json").write_text(json.dumps(params, indent=2) + "\n", encoding="utf-8")
    final = store.commit_generation(index_dir, tmp)
    return store.Generation.open(final)
