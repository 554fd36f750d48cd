"""pocketrag's own parts, registered through the same path as any plugin's (by name, as
`rag.core.plugin_loading.BUILTIN_PLUGINS` lists this module).

Light on purpose: this module is imported the first time a part is looked up, so it
imports nothing heavy; each factory imports its part's module when called. Every factory
is called as `factory(argument, settings, *extra, options=...)` (see rag.core.plugins).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.core.config import Settings
from rag.core.plugins import Option, Part, Registry

Options = dict[str, Any]

DDGS_OPTIONS = (
    Option(
        "backend",
        str,
        "auto",
        "ddgs backends, comma-separated (duckduckgo, brave, mojeek, wikipedia, ...: checked "
        "against the installed ddgs), or auto.",
    ),
    Option("timeout", int, 10, "Seconds each backend may take.", low=1, high=120),
    Option(
        "attempts",
        int,
        3,
        "Tries in all when a search times out or loses its connection (a refusal: one).",
        low=1,
        high=10,
    ),
)
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
PGVECTOR_OPTIONS = (
    Option(
        "url",
        str,
        "",
        "PostgreSQL URL, e.g. postgresql://rag@db.example.org:5432/rag (the password from "
        "PGPASSWORD or ~/.pgpass).",
    ),
)


def _ddgs(argument: str, settings: Settings, *, options: Options) -> Any:
    from rag.web.ddgs_engine import DdgsEngine

    return DdgsEngine.from_settings(settings, options)


def _searxng(argument: str, settings: Settings, *, options: Options) -> Any:
    from rag.web.searxng import SearxngEngine

    return SearxngEngine.from_settings(
        settings,
        url=options["url"] or settings.searxng_url,  # searxng_url: the deprecated alias
        timeout_s=options["timeout"],
    )


def _gguf(argument: str, settings: Settings, *, options: Options) -> Any:
    from rag.generators import load_gguf

    return load_gguf(argument, settings)


def _openai(argument: str, settings: Settings, *, options: Options) -> Any:
    from rag.generators.openai_http import OpenAIGenerator

    return OpenAIGenerator.from_spec(argument, settings)


def _local_store(
    argument: str, settings: Settings, label: str, index_dir: Path, *, options: Options
) -> Any:
    from indexers.stores.local import LocalStore

    return LocalStore(label, index_dir, settings)


def _pgvector_store(
    argument: str, settings: Settings, label: str, index_dir: Path, *, options: Options
) -> Any:
    from indexers.stores.pgvector import PgvectorStore

    return PgvectorStore(label, index_dir, settings, url=options["url"])


def _sentence_transformer(
    argument: str, settings: Settings, runtime: str, *, options: Options
) -> Any:
    from indexers.embedders import load_model

    return load_model(argument, runtime)


def _hybrid(argument: str, settings: Settings, *, options: Options) -> Any:
    from rag.evidence.rerankers import HybridReranker

    return HybridReranker(settings)


def _embedder(argument: str, settings: Settings, *, options: Options) -> Any:
    from rag.evidence.rerankers import EmbedderReranker

    return EmbedderReranker(settings)


def _bm25(argument: str, settings: Settings, *, options: Options) -> Any:
    from rag.evidence.rerankers import BM25Reranker

    return BM25Reranker()


def _cross_encoder(argument: str, settings: Settings, *, options: Options) -> Any:
    from rag.evidence.rerankers import CrossEncoderReranker

    return CrossEncoderReranker(argument, settings)


def _no_reranker(argument: str, settings: Settings, *, options: Options) -> None:
    return None  # the retrievers' order, whole passages


def register(registry: Registry) -> None:
    for part in (
        Part("engine", "ddgs", _ddgs, DDGS_OPTIONS, help="ddgs metasearch (no API key)"),
        Part("engine", "searxng", _searxng, SEARXNG_OPTIONS, help="a SearxNG instance's JSON API"),
        Part(
            "generator",
            "gguf",
            _gguf,
            argument="FILE",
            fallback=True,
            help="a local GGUF file or alias (phi-3-mini, smollm2-135m, hf:OWNER/REPO/FILE)",
        ),
        Part(
            "generator",
            "openai",
            _openai,
            argument="URL#MODEL",
            help="an OpenAI-compatible HTTP API",
        ),
        Part("store", "local", _local_store, help="FAISS + SQLite files"),
        Part("store", "pgvector", _pgvector_store, PGVECTOR_OPTIONS, help="PostgreSQL + pgvector"),
        Part(
            "embedder",
            "sentence-transformers",
            _sentence_transformer,
            argument="MODEL",
            fallback=True,
            help="any sentence-transformers model, on ONNX Runtime or torch",
            reserves=(Settings.embedder,),  # the default: no plugin part may take its name
        ),
        Part("reranker", "hybrid", _hybrid, help="embedder cosine + BM25"),
        Part("reranker", "embedder", _embedder, help="embedder cosine"),
        Part("reranker", "bm25", _bm25, help="BM25 over the candidates"),
        Part("reranker", "cross-encoder", _cross_encoder, argument="HF_ID", help="a cross-encoder"),
        Part("reranker", "none", _no_reranker, help="the retrievers' order, whole passages"),
    ):
        registry.register(part)
