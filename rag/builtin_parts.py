"""pocketrag's own parts, registered through its `pocketrag` entry point like any plugin's.

Light on purpose: this module is imported the first time a registry is consulted, so it
imports nothing heavy; each factory imports its part's module when called.
"""

from __future__ import annotations

from typing import Any

from rag.config import Settings
from rag.plugins import Option, Part, Registry

SEARXNG_OPTIONS = (
    Option(
        "url",
        str,
        "",
        "Base URL of the SearxNG instance, e.g. http://localhost:8888 "
        "(the older searxng_url setting and RAG_SEARXNG_URL still work when this is empty).",
    ),
    Option("timeout", float, 10.0, "Seconds to wait for an answer.", low=0.5, high=300.0),
)


def _ddgs(settings: Settings) -> Any:
    from rag.web.ddgs_engine import DdgsEngine

    return DdgsEngine.from_settings(settings)


def _searxng(settings: Settings, options: dict[str, Any]) -> Any:
    from rag.web.searxng import SearxngEngine

    return SearxngEngine.from_settings(
        settings,
        url=options["url"] or settings.searxng_url,  # searxng_url: the deprecated alias
        timeout_s=options["timeout"],
    )


def _openai(rest: str, settings: Settings) -> Any:
    from rag.generators.openai_http import OpenAIGenerator

    return OpenAIGenerator.from_spec(rest, settings)


def _hybrid(spec: str, settings: Settings) -> Any:
    from rag.evidence.rerankers import HybridReranker

    return HybridReranker(settings)


def _embedder(spec: str, settings: Settings) -> Any:
    from rag.evidence.rerankers import EmbedderReranker

    return EmbedderReranker(settings)


def _bm25(spec: str, settings: Settings) -> Any:
    from rag.evidence.rerankers import BM25Reranker

    return BM25Reranker()


def _cross_encoder(spec: str, settings: Settings) -> Any:
    from rag.evidence.rerankers import CrossEncoderReranker

    return CrossEncoderReranker(spec, settings)


PGVECTOR_OPTIONS = (
    Option(
        "url",
        str,
        "",
        "PostgreSQL URL, e.g. postgresql://rag@db.example.org:5432/rag (the password from "
        "PGPASSWORD or ~/.pgpass).",
    ),
)


def _local_store(label: str, index_dir: Any, settings: Settings) -> Any:
    from indexers.stores.local import LocalStore

    return LocalStore(label, index_dir, settings)


def _pgvector_store(label: str, index_dir: Any, settings: Settings, options: dict) -> Any:
    from indexers.stores.pgvector import PgvectorStore

    return PgvectorStore(label, index_dir, settings, url=options["url"])


def register(registry: Registry) -> None:
    registry.register(Part("engine", "ddgs", _ddgs, help="ddgs metasearch (no API key)"))
    registry.register(
        Part("engine", "searxng", _searxng, SEARXNG_OPTIONS, help="a SearxNG instance's JSON API")
    )
    registry.register(
        Part("generator", "openai", _openai, help="an OpenAI-compatible HTTP API: openai:URL#MODEL")
    )
    registry.register(Part("store", "local", _local_store, help="FAISS + SQLite files"))
    registry.register(
        Part("store", "pgvector", _pgvector_store, PGVECTOR_OPTIONS, help="PostgreSQL + pgvector")
    )
    registry.register(Part("reranker", "hybrid", _hybrid, help="embedder cosine + BM25"))
    registry.register(Part("reranker", "embedder", _embedder, help="embedder cosine"))
    registry.register(Part("reranker", "bm25", _bm25, help="BM25 over the candidates"))
    registry.register(
        Part("reranker", "cross-encoder:", _cross_encoder, help="cross-encoder:HF_ID")
    )
