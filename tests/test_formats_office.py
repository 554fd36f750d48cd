"""Word and PowerPoint files are read with their structure: headings give each chunk its
section path, tables keep their header on every chunk of rows, a deck is cited by slide
(`slide=4`) with its notes; through `rag index` and `rag search --json` too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_process import rag
from formats_files import UNIQUE, make_docx, make_pptx

from indexers.chunking import chunk_documents
from indexers.loaders import load_file

#: As `rag index` sizes chunks for MiniLM (230 tokens); tokens counted as words here.
MAX_TOKENS = 230


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def chunks_of(path: Path) -> list:
    return chunk_documents(load_file(path).documents, str(path), words, MAX_TOKENS, 38)


def test_docx_headings_become_the_section_path_of_each_chunk(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "report.docx")
    (doc,) = load_file(path).documents
    assert doc.title == "Annual report" and doc.anchor == ""
    assert [(level, text) for _, level, text in doc.headings] == [
        (1, "Annual report"),
        (1, "Budget"),
        (2, "Q3"),
        (1, "Risks"),
    ]
    chunks = chunks_of(path)  # a chunk is titled by the section it starts in
    assert chunks[0].title == "Annual report"
    rows = next(c for c in chunks if UNIQUE["row"] in c.text)
    assert rows.title == "Annual report › Budget › Q3"
    risks = next(c for c in chunks if "Currency risk 39 " in c.text)
    assert risks.title == "Annual report › Risks"


def test_docx_table_rows_keep_their_header_in_every_chunk(tmp_path: Path) -> None:
    path = make_docx(tmp_path / "report.docx", rows=300)
    chunks = chunks_of(path)
    rows = [c for c in chunks if "| Region " in c.text and "Owner" in c.text]
    assert len(rows) > 3  # a long table spans many chunks...
    for chunk in rows:  # ...and each one names its columns
        assert "| Region | Revenue | Owner |\n| --- | --- | --- |" in chunk.text, chunk.text[:200]
    assert {c.title for c in rows[1:]} == {"Annual report › Budget › Q3"}  # the first: where
    # the document starts (a chunk is titled by the section it starts in)
    deep = next(c for c in chunks if UNIQUE["row"] in c.text)
    assert "| Region | Revenue | Owner |\n| --- | --- | --- |" in deep.text
    assert f"| {UNIQUE['row']} |" in deep.text


def test_docx_title_comes_from_properties_then_first_heading_then_file_name(
    tmp_path: Path,
) -> None:
    import docx

    untitled = make_docx(tmp_path / "untitled.docx", title="")
    assert load_file(untitled).documents[0].title == "Annual report"  # its Title paragraph
    plain = docx.Document()
    plain.add_paragraph("lowercase start, so no title line here.")
    plain.save(tmp_path / "plain.docx")
    assert load_file(tmp_path / "plain.docx").documents[0].title == "plain.docx"


def test_pptx_one_document_per_slide_with_title_table_and_notes(tmp_path: Path) -> None:
    path = make_pptx(tmp_path / "deck.pptx")
    docs = load_file(path).documents
    assert [d.anchor for d in docs] == [f"slide={n}" for n in range(1, 6)]
    assert {d.title for d in docs} == {"Quarterly review"}
    four = docs[3]
    assert four.section == ((1, "Slide 4 topic"),)
    assert UNIQUE["slide"] in four.text
    assert "| Metric | Value |\n| --- | --- |\n| Churn | 2% |" in four.text
    assert four.text.rstrip().endswith(f"Notes: Mention the {UNIQUE['notes']} pilot.")
    assert docs[4].section == ((1, "Slide 5 topic (hidden slide)"),)
    (chunk,) = [c for c in chunks_of(path) if UNIQUE["slide"] in c.text]
    assert chunk.title == "Quarterly review › Slide 4 topic"
    assert chunk.location == f"{path}#slide=4:chunk0"


def test_macro_enabled_files_are_read_as_data(tmp_path: Path) -> None:
    from formats_files import rewritten

    macro = b'Attribute VB_Name = "Module1"\nSub AutoOpen()\nShell "calc.exe"\nEnd Sub\n'
    src = make_docx(tmp_path / "report.docx")
    with __import__("zipfile").ZipFile(src) as archive:
        types = archive.read("[Content_Types].xml").decode()
    types = types.replace(
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml",
        "application/vnd.ms-word.document.macroEnabled.main+xml",
    ).replace(
        "</Types>",
        '<Default Extension="bin" ContentType="application/vnd.ms-office.vbaProject"/></Types>',
    )
    docm = rewritten(
        src,
        tmp_path / "report.docm",
        {"[Content_Types].xml": types.encode(), "word/vbaProject.bin": macro},
    )
    (doc,) = load_file(docm).documents
    assert UNIQUE["docx"] in doc.text and "AutoOpen" not in doc.text and "calc" not in doc.text


@pytest.fixture
def office_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "office"
    folder.mkdir()
    make_docx(folder / "report.docx")
    make_pptx(folder / "deck.pptx")
    return folder


def test_rag_index_and_search_cite_the_slide_and_the_section(office_folder: Path) -> None:
    built = rag("index", str(office_folder), "--name", "office")
    assert built.returncode == 0, built.stderr
    assert "Read by format: 1 .docx, 1 .pptx." in built.stdout
    again = json.loads(rag("index", str(office_folder), "--name", "office", "--json").stdout)
    assert again["formats"] == {".docx": 1, ".pptx": 1} and again["skipped"] == []

    found = rag("search", f"{UNIQUE['notes']} pilot", "--index", "office", "--json")
    assert found.returncode == 0, found.stderr
    top = json.loads(found.stdout)["results"][0]
    assert top["place"] == {
        "file": str(office_folder / "deck.pptx"),
        "slide": 4,
        "chunk": 0,
        "section": ["Slide 4 topic"],
    }

    found = rag("search", UNIQUE["row"], "--index", "office", "--json")
    top = json.loads(found.stdout)["results"][0]
    assert top["place"]["file"] == str(office_folder / "report.docx")
    assert top["place"]["section"] == ["Budget", "Q3"]
    assert top["title"] == "Annual report › Budget › Q3"
