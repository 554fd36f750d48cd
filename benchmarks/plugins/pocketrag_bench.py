"""The benchmarks' stand-in embedder as a plugin, for the `rag` processes they start: with
this folder and the repository on PYTHONPATH (`PLUGIN_PATH`), `--embedder hashing` is
MiniLM's tokenizer with vectors by feature hashing (`benchmarks/index_memory.py`), so a
run measures reading, chunking and storing at MiniLM's chunk sizes in minutes, and holds
nothing per text (the tests' `fake` embedder records every text it embeds)."""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    registry.register(registry.Part("embedder", "hashing", make_hashing_embedder))


def make_hashing_embedder(argument: str, settings: Any, runtime: str, options: Any) -> Any:
    from benchmarks.index_memory import HashingEmbedder

    return HashingEmbedder()
