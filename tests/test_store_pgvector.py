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
from rag.core.errors import IndexBusy, StoreUnavailable, UsageError
from rag.sources import build_retriever

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
    assert (
        marker["store"] == "pgvector" and marker["schema"] == f"rag_team_{marker['index_id'][:12]}"
    )
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
    from web_servers import free_port

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


def test_an_unreachable_store_is_listed_as_unavailable_not_damaged(
    docs: Path, fake_embedder, pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_index([docs], "notes", settings())
    build_index([docs], "here", settings(), store_kind="local")
    from web_servers import free_port

    monkeypatch.setenv("RAG_STORE_PGVECTOR_URL", f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    listed = cli("indexes", "list")
    assert listed.exit_code == 0, listed.output
    assert "notes  (unavailable: Cannot reach the pgvector store" in listed.stdout
    assert "here  " in listed.stdout and "--rebuild" not in listed.stderr
    rows = json.loads(cli("indexes", "list", "--json").stdout)["indexes"]
    assert [r.get("unavailable") for r in rows] == [None, True]


def test_no_url_is_a_usage_error(docs: Path, fake_embedder, monkeypatch) -> None:
    monkeypatch.setenv("RAG_STORE", "pgvector")
    with pytest.raises(UsageError, match=r"no server is set.*\[stores.pgvector\]"):
        build_index([docs], "notes", settings())


def test_one_writer_at_a_time(docs: Path, fake_embedder, pg: str) -> None:
    build_index([docs], "notes", settings())
    schema = stores.open_store("notes", settings()).schema
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


# -- regressions found by an adversarial pass ---------------------------------------------


def _many_files(folder: Path, count: int = 60) -> Path:
    folder.mkdir()
    for i in range(count):
        (folder / f"f{i:03d}.md").write_text(f"common word file {i} about topic{i % 7} and more")
    return folder


def test_bm25_reads_the_chunks_once_per_query(tmp_path: Path, fake_embedder, pg: str) -> None:
    """Document frequencies came from a subquery the planner re-ran for every hit (twice):
    a 5-word query over 7,000 chunks sharing a word took 17 s. Each scan of the chunks
    table must now run once per query, however many chunks match."""
    from indexers.stores.pgvector_reader import _BM25

    build_index([_many_files(tmp_path / "many")], "many", settings())
    reader = stores.open_store("many", settings()).reader()
    try:
        found = reader.bm25("common word topic3 file", 10)
        assert len(found) == 10 and found[0][1] > found[-1][1]
        sql = _BM25.format(chunks=reader.schema.table("chunks"))
        args = {"query": "common word topic3", "docs": 60, "k1": 1.2, "b": 0.75, "avgdl": 8.0}
        (plan,) = reader.conn.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + sql, {**args, "n": 10}
        ).fetchone()
    finally:
        reader.close()

    def nodes(node: dict) -> Iterator[dict]:
        yield node
        for child in node.get("Plans", []):
            yield from nodes(child)

    scans = [n for n in nodes(plan[0]["Plan"]) if n.get("Relation Name") == "chunks"]
    assert scans and all(n["Actual Loops"] == 1 for n in scans), scans


def test_rebuild_keeps_readers_on_the_previous_version(
    docs: Path, fake_embedder, pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A --rebuild emptied the tables with TRUNCATE: readers waited for the whole run, then
    saw an empty index. Now they read the previous version while the run is open."""
    build_index([docs], "notes", settings())
    before = texts("notes", "deepest lake Siberia", 3)
    index = stores.open_store("notes", settings())
    with index.writing([docs], 0):
        live = index.state()
        writer = index.writer(dict(live.params), None, 1000)  # from nothing: rows deleted
        monkeypatch.setenv("PGOPTIONS", "-c lock_timeout=3000")  # blocked: an error, no hang
        assert texts("notes", "deepest lake Siberia", 3) == before
        writer.abort()
    assert texts("notes", "deepest lake Siberia", 3) == before


def test_rebuild_with_an_embedder_of_another_dimension(
    docs: Path, fake_embedder, pg: str, monkeypatch: pytest.MonkeyPatch, register_part
) -> None:
    """The chunks table kept its vector(64) column, so `--rebuild` with a 32-dim embedder
    failed with "expected 64 dimensions" and told the user to run `--rebuild`."""
    from conftest import returning
    from index_fixtures import FakeEmbedder

    build_index([docs], "notes", settings())
    register_part("embedder", "small", returning(FakeEmbedder("small", dim=32)))
    monkeypatch.setenv("RAG_EMBEDDER", "small")
    report = build_index([docs], "notes", settings(), rebuild=True)
    assert report.chunks_total > 6
    assert hits("notes", "deepest lake Siberia", 1)[0].title == "Lake Baikal"
    assert stores.open_store("notes", settings()).verify().params["dim"] == 32


def test_an_open_reader_follows_commits_and_reconnects(docs: Path, fake_embedder, pg: str) -> None:
    """A long-lived reader (rag chat, an eval run) kept the params of the version it
    opened while reading newer rows, and never recovered from a server restart."""
    build_index([docs], "notes", settings())
    retriever = build_retriever("index:notes", settings())
    try:
        first = retriever.fingerprint()
        (docs / "kites.md").write_text("# Kites\n\nA kite flies on the wind above the dunes.")
        build_index([docs], "notes", settings())
        assert retriever.retrieve("kite flies wind dunes", 1)[0].title == "Kites"
        assert retriever.fingerprint()["generation"] == "gen-000002" != first["generation"]
        assert retriever.reader.state.params["files"] == 7
        with psycopg.connect(pg, autocommit=True) as admin:  # as a server restart would
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        with pytest.raises(StoreUnavailable, match="Lost the pgvector store"):
            retriever.retrieve("kite", 1)  # the query that finds the connection gone
        assert retriever.retrieve("kite flies wind dunes", 1)[0].title == "Kites"
    finally:
        retriever.close()


def test_a_role_without_rights_is_one_line(
    docs: Path, fake_embedder, pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied while writing was taken for files that failed to load: "No text
    found in DOCS (6 failed to read)", exit 2."""
    name = f"r{os.getpid()}"
    with psycopg.connect(pg, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN")
        admin.execute("CREATE EXTENSION IF NOT EXISTS vector")
        admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        admin.execute(f"REVOKE CREATE ON DATABASE {pg.rsplit('/', 1)[1]} FROM PUBLIC")
    try:
        limited = pg.replace("postgres@", f"{name}@")
        monkeypatch.setenv("RAG_STORE_PGVECTOR_URL", limited)
        result = cli("index", str(docs), "--name", "notes")
        assert result.exit_code == 1, result.output
        assert "refused to write index 'notes'" in result.stderr
        assert "permission denied" in result.stderr and "[stores.pgvector] url" in result.stderr
        assert len([line for line in result.stderr.splitlines() if "Error" in line]) == 1
        assert not (settings().indexes_dir / "notes").exists()
    finally:
        with psycopg.connect(pg, autocommit=True) as admin:
            admin.execute(f"DROP OWNED BY {name}")
            admin.execute(f"DROP ROLE {name}")


def test_messages_never_show_the_password(
    docs: Path, fake_embedder, pg: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from indexers.stores.pgvector import shown_url

    assert shown_url("host=db password=s3cret user=x") == "host=db password=*** user=x"
    assert "s3cret" not in shown_url("postgresql://u@h/db?password=s3cret")
    for url in ("postgresql://u:s3cret%ZZ@127.0.0.1:1/x", "host=127.0.0.1 password=s3cret%"):
        monkeypatch.setenv("RAG_STORE_PGVECTOR_URL", url)
        result = cli("index", str(docs), "--name", "notes")
        assert result.exit_code == 1, result.output
        assert "s3cret" not in result.output and "[stores.pgvector] url" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


_PAUSE_IN_COMMIT = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from index_fixtures import register_fake
register_fake("fake")
from indexers.build import build_index
from indexers.stores import pgvector
from rag.core.config import load_settings

real = pgvector.PgvectorWriter.commit


def commit(self):
    conn = self.conn

    class Paused:  # everything of the commit runs, then the process stops before COMMIT
        def __getattr__(self, name):
            return getattr(conn, name)

        def commit(self):
            Path(sys.argv[2]).write_text("committing")
            time.sleep(600)

    self.conn = Paused()
    return real(self)


pgvector.PgvectorWriter.commit = commit
build_index([sys.argv[3]], "notes", load_settings(embedder="fake"))
"""


def test_sigkill_during_commit_keeps_previous_index(
    docs: Path, fake_embedder, pg: str, tmp_path: Path
) -> None:
    import subprocess
    import sys

    from index_fixtures import HERE, child_env

    build_index([docs], "notes", settings())
    before = texts("notes", "lake", 3)
    (docs / "records.jsonl").write_text('{"title": "Replaced", "text": "A new lake text."}\n')
    marker = tmp_path / "marker"
    child = subprocess.Popen(
        [sys.executable, "-c", _PAUSE_IN_COMMIT, str(HERE), str(marker), str(docs)],
        env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    wait_for(marker, child)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert texts("notes", "lake", 3) == before
    assert stores.open_store("notes", settings()).verify().generation == 1
    report = build_index([docs], "notes", settings(), wait=10)
    assert report.files_embedded == 1 and report.generation == 2


# -- homes sharing one server: an index is whose created it; sharing is explicit -----------

_RAG = """
import sys
sys.path.insert(0, sys.argv[1])
from index_fixtures import register_fake
register_fake("fake")
from rag.cli.app import main
sys.argv = ["rag", *sys.argv[2:]]
main()
"""


def rag(home: Path, *args: str):  # noqa: ANN201 - subprocess.CompletedProcess
    """`rag ARGS` in its own process with `home` as RAG_HOME (the fake embedder registered),
    as a second person or machine pointing at the same server would run it."""
    import subprocess
    import sys

    from index_fixtures import HERE, child_env

    env = child_env(RAG_HOME=str(home), RAG_EMBEDDER="fake")
    env.pop("RAG_STORE", None)  # every new index here says --store itself
    done = subprocess.run(
        [sys.executable, "-c", _RAG, str(HERE), *args],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _homes(tmp_path: Path) -> tuple[Path, Path]:
    homes = tmp_path / "home-a", tmp_path / "home-b"
    for home in homes:
        home.mkdir()
    return homes


def _kites(tmp_path: Path) -> Path:
    folder = tmp_path / "kites"
    folder.mkdir()
    (folder / "kites.md").write_text("# Kites\n\nA kite flies on the wind above the dunes.")
    return folder


def _rag_schemas(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'rag_team_%' ORDER BY 1"
        ).fetchall()
    return [r[0] for r in rows]


def test_homes_with_one_index_name_keep_their_own_indexes(
    docs: Path, tmp_path: Path, pg: str
) -> None:
    """Indexes were keyed by name: a second home's `rag index --name team` adopted the
    first one's schema ("6 removed", its files replaced), and its `rag indexes remove team`
    dropped it, leaving the first home "never completed"."""
    home_a, home_b = _homes(tmp_path)
    built = rag(home_a, "index", str(docs), "--name", "team", "--store", "pgvector")
    assert built.returncode == 0, built.stderr
    other = rag(home_b, "index", str(_kites(tmp_path)), "--name", "team", "--store", "pgvector")
    assert other.returncode == 0, other.stderr
    assert other.stdout.startswith("Built index 'team'") and "0 removed" in other.stdout
    assert len(_rag_schemas(pg)) == 2  # two indexes, one each

    a = rag(home_a, "search", "deepest lake Siberia", "--index", "team")
    assert a.returncode == 0 and "Baikal" in a.stdout and "kite" not in a.stdout, a.stderr
    b = rag(home_b, "search", "kite flies wind dunes", "--index", "team")
    assert b.returncode == 0 and "kite flies" in b.stdout and "Baikal" not in b.stdout

    # a third home asking for "team" by name must choose: the name is not the index
    third = tmp_path / "home-c"
    third.mkdir()
    ambiguous = rag(third, "indexes", "attach", "team")
    assert ambiguous.returncode == 2, ambiguous.stderr
    assert "2 indexes named 'team'" in ambiguous.stderr and "--schema" in ambiguous.stderr
    assert len(ambiguous.stderr.strip().splitlines()) == 1

    removed = rag(home_b, "indexes", "remove", "team")
    assert removed.returncode == 0, removed.stderr
    assert len(_rag_schemas(pg)) == 1
    after = rag(home_a, "search", "deepest lake Siberia", "--index", "team")
    assert after.returncode == 0 and "Baikal" in after.stdout, after.stderr
    again = rag(home_a, "index", "--name", "team")  # and it still updates as its own
    assert again.returncode == 0 and again.stdout.startswith("Unchanged:"), again.stderr


def test_sharing_an_index_between_homes_is_explicit(docs: Path, tmp_path: Path, pg: str) -> None:
    home_a, home_b = _homes(tmp_path)
    assert rag(home_a, "index", str(docs), "--name", "team", "--store", "pgvector").returncode == 0
    where = json.loads(rag(home_a, "indexes", "info", "team", "--json").stdout)["where"]
    schema = where.rsplit(" ", 1)[1]

    attached = rag(home_b, "indexes", "attach", "team")  # the one index its creator named so
    assert attached.returncode == 0, attached.stderr
    assert f"schema {schema}" in attached.stdout and "read-only" in attached.stdout
    found = rag(home_b, "search", "deepest lake Siberia", "--index", "team")
    assert found.returncode == 0 and "Baikal" in found.stdout, found.stderr
    info = json.loads(rag(home_b, "indexes", "info", "team", "--json").stdout)
    assert info["where"].endswith(f"schema {schema}, attached read-only")

    update = rag(home_b, "index", "--name", "team")
    assert update.returncode == 2 and "attached read-only" in update.stderr, update.stderr
    remove = rag(home_b, "indexes", "remove", "team")
    assert remove.returncode == 2 and "rag indexes detach team" in remove.stderr, remove.stderr
    assert _rag_schemas(pg) == [schema]
    detached = rag(home_b, "indexes", "detach", "team")
    assert detached.returncode == 0 and "its data stays" in detached.stdout, detached.stderr
    assert rag(home_b, "search", "lake", "--index", "team").returncode == 2
    assert "Baikal" in rag(home_a, "search", "deepest lake Siberia", "--index", "team").stdout

    # writable: updates from the folders the index records, never others
    writable = rag(home_b, "indexes", "attach", "team", "--schema", schema, "--writable")
    assert writable.returncode == 0 and "writable" in writable.stdout, writable.stderr
    (docs / "kites.md").write_text("# Kites\n\nA kite flies on the wind above the dunes.")
    shared = rag(home_b, "index", "--name", "team")
    assert shared.returncode == 0 and "1 embedded" in shared.stdout, shared.stderr
    seen = rag(home_a, "search", "kite flies wind dunes", "--index", "team")
    assert "kite flies" in seen.stdout, seen.stderr
    elsewhere = rag(home_b, "index", str(_kites(tmp_path)), "--name", "team")
    assert elsewhere.returncode == 2 and "same folders" in elsewhere.stderr, elsewhere.stderr
    assert "Baikal" in rag(home_a, "search", "deepest lake Siberia", "--index", "team").stdout

    # only its creator removes it; the attached home is then told so
    assert rag(home_a, "indexes", "remove", "team").returncode == 0
    assert _rag_schemas(pg) == []
    gone = rag(home_b, "search", "lake", "--index", "team")
    assert gone.returncode == 2 and "rag indexes detach team" in gone.stderr, gone.stderr
    assert rag(home_b, "indexes", "detach", "team").returncode == 0


def test_an_index_from_before_ids_keeps_working_and_is_claimed(
    docs: Path, fake_embedder, pg: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schemas named by the index name alone, with no owner: still this home's index; its
    next `rag index` gives it an id, and then a second home that shared it by name (as the
    old naming made homes do) is refused and told how to attach it."""
    import hashlib

    build_index([docs], "team", settings())
    marker_path = settings().indexes_dir / "team" / "pocketrag-index.json"
    marker = json.loads(marker_path.read_text())
    legacy = f"rag_team_{hashlib.sha256(b'team').hexdigest()[:8]}"
    with psycopg.connect(pg, autocommit=True) as conn:  # as an earlier pocketrag left it
        if marker["schema"] != legacy:
            conn.execute(f'ALTER SCHEMA "{marker["schema"]}" RENAME TO {legacy}')
        conn.execute(f"DELETE FROM {legacy}.meta WHERE key = 'owner'")
    old = {k: v for k, v in marker.items() if k != "index_id"} | {"schema": legacy}
    marker_path.write_text(json.dumps(old))
    other = tmp_path / "other-home"
    (other / "indexes" / "team").mkdir(parents=True)
    (other / "indexes" / "team" / "pocketrag-index.json").write_text(json.dumps(old))

    assert texts("team", "deepest lake Siberia")  # legacy: read as before
    (docs / "kites.md").write_text("# Kites\n\nA kite flies on the wind above the dunes.")
    assert build_index([docs], "team", settings()).files_embedded == 1
    claimed = json.loads(marker_path.read_text())
    assert claimed["schema"] == legacy and len(claimed["index_id"]) == 32
    with psycopg.connect(pg) as conn:
        (owner,) = conn.execute(f"SELECT value FROM {legacy}.meta WHERE key = 'owner'").fetchone()
    assert owner["index_id"] == claimed["index_id"] and owner["name"] == "team"

    monkeypatch.setenv("RAG_HOME", str(other))
    for args in (("search", "lake", "--index", "team"), ("indexes", "remove", "team")):
        refused = cli(*args)
        assert refused.exit_code == 2, refused.output
        assert "belongs to another pocketrag home" in refused.stderr
        assert f"rag indexes attach team --schema {legacy}" in refused.stderr
    assert cli("indexes", "detach", "team").exit_code == 0
    assert cli("indexes", "attach", "team").exit_code == 0  # the legacy name, now owned
    assert any("kite flies" in t for t in texts("team", "kite flies wind dunes"))


def test_attach_and_detach_refuse_what_they_cannot_do(
    docs: Path, fake_embedder, pg: str, tmp_path: Path
) -> None:
    build_index([docs], "team", settings())
    build_index([docs], "here", settings(), store_kind="local")
    schema = stores.open_store("team", settings()).schema
    for args, says in (
        (("indexes", "attach", "team", "--schema", schema), "already exists in this home"),
        (("indexes", "attach", "x", "--schema", "rag_nothing_0"), "holds no completed"),
        (("indexes", "attach", "x", "--schema", "Bad-Name"), "lower-case letters"),
        (("indexes", "attach", "nobody"), "No index named 'nobody'"),
        (("indexes", "attach", "x", "--store", "local"), "keeps each index in one home"),
        (("indexes", "detach", "team"), "was created by this home"),
        (("indexes", "detach", "here"), "nothing to detach"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1, args
    assert not (settings().indexes_dir / "x").exists()
    alias = cli("indexes", "attach", "alias", "--schema", schema)  # another name, same data
    assert alias.exit_code == 0, alias.output
    assert cli("indexes", "detach", "alias").exit_code == 0
    assert texts("team", "deepest lake Siberia")


def test_a_second_first_build_in_one_home_finds_the_first(
    docs: Path, fake_embedder, pg: str, tmp_path: Path
) -> None:
    """Each new index gets a random id (its schema's name), so two `rag index --name notes`
    starting together in one home must agree on one: the second finds the first's marker
    and its lock, and refuses, instead of building a second schema."""
    marker = tmp_path / "marker"
    child = spawn_build("notes", docs, "--pause-at", "embed", FAKE_MARKER=str(marker))
    try:
        wait_for(marker, child)
        with pytest.raises(IndexBusy, match="Another `rag index` is writing"):
            build_index([docs], "notes", settings())
    finally:
        child.kill()
        child.wait()
    with psycopg.connect(pg) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rag_notes_%'"
        ).fetchone()
    assert count <= 1
    report = build_index([docs], "notes", settings(), wait=10)
    assert report.created and texts("notes", "deepest lake Siberia")


# -- a marker naming a schema pocketrag did not make ----------------------------------------


def _tables(url: str, schema: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s ORDER BY 1",
            (schema,),
        ).fetchall()
    return [r[0] for r in rows]


@pytest.mark.parametrize("schema", ["public", "myapp", "rag_myapp"])
def test_a_marker_naming_a_schema_pocketrag_did_not_make_never_drops_or_writes_it(
    docs: Path, tmp_path: Path, pg: str, schema: str
) -> None:
    """Before: a marker (hand-edited, or a folder from elsewhere) naming `public` made
    `rag indexes remove` and a failed first `rag index` run DROP SCHEMA "public" CASCADE:
    the database's own tables went, and with the vector extension every index's
    embedding column; a `rag index` that succeeded wrote its tables into `public`."""
    home_a, home_c = _homes(tmp_path)
    built = rag(home_a, "index", str(docs), "--name", "team", "--store", "pgvector")
    assert built.returncode == 0, built.stderr
    with psycopg.connect(pg, autocommit=True) as conn:  # another application's data
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'CREATE TABLE "{schema}".important (v text)')
        conn.execute(f"INSERT INTO \"{schema}\".important VALUES ('precious')")
    folder = home_c / "indexes" / "x"
    folder.mkdir(parents=True)
    marker = {"format": "pocketrag-index", "created_at": 1, "store": "pgvector", "schema": schema}
    (folder / "pocketrag-index.json").write_text(json.dumps(marker))
    binary = tmp_path / "binary"  # a first build that fails: nothing to index
    binary.mkdir()
    (binary / "image.png").write_bytes(b"\x89PNG")
    for args in (
        ("indexes", "remove", "x"),
        ("index", str(binary), "--name", "x"),
        ("index", str(docs), "--name", "x"),
    ):
        done = rag(home_c, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and f"schema {schema}" in lines[0], (args, done.stderr)
        assert "not one pocketrag made" in lines[0], lines[0]
        assert _tables(pg, schema) == ["important"], args
    with psycopg.connect(pg) as conn:
        assert conn.execute(f'SELECT v FROM "{schema}".important').fetchall() == [("precious",)]
        extensions = [r[0] for r in conn.execute("SELECT extname FROM pg_extension")]
    assert "vector" in extensions
    found = rag(home_a, "search", "deepest lake Siberia", "--index", "team")
    assert found.returncode == 0 and "Baikal" in found.stdout, found.stderr
    assert (folder / "pocketrag-index.json").is_file()  # the marker is the user's to fix
