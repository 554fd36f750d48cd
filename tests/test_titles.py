"""A plain-text document's title from a first line that reads as one, and every chunk of it
carrying that title where it is embedded and BM25-indexed: a chunk that says "she" is still
found by its subject's name."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import returning
from index_fixtures import RandomEmbedder, settings

from indexers.build import build_index
from indexers.documents import is_prose, reads_as_title
from indexers.loaders import load_file
from rag.sources import build_retriever

BODY = "It is the deepest lake in the world and holds a fifth of the fresh water on Earth."


@pytest.mark.parametrize(
    ("text", "title"),
    [
        ("Lake Baikal\n\n" + BODY, "Lake Baikal"),
        ("kangaroo\n\n\nA kangaroo is a marsupial from the family Macropodidae.", "kangaroo"),
        ("\n\n  Amedeo Avogadro  \n\n" + BODY, "Amedeo Avogadro"),
        ("John_Adams\n\n" + BODY, "John Adams"),  # a wiki slug
        ("What is a rift lake?\n\n" + BODY, "What is a rift lake?"),
        ("Meeting notes 3 May\n" + BODY, "Meeting notes 3 May"),  # the body at once
        ("2024 budget\n\n" + BODY, "2024 budget"),
    ],
)
def test_a_first_line_that_reads_as_a_title(text: str, title: str) -> None:
    assert reads_as_title(text) == title


@pytest.mark.parametrize(
    "text",
    [
        # a wrapped paragraph: its second line continues the sentence
        "The committee met on Tuesday to\ndiscuss the budget for the coming year and more.",
        # ... or is a line like it
        "The committee met on Tuesday and\nJohn asked about the plans for the new year.",
        "This is a sentence.\n\n" + BODY,
        "Dear Sir,\n\n" + BODY,
        "Note:\n\n" + BODY,
        "name,age,city\nalice,30,paris\nbob,41,rome",
        "Name\tAge\tCity\nAlice\t30\tParis",
        "2024-05-01 12:00:01 INFO started\n2024-05-01 12:00:02 INFO listening on 8080",
        "Milk\nEggs\nBread\nButter",  # a list
        "- milk\n- eggs",
        "#!/bin/sh\n\necho hello",
        "def main():\n    return 0",
        "x = 1\n\ny = 2",
        "12345\n\n" + BODY,
        "https://example.org/page\n\n" + BODY,
        "Only one line that has no body",
        " ".join(["word"] * 15) + "\n\n" + BODY,  # too many words
        "",
        "\n\n\n",
    ],
)
def test_a_first_line_that_is_no_title(text: str) -> None:
    assert reads_as_title(text) == ""


def test_prose_files_by_name() -> None:
    assert all(is_prose(n) for n in ("notes.txt", "README", "a1.txt.clean", "v1.2 notes.TXT"))
    assert not any(is_prose(n) for n in ("main.py", "data.csv", "notes.md", "a1.clean"))


def test_a_txt_file_with_another_suffix_is_titled_by_its_first_line(tmp_path: Path) -> None:
    """Before: `a1.txt.clean` (as the CMU articles are named) was titled `a1.txt.clean`."""
    path = tmp_path / "a8.txt.clean"
    path.write_text("Amedeo Avogadro\n\n\nLorenzo Romano Amedeo Carlo Avogadro was a savant.\n")
    assert load_file(path).documents[0].title == "Amedeo Avogadro"


def test_a_chunk_that_says_she_is_found_by_its_subjects_name(
    tmp_path: Path, register_part, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BM25's ranking (these vectors mean nothing): the chunk about the steamer never names
    the keeper, but it carries the article's title, which the query names."""
    register_part("embedder", "random", returning(RandomEmbedder("random", max_tokens=72)))
    monkeypatch.setenv("RAG_EMBEDDER", "random")
    folder = tmp_path / "docs"
    folder.mkdir()
    keeper = (
        "margaret flett\n\n"
        "Margaret Flett kept the Noss Head lighthouse from 1891 to 1927 and was born in Wick "
        "in 1862, the daughter of a herring cooper who taught her to read the sky.\n\n"
        "She kept the light through the storm of January 1899, when the mail steamer ran "
        "aground below the cliffs, and she fired the fog signal every hour for two nights.\n"
    )
    (folder / "a1.txt.clean").write_text(keeper)
    (folder / "a2.txt.clean").write_text(
        "Harbour steamers\n\nA mail steamer ran aground in January near many harbours, "
        "and the fog signal of each lighthouse was fired through the storm by its keeper.\n"
    )
    for n, subject in enumerate(("Basalt", "Tides", "Herring", "Gannets", "Peat", "Kelp")):
        (folder / f"b{n}.txt").write_text(f"{subject}\n\n{subject} is common on the coast.\n")
    build_index([folder], "keepers", settings())
    retriever = build_retriever("index:keepers", settings())
    try:
        (best, _), *_ = retriever.sparse("Margaret Flett steamer storm fog signal", 3)
        _path, title, _location, text, *_ = retriever.reader.fetch([best])[best]
    finally:
        retriever.close()
    assert title == "margaret flett" and text.startswith("She kept the light")
