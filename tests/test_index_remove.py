"""`rag indexes remove` deletes only what pocketrag wrote, proven by its marker and format."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import json
from pathlib import Path

from index_fixtures import cli, docs, fake_embedder, settings  # noqa: F401 - fixtures

from indexers.stores import local_layout, ownership


def test_a_user_folder_with_a_gen_file_is_never_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "precious.txt").write_text("precious\n")
    (folder / "gen-ome.md").write_text("x\n")
    result = cli("indexes", "remove", str(folder))
    assert result.exit_code == 2
    assert "is not a pocketrag index" in result.stderr and "not removing anything" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["gen-ome.md", "precious.txt"]


def test_a_folder_that_only_looks_like_an_index_is_never_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "looks"
    (folder / "gen-000001").mkdir(parents=True)
    (folder / "gen-000001" / "params.json").write_text('{"format": "something-else"}')
    (folder / "CURRENT").write_text("gen-000001\n")
    (folder / "notes.txt").write_text("mine\n")
    result = cli("indexes", "remove", str(folder))
    assert result.exit_code == 2 and "not a pocketrag index" in result.stderr
    assert (folder / "notes.txt").read_text() == "mine\n" and (folder / "gen-000001").is_dir()


def test_remove_deletes_the_index_and_keeps_a_file_someone_put_beside_it(
    tmp_path: Path, docs: Path, fake_embedder
) -> None:
    index_dir = tmp_path / "idx"
    assert cli("index", str(docs / "notes.md"), "--name", str(index_dir)).exit_code == 0
    assert (index_dir / ownership.MARKER).is_file()
    (index_dir / "todo.txt").write_text("a file the user put here later\n")
    result = cli("indexes", "remove", str(index_dir))
    assert result.exit_code == 0, result.output
    assert "Kept" in result.stderr and "todo.txt" in result.stderr
    assert sorted(p.name for p in index_dir.iterdir()) == ["todo.txt"]
    assert (docs / "notes.md").is_file()  # the documents, of course, stay
    plain = cli("index", str(docs / "notes.md"), "--name", "plain")
    assert plain.exit_code == 0
    assert cli("indexes", "remove", "plain").exit_code == 0
    assert not (settings().indexes_dir / "plain").exists()


def test_an_index_from_before_the_marker_is_proven_by_its_format(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    (folder / "gen-000003").mkdir(parents=True)
    params = {"format": ownership.FORMAT, "format_version": 1, "embedder": "x", "chunks": 0}
    (folder / "gen-000003" / "params.json").write_text(json.dumps(params))
    (folder / "CURRENT").write_text("gen-000003\n")
    (folder / "write.lock").write_text("")
    assert cli("indexes", "remove", str(folder)).exit_code == 0
    assert not folder.exists()


def test_a_first_build_that_fails_leaves_no_marker_in_a_given_folder(
    tmp_path: Path, fake_embedder
) -> None:
    given = tmp_path / "given"
    given.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("index", str(empty), "--name", str(given)).exit_code == 2
    assert list(given.iterdir()) == []


def test_removing_from_a_read_only_folder_is_one_line_and_deletes_nothing(
    docs: Path, fake_embedder
) -> None:
    from index_fixtures import read_only

    assert cli("index", str(docs / "notes.md"), "--name", "notes").exit_code == 0
    index_dir = settings().indexes_dir / "notes"
    before = sorted(p.relative_to(index_dir) for p in index_dir.rglob("*"))
    with read_only(index_dir):
        result = cli("indexes", "remove", "notes")
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: Cannot ") and "Read-only file system" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.relative_to(index_dir) for p in index_dir.rglob("*")) == before
    assert cli("search", "compost", "--index", "notes").exit_code == 0


def test_a_damaged_bm25_index_is_damaged_for_info_list_and_search_alike(
    docs: Path, fake_embedder
) -> None:
    """One integrity check: `info` used to call an index healthy that `search` refused."""
    import sqlite3

    assert cli("index", str(docs), "--name", "notes").exit_code == 0
    gen_dir = local_layout.current_generation_dir(settings().indexes_dir / "notes")
    conn = sqlite3.connect(gen_dir / "chunks.sqlite")
    conn.execute("UPDATE chunks_fts_data SET block = x'00ff00ff'")  # its BM25 postings
    conn.commit()
    conn.close()
    info = cli("indexes", "info", "notes")
    search = cli("search", "lake", "--index", "notes")
    listed = cli("indexes", "list")
    assert info.exit_code == 1 and search.exit_code == 1, (info.output, search.output)
    for result in (info, search):
        assert "Index 'notes' is damaged" in result.stderr and "--rebuild" in result.stderr
    assert "(damaged: " in listed.stdout
