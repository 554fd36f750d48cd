"""Spreadsheets (.xlsx, .xls, .ods): one document per sheet (`sheet=Q3`), its rows a
table whose header is the first non-empty row, repeated on every chunk of rows; hidden
sheets read and marked; memory flat however long the sheet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_process import rag
from formats_files import UNIQUE, make_xlsx, soffice

from indexers.chunking import chunk_documents
from indexers.formats.tables import PART_CHARS, table_paragraphs
from indexers.loaders import load_file

REPO = Path(__file__).resolve().parents[1]
HEADER = "| Region | Quarter | Revenue | Date |\n| --- | --- | --- | --- |"


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def check_book(path: Path) -> None:
    docs = load_file(path).documents
    anchors = [d.anchor for d in docs]
    assert anchors == ["sheet=Summary", "sheet=Q3", "sheet=P%26L"], anchors
    summary, q3, hidden = docs
    assert summary.text.startswith("| Item | Value |\n| --- | --- |\n| Total | 12345.5 |")
    assert q3.section == ((1, "Q3"),) and q3.text.startswith(HEADER)  # row 1 was empty
    assert "| Region 0 | Q3 | 1000 | 2024-07-01 |" in q3.text  # 1000.0 shown as 1000
    assert "| Region 1 | Q3 | 1001.5 | 2024-07-02 |" in q3.text
    assert hidden.section == ((1, "P&L (hidden sheet)"),)
    chunks = chunk_documents(docs, str(path), words, 230, 38)
    rows = [c for c in chunks if c.location.startswith(f"{path}#sheet=Q3:")]
    assert len(rows) > 3
    for chunk in rows:
        assert chunk.text.startswith(HEADER), chunk.text[:120]
        assert chunk.title == f"{docs[0].title} › Q3"


def test_xlsx_sheets_rows_and_headers(tmp_path: Path) -> None:
    check_book(make_xlsx(tmp_path / "book.xlsx"))


@pytest.fixture(scope="module")
def calc_copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The workbook as LibreOffice saves it: .xls (BIFF8) and .ods."""
    folder = tmp_path_factory.mktemp("calc")
    book = make_xlsx(folder / "book.xlsx")
    profile = folder / "profile"
    return {fmt: soffice([book], fmt, folder / fmt, profile)[0] for fmt in ("xls", "ods")}


@pytest.mark.parametrize("fmt", ["xls", "ods"])
def test_xls_and_ods_written_by_libreoffice(calc_copies: dict[str, Path], fmt: str) -> None:
    check_book(calc_copies[fmt])


def test_an_xlsx_named_xls_is_read_as_one(tmp_path: Path) -> None:
    book = make_xlsx(tmp_path / "book.xlsx")
    renamed = book.rename(tmp_path / "exported.xls")
    assert load_file(renamed).documents[1].anchor == "sheet=Q3"


def test_minilm_tokens_of_every_row_group_fit_one_chunk() -> None:
    """Rows of numbers are two or three characters a word piece: a group of them stays
    within the 230 pieces `rag index` gives a MiniLM chunk, so it is never cut from its
    header."""
    tokenizers = pytest.importorskip("tokenizers")
    from indexers.st_embedder import packaged_model_dir

    folder = packaged_model_dir("all-MiniLM-L6-v2")
    files = sorted(Path(folder).rglob("tokenizer.json")) if folder else []
    if not files:
        pytest.skip("the packaged MiniLM is not installed")
    tokenizer = tokenizers.Tokenizer.from_file(str(files[0]))
    tokenizer.no_truncation()
    rows = [["Invoice", "Customer", "Net", "Tax", "Total", "Paid on", "Reference"]]
    rows += [
        [
            f"INV-{i:07d}",
            f"Customer {i % 97}",
            f"{i * 13.37:.2f}",
            f"{i * 2.54:.2f}",
            f"{i * 15.91:.2f}",
            f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
            f"R{i * 7919 % 100003:06d}X",
        ]
        for i in range(2000)
    ]
    counts = [len(tokenizer.encode(g).ids) for g in table_paragraphs(rows)]
    assert max(counts) <= 230, max(counts)


BIG = REPO / "benchmarks" / "big_sheets.py"
_READ = """
import json, resource, sys
sys.path.insert(0, sys.argv[2])
from pathlib import Path
from indexers.loaders import iter_documents
docs = iter_documents(Path(sys.argv[1]), [])
parts = [(d.anchor, len(d.text), d.offset, d.text[:18]) for d in docs]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(json.dumps({"parts": parts, "peak": peak}))
"""


def read_in_child(path: Path) -> dict:
    """The parts of `path` (anchor, length, offset, start) and the child's peak RSS, MiB."""
    done = subprocess.run(
        [sys.executable, "-c", _READ, str(path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return json.loads(done.stdout)


def test_a_huge_sheet_streams_in_parts_with_flat_memory(tmp_path: Path) -> None:
    sys.path.insert(0, str(BIG.parent))
    from big_sheets import make_xlsx as big_xlsx

    small = read_in_child(big_xlsx(tmp_path / "small.xlsx", 4_000))
    large = read_in_child(big_xlsx(tmp_path / "large.xlsx", 48_000))
    parts = large["parts"]
    assert len(parts) > 10 and {anchor for anchor, *_ in parts} == {"sheet=Orders"}
    assert all(length < PART_CHARS + 2_000 for _, length, _, _ in parts)
    offsets = [offset for _, _, offset, _ in parts]
    assert offsets == sorted(set(offsets))
    assert all(start == "| Order | Region |" for *_, start in parts)
    # Held whole, 12x the rows would cost hundreds of MiB (openpyxl's cells, the text).
    assert large["peak"] < small["peak"] + 40, (small["peak"], large["peak"])


def test_rag_search_cites_the_sheet(tmp_path: Path) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    make_xlsx(folder / "book.xlsx")
    built = rag("index", str(folder), "--name", "books", "--json", RAG_EMBEDDER="fake-wide")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["formats"] == {".xlsx": 1}
    found = rag("search", UNIQUE["sheet"], "--index", "books", "--json", RAG_EMBEDDER="fake-wide")
    top = json.loads(found.stdout)["results"][0]
    assert top["place"]["sheet"] == "Q3" and top["place"]["section"] == ["Q3"]
    assert top["text"].startswith(HEADER) and UNIQUE["sheet"] in top["text"]
    found = rag("search", "Margin", "--index", "books", "--json", RAG_EMBEDDER="fake-wide")
    hidden = next(r for r in json.loads(found.stdout)["results"] if "Margin" in r["text"])
    assert hidden["place"]["sheet"] == "P&L"
    assert hidden["place"]["section"] == ["P&L (hidden sheet)"]
