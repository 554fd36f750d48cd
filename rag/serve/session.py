"""A browser's sign-in to a token-protected `rag serve`: `POST /v1/session` trades the
token for a cookie, so the page never keeps the token in script-readable storage.

The cookie's value is an HMAC of a fixed label keyed by the token: it opens this server
(and any other started with the same token) but gives the token away to no one who reads
it, and a new token signs every browser out. It is HttpOnly (no script reads it) and
SameSite=Strict (no other site's page sends it); the Guard in `rag.serve.app` still
refuses another origin's requests before looking at it. `/`, `/static/*` and this
endpoint need no token: they hold no data.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rag.core.errors import UsageError
from rag.serve.errors import Unauthorized

COOKIE = "rag_session"
#: Paths anyone who may reach the server loads without a token (the page and sign-in).
PUBLIC_PATHS = frozenset({"/", "/v1/session"})
PUBLIC_PREFIXES = ("/static/",)
_LABEL = b"pocketrag browser session v1"


def is_public(path: str) -> bool:
    """Whether `path` is served without a token: the page's files and `/v1/session`."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def cookie_value(token: str) -> str:
    """The session cookie for `token`: derived from it, never the token itself."""
    return hmac.new(token.encode(), _LABEL, hashlib.sha256).hexdigest()


def _cookies(scope: dict[str, Any]) -> list[str]:
    """Every value of the session cookie the request carries (a browser may send two)."""
    found = []
    for name, raw in scope.get("headers", []):
        if name != b"cookie":
            continue
        for pair in raw.decode("latin-1").split(";"):
            key, _, value = pair.strip().partition("=")
            if key == COOKIE:
                found.append(value.strip())
    return found


def has_cookie(scope: dict[str, Any], token: str) -> bool:
    """Whether the request carries the session cookie of `token` (set by `POST /v1/session`)."""
    if not token:
        return False
    expected = cookie_value(token).encode()
    return any(hmac.compare_digest(value.encode(), expected) for value in _cookies(scope))


def has_bearer(scope: dict[str, Any], token: str) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, given = value.partition(b" ")
            return scheme.lower() == b"bearer" and hmac.compare_digest(
                given.strip(), token.encode()
            )
    return False


def signed_in(scope: dict[str, Any], token: str) -> bool:
    """Whether a request may use the API: no token needed, or the cookie or Bearer given."""
    return not token or has_cookie(scope, token) or has_bearer(scope, token)


def _token(request: Request) -> str:
    return request.app.state.warm.config.token


async def get_session(request: Request) -> Response:
    """`{"token_required", "signed_in"}`: whether the page must ask for the token."""
    token = _token(request)
    return JSONResponse(
        {"token_required": bool(token), "signed_in": signed_in(request.scope, token)}
    )


async def post_session(request: Request) -> Response:
    """`{"token": "..."}` -> 204 with the session cookie; 401 for a wrong token."""
    from rag.serve.routes import error_response, read_json

    try:
        fields = await read_json(request)
        given = fields.get("token")
        if set(fields) - {"token"} or not isinstance(given, str):
            raise UsageError('POST /v1/session takes {"token": "THE TOKEN"} and nothing else.')
        token = _token(request)
        if token and not hmac.compare_digest(given.encode(), token.encode()):
            raise Unauthorized("That is not this server's token (its --token or RAG_SERVE_TOKEN).")
    except UsageError as exc:
        return error_response(exc)
    response = Response(status_code=204)
    if token:  # a server without a token has nothing to sign in to
        response.set_cookie(
            COOKIE,
            cookie_value(token),
            httponly=True,
            samesite="strict",
            path="/",
            secure=request.url.scheme == "https",
        )
    return response


async def delete_session(request: Request) -> Response:
    """204, and the browser forgets the cookie (signs out)."""
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response
