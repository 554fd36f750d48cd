"""`rag serve`: pocketrag as a warm local HTTP service (the server is in `rag.serve`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from rag.cli import output
from rag.cli.options import IndexOption, ModelOption, SearchOption
from rag.core.config import load_settings


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
    allowed_host: list[str] | None = typer.Option(
        None,
        "--allowed-host",
        envvar="RAG_SERVE_ALLOWED_HOSTS",
        help="A host name requests may name in their Host header besides this server's "
        "address and localhost, e.g. a reverse proxy's (repeatable). Env: "
        "RAG_SERVE_ALLOWED_HOSTS, comma-separated.",
    ),
    max_upload_mb: int = typer.Option(
        100,
        "--max-upload-mb",
        help="Largest upload of files into an index (POST /v1/indexes/NAME/files), in MiB; "
        "streamed to disk. Every other request body stays within 64 KB.",
    ),
    runs: Path | None = typer.Option(
        None,
        "--runs",
        exists=True,
        file_okay=False,
        resolve_path=True,
        help="Show the eval runs in DIR (one `rag eval run` folder, or a folder of them) at "
        "GET /v1/runs.",
    ),
    open_page: bool = typer.Option(
        False, "--open", help="Open the research desk (the page at /) in a browser once serving."
    ),
    watch: bool = typer.Option(
        False,
        "--watch",
        help="Keep each local index served in step with its folders, as `rag index --watch` "
        "does; requests see each update without a restart.",
    ),
) -> None:
    """Serve questions over HTTP with the model and indexes kept loaded: /v1/ask,
    /v1/search, /v1/indexes, /healthz and OpenAI's /v1/chat/completions; the research desk
    (a page for the browser) at /."""
    from rag.serve import ServeConfig
    from rag.serve.app import build_server

    config = ServeConfig(
        host=host,
        port=port,
        indexes=tuple(dict.fromkeys(index or [])),
        search=search,
        model=model,
        token=token or "",
        max_in_flight=max_in_flight,
        max_upload_bytes=max_upload_mb * 1024 * 1024,
        allowed_hosts=_names(allowed_host),
        runs_dir=runs,
        watch=watch,
    )
    config.check()  # before loading anything
    settings = load_settings(model=model)
    sources = ", ".join([*config.indexes, *(["web"] if search else [])]) or "closed-book"
    # Bound first: a port in use is one line, before loading and before "Serving on".
    server = build_server(
        config, settings, loading=lambda: output.note(f"Loading {settings.model} ({sources})…")
    )
    output.note(
        f"Serving on http://{_url_host(host)}:{port}/v1 "
        f"({'token required' if config.token else 'no token'}); Ctrl-C stops."
    )
    output.note(f"The research desk: {page_url(host, port)}")
    if open_page:
        open_when_serving(server, page_url(host, port))
    if watch:
        _serve_watching(server)
        return
    server.run()


def _serve_watching(server: Any) -> None:
    """`--watch`: a watcher thread per local index (`rag.serve.watching`) while the server
    runs. SIGINT and SIGTERM stop the server as uvicorn does, then each watcher where it is
    safe (an update abandoned before its commit, or its commit finished): exit 0."""
    import signal

    from rag.serve.watching import Watchers

    watchers = Watchers(server.warm, output.note)

    def stop(*_: Any) -> None:  # also what uvicorn raises again once it has shut down
        watchers.stop.set()
        server.should_exit = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        names = watchers.start()
        if names:
            output.note(f"Watching the folders of {', '.join(map(repr, names))} for changes.")
        server.run()
    finally:
        watchers.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    output.note("Stopped serving and watching.")


def page_url(host: str, port: int) -> str:
    """The page's address as a browser on this machine reaches it (every-address hosts
    through loopback)."""
    local = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}.get(host, host)
    return f"http://{_url_host(local)}:{port}/"


def open_when_serving(server: Any, url: str) -> None:
    """Open `url` with `webbrowser.open` (patched in tests) once `server` accepts
    connections, from a thread: a browser that takes its time never holds the server."""
    import threading
    import time
    import webbrowser

    def run() -> None:
        while not server.started:
            if server.should_exit:
                return
            time.sleep(0.05)
        if not webbrowser.open(url):
            output.note(f"No browser could be opened here; open {url} yourself.")

    threading.Thread(target=run, name="rag-serve-open", daemon=True).start()


def _names(given: list[str] | None) -> tuple[str, ...]:
    """`--allowed-host a --allowed-host b`, or `a,b` (as RAG_SERVE_ALLOWED_HOSTS is)."""
    names = (name.strip() for value in given or [] for name in value.split(","))
    return tuple(dict.fromkeys(name for name in names if name))


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
