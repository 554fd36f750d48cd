"""Hostile update sequences on the segment store: many edits, deletions and re-additions.

Every run must leave an index whose vectors are exactly the embeddings of its own chunk
rows (one per chunk, none left over from a deleted or changed file), whose file table
matches the folder, and whose segments do not pile up.
"""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from index_fixtures import FakeEmbedder, fake_embedder, settings  # noqa: F401 - fixtures

from indexers.build import build_index
from indexers.chunking import embedding_text
from indexers.stores import local_layout, local_segments
from indexers.stores.base import resolve_index_dir

WORDS = [f"w{i}" for i in range(14)] + ["alpha", "beta", "gamma"]


def _check(name: str, folder: Path) -> local_layout.Generation:
    """Vectors aligned to chunks, counts consistent, file table = the folder."""
    gen = local_layout.open_current(resolve_index_dir(name, settings()), name)
    conn = gen.connect()
    rows = {
        i: embedding_text(t, x) for i, t, x in conn.execute("SELECT id, title, text FROM chunks")
    }
    parts = [local_segments.contents(ix) for ix in gen.load_segments()]
    ids = np.concatenate([i for i, _ in parts]) if parts else np.zeros(0, dtype=np.int64)
    assert len(ids) == len(set(ids.tolist())), "a chunk id in two segments"
    assert sorted(ids.tolist()) == sorted(rows)
    if len(ids):
        vectors = np.concatenate([v for _, v in parts])
        expected = FakeEmbedder().embed([rows[int(i)] for i in ids])
        np.testing.assert_allclose(vectors, expected, atol=1e-5)
    files = dict(conn.execute("SELECT path, chunks FROM files").fetchall())
    for path, count in files.items():
        (n,) = conn.execute("SELECT count(*) FROM chunks WHERE path=?", (path,)).fetchone()
        assert n == count, path
    assert set(files) == {str(p) for p in folder.iterdir()}
    assert gen.params["files"] == len(files) and gen.params["chunks"] == len(rows)
    conn.close()
    return gen


def test_deleting_a_file_from_a_one_segment_index(tmp_path: Path, fake_embedder) -> None:
    """The deleted file's vectors leave its segment (they used to stay: the writer read the
    segment's ids from a freed FAISS object and thought the segment untouched)."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "keep.txt").write_text("A note about kale and the garden.")
    (folder / "gone.txt").write_text("A note about volcanoes in Iceland.")
    build_index([folder], "one", settings())
    (folder / "gone.txt").unlink()
    report = build_index([folder], "one", settings())
    assert report.files_removed == 1 and report.chunks_total == 1
    _check("one", folder)


@pytest.mark.parametrize("seed", [1, 2])
def test_many_random_updates_keep_vectors_aligned(
    tmp_path: Path, fake_embedder, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    monkeypatch.setattr(local_segments, "SEGMENT_SIZE", 8)
    rng = random.Random(seed)
    folder = tmp_path / "docs"
    folder.mkdir()
    names = [f"f{i}.txt" for i in range(10)]
    for step in range(25):
        for _ in range(rng.randint(1, 4)):
            path = folder / rng.choice(names)
            if path.exists() and rng.random() < 0.4:
                path.unlink()
            else:
                words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 300)))
                path.write_text(f"{path.name} step {step} {words}\n")
        if not any(folder.iterdir()):
            (folder / "f0.txt").write_text("f0.txt again\n")
        build_index([folder], "many", settings())
        gen = _check("many", folder)
        small = [s for s in gen.segments if s.count < 4]
        assert len(small) <= 1, "small segments pile up"
