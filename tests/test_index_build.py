"""Building and querying an index with the fake embedder: incremental, deletions, consistency,
hybrid fusion, embedder mismatch, approximate index."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import returning
from index_fixtures import FakeEmbedder, RandomEmbedder, docs, fake_embedder, settings  # noqa: F401 - fixtures

from indexers.build import build_index
from indexers.hybrid import rrf
from indexers.retriever import IndexRetriever
from indexers.stores import local_layout, local_segments
from indexers.stores.base import resolve_index_dir
from rag.core.errors import IndexNotFound, UsageError
from rag.sources import build_retriever


def top(name: str, query: str, k: int = 3, **overrides: object) -> list:
    s = settings()
    if overrides:
        s = s.with_overrides(**overrides)
    return build_retriever(f"index:{name}", s).retrieve(query, k)


def test_build_then_search_through_build_retriever(docs: Path, fake_embedder: FakeEmbedder) -> None:
    report = build_index([docs], "notes", settings())
    assert report.changed and report.files_embedded == 6 and report.chunks_total > 6
    assert report.skip_reasons() == {
        "binary": 1, "hidden folder": 1, "likely secret": 1, "unreadable PDF": 1,
        "unreadable image": 1,  # sub/pixel.png: a PNG cut off in its header
    }  # fmt: skip
    retriever = build_retriever("index:notes", settings())
    assert retriever.name == "index:notes"
    hits = retriever.retrieve("deepest lake Siberia", 3)
    assert hits[0].title == "Lake Baikal"
    assert hits[0].location == f"{docs / 'records.jsonl'}#L2:chunk0"
    assert hits[0].origin == "index:notes"
    assert hits[0].location.startswith(str(docs))
    assert hits[0].score > hits[1].score
    assert hits[0].meta["bm25_rank"] == 1 and hits[0].meta["dense_rank"] >= 1


def test_rerun_unchanged_embeds_nothing(docs: Path, fake_embedder: FakeEmbedder) -> None:
    build_index([docs], "notes", settings())
    fake_embedder.texts.clear()
    (docs / "notes.md").touch()  # mtime changes, content does not: the hash decides
    report = build_index([docs], "notes", settings())
    assert not report.changed and report.files_unchanged == 6 and fake_embedder.texts == []
    assert report.generation == 1


def test_edit_reembeds_only_that_file(docs: Path, fake_embedder: FakeEmbedder) -> None:
    build_index([docs], "notes", settings())
    fake_embedder.texts.clear()
    text = (docs / "sub" / "fib.py").read_text().replace("iteratively", "with a loop, zanzibar")
    (docs / "sub" / "fib.py").write_text(text)
    report = build_index([docs], "notes", settings())
    assert report.changed and report.files_embedded == 1 and report.files_unchanged == 5
    assert len(fake_embedder.texts) == 1 and "zanzibar" in fake_embedder.texts[0]
    hits = top("notes", "zanzibar loop", 1)
    assert hits[0].location.startswith(str(docs / "sub" / "fib.py"))
    assert "zanzibar" in hits[0].text


def test_deleted_file_leaves_the_index(docs: Path, fake_embedder: FakeEmbedder) -> None:
    build_index([docs], "notes", settings())
    assert top("notes", "Margaret Flett lighthouse", 1)[0].title == "The Lighthouse Keeper"
    (docs / "page.html").unlink()
    report = build_index([docs], "notes", settings())
    assert report.files_removed == 1
    hits = top("notes", "Margaret Flett lighthouse", 10)
    assert all("page.html" not in h.location for h in hits)
    gen = local_layout.open_current(resolve_index_dir("notes", settings()), "notes")
    assert str(docs / "page.html") not in gen.file_table()


def test_vectors_stay_aligned_with_chunks_after_updates(
    docs: Path, fake_embedder: FakeEmbedder
) -> None:
    """After edits and deletions every stored vector is still the embedding of its own chunk."""
    from indexers.chunking import embedding_text

    build_index([docs], "notes", settings())
    (docs / "page.html").unlink()
    (docs / "notes.md").write_text("# New\n\nEntirely new gardening text about kale.\n")
    (docs / "extra.txt").write_text("An added file about volcanoes in Iceland.")
    build_index([docs], "notes", settings())
    gen = local_layout.open_current(resolve_index_dir("notes", settings()), "notes")
    parts = [local_segments.contents(index) for index in gen.load_segments()]
    ids = np.concatenate([i for i, _ in parts])
    vectors = np.concatenate([v for _, v in parts])
    rows = dict(
        (r[0], embedding_text(r[1], r[2]))
        for r in gen.connect().execute("SELECT id, title, text FROM chunks")
    )
    assert sorted(ids.tolist()) == sorted(rows)
    expected = FakeEmbedder().embed([rows[int(i)] for i in ids])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_rebuild_starts_over(docs: Path, fake_embedder: FakeEmbedder) -> None:
    build_index([docs], "notes", settings())
    fake_embedder.texts.clear()
    report = build_index([docs], "notes", settings(), rebuild=True)
    assert report.files_embedded == 6 and len(fake_embedder.texts) == report.chunks_total


def test_rerun_without_paths_reuses_roots(docs: Path, fake_embedder: FakeEmbedder) -> None:
    build_index([docs], "notes", settings())
    (docs / "new.md").write_text("# Owls\n\nOwls hunt at night.")
    report = build_index([], "notes", settings())
    assert report.files_embedded == 1
    with pytest.raises(UsageError, match="at least one PATH"):
        build_index([], "other", settings())


def test_hybrid_finds_by_words_what_dense_cannot(
    tmp_path: Path, monkeypatch, register_part
) -> None:
    embedder = RandomEmbedder("random")
    register_part("embedder", "random", returning(embedder))
    monkeypatch.setenv("RAG_EMBEDDER", "random")
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(30):
        (folder / f"doc{i:02d}.txt").write_text(f"Record {i}: nothing special here, item {i}.")
    (folder / "doc17.txt").write_text("Record 17: the access code is quetzalcoatl.")
    build_index([folder], "many", settings())
    target = f"{folder / 'doc17.txt'}#chunk0"
    hybrid = [h.location for h in top("many", "quetzalcoatl", 5)]
    dense = top("many", "quetzalcoatl", 31, hybrid=False)
    assert "bm25_rank" not in dense[0].meta
    dense_rank = [h.location for h in dense].index(target) + 1
    assert target in hybrid, "BM25's only match always reaches the top 5"
    assert hybrid.index(target) + 1 < dense_rank, "and ranks better than dense alone"


def test_rrf_math() -> None:
    fused = rrf([[1, 2, 3], [3, 1]], k=60)
    assert [d for d, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2][1] == pytest.approx(1 / 62)
    weighted = rrf([[1, 2], [2]], [1.0, 0.5], k=10)
    assert weighted == [(2, pytest.approx(1 / 12 + 0.5 / 11)), (1, pytest.approx(1 / 11))]


def test_embedder_mismatch_is_a_clear_error(
    docs: Path, fake_embedder: FakeEmbedder, monkeypatch, register_part
) -> None:
    build_index([docs], "notes", settings())
    register_part("embedder", "other", returning(FakeEmbedder("other", dim=32)))
    with pytest.raises(
        UsageError, match="built with embedder 'fake'.*not 'other'.*Query with --embedder fake"
    ):
        build_retriever("index:notes", settings().with_overrides(embedder="other"))
    with pytest.raises(UsageError, match="--rebuild"):
        build_index([docs], "notes", settings().with_overrides(embedder="other"))
    report = build_index([docs], "notes", settings().with_overrides(embedder="other"), rebuild=True)
    assert report.changed
    assert build_retriever("index:notes", settings().with_overrides(embedder="other"))
    # same name, different vectors: the dimension check catches it at query time
    register_part("embedder", "other", returning(FakeEmbedder("other", dim=48)))
    retriever = build_retriever("index:notes", settings().with_overrides(embedder="other"))
    with pytest.raises(UsageError, match="48-dim"):
        retriever.retrieve("lake", 2)


def test_approximate_index_above_threshold(docs: Path, fake_embedder: FakeEmbedder) -> None:
    build_index([docs], "big", settings(), approx_threshold=3)
    gen = local_layout.open_current(resolve_index_dir("big", settings()), "big")
    assert gen.params["faiss"] == "hnsw"
    assert top("big", "deepest lake Siberia", 1)[0].title == "Lake Baikal"
    (docs / "records.jsonl").unlink()
    build_index([docs], "big", settings(), approx_threshold=3)
    assert all("records.jsonl" not in h.location for h in top("big", "lake Siberia", 10))


def test_the_run_that_takes_a_local_index_past_the_limit_suggests_pgvector(
    docs: Path, fake_embedder: FakeEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_layout, "PGVECTOR_ABOVE", 4)
    report = build_index([docs], "grows", settings())
    assert report.chunks_total >= 4
    [said] = [w for w in report.warnings if "pgvector" in w]
    assert f"{report.chunks_total:,} chunks" in said and "--store pgvector" in said
    (docs / "more.txt").write_text("One more note about a quiet mountain lake.")
    again = build_index([docs], "grows", settings())  # already past it: said once
    assert again.changed and not [w for w in again.warnings if "pgvector" in w]
    monkeypatch.setattr(local_layout, "PGVECTOR_ABOVE", 10**9)
    assert not [w for w in build_index([docs], "small", settings()).warnings if "pgvector" in w]


def test_index_at_a_path_and_unknown_index(
    tmp_path: Path, docs: Path, fake_embedder: FakeEmbedder
) -> None:
    target = tmp_path / "elsewhere" / "idx"
    build_index([docs / "notes.md"], str(target), settings())
    assert (target / "CURRENT").is_file()
    assert IndexRetriever.open(str(target), settings()).retrieve("compost heap", 1)
    with pytest.raises(IndexNotFound, match="No index named 'nope'"):
        build_retriever("index:nope", settings())
    with pytest.raises(UsageError, match="Invalid index name"):
        build_index([docs], "bad name!", settings())


def test_failed_first_build_leaves_nothing_behind(
    tmp_path: Path, fake_embedder: FakeEmbedder
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UsageError, match="No indexable files"):
        build_index([empty], "e", settings())
    (empty / "only.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(UsageError, match="No text found"):
        build_index([empty], "e", settings())
    assert not (settings().indexes_dir / "e").exists()


def test_sqlite_is_a_real_database(docs: Path, fake_embedder: FakeEmbedder) -> None:
    build_index([docs], "notes", settings())
    gen_dir = local_layout.current_generation_dir(resolve_index_dir("notes", settings()))
    conn = sqlite3.connect(gen_dir / "chunks.sqlite")
    paths = {r[0] for r in conn.execute("SELECT path FROM files")}
    assert str(docs / "sub" / "latin1.txt") in paths and all(os.path.isabs(p) for p in paths)
    (text,) = conn.execute("SELECT text FROM chunks WHERE path LIKE '%latin1.txt'").fetchone()
    assert "Café" in text


def test_never_indexes_its_own_state(
    tmp_path: Path, docs: Path, fake_embedder: FakeEmbedder
) -> None:
    build_index([docs / "notes.md"], "first", settings())
    (settings().home / "config.toml").write_text("k = 5\n")
    report = build_index([tmp_path], "all", settings())  # tmp_path holds RAG_HOME too
    assert report.files_embedded == 6
    assert report.skip_reasons()["pocketrag data"] >= 2


def test_an_index_in_the_older_format_is_re_embedded_by_the_next_run(
    docs: Path, fake_embedder: FakeEmbedder
) -> None:
    import json

    from index_fixtures import cli

    old = settings().indexes_dir / "old" / "gen-000001"
    old.mkdir(parents=True)
    params = {"format": "pocketrag-index", "format_version": 1, "embedder": "fake", "dim": 64,
              "chunks": 9, "faiss": "flat", "roots": [str(docs)]}  # fmt: skip
    (old / "params.json").write_text(json.dumps(params))
    (old.parent / "CURRENT").write_text("gen-000001\n")
    query = cli("search", "lake", "--index", "old")
    assert query.exit_code == 1
    assert (
        "written by an older pocketrag" in query.stderr and "rag index --name old" in query.stderr
    )
    listed = cli("indexes", "list")  # not "damaged", and the way to update it
    assert listed.exit_code == 0 and listed.stdout.startswith("old  (older format: ")
    assert "rag index --name old`" in listed.stdout and "damaged" not in listed.output
    result = cli("index", "--name", "old", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["files_embedded"] == 6 and any("older pocketrag" in w for w in report["warnings"])
    assert top("old", "deepest lake Siberia", 1)[0].title == "Lake Baikal"
