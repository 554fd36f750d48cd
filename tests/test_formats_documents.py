"""OpenDocument text and presentations, EPUB books and RTF: headings as section paths,
tables with their header, citations by slide and chapter; files made by LibreOffice
(from the Word and PowerPoint files of tests/formats_files.py), by ebooklib, and RTF as
a word processor writes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_process import rag
from formats_files import UNIQUE, make_docx, make_pptx, soffice

from indexers.chunking import chunk_documents
from indexers.formats.rtf import heading_styles
from indexers.loaders import load_file

TABLE = "| Region | Revenue | Owner |\n| --- | --- | --- |"


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def chunks_of(path: Path) -> list:
    return chunk_documents(load_file(path).documents, str(path), words, 230, 38)


@pytest.fixture(scope="module")
def writer_copies(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The report as LibreOffice saves it (.odt, .rtf), and the deck (.odp)."""
    folder = tmp_path_factory.mktemp("writer")
    report, deck = make_docx(folder / "report.docx"), make_pptx(folder / "deck.pptx")
    profile = folder / "profile"
    copies = {fmt: soffice([report], fmt, folder / fmt, profile)[0] for fmt in ("odt", "rtf")}
    copies["odp"] = soffice([deck], "odp", folder / "odp", profile)[0]
    return copies


@pytest.mark.parametrize("fmt", ["odt", "rtf"])
def test_text_documents_keep_headings_and_tables(writer_copies: dict, fmt: str) -> None:
    path = writer_copies[fmt]
    (doc,) = load_file(path).documents
    assert doc.title == "Annual report"
    assert [(level, text) for _, level, text in doc.headings] == [
        (1, "Annual report"),
        (1, "Budget"),
        (2, "Q3"),
        (1, "Risks"),
    ]
    chunks = chunks_of(path)
    deep = next(c for c in chunks if UNIQUE["row"] in c.text)
    assert deep.title == "Annual report › Budget › Q3"
    assert TABLE in deep.text and f"| {UNIQUE['row']} |" in deep.text
    table = [c for c in chunks if "| Region " in c.text]
    assert len(table) > 1 and all(TABLE in c.text for c in table)
    assert next(c for c in chunks if "Currency risk 39 " in c.text).title.endswith("› Risks")


def test_odp_slides_titles_and_notes(writer_copies: dict) -> None:
    docs = load_file(writer_copies["odp"]).documents
    assert [d.anchor for d in docs] == [f"slide={n}" for n in range(1, 6)]
    four = docs[3]
    assert four.section == ((1, "Slide 4 topic"),) and UNIQUE["slide"] in four.text
    assert "| Metric | Value |\n| --- | --- |\n| Churn | 2% |" in four.text
    assert f"Notes: Mention the {UNIQUE['notes']} pilot." in four.text
    assert docs[4].section == ((1, "Slide 5 topic (hidden slide)"),)


def make_epub(path: Path) -> Path:
    """A three-chapter EPUB 3 (with an EPUB 2 NCX too), as ebooklib writes one."""
    epub = pytest.importorskip("ebooklib.epub")
    book = epub.EpubBook()
    book.set_identifier("pocketrag-test-book")
    book.set_title("Field Guide")
    book.set_language("en")
    chapters = []
    bodies = {
        "Getting started": "<h1>Getting started</h1><p>Pack light and early.</p>",
        "Lakes": (
            "<h1>Lakes</h1><p>Lakes hold most fresh water.</p><h2>Baikal</h2>"
            "<p>Baikal is the deepest, its water so clear and cold.</p>"
            "<table><tr><th>Lake</th><th>Depth</th></tr><tr><td>Baikal</td><td>1642</td></tr>"
            "<tr><td>Tanganyika</td><td>1470</td></tr></table>"
        ),
        "Rivers": "<h1>Rivers</h1><p>The Lena flows north into the Laptev Sea.</p>",
    }
    for n, (title, body) in enumerate(bodies.items(), start=1):
        chapter = epub.EpubHtml(title=title, file_name=f"text/ch{n}.xhtml", lang="en")
        chapter.content = f"<html><body>{body}</body></html>"
        book.add_item(chapter)
        chapters.append(chapter)
    book.toc = chapters
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", *chapters]
    epub.write_epub(str(path), book)
    return path


def test_epub_chapters_from_the_spine_titled_by_the_toc(tmp_path: Path) -> None:
    path = make_epub(tmp_path / "guide.epub")
    docs = load_file(path).documents
    assert [d.anchor for d in docs] == ["chapter=1", "chapter=2", "chapter=3"]
    assert {d.title for d in docs} == {"Field Guide"}
    lakes = docs[1]
    assert lakes.section == ((1, "Lakes"),)
    # its h1 repeats the chapter's title (its section); its h2 comes below the chapter
    assert [(level, text) for _, level, text in lakes.headings] == [(3, "Baikal")]
    assert "| Lake | Depth |\n| --- | --- |\n| Baikal | 1642 |\n| Tanganyika | 1470 |" in lakes.text
    chunk = next(c for c in chunks_of(path) if "deepest" in c.text)
    assert chunk.location == f"{path}#chapter=2:chunk0"
    assert chunk.title == "Field Guide › Lakes"  # the chunk starts in the chapter's text


RTF = r"""{\rtf1\ansi\ansicpg1252\deff0{\fonttbl{\f0 Times New Roman;}}
{\stylesheet{\s0 Normal;}{\s1\outlinelevel0 heading 1;}{\s2\sbasedon1 heading 2;}}
{\info{\title Caf\'e9 notes}}
\pard\plain\s1 Menus\par
\pard\plain\s0 The menu changes on Mondays, na\'efve as that sounds.\par
\pard\plain\s2 Prices\par
\trowd\cellx2000\cellx4000\intbl Dish\cell Price\cell\row
\trowd\cellx2000\cellx4000\intbl Soup\cell 4.50\cell\row
\trowd\cellx2000\cellx4000\intbl Cr\u234?pe\cell 6\cell\row
\pard\plain\s0 Tips are welcome {\field{\*\fldinst{HYPERLINK "https://example.org"}}
{\fldrslt here}}.\par
}"""


def test_rtf_headings_tables_and_escapes(tmp_path: Path) -> None:
    path = tmp_path / "cafe.rtf"
    path.write_text(RTF, encoding="ascii")
    assert heading_styles(RTF) == {"1": 1, "2": 2}
    (doc,) = load_file(path).documents
    assert doc.title == "Café notes"
    assert [(level, text) for _, level, text in doc.headings] == [(1, "Menus"), (2, "Prices")]
    assert "naïve as that sounds" in doc.text
    assert "| Dish | Price |\n| --- | --- |\n| Soup | 4.50 |\n| Crêpe | 6 |" in doc.text
    assert "Tips are welcome here." in doc.text
    assert "fldinst" not in doc.text and "\\" not in doc.text


def test_rtf_of_many_fields_on_one_line_reads_in_linear_time(tmp_path: Path) -> None:
    """striprtf's hyperlink pattern backtracks along the line for each field: 2,000 fields
    took 5 s, 20,000 (this file, 740 KB) would take minutes; `rag index` times out at 120 s."""
    path = tmp_path / "fields.rtf"
    path.write_text("{\\rtf1\\ansi " + "{\\field{\\*\\fldinst{ x}}{\\fldrslt y}} " * 20_000 + "}")
    done = rag("index", str(path), "--name", "fields", "--json", timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["formats"] == {".rtf": 1}


def test_rag_search_cites_the_chapter(tmp_path: Path) -> None:
    folder = tmp_path / "books"
    folder.mkdir()
    make_epub(folder / "guide.epub")
    (folder / "cafe.rtf").write_text(RTF, encoding="ascii")
    built = rag("index", str(folder), "--name", "books", "--json", RAG_EMBEDDER="fake-wide")
    assert built.returncode == 0, built.stderr
    assert json.loads(built.stdout)["formats"] == {".epub": 1, ".rtf": 1}
    found = rag(
        "search", "Tanganyika depth", "--index", "books", "--json", RAG_EMBEDDER="fake-wide"
    )
    top = json.loads(found.stdout)["results"][0]
    assert top["place"] == {
        "file": str(folder / "guide.epub"),
        "chapter": 2,
        "chunk": 0,
        "section": ["Lakes"],
    }
    found = rag("search", "Soup price", "--index", "books", "--json", RAG_EMBEDDER="fake-wide")
    top = json.loads(found.stdout)["results"][0]
    assert top["place"]["file"] == str(folder / "cafe.rtf") and "| Soup | 4.50 |" in top["text"]
