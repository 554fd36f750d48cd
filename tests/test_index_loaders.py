"""Discovery, loaders and chunking: what gets read, how, and how it is cut."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from index_fixtures import FIXTURE_DOCS, docs  # noqa: F401 - fixtures

from indexers.chunking import chunk_documents, embedding_text
from indexers.discovery import discover
from indexers.documents import Document, LoadError, decode
from indexers.loaders import load_file
from rag.core.errors import UsageError


def words(texts):
    return [len(t.split()) for t in texts]


def test_discovery_skips_hidden_secrets_and_binaries() -> None:
    found = discover([FIXTURE_DOCS])
    names = sorted(p.name for p in found.files)
    assert names == [
        "broken.pdf", "fib.py", "latin1.txt", "notes.md", "page.html", "pixel.png",
        "records.jsonl", "voyager.pdf",
    ]  # fmt: skip
    reasons = {Path(s.path.rstrip("/")).name: s.reason for s in found.skipped}
    assert reasons[".env"] == "likely secret"
    assert reasons[".hidden"] == "hidden folder"
    assert "pixel.png" not in reasons  # images are read (OCR): this one fails to load
    assert reasons["blob.dat"] == "binary"  # sniffed: NUL bytes, unknown suffix


def test_discovery_exclude_globs_and_explicit_secret(docs: Path) -> None:
    found = discover([docs], exclude=["*.pdf", "sub"])
    names = {p.name for p in found.files}
    assert names == {"notes.md", "page.html", "records.jsonl"}
    assert any(s.reason == "excluded" and s.path.endswith("sub/") for s in found.skipped)
    (docs / "server.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    explicit = discover([docs / "server.pem", docs / "notes.md"])
    assert [p.name for p in explicit.files] == ["notes.md"]
    assert explicit.skipped[0].reason == "likely secret"


def test_discovery_nonexistent_path_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="No such file or folder"):
        discover([tmp_path / "nope"])


def test_latin1_text_is_decoded_not_rejected() -> None:
    doc = load_file(FIXTURE_DOCS / "sub" / "latin1.txt").documents[0]
    assert "Café crème" in doc.text and "Genève" in doc.text and "Gödel" in doc.text
    assert decode("naïve".encode("utf-16")) == "naïve"
    assert decode(b"\xef\xbb\xbfbom") == "bom"


def test_html_keeps_main_text_only() -> None:
    doc = load_file(FIXTURE_DOCS / "page.html").documents[0]
    assert doc.title == "The Lighthouse Keeper"
    assert "Margaret Flett" in doc.text
    assert "tracking" not in doc.text and "Contact us" not in doc.text
    assert "All rights reserved" not in doc.text


def test_pdf_pages_and_corrupt_pdf() -> None:
    pages = load_file(FIXTURE_DOCS / "voyager.pdf").documents
    assert [p.anchor for p in pages] == ["page=1"]
    assert "heliopause" in pages[0].text
    with pytest.raises(LoadError, match="PDF"):
        load_file(FIXTURE_DOCS / "broken.pdf")


def test_jsonl_one_document_per_record_with_line_anchor() -> None:
    loaded = load_file(FIXTURE_DOCS / "records.jsonl")
    assert [(d.title, d.anchor) for d in loaded.documents] == [
        ("Mount Kilimanjaro", "L1"),
        ("Lake Baikal", "L2"),
        ("Atacama Desert", "L4"),  # `contents` is a text field too
        ("no text field here", "L5"),  # read whole: its values with their keys
    ]
    assert loaded.documents[-1].text == "title: no text field here\nurl: https://example.org\n\n"
    assert loaded.warnings == ["1 record(s) not JSON (or nested too deeply)"]


def test_gzipped_jsonl_and_json_list(tmp_path: Path) -> None:
    rows = [{"title": f"T{i}", "text": f"body number {i}"} for i in range(3)]
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress("\n".join(json.dumps(r) for r in rows).encode()))
    assert [d.anchor for d in load_file(gz).documents] == ["L1", "L2", "L3"]
    js = tmp_path / "list.json"
    js.write_text(json.dumps(rows + [{"no": "text"}]))
    loaded = load_file(js)
    assert [d.title for d in loaded.documents] == ["T0", "T1", "T2", "list.json"]
    assert loaded.documents[-1].text.startswith("no: text") and not loaded.warnings
    (tmp_path / "bad.json").write_text('{"text": ')
    with pytest.raises(LoadError, match="invalid JSON"):
        load_file(tmp_path / "bad.json")
    (tmp_path / "notext.jsonl").write_text('{"a": 1}\n')
    assert load_file(tmp_path / "notext.jsonl").documents[0].text.startswith("a: 1")
    (tmp_path / "empty.jsonl").write_text('{"a": null}\n')
    with pytest.raises(LoadError, match="no JSON records with text"):
        load_file(tmp_path / "empty.jsonl")


def test_markdown_chunks_are_titled_by_nearest_heading() -> None:
    loaded = load_file(FIXTURE_DOCS / "notes.md")
    chunks = chunk_documents(loaded.documents, "/x/notes.md", words, max_tokens=30, overlap=5)
    assert len(chunks) >= 3
    titles = [c.title for c in chunks]
    assert titles[0] == "Gardening notes"
    assert "Gardening notes › Composting" in titles and "Gardening notes › Pests" in titles
    pests = next(c for c in chunks if "Ladybirds" in c.text)
    assert pests.title == "Gardening notes › Pests"
    assert [c.location for c in chunks] == [f"/x/notes.md#chunk{i}" for i in range(len(chunks))]


def test_chunks_respect_budget_overlap_and_offsets() -> None:
    sentences = [
        f"Sentence number {i} talks about topic {i % 7} in some detail." for i in range(60)
    ]
    text = " ".join(sentences[:30]) + "\n\n" + " ".join(sentences[30:])
    doc = Document(text, "t")
    chunks = chunk_documents([doc], "/p", words, max_tokens=40, overlap=12)
    assert len(chunks) > 5
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end, "consecutive chunks overlap"
        assert b.start > a.start, "chunking makes progress"
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert len(c.text.split()) <= 40
        assert c.text.rstrip().endswith("."), "cut on sentence boundaries"
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


def test_a_giant_unbroken_run_is_still_cut() -> None:
    text = " ".join(f"w{i}" for i in range(500))  # no punctuation, no newlines
    chunks = chunk_documents([Document(text, "t")], "/p", words, max_tokens=50, overlap=0)
    assert all(len(c.text.split()) <= 50 for c in chunks)
    assert " ".join(c.text for c in chunks).split() == text.split()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="abcdefgh ", min_size=1, max_size=40),
            st.sampled_from([". ", "! ", "\n", "\n\n", " "]),
        ),
        min_size=1,
        max_size=60,
    ),
    st.integers(min_value=3, max_value=30),
)
def test_chunking_invariants(pieces: list[tuple[str, str]], max_tokens: int) -> None:
    text = "".join(a + b for a, b in pieces)
    if not text.strip():
        return
    chunks = chunk_documents([Document(text, "t")], "/p", words, max_tokens, max_tokens // 3)
    covered: set[int] = set()
    for c in chunks:
        assert text[c.start : c.end] == c.text and c.text.strip()
        assert len(c.text.split()) <= max_tokens
        covered.update(range(c.start, c.end))
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


def test_embedding_text_adds_title_once() -> None:
    assert embedding_text("Lake Baikal", "Deep lake.") == "Lake Baikal\nDeep lake."
    assert embedding_text("Lake", "Lake Baikal is deep.") == "Lake Baikal is deep."


def test_a_gzip_bomb_is_skipped_at_the_size_limit_of_any_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a `.jsonl.gz` of 1 MB inflated to 1 GB of zeros was read to its end (a
    200 MB one: 200 GB, an hour of CPU); now reading stops at the 200 MiB any file may have."""
    import zlib

    from indexers import loaders

    monkeypatch.setattr(loaders, "MAX_DECOMPRESSED_BYTES", 4 * 1024 * 1024)
    monkeypatch.setattr(loaders, "MAX_RECORD_BYTES", 1024 * 1024)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = b"".join(packer.compress(b"\0" * (1 << 20)) for _ in range(64)) + packer.flush()
    bomb = tmp_path / "bomb.jsonl.gz"
    bomb.write_bytes(data)
    counted = []
    real_tell = gzip.GzipFile.tell

    def tell(self: gzip.GzipFile) -> int:
        counted.append(real_tell(self))
        return counted[-1]

    monkeypatch.setattr(gzip.GzipFile, "tell", tell)
    with pytest.raises(LoadError, match="too large once decompressed"):
        load_file(bomb)
    assert max(counted) < 8 * 1024 * 1024  # stopped near the limit, not at 64 MB
    records = "".join(f'{{"text": "record {i} about rivers"}}\n' for i in range(40_000))
    fine = tmp_path / "fine.jsonl.gz"
    fine.write_bytes(gzip.compress(records.encode()))
    assert len(load_file(fine).documents) == 40_000


def test_headings_are_found_in_linear_time_on_megabyte_lines(tmp_path: Path) -> None:
    """Before: the heading patterns backtracked quadratically on a long line: a 100 KB line
    in a .md or .rst file (an inline base64 image) took a minute, a 1 MB one hours. In a
    child with a timeout, so a regression fails instead of hanging the suite."""
    from index_fixtures import run_child

    long_line = "word " * 200_000
    (tmp_path / "a.md").write_text(f"# Title\n\n{long_line}\nnext\n\n# a{' ' * 500_000}b\n")
    (tmp_path / "b.rst").write_text(f"Title\n=====\n\n{long_line}\nnext line\n")
    code = f"""
from pathlib import Path
from indexers.loaders import load_file
print(json.dumps([[h for _, _, h in d.headings] for name in ("a.md", "b.rst")
                  for d in load_file(Path({str(tmp_path)!r}) / name).documents]))
"""
    headings = run_child(code, timeout=60)
    assert headings[0][0] == "Title" and headings[-1] == ["Title"]
    assert any(h.startswith("a ") and len(h) <= 200 for d in headings for h in d)  # capped


def test_heading_titles_strip_closing_hashes_as_before(tmp_path: Path) -> None:
    (tmp_path / "h.md").write_text(
        "# One ##\n\ntext\n\n## Two\t#\n\ntext\n\n### ###\n\ntext\n\nSet\n---\n\ntext\n"
    )
    docs = load_file(tmp_path / "h.md").documents
    assert [h for _, _, h in docs[0].headings] == ["One", "Two", "#", "Set"]


def test_a_deeply_nested_record_costs_only_itself(tmp_path: Path) -> None:
    """Before: one JSON Lines record nested 200,000 deep raised RecursionError, and the
    whole file was skipped as "failed to read"; a nested .json file said the same."""
    deep = "[" * 200_000 + "]" * 200_000
    lines = tmp_path / "d.jsonl"
    lines.write_text(f'{{"text": "otters"}}\n{deep}\n{{"text": "beavers"}}\n')
    loaded = load_file(lines)
    assert [d.text for d in loaded.documents] == ["otters", "beavers"]
    assert loaded.warnings == ["1 record(s) not JSON (or nested too deeply)"]
    (tmp_path / "d.json").write_text(deep)
    with pytest.raises(LoadError, match="nested too deeply"):
        load_file(tmp_path / "d.json")


@pytest.mark.parametrize("name", ["u.jsonl", "u.jsonl.gz"])
def test_utf16_json_lines_are_read(tmp_path: Path, name: str) -> None:
    """Before: a UTF-16 JSON Lines file (what Windows PowerShell's Out-File writes) was split
    on the byte 0x0a, every record failed to parse, and the file was skipped."""
    rows = [{"text": f"record {i} über café", "title": f"T{i}"} for i in range(3)]
    data = ("\r\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\r\n").encode("utf-16")
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    loaded = load_file(path)
    assert [(d.text, d.title, d.anchor) for d in loaded.documents] == [
        (f"record {i} über café", f"T{i}", f"L{i + 1}") for i in range(3)
    ]
    assert loaded.warnings == []
