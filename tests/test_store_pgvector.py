"""The pgvector store against a real PostgreSQL + pgvector server on 127.0.0.1 (tests/pg_server.py):
the same build, update, search, lock, kill and fingerprint behaviour as the local store."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import itertools
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from index_fixtures import cli, docs, fake_embedder, settings, spawn_build, wait_for  # noqa: F401 - fixtures

from indexers import stores
from indexers.build import build_index
from indexers.stores.pgvector import schema_name
from rag.errors import IndexBusy, StoreUnavailable, UsageError
from rag.retrieval import build_retriever

# The dev extra installs psycopg and pgserver: in CI a missing one fails, never skips.
psycopg = (
    __import__("psycopg") if os.environ.get("CI") == "true" else pytest.importorskip("psycopg")
)
_databases = itertools.count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    import importlib.util

    if os.environ.get("CI") != "true" and importlib.util.find_spec("pgserver") is None:
        pytest.skip("needs the pgserver wheel (pip install -e '.[dev]')")
    from pg_server import postgres_server

    with postgres_server() as url:
        yield url


@pytest.fixture
def pg(pg_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh database per test, made the store of new indexes."""
    name = f"t{os.getpid()}_{next(_databases)}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = pg_server.rsplit("/", 1)[0] + "/" + name
    monkeypatch.setenv("RAG_STORE_PGVECTOR_URL", url)
    monkeypatch.setenv("RAG_STORE", "pgvector")
    return url


def hits(name: str, query: str, k: int = 5, **overrides: object) -> list:
    s = settings().with_overrides(**overrides) if overrides else settings()
    retriever = build_retriever(f"index:{name}", s)
    try:
        return retriever.retrieve(query, k)
    finally:
        retriever.close()


def texts(name: str, query: str, k: int = 5, **overrides: object) -> list[str]:
    return [p.text for p in hits(name, query, k, **overrides)]


def test_build_search_update_and_delete(docs: Path, fake_embedder, pg: str) -> None:
    report = build_index([docs], "notes", settings())
    assert report.created and report.files_embedded == 6 and report.chunks_total > 6
    hits = build_retriever("index:notes", settings()).retrieve("deepest lake Siberia", 3)
    assert hits[0].title == "Lake Baikal" and hits[0].origin == "index:notes"
    assert {"dense_rank", "bm25_rank"} & set(hits[0].meta)

    again = build_index([docs], "notes", settings())  # nothing changed: nothing written
    assert not again.changed and again.files_unchanged == 6

    (docs / "notes.md").write_text("# Compost\n\nTurn the compost heap every week.")
    (docs / "page.html").unlink()
    update = build_index([docs], "notes", settings())
    assert update.files_embedded == 1 and update.files_removed == 1
    assert update.generation == report.generation + 1
    assert any("Turn the compost heap every week." in t for t in texts("notes", "compost heap"))
    assert not any("Margaret Flett" in t for t in texts("notes", "Margaret Flett lighthouse"))

    rebuilt = build_index([docs], "notes", settings(), rebuild=True)
    assert rebuilt.chunks_total == update.chunks_total


def test_same_results_as_the_local_store(docs: Path, fake_embedder, pg: str) -> None:
    build_index([docs], "remote", settings())
    build_index([docs], "here", settings(), store_kind="local")
    assert stores.open_store("here", settings()).kind == "local"
    assert stores.open_store("remote", settings()).kind == "pgvector"
    for query in ("deepest lake Siberia", "lighthouse keeper", "compost", "whale song"):
        # exact inner-product search in both: the same scores, so the same chunks (in any
        # order among equal scores)
        remote, here = hits("remote", query, hybrid=False), hits("here", query, hybrid=False)
        assert [p.score for p in remote] == pytest.approx([p.score for p in here], abs=1e-5)
        assert remote[0].text == here[0].text
        # BM25 differs in its tokenizer (PostgreSQL's English stemmer, FTS5's porter), so
        # the fused lists may differ in order, not in what they find first
        assert texts("remote", query)[0] in texts("here", query)[:3]


def test_cli_records_and_shows_the_store(docs: Path, fake_embedder, pg: str) -> None:
    result = cli("index", str(docs), "--name", "team", "--store", "pgvector")
    assert result.exit_code == 0, result.output
    marker = json.loads((settings().indexes_dir / "team" / "pocketrag-index.json").read_text())
    assert marker["store"] == "pgvector" and marker["schema"] == schema_name("team", Path())
    info = cli("indexes", "info", "team", "--json")
    row = json.loads(info.stdout)
    assert row["store"] == "pgvector" and "schema rag_team_" in row["where"]
    assert row["chunks"] > 6 and row["bytes"] > 0
    assert "store:       pgvector" in cli("indexes", "info", "team").stdout
    listed = json.loads(cli("indexes", "list", "--json").stdout)["indexes"]
    assert [r["name"] for r in listed] == ["team"] and listed[0]["store"] == "pgvector"
    # the store is the index's, whatever the setting says later
    moved = cli("index", str(docs), "--name", "team", "--store", "local")
    assert moved.exit_code == 2 and "lives in the 'pgvector' store" in moved.stderr
    search = cli("search", "lake", "--index", "team", "--json")
    assert search.exit_code == 0 and "Baikal" in search.stdout

    removed = cli("indexes", "remove", "team")
    assert removed.exit_code == 0, removed.output
    assert not (settings().indexes_dir / "team").exists()
    with psycopg.connect(pg) as conn:
        schemas = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rag_team_%'"
        ).fetchone()
    assert schemas == (0,)


def test_fingerprint_follows_commits(docs: Path, fake_embedder, pg: str) -> None:
    from evals.manifest import index_fingerprint

    build_index([docs], "notes", settings())
    first = index_fingerprint("index:notes", settings())
    assert first == index_fingerprint("index:notes", settings())
    assert first["store"] == "pgvector" and first["generation"] == "gen-000001"
    (docs / "extra.md").write_text("A new file about kites.")
    build_index([docs], "notes", settings())
    second = index_fingerprint("index:notes", settings())
    assert second["generation"] == "gen-000002"
    assert second["params_sha256"] != first["params_sha256"]


def test_unreachable_server_is_one_line_naming_the_setting(
    docs: Path, fake_embedder, pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index([docs], "notes", settings())
    from pg_server import free_port

    monkeypatch.setenv("RAG_STORE_PGVECTOR_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    for args in (("search", "lake", "--index", "notes"), ("index", str(docs), "--name", "new")):
        result = cli(*args)
        assert result.exit_code == 1, result.output
        assert "Cannot reach the pgvector store" in result.stderr
        assert "[stores.pgvector] url" in result.stderr and "Traceback" not in result.output
        assert len(result.stderr.strip().splitlines()) == 1
    assert not (settings().indexes_dir / "new").exists()  # nothing left behind
    with pytest.raises(StoreUnavailable):
        build_retriever("index:notes", settings())


def test_no_url_is_a_usage_error(docs: Path, fake_embedder, monkeypatch) -> None:
    monkeypatch.setenv("RAG_STORE", "pgvector")
    with pytest.raises(UsageError, match=r"no server is set.*\[stores.pgvector\]"):
        build_index([docs], "notes", settings())


def test_one_writer_at_a_time(docs: Path, fake_embedder, pg: str) -> None:
    build_index([docs], "notes", settings())
    schema = schema_name("notes", Path())
    with psycopg.connect(pg, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(hashtext(%s))", (schema,))
        with pytest.raises(IndexBusy, match="Another `rag index` is writing"):
            build_index([docs], "notes", settings())
        result = cli("indexes", "remove", "notes")
        assert result.exit_code == 1 and "right now" in result.stderr
        assert texts("notes", "lake")  # readers are not blocked by a writer


def test_sigkill_while_embedding_keeps_previous_index(
    docs: Path, fake_embedder, pg: str, tmp_path: Path
) -> None:
    build_index([docs], "notes", settings())
    before = texts("notes", "lake", 3)
    (docs / "records.jsonl").write_text('{"title": "Replaced", "text": "A new lake text."}\n')
    marker = tmp_path / "marker"
    child = spawn_build("notes", docs, "--pause-at", "embed", FAKE_MARKER=str(marker))
    wait_for(marker, child)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert texts("notes", "lake", 3) == before  # the server rolled the transaction back
    report = build_index([docs], "notes", settings(), wait=10)  # its lock went with it
    assert report.files_embedded == 1
    assert build_retriever("index:notes", settings()).retrieve("lake", 1)[0].title == "Replaced"


def test_a_failed_first_build_leaves_nothing(docs: Path, fake_embedder, pg: str) -> None:
    empty = docs / "empty"
    empty.mkdir()
    with pytest.raises(UsageError):
        build_index([empty], "nothing", settings())
    assert not (settings().indexes_dir / "nothing").exists()
    with psycopg.connect(pg) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rag_nothing_%'"
        ).fetchone()
    assert count == 0
