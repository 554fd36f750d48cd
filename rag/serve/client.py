"""The CLI's side of `rag serve`: `rag ask` and `rag search` send their work to a running
server when the `server` setting (`RAG_SERVER`) names one, and print what it answers exactly
as they print their own results.

Light on purpose: this speaks HTTP through the standard library's `http.client` and imports
nothing of the model, the indexes or the web (no numpy, faiss, onnxruntime, torch or
llama_cpp), so a `rag search` through the server costs a process start and one request.
Not httpx: importing it and building its client took about 0.43 s of a 0.65 s `rag search`
through the server here (its SSL context is built even for plain http).

Three outcomes of a call: the server's answer; a `RagError` with the server's message and
exit code (its JSON error, `{"error": {"message", "type", "exit_code"}}`); or `Fallback`,
when the server is not reachable (connection refused, no connection within
`CONNECT_TIMEOUT_S`) or cannot do what was asked (another model, an index it does not
serve, an index given as a folder path, a question longer than a server takes): the
command then works in its own process.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from rag.config import Settings
from rag.errors import RagError, UsageError
from rag.serve.config import (
    MAX_BODY_BYTES,
    MAX_QUESTION_CHARS,
    SEARCH_SETTING_FIELDS,
    SETTING_FIELDS,
)

#: Seconds to wait for the connection; the answer itself may take as long as the model does.
CONNECT_TIMEOUT_S = 3.0
#: `GET /v1/search`'s warnings (a source that failed while others answered): a JSON list.
WARNINGS_HEADER = "X-Pocketrag-Warnings"
#: Error types that mean "this server cannot do that", not "that is wrong": answer locally.
DECLINED = {"ModelMismatch": "runs another model", "Forbidden": "does not serve that index"}
#: Longest request target sent: servers refuse longer request lines (uvicorn's limit is
#: 16 KB with the headers), so a longer search query is searched in this process.
MAX_TARGET_BYTES = 8 * 1024
#: The fields of `rag search --json`'s and `rag ask --json`'s objects that the commands print.
SEARCH_SHAPE: dict[str, type] = {"results": list}
ASK_SHAPE: dict[str, type] = {
    "answer": str,
    "model": str,
    "sources": list,
    "warnings": list,
    "timings": dict,
}
#: How an answer that is not `rag serve`'s is described.
NOT_RAG_SERVE = "not as rag serve does: is RAG_SERVER the address of `rag serve`?"
#: What ends a connection midway, as `http.client` reports it.
_LOST = (OSError, http.client.HTTPException)


class Fallback(Exception):  # noqa: N818 - a signal to the command, never shown as an error
    """Answer in this process instead; `message` is the one line that says why."""


class RemoteError(RagError):
    """The server's JSON error: its message, shown as the CLI shows errors, and its exit code."""

    def __init__(self, message: str, exit_code: int = 1, kind: str = "") -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.kind = kind


def is_path_name(name: str) -> bool:
    """`indexers.store.is_path_name` (which imports numpy): a folder path, not an index name.
    A server takes names only, so an index given as a path is opened in this process."""
    return "/" in name or os.sep in name or name.startswith(("~", "."))


class Client:
    def __init__(self, url: str, token: str = "") -> None:
        self.url = url.strip().rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    @classmethod
    def for_settings(cls, settings: Settings) -> Client | None:
        """A client of the configured server; None when no server is configured."""
        if not settings.server.strip():
            return None
        return cls(settings.server, settings.server_token)

    # --- the two commands ------------------------------------------------------------
    def search(
        self, query: str, *, indexes: Iterable[str], web: bool, settings: Settings
    ) -> tuple[dict[str, Any], list[str]]:
        """`rag search --json`'s object and the warnings, from `GET /v1/search`."""
        names = self._names(indexes)
        params: list[tuple[str, Any]] = [("q", query), ("web", "true" if web else "false")]
        params += [("index", name) for name in names] or [("index", "")]  # "": none
        params += [(name, _text(getattr(settings, name))) for name in SEARCH_SETTING_FIELDS]
        target = _sendable(
            query, lambda: "/v1/search?" + urllib.parse.urlencode(params), MAX_TARGET_BYTES
        )
        with self._request("GET", target) as response:
            body = self._shaped(self._json(response), SEARCH_SHAPE)
            raw = response.getheader(WARNINGS_HEADER)
        try:
            warnings = json.loads(raw) if raw else []
        except (ValueError, RecursionError):
            warnings = [raw]
        return body, [str(w) for w in warnings] if isinstance(warnings, list) else []

    def ask(
        self,
        question: str,
        *,
        indexes: Iterable[str],
        search: bool,
        settings: Settings,
        model: str | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """`rag ask --json`'s object, from `POST /v1/ask`; with `on_text`, streamed: each
        piece of the answer is handed to `on_text` as the server sends it."""
        body: dict[str, Any] = {
            "question": question,
            "index": self._names(indexes),
            "search": search,
            **{name: getattr(settings, name) for name in SETTING_FIELDS},
            "stream": on_text is not None,
        }
        if model is not None:
            body["model"] = model
        payload = _sendable(
            question, lambda: json.dumps(body, ensure_ascii=False).encode("utf-8"), MAX_BODY_BYTES
        )
        with self._request("POST", "/v1/ask", payload) as response:
            if on_text is None:
                return self._shaped(self._json(response), ASK_SHAPE)
            if response.status != 200:
                self._json(response)  # raises the server's error
            for event, data in _events(_lines(response), self.url):
                if event == "text":
                    on_text(str(data.get("text", "")))
                elif event == "answer":
                    return self._shaped(data, ASK_SHAPE)
                elif event == "error":
                    raise _error(data, self.url)
        raise RagError(f"rag serve at {self.url} ended the answer before it was complete.")

    # --- plumbing ----------------------------------------------------------------------
    def _names(self, indexes: Iterable[str]) -> list[str]:
        names = list(indexes)
        if any(is_path_name(name) for name in names):
            raise Fallback("")  # a folder path: this process opens it, silently
        return names

    def _request(self, method: str, target: str, body: bytes | None = None) -> _Streamed:
        """The response as a context manager; `Fallback` when the server is not reachable."""
        connection, path = self._connect()
        headers = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path + target, body=body, headers=headers)
            response = connection.getresponse()
        except _LOST as exc:
            connection.close()
            raise self._failed(exc) from None
        return _Streamed(connection, response, self.url)

    def _connect(self) -> tuple[http.client.HTTPConnection, str]:
        """An open connection to the server and the URL's path prefix."""
        try:
            parts = urllib.parse.urlsplit(self.url)
            host, port = parts.hostname, parts.port
        except ValueError as exc:
            raise self._bad_url(str(exc)) from None
        if parts.scheme not in ("http", "https") or not host:
            raise self._bad_url("give http://HOST:PORT")
        connection: http.client.HTTPConnection
        try:  # InvalidURL: a host with a space or a control character
            if parts.scheme == "https":
                import ssl  # only here: building its context costs tens of milliseconds

                context = ssl.create_default_context()
                connection = http.client.HTTPSConnection(
                    host, port, timeout=CONNECT_TIMEOUT_S, context=context
                )
            else:
                connection = http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT_S)
        except http.client.InvalidURL as exc:
            raise self._bad_url(_reason(exc)) from None
        try:
            connection.connect()
        except OSError:  # refused, no route, unknown host, or no answer in time
            connection.close()
            raise Fallback(
                f"rag serve at {self.url} is not reachable; answering in this process"
            ) from None
        except UnicodeError as exc:  # a host name IDNA cannot encode (a label over 63)
            connection.close()
            raise self._bad_url(f"its host name cannot be looked up ({exc})") from None
        if connection.sock is not None:
            connection.sock.settimeout(None)  # the answer takes as long as the model does
        return connection, parts.path.rstrip("/")

    def _shaped(self, data: dict[str, Any], shape: dict[str, type]) -> dict[str, Any]:
        """`data` when it has the fields the commands print; else one error line, not a
        KeyError from deep in the printing (a server that is not `rag serve`)."""
        wrong = [k for k, kind in shape.items() if not isinstance(data.get(k), kind)]
        listed = [data[k] for k, kind in shape.items() if kind is list and k not in wrong]
        if wrong or any(not isinstance(item, dict) for items in listed for item in items):
            raise RagError(
                f"{self.url} answered without {', '.join(wrong) or 'sources as objects'}, "
                + NOT_RAG_SERVE
            )
        return data

    def _failed(self, exc: BaseException) -> RagError:
        return RagError(f"rag serve at {self.url} failed: {_reason(exc)}.")

    def _bad_url(self, why: str) -> UsageError:
        return UsageError(
            f"The server setting (RAG_SERVER) {self.url!r} is not an http(s) URL: {why}."
        )

    def _json(self, response: http.client.HTTPResponse) -> dict[str, Any]:
        try:
            raw = response.read()
        except _LOST as exc:
            raise self._failed(exc) from None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json goes
            data = None
        if response.status == 200 and isinstance(data, dict):
            return data
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            raise _error(data, self.url)
        raise RagError(f"{self.url} answered HTTP {response.status}, " + NOT_RAG_SERVE)


class _Streamed:
    """Closes the connection, and turns one lost midway into one RagError."""

    def __init__(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse, url: str
    ) -> None:
        self.connection, self.response, self.url = connection, response, url

    def __enter__(self) -> http.client.HTTPResponse:
        return self.response

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.response.close()
        self.connection.close()
        if isinstance(exc, _LOST):
            raise RagError(
                f"Lost the connection to rag serve at {self.url}: {_reason(exc)}."
            ) from None


Encoded = TypeVar("Encoded", str, bytes)


def _sendable(question: str, encode: Callable[[], Encoded], limit: int) -> Encoded:
    """`encode()`, the request's target or body; `Fallback` when it is not UTF-8 or is
    longer than a server takes (the question, or `limit` bytes): this process then handles
    the question, and says what is wrong with it, if anything."""
    try:
        encoded = encode()
    except UnicodeEncodeError:
        raise Fallback("") from None
    if len(question) > MAX_QUESTION_CHARS or len(encoded) > limit:
        raise Fallback("")
    return encoded


def _reason(exc: BaseException) -> str:
    """Why, on one line: never the bytes of an answer that is not HTTP (its `BadStatusLine`
    carries them, line end and all)."""
    if isinstance(exc, http.client.BadStatusLine) and not isinstance(
        exc, http.client.RemoteDisconnected
    ):
        return "it did not answer in HTTP (is RAG_SERVER the address of `rag serve`?)"
    return " ".join(str(exc).split()) or type(exc).__name__


def _lines(response: http.client.HTTPResponse) -> Iterator[str]:
    """The response's lines as they arrive, without their line ends."""
    while line := response.readline():
        yield line.decode("utf-8", "replace").rstrip("\r\n")


def _error(data: dict[str, Any], url: str) -> Exception:
    """The server's JSON error as a RagError; `Fallback` for a request it cannot serve."""
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    kind = str(error.get("type", ""))
    message = str(error.get("message", "")) or f"rag serve at {url} failed."
    if kind in DECLINED:
        return Fallback(f"rag serve at {url} {DECLINED[kind]}; answering in this process")
    code = error.get("exit_code")
    return RemoteError(message, code if isinstance(code, int) and code > 0 else 1, kind)


def _events(lines: Iterator[str], url: str) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(event name, JSON data) of each server-sent event, as the lines arrive."""
    event: str | None = None
    data: list[str] = []
    for line in _ended(lines):
        if line.startswith("event:"):
            event = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())
        elif not line.strip() and data:
            try:
                payload = json.loads("\n".join(data))
            except (ValueError, RecursionError):
                raise RagError(f"rag serve at {url} sent an event that is not JSON.") from None
            yield event, payload if isinstance(payload, dict) else {}
            event, data = None, []


def _ended(lines: Iterator[str]) -> Iterator[str]:
    yield from lines
    yield ""  # a last event without its blank line


def _text(value: Any) -> str:
    """A setting as a query-string value (`true`/`false` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_WARNED: set[str] = set()


def answer_remotely(work: Callable[[], Any]) -> Any | None:
    """`work()` (a call on a `Client`), or None after `Fallback`: the command then answers in
    its own process. Why is said on stderr, once per process and reason."""
    try:
        return work()
    except Fallback as why:
        message = str(why)
        if message and message not in _WARNED:
            _WARNED.add(message)
            from rag.cli import output

            output.warn(message)
        return None
