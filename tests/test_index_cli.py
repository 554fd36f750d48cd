"""`rag index`, `rag indexes`, `rag search --index`, `rag ask --index` through the real CLI app,
with the fake embedder; bad input gives a clear message and exit code 2 or 1."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from index_fixtures import cli, docs, fake_embedder, settings  # noqa: F401 - fixtures

from indexers.stores import local_layout
from indexers.stores.base import resolve_index_dir


def test_index_summary_and_json(docs: Path, fake_embedder) -> None:
    result = cli("index", str(docs), "--name", "notes")
    assert result.exit_code == 0, result.output
    assert "Built index 'notes': 6 files read (6 embedded" in result.stdout
    assert (
        "Skipped 5: 1 hidden folder, 1 likely secret, 1 binary, 1 unreadable PDF, "
        "1 unreadable image." in result.stdout
    )
    assert "broken.pdf" in result.stderr  # the warning for the bad file
    again = cli("index", str(docs), "--name", "notes", "--json")
    data = json.loads(again.stdout)
    assert data["changed"] is False and data["files_unchanged"] == 6 and data["chunks"] > 0
    assert {"path": str(docs / ".env"), "reason": "likely secret"} in data["skipped"]


def test_built_updated_unchanged_and_no_blank_line_before_errors(
    tmp_path: Path, docs: Path, fake_embedder
) -> None:
    assert cli("index", str(docs), "--name", "notes").stdout.startswith("Built index 'notes'")
    assert cli("index", str(docs), "--name", "notes").stdout.startswith("Unchanged: index")
    (docs / "notes.md").write_text("# New\n\nFresh text.")
    assert cli("index", str(docs), "--name", "notes").stdout.startswith("Updated index 'notes'")
    assert json.loads(cli("index", str(docs), "--name", "n2", "--json").stdout)["created"]
    empty = tmp_path / "empty"
    empty.mkdir()
    for args in ((str(tmp_path / "nope"), "--name", "x"), (str(empty), "--name", "x")):
        result = cli("index", *args)
        assert result.exit_code == 2 and result.stderr.startswith("Error: "), result.stderr


def test_exclude_option(docs: Path, fake_embedder) -> None:
    result = cli("index", str(docs), "--name", "n", "--exclude", "*.pdf", "-x", "sub", "--json")
    data = json.loads(result.stdout)
    assert data["files_read"] == 3
    assert data["skip_reasons"]["excluded"] == 3


def test_exclude_is_recorded_kept_by_later_updates_and_replaced_when_given(
    docs: Path, fake_embedder
) -> None:
    """Before: `rag index --name n` (the recorded folders) forgot `-x` and indexed what it
    had skipped; `rag serve --watch` had no way to know the patterns at all."""
    first = json.loads(cli("index", str(docs), "--name", "n", "-x", "*.pdf", "--json").stdout)
    assert first["skip_reasons"]["excluded"] == 2
    (docs / "late.pdf").write_bytes((docs / "voyager.pdf").read_bytes())
    again = json.loads(cli("index", "--name", "n", "--json").stdout)
    assert again["skip_reasons"]["excluded"] == 3 and not again["changed"], again
    info = json.loads(cli("indexes", "info", "n", "--json").stdout)
    assert info["exclude"] == ["*.pdf"]
    replaced = json.loads(cli("index", "--name", "n", "-x", "sub", "--json").stdout)
    assert replaced["changed"] and replaced["formats"].get(".pdf", 0) >= 2, replaced
    assert json.loads(cli("indexes", "info", "n", "--json").stdout)["exclude"] == ["sub"]
    kept = json.loads(cli("index", "--name", "n", "--json").stdout)
    assert kept["skip_reasons"]["excluded"] == 1 and not kept["changed"], kept


def test_search_index_json(docs: Path, fake_embedder) -> None:
    cli("index", str(docs), "--name", "notes")
    result = cli("search", "deepest lake Siberia", "--index", "notes", "--k", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    first = data["results"][0]
    assert first["title"] == "Lake Baikal" and first["origin"] == "index:notes"
    assert first["location"].startswith(str(docs / "records.jsonl"))
    assert first["id"] == 1 and len(data["results"]) == 2


def test_ask_with_index_cites_file_paths(docs: Path, fake_embedder, fake_model) -> None:
    cli("index", str(docs), "--name", "notes")
    result = cli("ask", "Which lake is deepest?", "--index", "notes", "--model", "fake:", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["sources"][0]["location"].startswith(str(docs))
    assert data["sources"][0]["origin"] == "index:notes"
    prompt = "\n".join(m.content for m in fake_model.calls[0])
    assert "Lake Baikal" in prompt and "[1]" in prompt


def test_indexes_list_info_remove(docs: Path, fake_embedder) -> None:
    cli("index", str(docs / "notes.md"), "--name", "one")
    cli("index", str(docs / "page.html"), "--name", "two")
    listed = cli("indexes")
    assert listed.exit_code == 0 and "one" in listed.stdout and "two" in listed.stdout
    rows = json.loads(cli("indexes", "list", "--json").stdout)["indexes"]
    assert [r["name"] for r in rows] == ["one", "two"] and rows[0]["embedder"] == "fake"
    info = json.loads(cli("indexes", "info", "one", "--json").stdout)
    assert info["files"] == 1 and info["faiss"] == "flat" and info["format_version"] == 2
    assert "FAISS flat" in cli("indexes", "info", "one").stdout
    removed = cli("indexes", "remove", "one")
    assert removed.exit_code == 0
    assert not (settings().indexes_dir / "one").exists()
    assert [r["name"] for r in json.loads(cli("indexes", "--json").stdout)["indexes"]] == ["two"]


def test_bad_input_exit_codes(tmp_path: Path, docs: Path, fake_embedder) -> None:
    missing = cli("index", str(tmp_path / "nope"), "--name", "x")
    assert missing.exit_code == 2 and "No such file or folder" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("index", str(empty), "--name", "x")
    assert result.exit_code == 2 and "No indexable files" in result.stderr
    for args in (
        ("search", "q", "--index", "nope"),
        ("indexes", "info", "nope"),
        ("indexes", "remove", "nope"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, args
        assert "No index named 'nope'" in result.stderr
    assert cli("index", str(docs), "--name", "bad name").exit_code == 2
    assert "Traceback" not in result.output


SEGMENT = "seg-000001.faiss"  # the first (here the only) vector segment


def _corrupt(name: str, filename: str, data: bytes) -> None:
    gen_dir = local_layout.current_generation_dir(resolve_index_dir(name, settings()))
    (gen_dir / filename).write_bytes(data)


def test_corrupt_index_files_exit_1_with_rebuild_hint(docs: Path, fake_embedder) -> None:
    for filename, data in (
        (SEGMENT, b"not a faiss index"),
        ("params.json", b"{broken"),
        ("chunks.sqlite", b"garbage" * 100),
    ):
        name = filename.split(".")[0]
        cli("index", str(docs), "--name", name)
        _corrupt(name, filename, data)
        result = cli("search", "lake", "--index", name)
        assert result.exit_code == 1, (filename, result.output)
        assert "--rebuild" in result.stderr and filename in result.stderr
        assert "Traceback" not in result.output
        fixed = cli("index", str(docs), "--name", name, "--rebuild")
        assert fixed.exit_code == 0, fixed.output
        assert cli("search", "lake", "--index", name).exit_code == 0
    (resolve_index_dir("params", settings()) / "CURRENT").write_text("gen-000099\n")
    result = cli("indexes", "info", "params")
    assert result.exit_code == 1 and "missing generation" in result.stderr


def test_reindexing_a_damaged_index_says_to_rebuild(docs: Path, fake_embedder) -> None:
    cli("index", str(docs), "--name", "c1")
    index_dir = resolve_index_dir("c1", settings())
    _corrupt("c1", "params.json", b"{broken")
    (docs / "notes.md").write_text("# Changed\n\nSo the build reads the old index.")
    result = cli("index", str(docs), "--name", "c1")
    assert result.exit_code == 1, result.output
    assert "Index 'c1' is damaged: Cannot read" in result.stderr and "params.json" in result.stderr
    assert f"`rag index {docs} --name c1 --rebuild`" in result.stderr
    (index_dir / "CURRENT").write_text("gen-000099\n")
    result = cli("index", str(docs), "--name", "c1")
    assert result.exit_code == 1 and "missing generation" in result.stderr
    assert "--rebuild" in result.stderr and "Traceback" not in result.output
    assert (index_dir / "CURRENT").is_file()  # a failed run never removes an index
    assert cli("index", str(docs), "--name", "c1", "--rebuild").exit_code == 0
    assert cli("search", "lake", "--index", "c1").exit_code == 0


def _truncate(name: str, filename: str) -> None:
    path = local_layout.current_generation_dir(resolve_index_dir(name, settings())) / filename
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def test_indexes_list_and_info_report_damaged_files(docs: Path, fake_embedder) -> None:
    for name, damage in (
        ("garbled", lambda: _corrupt("garbled", SEGMENT, b"not a faiss index")),
        ("cutfaiss", lambda: _truncate("cutfaiss", SEGMENT)),
        ("cutsqlite", lambda: _truncate("cutsqlite", "chunks.sqlite")),
    ):
        cli("index", str(docs), "--name", name)
        damage()
    cli("index", str(docs / "notes.md"), "--name", "ok")
    for name, filename in (
        ("garbled", SEGMENT),
        ("cutfaiss", SEGMENT),
        ("cutsqlite", "chunks.sqlite"),
    ):
        result = cli("indexes", "info", name)
        assert result.exit_code == 1, (name, result.output)
        assert f"Index {name!r} is damaged" in result.stderr and filename in result.stderr
        assert f"--name {name} --rebuild" in result.stderr
    listed = cli("indexes", "list")
    assert listed.exit_code == 0, listed.output
    lines = dict(line.split("  ", 1) for line in listed.stdout.splitlines())
    assert sorted(lines) == ["cutfaiss", "cutsqlite", "garbled", "ok"]
    assert all(lines[n].startswith("(damaged: ") for n in ("cutfaiss", "cutsqlite", "garbled"))
    assert "chunks from 1 files" in lines["ok"]
    assert "--rebuild" in listed.stderr
    rows = {r["name"]: r for r in json.loads(cli("indexes", "list", "--json").stdout)["indexes"]}
    assert "error" in rows["garbled"] and "chunks" not in rows["garbled"]
    assert "error" not in rows["ok"] and rows["ok"]["files"] == 1
    assert cli("indexes", "info", "ok").exit_code == 0


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys, rag.cli.app as a\n"
        "from typer.testing import CliRunner\n"
        "CliRunner().invoke(a.app, ['index', '--help'])\n"
        "CliRunner().invoke(a.app, ['indexes', '--help'])\n"
        "heavy = ('torch', 'faiss', 'sentence_transformers')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
