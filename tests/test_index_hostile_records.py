"""JSON Lines files with one hostile record: a number too long to convert, a bad UTF-16
unit, garbage after the gzip members, a title of megabytes. The bad record is one bad
record (counted in the file's warning); every good one is indexed, and no title is stored
(and repeated in every chunk) at more than a sane length.

Each test runs `rag` in a real process (tests/cli_process.py), as a user meets it."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from cli_process import rag

TITLE_CAP = 200  # indexers.loaders.TITLE_CAP: what a title, a heading, a section keeps

GOOD = ['{"text": "before line about lakes"}\n', '{"text": "after line about rivers"}\n']
FILES = {
    # int() refuses more than 4300 digits: a ValueError that is not a JSONDecodeError
    "bigint.jsonl": (GOOD[0] + '{"text": "x", "n": ' + "9" * 5000 + "}\n" + GOOD[1]).encode(),
    # a lone high surrogate unit in UTF-16 (PowerShell's Out-File)
    "utf16bad.jsonl": b"\xff\xfe"
    + (GOOD[0] + GOOD[1]).encode("utf-16-le")
    + b"\x00\xd8\x41\x00\n\x00",
    # two gzip members, then bytes that are not gzip
    "multi.jsonl.gz": gzip.compress(GOOD[0].encode())
    + gzip.compress(GOOD[1].encode())
    + b"garbage trailing",
}


@pytest.mark.parametrize("name", list(FILES))
def test_one_bad_record_or_trailing_garbage_loses_only_itself(tmp_path: Path, name: str) -> None:
    """Before: the file was "unreadable" (ValueError, UnicodeDecodeError, BadGzipFile) and
    none of its good records were indexed."""
    folder = tmp_path / "records"
    folder.mkdir()
    (folder / name).write_bytes(FILES[name])
    done = rag("index", str(folder), "--name", "r", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["files_read"] == 1 and report["chunks"] == 2, report
    assert len(report["warnings"]) == 1, report["warnings"]
    found = rag("search", "after line about rivers", "--index", "r", "--json")
    texts = {r["text"] for r in json.loads(found.stdout)["results"]}
    assert {"before line about lakes", "after line about rivers"} <= texts


def test_a_huge_title_is_stored_capped_not_in_every_chunk(tmp_path: Path) -> None:
    """Before: every chunk stored its document's whole title: one 3 MB record with a 2 MB
    title took 5.5 GB of memory and made a 5.2 GB index. Here 200 KB, 40 chunks."""
    folder = tmp_path / "records"
    folder.mkdir()
    record = {"title": "T" * 200_000, "text": " ".join(f"w{i}" for i in range(3000))}
    (folder / "a.jsonl").write_text(json.dumps(record) + "\n")
    done = rag("index", str(folder), "--name", "t", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["chunks"] > 10
    found = rag("search", "w10 w11", "--index", "t", "--json", "-k", "20")
    titles = [r["title"] for r in json.loads(found.stdout)["results"]]
    assert titles and all(0 < len(t) <= TITLE_CAP for t in titles), [len(t) for t in titles]
    size = json.loads(rag("indexes", "info", "t", "--json").stdout)["bytes"]
    assert size < 2_000_000, size
