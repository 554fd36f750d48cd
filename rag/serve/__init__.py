"""`rag serve`: pocketrag as a warm local service (HTTP + JSON, server-sent events, and
OpenAI's chat completions). One process keeps the model, the indexes, the embedder and the
reranker loaded; requests queue on the one model.

Modules: `config` (what it was started with, bind rules), `fields` (request fields ->
Settings and sources, importable by any client), `warm` (the warm state and the model
queue), `answering` (a request's work, on a thread), `streaming` (threads <-> the event
loop, server-sent events), `routes` (pocketrag's endpoints), `openai_compat` (OpenAI's),
`errors` (errors as JSON with a status), `app` (the ASGI app and the uvicorn server);
`client`, the CLI's side: `rag ask` and `rag search` through a running server (`RAG_SERVER`).
Starlette and uvicorn are imported only when a server is built.
"""

from __future__ import annotations

from collections.abc import Callable

from rag.core.config import Settings
from rag.serve.config import ServeConfig

__all__ = ["ServeConfig", "serve"]


def serve(config: ServeConfig, settings: Settings, ready: Callable[[], None] | None = None) -> None:
    """Load everything, call `ready`, then serve until interrupted (Ctrl-C)."""
    from rag.serve.app import build_server

    server = build_server(config, settings)
    if ready is not None:
        ready()
    server.run()
