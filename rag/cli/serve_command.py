"""`rag serve`: pocketrag as a warm local HTTP service (the server is in `rag.serve`)."""

from __future__ import annotations

import typer

from rag.cli import output
from rag.cli.options import IndexOption, ModelOption, SearchOption
from rag.config import load_settings


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8765, "--port", help="Port to listen on."),
    index: IndexOption = None,
    search: SearchOption = False,
    model: ModelOption = None,
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="RAG_SERVE_TOKEN",
        help="Require `Authorization: Bearer TOKEN` on every request (needed to listen on "
        "anything but loopback). Env: RAG_SERVE_TOKEN.",
    ),
    max_in_flight: int = typer.Option(
        64,
        "--max-in-flight",
        help="Requests handled at once (queued on the model or searching); more get 503.",
    ),
) -> None:
    """Serve questions over HTTP with the model and indexes kept loaded: /v1/ask,
    /v1/search, /v1/indexes, /healthz and OpenAI's /v1/chat/completions."""
    from rag.serve import ServeConfig, serve

    config = ServeConfig(
        host=host,
        port=port,
        indexes=tuple(dict.fromkeys(index or [])),
        search=search,
        model=model,
        token=token or "",
        max_in_flight=max_in_flight,
    )
    config.check()  # before loading anything
    settings = load_settings(model=model)
    sources = ", ".join([*config.indexes, *(["web"] if search else [])]) or "closed-book"
    output.note(f"Loading {settings.model} ({sources})…")
    serve(config, settings, ready=lambda: output.note(
        f"Serving on http://{_url_host(host)}:{port}/v1 "
        f"({'token required' if config.token else 'no token'}); Ctrl-C stops."
    ))  # fmt: skip


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
