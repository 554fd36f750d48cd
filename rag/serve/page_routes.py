"""The research desk: `GET /` and `GET /static/PATH`, the page's own files from
`rag/serve/page/`, and the session endpoints (`rag.serve.session`).

The files are read once, when the app is built, into a table keyed by their path under
the page folder: a request names a key or gets 404. Nothing a request says becomes a
path on disk, so `..`, its percent-encoded forms, absolute paths and folders cannot
reach anything; symlinks, hidden files and files of any type outside `CONTENT_TYPES` are
never in the table. Every response carries a strict Content-Security-Policy: the page
runs only its own scripts and styles and talks only to this server.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from rag.serve import session
from rag.serve.errors import NotFound, error_body

PAGE_DIR = Path(__file__).resolve().parent / "page"

#: The only files served, by suffix, with the type each is served as.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".woff2": "font/woff2",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
#: Sent with every page response (errors and 304s too).
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    # Revalidate every time (cheap with the ETag): a new pocketrag never runs old scripts.
    "Cache-Control": "no-cache",
}
_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class PageFile:
    body: bytes
    content_type: str
    etag: str


def load_files(root: Path) -> dict[str, PageFile]:
    """Every servable file under `root` by its relative path (`js/main.js`): regular files
    with a known suffix and plain names, reached without following a symlink."""
    files: dict[str, PageFile] = {}
    if not root.is_dir() or root.is_symlink():
        return files
    for folder, dirs, names in os.walk(root, followlinks=False):
        base = Path(folder)
        dirs[:] = [d for d in dirs if _SEGMENT.fullmatch(d) and not (base / d).is_symlink()]
        for name in names:
            path = base / name
            kind = CONTENT_TYPES.get(path.suffix.lower())
            if kind is None or not _SEGMENT.fullmatch(name) or path.is_symlink():
                continue
            if not path.is_file():
                continue
            body = path.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:32]
            files[path.relative_to(root).as_posix()] = PageFile(body, kind, f'"{digest}"')
    return files


def _matches(if_none_match: str, etag: str) -> bool:
    """Whether an `If-None-Match` header names `etag` (weak forms and `*` included)."""
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return any(tag == "*" or tag.removeprefix("W/") == etag for tag in tags)


def _not_found(path: str) -> Response:
    error = NotFound(f"No file {path} in the page.")
    return JSONResponse(error_body(error), status_code=404, headers=PAGE_HEADERS)


def _serve(request: Request, files: dict[str, PageFile], key: str) -> Response:
    found = files.get(key)
    if found is None:
        return _not_found(request.url.path)
    headers = {**PAGE_HEADERS, "ETag": found.etag}
    if _matches(request.headers.get("if-none-match", ""), found.etag):
        return Response(status_code=304, headers=headers)
    return Response(found.body, media_type=found.content_type, headers=headers)


def routes(root: Path | None = None) -> list[BaseRoute]:
    """The page's routes over the files of `root` (the shipped page by default), read now."""
    files = load_files(PAGE_DIR if root is None else root)

    async def index(request: Request) -> Response:
        return _serve(request, files, "index.html")

    async def static(request: Request) -> Response:
        return _serve(request, files, request.path_params["path"])

    return [
        Route("/", index, methods=["GET"]),
        Route("/static/{path:path}", static, methods=["GET"]),
        Route("/v1/session", session.get_session, methods=["GET"]),
        Route("/v1/session", session.post_session, methods=["POST"]),
        Route("/v1/session", session.delete_session, methods=["DELETE"]),
    ]
