"""`rag index` against files that change under it: swapped for a FIFO or a device between
discovery, hashing and reading. Each such file is skipped with its reason; nothing blocks.
Run in a child process with a timeout, so a regression fails instead of hanging the suite."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from index_fixtures import cli, docs, fake_embedder, run_child, settings  # noqa: F401 - fixtures

NAMES = ["a.txt", "b.md", "c.jsonl.gz", "d.html", "e.json", "f.pdf"]


def _docs(folder: Path) -> None:
    folder.mkdir()
    (folder / "keep.txt").write_text("A file that stays a file, about kale.")
    (folder / "a.txt").write_text("plain text about rivers")
    (folder / "b.md").write_text("# Head\n\nmarkdown about lakes")
    (folder / "c.jsonl.gz").write_bytes(gzip.compress(b'{"text": "a record about hills"}\n'))
    (folder / "d.html").write_text("<html><body><p>a page about forests</p></body></html>")
    (folder / "e.json").write_text('{"text": "json about deserts"}')
    (folder / "f.pdf").write_bytes(b"%PDF-1.4\n% not really a pdf, but a regular file\n")


_CHILD = """
import os, sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from index_fixtures import register_fake
register_fake("fake")
import indexers.build as build
from rag.core.config import load_settings

folder, stage, kind = Path({folder!r}), {stage!r}, {kind!r}
names = {names!r}

def swap():
    for name in names:
        (folder / name).unlink()
        if kind == "fifo":
            os.mkfifo(folder / name)
        else:
            os.symlink("/dev/zero", folder / name)

if stage == "after-discovery":
    real_discover = build.discover
    def discover(roots, exclude):
        found = real_discover(roots, exclude)
        swap()
        return found
    build.discover = discover
else:  # after hashing: the file is swapped before it is read
    real_hash = build.file_sha256
    hashed = []
    def file_sha256(path):
        digest = real_hash(path)
        hashed.append(path)
        if len(hashed) == len(names) + 1:
            swap()
        return digest
    build.file_sha256 = file_sha256

report = build.build_index([str(folder)], "x", load_settings(embedder="fake"))
print(json.dumps({{s.path: s.reason for s in report.skipped}}))
"""


@pytest.mark.parametrize("stage", ["after-discovery", "after-hashing"])
@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_file_swapped_for_a_fifo_or_device_is_skipped_not_read(
    tmp_path: Path, stage: str, kind: str
) -> None:
    folder = tmp_path / "docs"
    _docs(folder)
    code = _CHILD.format(
        tests=str(Path(__file__).parent), folder=str(folder), stage=stage, kind=kind, names=NAMES
    )
    skipped = run_child(code, timeout=60, RAG_HOME=str(tmp_path / "home"))
    assert set(skipped) == {str(folder / n) for n in NAMES}
    what = "FIFO" if kind == "fifo" else "character device"
    assert all(f"replaced by a {what} while read" in r for r in skipped.values()), skipped


def test_a_plain_name_linked_into_the_documents_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder
) -> None:
    """Before: `$RAG_HOME/indexes/notes` as a link to a folder inside the indexed tree put
    CURRENT, gen-*/ and the marker among the user's files, and skipped those files as
    "pocketrag data"."""
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    docs = tmp_path / "docs"
    (docs / "notes").mkdir(parents=True)
    (docs / "notes" / "n.txt").write_text("precious notes about gardening")
    (docs / "other.txt").write_text("other notes about kale")
    settings().indexes_dir.mkdir(parents=True)
    (settings().indexes_dir / "notes").symlink_to(docs / "notes")
    for root in (docs, docs / "notes"):
        result = cli("index", str(root), "--name", "notes")
        assert result.exit_code == 2, result.output
        assert "a link to" in result.stderr and "Traceback" not in result.output
        assert sorted(p.name for p in (docs / "notes").iterdir()) == ["n.txt"]


def test_an_index_kept_elsewhere_through_a_link_is_built_and_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_embedder
) -> None:
    """Before: `rag indexes remove` deleted the index, then failed (exit 1) on rmdir of the
    link ("Not a directory")."""
    monkeypatch.setenv("RAG_HOME", str(tmp_path / "home"))
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("a note about lighthouses")
    elsewhere = tmp_path / "disk" / "idx"
    elsewhere.mkdir(parents=True)
    settings().indexes_dir.mkdir(parents=True)
    link = settings().indexes_dir / "moved"
    link.symlink_to(elsewhere)
    assert cli("index", str(docs), "--name", "moved").exit_code == 0
    assert (elsewhere / "CURRENT").is_file()
    result = cli("indexes", "remove", "moved")
    assert result.exit_code == 0, result.output
    assert not link.is_symlink() and not elsewhere.exists()
    assert (docs / "a.txt").is_file()


_SEGMENT = {"file": "seg-000001.faiss", "count": 12, "kind": "flat", "min_id": 1, "max_id": 12}
DAMAGED_PARAMS = [
    {"embedder": 5},
    {"embedder": None},
    {"dim": "x"},
    {"dim": 1e400},
    {"chunks": 1e400},
    {"segments": None},
    {"roots": [5]},
    {"roots": None},
    {"next_chunk_id": "x"},
    {"next_segment": 1e400},
    {"segments": [{**_SEGMENT, "count": 1e400}]},
    {"segments": [{**_SEGMENT, "min_id": 1e400}]},
    {"segments": [{**_SEGMENT, "file": ""}]},
    {"segments": [{**_SEGMENT, "file": "chunks.sqlite"}]},
    {"segments": [{**_SEGMENT, "max_id": -5}]},  # an id range that hides the chunks
]


@pytest.mark.parametrize("change", DAMAGED_PARAMS, ids=lambda c: json.dumps(c)[:60])
def test_a_damaged_params_file_is_a_damaged_index_for_every_command(
    tmp_path: Path, docs: Path, fake_embedder, change: dict
) -> None:
    """Before: each of these made some command a traceback (AttributeError, OverflowError,
    TypeError, IndexError), or `rag index` a 'writer lost track' RuntimeError."""
    assert cli("index", str(docs), "--name", "p").exit_code == 0
    gen = settings().indexes_dir / "p" / "gen-000001"
    params = json.loads((gen / "params.json").read_text())
    assert params["segments"] == [_SEGMENT]  # the fixture docs: 12 chunks in one segment
    (gen / "params.json").write_text(json.dumps({**params, **change}))
    for args in (
        ["search", "lake", "--index", "p"],
        ["indexes", "info", "p"],
        ["index", "--name", "p"],
    ):
        result = cli(*args)
        assert isinstance(result.exception, SystemExit), (args, repr(result.exception))
        assert result.exit_code == 1 and "is damaged" in result.stderr, (args, result.output)
        assert "--rebuild" in result.stderr
    listed = cli("indexes", "list")
    assert listed.exit_code == 0 and listed.stdout.startswith("p  (damaged: "), listed.output
    assert cli("index", str(docs), "--name", "p", "--rebuild").exit_code == 0
    assert cli("search", "lake", "--index", "p").exit_code == 0


DAMAGED_SQL = {
    "a renamed column": "ALTER TABLE chunks RENAME COLUMN location TO loc;",
    "a chunk text that is a blob": "UPDATE chunks SET text = x'ff00ff';",
    "no file table": "DROP TABLE files;",
}


@pytest.mark.parametrize("damage", list(DAMAGED_SQL))
def test_a_damaged_chunk_database_is_a_damaged_index(
    docs: Path, fake_embedder, damage: str
) -> None:
    """Before: a search was an OperationalError or TypeError traceback, and `rag index` on a
    database without its file table said the disk could not be written."""
    import sqlite3

    assert cli("index", str(docs), "--name", "p").exit_code == 0
    conn = sqlite3.connect(settings().indexes_dir / "p" / "gen-000001" / "chunks.sqlite")
    conn.executescript(DAMAGED_SQL[damage])
    conn.commit()
    conn.close()
    (docs / "new.txt").write_text("a change, so that rag index reads the file table")
    runs = [cli("search", "lake", "--index", "p"), cli("index", "--name", "p")]
    failed = [r for r in runs if r.exit_code != 0]
    assert failed, "the damage shows somewhere"
    for result in runs:  # never a traceback
        assert result.exception is None or isinstance(result.exception, SystemExit), repr(
            result.exception
        )
    for result in failed:
        assert result.exit_code == 1 and "is damaged" in result.stderr, result.output
        assert "--rebuild" in result.stderr


def test_a_chunk_starting_with_underscores_is_not_damage(tmp_path: Path, fake_embedder) -> None:
    """Before: the BM25 probe searched a chunk by its first `\\w\\w+`, which for an email
    export starting with `____` is a run of underscores, a separator to FTS5: a healthy
    index was reported damaged by every command, and a rebuild could not fix it."""
    folder = tmp_path / "mail"
    folder.mkdir()
    (folder / "mail.txt").write_text("________________\nFrom: Alice\nSubject: roof repairs\n")
    assert cli("index", str(folder), "--name", "mail").exit_code == 0
    found = cli("search", "roof", "--index", "mail")
    assert found.exit_code == 0 and "roof repairs" in found.stdout, found.output
    assert "damaged" not in cli("indexes", "list").output
