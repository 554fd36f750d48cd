"""`rag index`: bring an index in line with its folders, re-embedding only what changed.

Incremental: a file whose size and mtime match the last run is unchanged; otherwise
its SHA-256 decides. Changed files are re-read and re-embedded, files that are gone
(or now unreadable) leave the index, and `rebuild=True` starts from nothing. `hold`
names files to leave as the index has them (`indexers.watch`: still being written).
Safe: one writer at a time (filelock; a second run waits `wait` seconds, then
refuses with IndexBusy), and every write goes to a new generation that becomes
live only by an atomic rename (see `indexers.stores.local_layout`).
"""

from __future__ import annotations

import errno
import itertools
import sqlite3
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexers import ocr, stores
from indexers.chunking import Chunk, embedding_text, iter_chunks
from indexers.discovery import Skip, check_given, discover, one_line, open_regular
from indexers.documents import LoadError
from indexers.embedders import (
    Embedder,
    check_embedder,
    get_embedder,
    runtime_for_index,
    runtime_for_new_index,
)
from indexers.loaders import iter_documents
from indexers.model_files import canonical_name
from indexers.stores import local_layout
from indexers.stores.base import damaged
from rag.core.config import Settings, expand_path
from rag.core.errors import IndexCorrupt, RagError, UsageError
from rag.core.files import sha256_of, storage_error

EMBED_BATCH = 64
#: Chunks are embedded this many batches at a time (sorted by length within the window, for
#: less padding): the most chunks a build holds before they reach the disk.
EMBED_WINDOW = 8
_STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
#: (phase, done, total); phases: read (files), ocr (pages read by OCR; total 0: not known
#: ahead), embed (chunks; total 0 too), write
Progress = Callable[[str, int, int], None]


@dataclass
class BuildReport:
    name: str
    index_dir: str
    files_seen: int = 0
    files_embedded: int = 0
    files_added: int = 0  # of files_embedded: not in the index before
    files_unchanged: int = 0
    files_held: int = 0  # changed, but left as they were (`hold`): for the next run
    files_removed: int = 0
    skipped: list[Skip] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    chunks_added: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    generation: int = 0
    changed: bool = False
    created: bool = False  # the first build of this index
    formats: dict[str, int] = field(default_factory=dict)  # files read, by suffix

    def count_format(self, path: Path) -> None:
        """One more file read (embedded or unchanged), counted by its suffix: `.docx`,
        `.jsonl.gz`, "(none)"."""
        suffixes = [s.lower() for s in path.suffixes[-2:]]
        key = "".join(suffixes) if suffixes[-1:] == [".gz"] else "".join(suffixes[-1:])
        self.formats[key or "(none)"] = self.formats.get(key or "(none)", 0) + 1

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
            "files_added": self.files_added,
            "files_unchanged": self.files_unchanged,
            "files_held": self.files_held,
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
            "formats": dict(sorted(self.formats.items(), key=lambda kv: (-kv[1], kv[0]))),
        }


def file_sha256(path: Path) -> str:
    with open_regular(path) as handle:  # never a FIFO or device swapped in since discovery
        return sha256_of(handle)


@dataclass
class _Changed:
    path: Path
    sha256: str
    size: int
    mtime_ns: int

    @property
    def path_key(self) -> str:
        return str(self.path)


def _noop(phase: str, done: int, total: int) -> None:
    return None


def pocketrag_data(settings: Settings, index_dir: Path) -> Callable[[Path], bool]:
    """Whether a (resolved) path is pocketrag's own state, never indexed (nor watched): the
    index's folder and RAG_HOME, but for the files uploaded to `rag serve`, the user's."""
    home, uploads = settings.home.resolve(), settings.uploads_dir.resolve()
    own = index_dir.resolve()

    def ours(path: Path) -> bool:
        return path.is_relative_to(own) or (
            path.is_relative_to(home) and not path.is_relative_to(uploads)
        )

    return ours


def build_index(
    paths: Sequence[str | Path],
    name: str,
    settings: Settings,
    *,
    rebuild: bool = False,
    exclude: Sequence[str] | None = None,
    wait: float = 0.0,
    progress: Progress | None = None,
    approx_threshold: int | None = None,  # None: the store's own (local 100k, pgvector 10k)
    store_kind: str | None = None,
    hold: Collection[str] = (),
) -> BuildReport:
    """Create or update index `name` from `paths` (empty: the roots of the last run), in the
    store it records (a new index: `settings.store`). Files in `hold` (absolute paths as
    discovery gives them) are neither read nor removed: what the index has of them stays.
    `exclude` None keeps the patterns the index records (none for a new index, or for a
    rebuild from new paths); a list replaces them. They are recorded with the roots, so a
    later update and `--watch` skip the same files."""
    started = time.perf_counter()
    progress = progress or _noop
    index = stores.open_store(name, settings, store_kind)
    for p in paths:  # fail on a bad path before creating anything
        check_given(p)
    roots = [expand_path(p).resolve() for p in paths]
    try:
        with index.writing(roots, wait), ocr.reporting(progress, settings.cache_dir / "ocr"):
            report = _build_locked(
                paths, name, index, settings, rebuild, exclude, progress, approx_threshold,
                frozenset(hold),
            )  # fmt: skip
    except BaseException as exc:
        if isinstance(exc, IndexCorrupt):
            raise damaged(name, exc, paths) from None
        if _is_storage_failure(exc):  # disk full, read-only: the index stays as it was
            raise _storage_error(index.index_dir, exc) from None
        raise
    report.seconds = time.perf_counter() - started
    return report


def _build_locked(
    paths: Sequence[str | Path],
    name: str,
    index: stores.IndexStore,
    settings: Settings,
    rebuild: bool,
    exclude: Sequence[str] | None,
    progress: Progress,
    approx_threshold: int | None,
    hold: frozenset[str] = frozenset(),
) -> BuildReport:
    index_dir = index.index_dir
    report = BuildReport(name=name, index_dir=index.where())
    fresh = rebuild and bool(paths)  # a new definition: nothing recorded is kept
    # A rebuild reads nothing of the old index, unless it needs the recorded roots.
    try:
        live = index.state(allow_outdated=True)
    except IndexCorrupt:
        if not (rebuild and paths):
            raise
        live = None  # damaged, and replaced whole: nothing of it is read
        report.created = False
    else:
        report.created = live is None
    prev = None if rebuild and paths else live
    if prev is not None:
        if prev.outdated:  # roots and embedder still read; every file is re-embedded
            rebuild = True
            report.warnings.append(
                f"index {name!r} was written by an older pocketrag: re-embedding every file "
                "into the current format."
            )
        if rebuild and not paths:
            paths = list(prev.params.get("roots", []))
        if rebuild:
            prev = None
    wanted = canonical_name(settings.embedder)
    if prev is not None:
        check_embedder(name, prev.params, wanted, building=True)
    recorded = list(live.params.get("exclude", [])) if live is not None and not fresh else []
    exclude = recorded if exclude is None else list(exclude)
    new_exclude = prev is not None and exclude != recorded
    roots = [str(expand_path(p).resolve()) for p in paths]
    if not roots:
        if prev is None:
            raise UsageError(f"Give at least one PATH to build index {name!r}.")
        roots = list(prev.params.get("roots", []))
    found = discover(roots, exclude)
    is_ours = pocketrag_data(settings, index_dir)
    ours = [p for p in found.files if is_ours(p)]
    found.files = [p for p in found.files if p not in set(ours)]
    found.skipped += [Skip(str(p), "pocketrag data") for p in ours]
    report.skipped.extend(found.skipped)
    report.files_seen = len(found.files)
    old_files = index.file_table(prev) if prev else {}

    changed: list[_Changed] = []
    for path in found.files:
        if str(path) in hold:  # still being written: as the index has it, till next time
            report.files_held += 1
            continue
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
                report.count_format(path)
                continue
            digest = file_sha256(path)
        except OSError as exc:
            report.skipped.append(Skip(str(path), f"unreadable ({exc.strerror or exc})"))
            continue
        if old and old[0] == digest:
            report.files_unchanged += 1
            report.count_format(path)
            continue
        changed.append(_Changed(path, digest, stat.st_size, stat.st_mtime_ns))
    present = {str(p) for p in found.files}
    removed = {p for p in old_files if p not in present}

    if not found.files:
        raise UsageError(
            f"No indexable files in {', '.join(map(one_line, roots))}"
            + (f" ({_reasons(report)})" if report.skipped else " (empty)")
            + ". Point `rag index` at documents (txt, md, rst, html, pdf, json/jsonl, code)."
        )
    if prev is not None and not changed and not removed and not new_exclude:
        report.chunks_total = int(prev.params["chunks"])
        report.generation = prev.generation
        return report

    runtime = (
        runtime_for_index(prev.params.get("embedder_runtime"), settings.embedder_runtime, name)
        if prev is not None
        else runtime_for_new_index(settings.embedder_runtime)
    )
    run = _Run(index, prev, name, wanted, runtime, roots, exclude, approx_threshold, progress)
    try:
        for i, item in enumerate(changed):
            progress("read", i, len(changed))
            added = _add_file(item, run, report)
            if added:
                report.files_embedded += 1
                report.files_added += item.path_key not in old_files
                report.count_format(item.path)
                report.chunks_added += added
            elif item.path_key in old_files:
                removed.add(item.path_key)  # it was indexed, and now fails to load
        run.flush()
        progress("read", len(changed), len(changed))
        changed_keys = {c.path_key for c in changed}
        report.files_removed = len(removed - changed_keys)
        if prev is not None and not report.files_embedded and not removed and not new_exclude:
            run.abort()  # only files that still fail to load: nothing changes
            report.chunks_total = int(prev.params["chunks"])
            report.generation = prev.generation
            return report
        if prev is None and not report.chunks_added:
            raise UsageError(
                f"No text found in {', '.join(map(one_line, roots))} ({_reasons(report)}): "
                "nothing to index."
            )
        writer = run.writer()
        writer.remove_paths(sorted(removed))
        progress("write", 0, 1)
        gen = writer.commit()
        progress("write", 1, 1)
    except BaseException:
        run.abort()
        raise
    report.chunks_total = int(gen.params["chunks"])
    report.generation = gen.generation
    report.changed = True
    before = int(prev.params["chunks"]) if prev is not None else 0
    if index.kind == "local" and before < local_layout.PGVECTOR_ABOVE <= report.chunks_total:
        report.warnings.append(
            pgvector_suggestion(name, report.chunks_total, int(gen.params["dim"]))
        )
    return report


def pgvector_suggestion(name: str, chunks: int, dim: int) -> str:
    """Said once, by the run that takes a local index past `PGVECTOR_ABOVE` chunks."""
    gigabytes = chunks * (dim * 4 + local_layout.GRAPH_BYTES_PER_CHUNK) / 1e9
    return (
        f"index {name!r} now holds {chunks:,} chunks: every process that searches it loads "
        f"about {gigabytes:.1f} GB of vectors first (`benchmarks/scale.py`). Past "
        f"{local_layout.PGVECTOR_ABOVE:,} chunks a PostgreSQL server with pgvector keeps "
        f"them in one place for every search: `rag index PATH --name {name}-pg --store "
        "pgvector` (README: Stores)."
    )


@dataclass
class _Run:
    """The embedder, the generation writer and the chunks waiting to be embedded, for one run.

    The embedder and the writer are made when first needed: the embedder takes seconds to
    load, so a run whose only changes are removals, or files that still fail to load, never
    loads it. Chunks wait until a window of EMBED_BATCH * EMBED_WINDOW is full, whichever
    files they come from, and are then embedded in length-sorted batches and written: many
    small files share full batches, and a large file never waits whole in memory.
    """

    index: stores.IndexStore
    prev: stores.IndexState | None
    name: str
    embedder_name: str
    runtime: str  # which runtimes may embed: the index's own kind of vectors
    roots: list[str]
    exclude: list[str]
    approx_threshold: int | None
    progress: Progress
    _embedder: Embedder | None = None
    _writer: stores.IndexWriter | None = None
    pending: list[tuple[str, Chunk]] = field(default_factory=list)
    complete: list[_Changed] = field(default_factory=list)  # read whole; chunks may wait
    embedded: int = 0

    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = get_embedder(self.embedder_name, self.runtime)
        return self._embedder

    def writer(self) -> stores.IndexWriter:
        if self._writer is None:
            if self.prev is not None:
                params = dict(self.prev.params, roots=self.roots, exclude=self.exclude)
            else:
                embedder = self.embedder()
                params = local_layout.new_params(
                    self.name,
                    self.embedder_name,
                    embedder.id,
                    getattr(embedder, "runtime", "torch"),
                    embedder.dim,
                    self.roots,
                    self.exclude,
                )
            self._writer = self.index.writer(params, self.prev, self.approx_threshold)
        return self._writer

    def add(self, path: str, chunk: Chunk) -> None:
        self.pending.append((path, chunk))
        if len(self.pending) >= EMBED_BATCH * EMBED_WINDOW:
            self.flush()

    def file_read(self, item: _Changed) -> None:
        """Every chunk of `item` is in: it is recorded once the last of them is written."""
        self.complete.append(item)

    def drop(self, path: str) -> None:
        """A file that failed part-way: none of its chunks stays, written or waiting."""
        self.pending = [(p, c) for p, c in self.pending if p != path]
        self.writer().discard_file(path)

    def flush(self) -> None:
        if self.pending:
            writer = self.writer()
            vectors = _embed([c for _, c in self.pending], self.embedder(), self.embedder_name)
            start = 0
            for path, group in itertools.groupby(self.pending, key=lambda pc: pc[0]):
                chunks = [c for _, c in group]
                writer.add_chunks(path, chunks, vectors[start : start + len(chunks)])
                start += len(chunks)
            self.embedded += len(self.pending)
            self.pending = []
            self.progress("embed", self.embedded, 0)
        for item in self.complete:
            self.writer().add_file(item.path_key, item.sha256, item.size, item.mtime_ns)
        self.complete = []

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.abort()


def _add_file(item: _Changed, run: _Run, report: BuildReport) -> int:
    """Read and chunk one changed file into the run's window (embedded and written as it
    fills); the number of chunks it gave, 0 when it failed to load (skipped with its
    reason, never fatal)."""
    path = item.path_key
    warnings: list[str] = []
    added = 0
    started = False
    try:
        documents = iter_documents(item.path, warnings)
        first = next(documents)  # a file that cannot be read fails before the model loads
        embedder = run.embedder()
        run.writer().remove_paths([path])  # its chunks from the last run, if any
        started = True
        max_tokens = max(min(230, embedder.max_tokens - 26), 16)
        chunks = iter_chunks(
            itertools.chain([first], documents), path, embedder.count_tokens, max_tokens,
            max(max_tokens // 6, 1),
        )  # fmt: skip
        for chunk in chunks:
            run.add(path, chunk)
            added += 1
        if _changed_since(item):
            warnings.append(
                "changed while it was read: indexed as it was when the read began (reads "
                "stop at the size a file has when opened); the next `rag index` reads it again"
            )
    except Exception as exc:
        if isinstance(exc, RagError) or _is_storage_failure(exc):
            raise
        if started:
            run.drop(path)
        reason = (
            str(exc)
            if isinstance(exc, LoadError)
            else (f"failed to read: {type(exc).__name__}: {exc}")
        )
        report.skipped.append(Skip(path, reason))
        report.warnings.append(f"skipped {path}: {reason}")
        return 0
    run.file_read(item)
    report.warnings.extend(f"{path}: {w}" for w in warnings)
    return added


def _changed_since(item: _Changed) -> bool:
    """Whether the file is no longer as it was when looked at (grown, rewritten): the size
    and mtime recorded stay those, so the next run sees the change and reads it again."""
    try:
        now = item.path.stat()
    except OSError:
        return True
    return (now.st_size, now.st_mtime_ns) != (item.size, item.mtime_ns)


def _is_storage_failure(exc: BaseException) -> bool:
    """Errors of the index's own disk (full, read-only), as opposed to a bad input file."""
    if isinstance(exc, sqlite3.Error):
        return True
    return (
        isinstance(exc, OSError)
        and exc.errno in _STORAGE_ERRNOS
        and not isinstance(exc, FileNotFoundError)
    )


def _storage_error(index_dir: Path, exc: BaseException) -> RagError:
    if isinstance(exc, OSError):
        return storage_error(getattr(exc, "filename", None) or index_dir, exc)
    # sqlite says "database or disk is full" / "attempt to write a readonly database"
    text = str(exc)
    code = errno.ENOSPC if "full" in text else errno.EROFS if "readonly" in text else errno.EIO
    return storage_error(index_dir, OSError(code, text))


def _reasons(report: BuildReport) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in report.skip_reasons().items())


def _embed(chunks: list[Chunk], embedder: Embedder, name: str) -> np.ndarray:
    """Embed in length-sorted batches (less padding); rows come back in `chunks` order.

    The batch holds chunks of many files, so an embedder that fails (a server that drops
    the connection, out of memory) fails the run, not the file whose chunk filled the
    batch: a RagError, the run's generation is dropped and the live one stays as it was.
    """
    texts = [embedding_text(c.title, c.text) for c in chunks]
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = np.zeros((len(texts), embedder.dim), dtype=np.float32)
    for start in range(0, len(order), EMBED_BATCH):
        rows = order[start : start + EMBED_BATCH]
        try:
            vectors = np.asarray(embedder.embed([texts[i] for i in rows]))
        except RagError:
            raise
        except Exception as exc:
            raise _embedder_failed(name, f"{type(exc).__name__}: {_first_line(exc)}") from None
        if vectors.shape != (len(rows), embedder.dim):
            raise _embedder_failed(
                name, f"it returned vectors of shape {vectors.shape} for {len(rows)} texts"
            )
        out[rows] = vectors
    return out


def _embedder_failed(name: str, why: str) -> RagError:
    return RagError(
        f"The embedder {name!r} failed ({why}); nothing was written and the index is as it "
        "was. Run `rag index` again."
    )


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else "no message"
