"""Indexing holds a bounded amount in memory, whatever the size of the file.

Before: a 200 MB text file drove `rag index` past 23 GB (the whole text, every chunk and
every vector at once), and a 5 MB single-line file was tokenized in one piece.
`benchmarks/index_memory.py` measures the process's real peak RSS; these tests pin the
mechanisms down: parts of bounded size, batches of bounded size, segments on disk.
"""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import random
import tempfile
import tracemalloc
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
from conftest import returning
from index_fixtures import FakeEmbedder, settings

from indexers import build, chunking, loaders
from indexers.build import EMBED_BATCH, build_index
from indexers.chunking import PIECE_CHARS
from indexers.loaders import load_file, stream_text
from indexers.stores import local_layout, local_segments
from indexers.stores.base import resolve_index_dir
from rag.core import files

WORDS = [f"w{i}" for i in range(3000)] + ["lake", "river", "mountain", "forest"]


class CountingEmbedder(FakeEmbedder):
    """Records the largest text it was asked to tokenize and the largest batch it embedded."""

    def __init__(self) -> None:
        super().__init__("counting", dim=32, max_tokens=80)
        self.longest_count = 0
        self.chars_counted = 0
        self.largest_batch = 0

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        self.longest_count = max([self.longest_count, *(len(t) for t in texts)])
        self.chars_counted += sum(len(t) for t in texts)
        return super().count_tokens(texts)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Cheap vectors (a seeded direction per text); no record of the texts, which would
        itself grow with the file."""
        self.largest_batch = max(self.largest_batch, len(texts))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            v = np.random.default_rng(zlib.crc32(text.encode())).standard_normal(self.dim)
            out[row] = v / np.linalg.norm(v)
        return out


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch, register_part) -> CountingEmbedder:  # noqa: ANN001
    embedder = CountingEmbedder()
    register_part("embedder", "counting", returning(embedder))
    monkeypatch.setenv("RAG_EMBEDDER", "counting")
    return embedder


def _prose(size: int, seed: int = 0, line: bool = False) -> str:
    rng = random.Random(seed)
    parts, length = [], 0
    while length < size:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))) + ". "
        if not line and rng.random() < 0.2:
            sentence += "\n\n"
        parts.append(sentence)
        length += len(sentence)
    return "".join(parts)[:size]


def test_a_five_megabyte_single_line_is_tokenized_a_bounded_piece_at_a_time(
    tmp_path: Path, counting: CountingEmbedder
) -> None:
    """Time proportional to size: no tokenizer call sees more than one piece, and the file's
    characters are tokenized a bounded number of times."""
    path = tmp_path / "one-line.txt"
    path.write_text(_prose(5_000_000, line=True).replace("\n", " "))
    report = build_index([path], "line", settings())
    assert report.chunks_total > 1000
    assert counting.longest_count <= PIECE_CHARS
    assert counting.chars_counted <= 4 * path.stat().st_size
    assert counting.largest_batch <= EMBED_BATCH


def test_text_is_read_in_parts_whose_offsets_add_up(tmp_path: Path) -> None:
    text = _prose(3_500_000, seed=1).replace("\n\n", "\r\n\r\n")
    path = tmp_path / "big.txt"
    path.write_bytes(text.encode("cp1252"))
    parts = list(stream_text(path))
    assert len(parts) >= 3 and max(len(t) for _, t in parts) <= 2 * (1 << 20)
    assert "".join(t for _, t in parts) == text.replace("\r\n", "\n")
    assert [o for o, _ in parts] == [sum(len(t) for _, t in parts[:i]) for i in range(len(parts))]


def test_chunk_offsets_and_numbers_run_across_parts(tmp_path: Path, counting) -> None:
    text = _prose(600_000, seed=2)
    path = tmp_path / "doc.md"
    path.write_text("# Start\n\n" + text + "\n\n## Late heading\n\nThe very end, about a lake.\n")
    build_index([path], "parts", settings())
    gen = local_layout.open_current(resolve_index_dir("parts", settings()), "parts")
    rows = (
        gen.connect()
        .execute('SELECT location, title, text, start, "end" FROM chunks ORDER BY id')
        .fetchall()
    )
    whole = path.read_text()
    numbers = [int(loc.rsplit("chunk", 1)[1]) for loc, *_ in rows]
    assert numbers == list(range(len(rows)))  # one numbering for the whole file
    for _, _, chunk, start, end in rows:
        assert whole[start:end] == chunk
    assert rows[0][1] == "Start" and {r[1] for r in rows} <= {"Start", "Late heading"}


def _peak_traced(path: Path, name: str) -> int:
    tracemalloc.start()
    try:
        build_index([path], name, settings())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_file(
    tmp_path: Path, counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Python's peak allocations (numpy's vectors included) for a 4x larger file stay the
    same: before, they held the whole text, every chunk and every vector. Every bound
    (read block, hash block, chunking piece, embedding window, segment) is scaled down so
    the smaller file already reaches each of them."""
    monkeypatch.setattr(local_segments, "SEGMENT_SIZE", 256)
    monkeypatch.setattr(loaders, "READ_BYTES", 1 << 14)
    monkeypatch.setattr(chunking, "PIECE_CHARS", 1 << 13)
    monkeypatch.setattr(build, "EMBED_WINDOW", 1)
    monkeypatch.setattr(files, "HASH_BLOCK", 1 << 14)
    warm, small, large = tmp_path / "warm.txt", tmp_path / "small.txt", tmp_path / "large.txt"
    warm.write_text(_prose(100_000, seed=5))
    small.write_text(_prose(250_000, seed=3))
    large.write_text(_prose(1_000_000, seed=4))
    build_index([warm], "warm", settings())  # first-time imports and caches, not measured
    peak_small = _peak_traced(small, "small")
    peak_large = _peak_traced(large, "large")
    assert peak_large < 1.2 * peak_small, (peak_small, peak_large)
    gen = local_layout.open_current(resolve_index_dir("large", settings()), "large")
    assert len(gen.segments) > 5 and max(s.count for s in gen.segments) <= 256


def test_updates_share_unchanged_segments_and_merge_small_ones(
    tmp_path: Path, counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_segments, "SEGMENT_SIZE", 64)
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(6):
        (folder / f"f{i}.txt").write_text(_prose(20_000, seed=10 + i))
    build_index([folder], "seg", settings())
    index_dir = resolve_index_dir("seg", settings())
    first = local_layout.open_current(index_dir, "seg")
    for step in range(8):  # many small updates: segments must not pile up
        (folder / f"new{step}.txt").write_text(f"Step {step}: a short note about a lake.")
        build_index([folder], "seg", settings())
    (folder / "f0.txt").unlink()
    build_index([folder], "seg", settings())
    last = local_layout.open_current(index_dir, "seg")
    full = [s for s in last.segments if s.count >= 32]
    assert len(last.segments) - len(full) <= 1, "at most one small segment"
    shared = [
        s.file for s in last.segments
        if (first.dir / s.file).exists()
        and (first.dir / s.file).stat().st_ino == (last.dir / s.file).stat().st_ino
    ]  # fmt: skip
    assert not (first.dir).exists() or shared, "unchanged segments are links, not copies"
    # every vector is still its own chunk's, and f0's chunks are gone
    rows = dict(last.connect().execute("SELECT id, path FROM chunks").fetchall())
    ids = np.concatenate([local_segments.contents(ix)[0] for ix in last.load_segments()])
    assert sorted(ids.tolist()) == sorted(rows) and all("f0.txt" not in p for p in rows.values())


def test_a_file_that_fails_part_way_leaves_none_of_its_chunks(
    tmp_path: Path, counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gzip

    monkeypatch.setattr(local_segments, "SEGMENT_SIZE", 32)
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "good.txt").write_text("A good file about a mountain lake.")
    lines = "".join(f'{{"text": "record {i} about rivers and lakes {i}"}}\n' for i in range(5000))
    data = gzip.compress(lines.encode())
    (folder / "cut.jsonl.gz").write_bytes(data[: len(data) * 2 // 3])  # ends mid-stream
    report = build_index([folder], "cut", settings())
    assert [s.path for s in report.skipped] == [str(folder / "cut.jsonl.gz")]
    gen = local_layout.open_current(resolve_index_dir("cut", settings()), "cut")
    paths = {p for (p,) in gen.connect().execute("SELECT path FROM chunks")}
    assert paths == {str(folder / "good.txt")} and gen.params["chunks"] == 1
    assert sum(s.count for s in gen.segments) == 1


def test_loaders_still_read_whole_small_files() -> None:
    from index_fixtures import FIXTURE_DOCS

    assert load_file(FIXTURE_DOCS / "notes.md").documents[0].title


def test_chunk_numbers_per_anchor_are_bounded_and_stay_unique() -> None:
    """Before: one count per anchor for the whole file, so a sheet of 100,000 row groups
    held 100,000 of them (12 MB) until its last chunk; now the latest 4,096. A
    document whose anchor comes again continues its numbering, as does the file's own ""."""
    from indexers.documents import Document

    def count(texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def many() -> Iterator[Document]:
        for i in range(100_000):
            yield Document(f"row {i} of the sheet", "t", anchor=f"sheet=Q3&row={i * 3 + 2}")

    tracemalloc.start()
    try:
        n = sum(1 for _ in chunking.iter_chunks(many(), "/d/big.xlsx", count))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 100_000 and peak < 4_000_000, peak
    docs = [Document("a", "t"), Document("b", "t", anchor="page=1"), Document("c", "t"),
            Document("d", "t", anchor="page=1")]  # fmt: skip
    locations = [c.location for c in chunking.iter_chunks(docs, "/d/f.pdf", count)]
    assert locations == ["/d/f.pdf#chunk0", "/d/f.pdf#page=1:chunk0", "/d/f.pdf#chunk1",
                         "/d/f.pdf#page=1:chunk1"]  # fmt: skip


def test_a_long_pdf_is_read_without_keeping_every_page() -> None:
    """Before: pypdf kept every object it had read, each page's decoded text included, so
    2,000 pages held 9 MB more RSS than 200; now what
    pages share is read again after every 64 pages, and the text of every page is still
    there. 900 pages: a peak of 7.7 MB before, 4.4 MB now; and each page object is let go
    once read."""
    from scan_files import text_pdf

    from indexers.loaders import iter_documents

    folder = Path(tempfile.mkdtemp())
    lines = "Page {p} line {n}: the harbour ledger records cargo number {c}."
    pages = [[lines.format(p=p, n=n, c=p * 100 + n) for n in range(40)] for p in range(900)]
    (folder / "one.pdf").write_bytes(text_pdf(pages[:1]))
    list(iter_documents(folder / "one.pdf", []))  # pypdf's own imports are not measured
    pdf = folder / "ledger.pdf"
    pdf.write_bytes(text_pdf(pages))
    tracemalloc.start()
    try:
        docs, held = [], 0
        for d in iter_documents(pdf, []):
            docs.append((d.anchor, d.text.count("harbour ledger")))
            held = tracemalloc.get_traced_memory()[0]  # while the last page is handed on
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert docs == [(f"page={p}", 40) for p in range(1, 901)]
    assert peak < 6_000_000, peak
    # pages read are let go too: 3.6 MB still held at the last page before, 0.9 MB now
    # (pypdf's page tree itself, 4 KB a page, is made whole before the first page)
    assert held < 2_000_000, held


def test_a_run_past_the_hnsw_threshold_writes_its_later_segments_as_hnsw_at_once(
    tmp_path: Path, counting, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, a first build decided the segments' kind from the chunks it started with
    (none: flat) and rebuilt every segment as HNSW at commit, reading each back: at 1M
    chunks, 62 segments written twice. Now only the flat ones written before the run
    passed the threshold are rebuilt."""
    monkeypatch.setattr(local_segments, "SEGMENT_SIZE", 64)
    written: list[str] = []
    real = local_segments.write_segment

    def recording(folder, number, ids, vectors, kind):  # noqa: ANN001, ANN202
        written.append(kind)
        return real(folder, number, ids, vectors, kind)

    monkeypatch.setattr(local_segments, "write_segment", recording)
    text = tmp_path / "long.txt"
    text.write_text(_prose(300_000, seed=9))
    build_index([text], "past", settings(), approx_threshold=100)
    gen = local_layout.open_current(resolve_index_dir("past", settings()), "past")
    assert gen.params["chunks"] > 600 and {s.kind for s in gen.segments} == {"hnsw"}
    full = -(-gen.params["chunks"] // 64)
    assert len(written) <= full + 3, written  # the flat ones before 100 chunks, once more
    ids = np.concatenate([local_segments.contents(ix)[0] for ix in gen.load_segments()])
    rows = [r for (r,) in gen.connect().execute("SELECT id FROM chunks")]
    assert sorted(ids.tolist()) == sorted(rows)


def test_a_segment_folder_removed_under_the_run_is_not_called_a_full_disk(tmp_path: Path) -> None:
    """FAISS reports any failed write as a RuntimeError, which was always restated as a
    full disk ("Free some disk space"), also when the run's folder had been deleted."""
    import errno

    from rag.core.files import storage_error

    gone = tmp_path / "gen-000001.tmp"
    with pytest.raises(OSError) as caught:
        local_segments.write_segment(gone, 1, np.arange(2), np.ones((2, 4), np.float32), "flat")
    assert caught.value.errno == errno.ENOENT and "removed" in str(caught.value)
    assert "disk space" not in str(storage_error(gone, caught.value))
