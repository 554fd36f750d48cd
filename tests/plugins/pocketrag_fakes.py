"""The tests' fakes as a plugin, for a `rag` child process: the hashing embedder `fake`
(tests/index_fixtures.py), which the child registers by itself through this entry point
(an in-process registration would not reach it). Needs tests/ on PYTHONPATH too."""

from __future__ import annotations

from typing import Any


def register(registry: Any) -> None:
    registry.register(registry.Part("embedder", "fake", make_fake_embedder))


def make_fake_embedder(argument: str, settings: Any, runtime: str, options: Any) -> Any:
    from index_fixtures import FakeEmbedder

    return FakeEmbedder("fake")
