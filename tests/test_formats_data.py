"""Tables, data and notebooks read with their structure: CSV/TSV in the encodings other
tools write (Shift-JIS, UTF-16, cp1252; written here by `csv.writer`), rows that keep
their header and cite `row=N`; JSON and YAML without a text field read as `key.path:
value` lines under a section per top-level key; Jupyter notebooks (nbformat-shaped JSON)
cited by cell. And the hostile ones: alias and merge bombs, nesting too deep, a line of
many megabytes, binary data named .csv: each bounded, or one skip reason."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import csv
import json
import random
import tracemalloc
from pathlib import Path

import pytest
from format_fixtures import chunks, index, search, skipped
from index_fixtures import fake_embedder, run_child  # noqa: F401 - fixture

from indexers.chunking import chunk_documents
from indexers.documents import LoadError
from indexers.loaders import load_file

PEOPLE = [
    ("山田太郎", "営業部", "東京"),
    ("佐藤花子", "経理部", "大阪"),
    ("鈴木一郎", "開発部", "札幌"),
]
WESTERN = [("José Müller", "Zürich", "Señor"), ("François Dubois", "Besançon", "Café crème")]


def words(texts: list[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def _write_csv(
    path: Path, rows: list[tuple[str, ...]], encoding: str, delimiter: str = ","
) -> Path:
    with path.open("w", encoding=encoding, newline="") as handle:
        csv.writer(handle, delimiter=delimiter).writerows(rows)
    return path


@pytest.mark.parametrize(
    ("encoding", "header", "rows"),
    [
        ("shift_jis", ("氏名", "部署", "勤務地"), PEOPLE * 3),
        ("utf-16", ("氏名", "部署", "勤務地"), PEOPLE),  # Excel's "Unicode text"
        ("cp1252", ("Name", "City", "Note"), WESTERN * 4),
    ],
)
def test_a_csv_in_any_common_encoding_keeps_its_header_on_every_row(
    tmp_path: Path, encoding: str, header: tuple[str, ...], rows: list[tuple[str, ...]]
) -> None:
    """Before: Shift-JIS was read as cp1252 mojibake ("ŽR“c‘¾˜Y"), every file as plain
    text whose rows had no column names past the first chunk."""
    path = _write_csv(tmp_path / "staff.csv", [header, *rows], encoding)
    docs = load_file(path).documents
    head = "| " + " | ".join(header) + " |\n| --- | --- | --- |\n"
    assert docs and all(d.text.startswith(head) for d in docs)
    assert f"| {' | '.join(rows[0])} |" in docs[0].text
    assert docs[0].anchor == "row=2" and docs[0].title == "staff.csv"


def test_a_long_table_streams_in_groups_that_cite_their_first_row(tmp_path: Path) -> None:
    rows = [("id", "city", "amount")] + [
        (f"r{i}", f"City{i % 7}", str(i * 3)) for i in range(2, 402)
    ]
    docs = load_file(_write_csv(tmp_path / "t.csv", rows, "utf-8")).documents
    assert len(docs) > 5
    for doc in docs:
        first = int(doc.anchor.removeprefix("row="))
        assert doc.text.splitlines()[2] == f"| r{first} | City{first % 7} | {first * 3} |"
        assert len(doc.text) <= 700
    last = docs[-1].text.splitlines()[-1]
    assert last == "| r401 | City2 | 1203 |"
    chunk = chunk_documents(docs, str(tmp_path / "t.csv"), words)[3]
    assert chunk.location == f"{tmp_path / 't.csv'}#{docs[3].anchor}:chunk0"


def test_delimiters_are_sniffed_tsv_is_tabs_and_excel_sep_lines_are_honoured(
    tmp_path: Path,
) -> None:
    semi = _write_csv(tmp_path / "eu.csv", [("Name", "Preis"), ("Käse", "4,50")], "cp1252", ";")
    assert "| Käse | 4,50 |" in load_file(semi).documents[0].text
    tabs = _write_csv(tmp_path / "t.tsv", [("a", "b"), ("x, y", "z")], "utf-8", "\t")
    assert "| x, y | z |" in load_file(tabs).documents[0].text
    (tmp_path / "sep.csv").write_text("sep=|\nk|v\none|two\n")
    assert (
        load_file(tmp_path / "sep.csv").documents[0].text
        == "| k | v |\n| --- | --- |\n| one | two |"
    )


def test_a_late_non_utf8_byte_switches_the_encoding_from_there(tmp_path: Path) -> None:
    """The sample is all ASCII; row 20,000 holds cp1252 bytes: read as such, not U+FFFD."""
    rows = [("n", "word")] + [(str(i), "plain") for i in range(20_000)] + [("x", "Crème brûlée")]
    docs = load_file(_write_csv(tmp_path / "late.csv", rows, "cp1252")).documents
    assert "| x | Crème brûlée |" in docs[-1].text


def test_a_cp1252_table_dense_with_accents_and_symbols_is_read_not_called_binary() -> None:
    """A cp1252 CSV (CRLF, `;`, a name with an en dash and a euro sign on every row) that
    charset-normalizer finds "too chaotic" in every encoding at its default threshold.
    Before: skipped as "binary data, not a table (no text encoding reads it)"."""
    path = Path(__file__).parent / "fixtures" / "formats" / "names-cp1252.csv"
    docs = load_file(path).documents
    text = "\n".join(d.text for d in docs)
    assert "| José Muñoz – €0 | City 0 | 0.00 | Abd |" in text
    assert "Jürgen Groß – €3" in text and "Ørjan Dæhli – €7" in text
    assert "\ufffd" not in text


def test_json_and_yaml_without_a_text_field_are_read_with_their_keys(tmp_path: Path) -> None:
    """Before: a plain JSON object was skipped ("no text field"), YAML read as raw text."""
    config = {
        "name": "Harbour service",
        "version": 3,
        "database": {"host": "db.harbour.internal", "port": 5432, "replicas": ["east", "west"]},
        "owners": [{"name": "Ada", "email": "ada@harbour.example"}],
        "enabled": True,
    }
    (tmp_path / "service.json").write_text(json.dumps(config, indent=2))
    (doc,) = load_file(tmp_path / "service.json").documents
    assert doc.title == "Harbour service"
    assert doc.text.startswith("name: Harbour service\nversion: 3\nenabled: true\n\ndatabase\n")
    for line in (
        "database.host: db.harbour.internal",
        "database.port: 5432",
        "database.replicas[1]: west",
        "owners[0].email: ada@harbour.example",
    ):
        assert line in doc.text
    titles = {c.title for c in chunk_documents([doc], "s.json", words, max_tokens=8)}
    assert {"Harbour service › database", "Harbour service › owners"} <= titles
    (tmp_path / "deploy.yaml").write_text(
        "defaults: &defaults\n  retries: 3\n  region: eu-west\n"
        "production:\n  <<: *defaults\n  replicas: 5\n"
        "started: 2024-05-01\n---\nsecond: document\n"
    )
    first, second = load_file(tmp_path / "deploy.yaml").documents
    assert (first.anchor, second.anchor) == ("doc=1", "doc=2")
    assert "started: 2024-05-01" in first.text and "production.region: eu-west" in first.text
    assert second.text.strip() == "second: document"


def test_a_json_list_of_records_is_a_document_per_item(tmp_path: Path) -> None:
    items = [{"sku": "A1", "desc": "red hammer"}, {"title": "Saw", "text": "A blue saw."}]
    (tmp_path / "items.json").write_text(json.dumps(items))
    docs = load_file(tmp_path / "items.json").documents
    assert [(d.anchor, d.title, d.text) for d in docs] == [
        ("item=0", "items.json", "sku: A1\ndesc: red hammer\n\n"),
        ("item=1", "Saw", "A blue saw."),  # a text field: as before
    ]


def test_a_notebook_is_cited_by_cell_with_its_headings_as_sections(tmp_path: Path) -> None:
    """Before: the .ipynb was read as its raw JSON, base64 images and all."""
    notebook = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "language": "python"}},
        "cells": [
            {"cell_type": "markdown", "metadata": {}, "source": ["# Tide study\n", "Intro."]},
            {
                "cell_type": "code",
                "metadata": {},
                "source": "import numpy as np",
                "outputs": [],
                "execution_count": 1,
            },
            {
                "cell_type": "markdown",
                "metadata": {},
                "source": "## Results\nHigh tide data."
                " ![chart](data:image/png;base64," + "iVBORw0KGgo" * 500 + ")",
            },
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 2,
                "source": ["peak = max(levels)\n", "print(peak)"],
                "outputs": [
                    {"output_type": "stream", "name": "stdout", "text": ["4.21 metres\n"]},
                    {
                        "output_type": "display_data",
                        "metadata": {},
                        "data": {
                            "image/png": "iVBORw0KGgoAAAANSUhEUg" * 2000,
                            "text/plain": ["<Figure size 640x480>"],
                        },
                    },
                    {
                        "output_type": "error",
                        "ename": "ValueError",
                        "evalue": "tide too high",
                        "traceback": ["\x1b[0;31m---------\x1b[0m"],
                    },
                ],
            },
        ],
    }
    path = tmp_path / "tides.ipynb"
    path.write_text(json.dumps(notebook))
    docs = load_file(path).documents
    assert [(d.anchor, d.title) for d in docs] == [
        ("cell=1", "Tide study"),
        ("cell=3", "Tide study"),
    ]
    assert docs[0].text == "# Tide study\nIntro.\n\n```python\nimport numpy as np\n```"
    assert "```python\npeak = max(levels)\nprint(peak)\n```" in docs[1].text
    assert "Output:\n4.21 metres\n<Figure size 640x480>\nValueError: tide too high" in docs[1].text
    assert "iVBORw0" not in docs[1].text and "\x1b" not in docs[1].text
    assert "High tide data. ![chart](data:…)" in docs[1].text
    (chunk,) = chunk_documents(docs[1:], str(path), words)
    assert chunk.title == "Tide study › Results"
    assert chunk.location == f"{path}#cell=3:chunk0"


def test_data_end_to_end_through_the_cli(tmp_path: Path, fake_embedder) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    _write_csv(folder / "staff.csv", [("氏名", "部署", "勤務地"), *PEOPLE], "shift_jis")
    (folder / "service.json").write_text(json.dumps({"database": {"host": "tidewater-db"}}))
    (folder / "deploy.yml").write_text("cluster:\n  region: lighthouse-north\n")
    report = index(folder)
    assert report["files_read"] == 3, report["skipped"]
    found = search("佐藤花子")[0]
    assert found["location"] == f"{folder / 'staff.csv'}#row=2:chunk0"
    assert (
        "| 氏名 | 部署 | 勤務地 |" in found["text"]
        and "| 佐藤花子 | 経理部 | 大阪 |" in found["text"]
    )
    found = search("tidewater-db host")[0]
    assert found["title"] == "service.json › database"
    assert "database.host: tidewater-db" in found["text"]
    assert search("lighthouse-north region")[0]["title"] == "deploy.yml › cluster"


# -- hostile files ---------------------------------------------------------------------

BILLION_LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)
MERGE_BOMB = (
    "a0: &a0 {"
    + ", ".join(f"k{i}: {i}" for i in range(200))
    + "}\n"
    + "".join(
        f"a{i + 1}: &a{i + 1}\n  <<: [{', '.join([f'*a{i}'] * 8)}]\n  x{i}: {i}\n" for i in range(8)
    )
)  # older PyYAML copied every merge: 200 * 8**8 pairs (6.0.4 keeps one per key)


def test_yaml_alias_and_merge_bombs_cost_their_size_or_are_refused(tmp_path: Path) -> None:
    """A billion laughs (9 aliases of 9 aliases, 8 deep: 387 million strings once
    expanded) reads as what is on disk, each repeat named, never expanded; merge keys,
    which PyYAML copies, past 10,000 are refused. Before: read as raw text (now it is
    parsed, so these must stay bounded: in a child with a timeout)."""
    (tmp_path / "laughs.yaml").write_text(BILLION_LAUGHS)
    (tmp_path / "merge.yaml").write_text(MERGE_BOMB)
    (tmp_path / "aliases.yaml").write_text(
        "base: &b {v: 1}\nmany: [" + ", ".join(["*b"] * 20_000) + "]\n"
    )
    code = f"""
from pathlib import Path
from indexers.documents import LoadError
from indexers.loaders import load_file
out = {{}}
for name in ("laughs.yaml", "merge.yaml", "aliases.yaml"):
    try:
        out[name] = [d.text for d in load_file(Path({str(tmp_path)!r}) / name).documents]
    except LoadError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""
    out = run_child(code, timeout=60)
    (laughs,) = out["laughs.yaml"]
    assert len(laughs) < 5000 and "i[8]: (the same as h)" in laughs
    assert out["merge.yaml"] == "more than 10,000 YAML aliases or merged keys (an alias bomb?)"
    assert out["aliases.yaml"] == out["merge.yaml"]


def test_nesting_too_deep_is_a_skip_reason_and_deep_but_readable_json_is_read(
    tmp_path: Path, fake_embedder
) -> None:
    """100,000 levels: a reason, not a RecursionError; 900 levels (json parses it) are
    flattened without recursion. Before: the YAML was raw text, the 900-deep JSON "no
    text field"."""
    folder = tmp_path / "deep"
    folder.mkdir()
    (folder / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "deep.yaml").write_text("[" * 100_000 + "]" * 100_000)
    (folder / "deep2.yaml").write_text("".join(" " * i + "k:\n" for i in range(5000)) + "x: 1\n")
    (folder / "nested.json").write_text('{"a": ' * 900 + '"bottom-most pearl"' + "}" * 900)
    report = index(folder)
    reasons = skipped(report)
    assert set(reasons) == {"deep.json", "deep.yaml", "deep2.yaml"}, reasons
    assert "nested too deeply" in reasons["deep.json"]
    assert all("nest" in reasons[n] for n in ("deep.yaml", "deep2.yaml")), reasons
    assert any("bottom-most pearl" in text for _, _, text in chunks())


@pytest.mark.parametrize("parser", ["libyaml", "python"])
def test_yaml_nesting_is_capped_by_us_on_every_libyaml_and_parser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parser: str
) -> None:
    """libyaml 0.2.5 (PyYAML 6.0.3's wheels) has no nesting cap of its own: a
    100,000-deep `[[[` recursed in C until CI died with SIGSEGV. Our own cap refuses 300
    levels under either parser, and 200 levels are still read."""
    import yaml

    if parser == "python":
        monkeypatch.delattr(yaml, "CSafeLoader", raising=False)
    elif not getattr(yaml, "__with_libyaml__", False):
        pytest.skip("PyYAML is installed without libyaml")
    deep = tmp_path / "deep.yaml"
    deep.write_text("[" * 300 + "]" * 300)
    with pytest.raises(LoadError, match="nested more than 256 levels deep"):
        load_file(deep)
    block = tmp_path / "block.yaml"
    block.write_text("".join("  " * i + "k:\n" for i in range(300)) + "  " * 300 + "x: 1\n")
    with pytest.raises(LoadError, match="nested more than 256 levels deep"):
        load_file(block)
    fine = tmp_path / "fine.yaml"
    fine.write_text("[" * 200 + "pearl" + "]" * 200)
    assert any("pearl" in d.text for d in load_file(fine).documents)


def test_a_line_of_megabytes_in_a_csv_is_skipped_without_being_held(
    tmp_path: Path, fake_embedder
) -> None:
    """Before: read as plain text (no table, no headers). Now the rows around it keep
    their header, the long line is named in a warning, and memory stays well below it."""
    folder = tmp_path / "t"
    folder.mkdir()
    path = folder / "wide.csv"
    with path.open("w", newline="") as handle:
        handle.write("name,port\nalpha,ferry one\n")
        handle.write("x," * (8 * 1024 * 1024) + "\n")
        handle.write("omega,ferry two\n")
    tracemalloc.start()
    try:
        loaded = load_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 12 * 1024 * 1024, peak  # the line is 16 MiB
    assert loaded.warnings == ["1 line(s) longer than 1 MiB skipped"]
    (doc,) = loaded.documents
    assert (
        doc.text == "| name | port |\n| --- | --- |\n| alpha | ferry one |\n| omega | ferry two |"
    )
    report = index(folder)
    assert any("longer than 1 MiB skipped" in w for w in report["warnings"])
    assert search("omega ferry")[0]["location"] == f"{path}#row=2:chunk0"


def test_binary_data_named_csv_is_a_skip_reason(tmp_path: Path, fake_embedder) -> None:
    """Before: bytes without a NUL passed the binary sniff and were indexed as cp1252
    noise. Now the sample's control bytes say it is no table."""
    folder = tmp_path / "b"
    folder.mkdir()
    rng = random.Random(5)
    (folder / "blob.csv").write_bytes(bytes(rng.randrange(1, 256) for _ in range(50_000)))
    _write_csv(folder / "fine.csv", [("k", "v"), ("anchor", "chain")], "utf-8")
    report = index(folder)
    assert skipped(report) == {
        "blob.csv": "binary data, not a table (control bytes where text would be)"
    }
    with pytest.raises(LoadError, match="binary data"):
        load_file(folder / "blob.csv")
    assert search("anchor chain")[0]["location"].startswith(str(folder / "fine.csv"))
