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

Every wait and every read is bounded, so a peer that is stuck or is not `rag serve` cannot
hang the command or fill its memory. The waits are deadlines, not silences (a server that
sends a byte a second is never silent): a search's whole answer within `SEARCH_TIMEOUT_S`
(or the lower timeout); an ask's head within the timeout, then its JSON body, or each event
of its stream, within the timeout again; a few `100 Continue` at most. A wait that ends,
or an answer (a JSON body, one server-sent event) over `MAX_ANSWER_BYTES`, is one error
line; and an answer is checked to have the fields the commands print, of their types and
finite, before they print it.
"""

from __future__ import annotations

import functools
import http.client
import json
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from rag.core.config import Settings
from rag.core.errors import RagError, UsageError
from rag.core.names import is_path_name
from rag.question_options import ASK_SETTINGS, SEARCH_SETTINGS
from rag.serve.client_shapes import ASK_SHAPE, SEARCH_SHAPE, TEXT, lacks
from rag.serve.client_wire import NotFinite, TimedResponse, Wait, loads
from rag.serve.config import (
    MAX_BODY_BYTES,
    MAX_QUESTION_CHARS,
)

#: Seconds to wait for the connection.
CONNECT_TIMEOUT_S = 3.0
#: Longest wait of an ask (seconds) for the head of the answer, then for its JSON body or
#: for each event of its stream: the `server_timeout` setting's default. Generous: a
#: queued ask hears nothing until the asks before it on the one model are done (and a
#: `--json` ask nothing until its whole answer is), and the server sends no heartbeat.
ASK_TIMEOUT_S = 300.0
#: ... and a search's whole answer, at most (the setting may be lower): a search never
#: queues on the model.
SEARCH_TIMEOUT_S = 60.0
#: Largest answer read: a JSON body, or one server-sent event (its `data:` lines). The
#: biggest real one, an answer citing the whole texts of 10 fetched pages (at most 2 MB of
#: HTML each), is a few tens of MB; more is refused before it fills the memory.
MAX_ANSWER_BYTES = 64 * 1024 * 1024
#: `GET /v1/search`'s warnings (a source that failed while others answered): a JSON list.
WARNINGS_HEADER = "X-Pocketrag-Warnings"
#: Error types that mean "this server cannot do that", not "that is wrong": answer locally.
DECLINED = {
    "ModelMismatch": "runs another model",
    "Forbidden": "does not serve that index",
    "SearchNotServed": "does not search the web (started without --search)",
}
#: The exit codes a server's error may carry; any other (77, -1, "2") becomes 1.
EXIT_CODES = (1, 2)
#: Longest error message of a server's shown, as the server cuts its own (`one_line`).
MAX_MESSAGE_CHARS = 2000
#: Longest request target sent: servers refuse longer request lines (uvicorn's limit is
#: 16 KB with the headers), so a longer search query is searched in this process.
MAX_TARGET_BYTES = 8 * 1024
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


class Client:
    def __init__(self, url: str, token: str = "", timeout: float = ASK_TIMEOUT_S) -> None:
        """Checks the URL and the token once: a UsageError naming the setting, not a
        traceback from deep in `http.client` when a request is built."""
        self.url = url.strip().rstrip("/")
        self.timeout = timeout
        self.parts = self._parsed()
        if any(not c.isprintable() or c.isspace() for c in token):
            raise UsageError(
                "The server token (RAG_SERVER_TOKEN / server_token) must be one word of "
                "visible characters, without spaces, line breaks or control characters: "
                "give the token `rag serve` was started with."
            )
        # As bytes: UTF-8, as the server compares it (`http.client` would send Latin-1).
        self.headers = {"Authorization": b"Bearer " + token.encode()} if token else {}

    @classmethod
    def for_settings(cls, settings: Settings) -> Client | None:
        """A client of the configured server; None when no server is configured."""
        if not settings.server.strip():
            return None
        return cls(settings.server, settings.server_token, settings.server_timeout)

    # --- the two commands ------------------------------------------------------------
    def search(
        self, query: str, *, indexes: Iterable[str], web: bool, settings: Settings
    ) -> tuple[dict[str, Any], list[str]]:
        """`rag search --json`'s object and the warnings, from `GET /v1/search`."""
        names = self._names(indexes)
        params: list[tuple[str, Any]] = [("q", query), ("web", "true" if web else "false")]
        params += [("index", name) for name in names] or [("index", "")]  # "": none
        params += [(name, _text(getattr(settings, name))) for name in SEARCH_SETTINGS]
        target = _sendable(
            query, lambda: "/v1/search?" + urllib.parse.urlencode(params), MAX_TARGET_BYTES
        )
        wait = Wait(min(self.timeout, SEARCH_TIMEOUT_S), "its answer")  # all of it
        with self._request("GET", target, wait=wait) as response:
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
            **{name: getattr(settings, name) for name in ASK_SETTINGS},
            "stream": on_text is not None,
        }
        if model is not None:
            body["model"] = model
        payload = _sendable(
            question, lambda: json.dumps(body, ensure_ascii=False).encode("utf-8"), MAX_BODY_BYTES
        )
        wait = Wait(self.timeout, "the head of its answer")
        with self._request("POST", "/v1/ask", payload, wait=wait) as response:
            if on_text is None or response.status != 200:
                wait.start("its answer")
                data = self._json(response)  # raises the server's error, if it is one
                return self._shaped(data, ASK_SHAPE)
            streamed = False
            wait.start("the next part of its answer")
            for event, data in _events(response, self.url):
                wait.start()  # each event within the timeout: a stream lasts as the model
                if event == "text":
                    if not TEXT(data.get("text")):
                        raise self._unlike("text in a text event")
                    on_text(data["text"])
                    streamed = streamed or bool(data["text"])
                elif event == "answer":
                    return self._shaped(data, ASK_SHAPE)
                elif event == "error":
                    raise self._stream_error(data, streamed)
        raise self._incomplete()

    # --- plumbing ----------------------------------------------------------------------
    def _names(self, indexes: Iterable[str]) -> list[str]:
        names = list(indexes)
        if any(is_path_name(name) for name in names):
            raise Fallback("")  # a folder path: this process opens it, silently
        return names

    def _parsed(self) -> urllib.parse.SplitResult:
        """The URL's parts, checked: what `http.client` would refuse (or crash on) is a
        UsageError now."""
        if any(not c.isprintable() or c.isspace() for c in self.url):
            raise self._bad_url("it holds a space, a line break or a control character")
        try:
            parts = urllib.parse.urlsplit(self.url)
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError as exc:
            raise self._bad_url(str(exc)) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise self._bad_url("give http://HOST:PORT")
        if not parts.path.isascii():  # the request line is ASCII
            raise self._bad_url("its path must be ASCII (percent-encode the rest)")
        try:  # as the lookup will: a label over 63 characters is a UnicodeError there
            parts.hostname.encode("idna")
        except UnicodeError as exc:
            raise self._bad_url(f"its host name cannot be looked up ({exc})") from None
        return parts

    def _request(
        self, method: str, target: str, body: bytes | None = None, *, wait: Wait
    ) -> _Streamed:
        """The response as a context manager; `Fallback` when the server is not reachable.
        Every read after the connection ends by `wait`'s deadline."""
        connection, path = self._connect(wait.seconds)
        connection.response_class = functools.partial(TimedResponse, wait=wait)  # type: ignore[assignment]
        headers: dict[str, str | bytes] = dict(self.headers)
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            connection.request(method, path + target, body=body, headers=headers)
            wait.start()  # the request is sent: the wait for its answer begins
            response = connection.getresponse()
        except _LOST as exc:
            connection.close()
            raise self._lost(exc, wait, began=False) from None
        return _Streamed(connection, response, self, wait)

    def _connect(self, idle: float) -> tuple[http.client.HTTPConnection, str]:
        """An open connection to the server and the URL's path prefix."""
        host, port, parts = self.parts.hostname or "", self.parts.port, self.parts
        connection: http.client.HTTPConnection
        try:  # InvalidURL: a host http.client refuses
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
        if connection.sock is not None:
            connection.sock.settimeout(idle)  # sending the request; `Wait` for the answer
        return connection, parts.path.rstrip("/")

    def _shaped(self, data: dict[str, Any], shape: dict[str, Any]) -> dict[str, Any]:
        """`data` when it has the fields the commands print, of their types; else one
        error line, not a KeyError or TypeError from deep in the printing."""
        missing = lacks(data, shape)
        if missing:
            raise self._unlike(", ".join(missing))
        return data

    def _unlike(self, missing: str) -> RagError:
        return RagError(f"{self.url} answered without {missing}, " + NOT_RAG_SERVE)

    def _incomplete(self) -> RagError:
        return RagError(f"rag serve at {self.url} ended the answer before it was complete.")

    def _stream_error(self, data: dict[str, Any], streamed: bool) -> Exception:
        """The error event of a stream: a decline (`Fallback`) only before any text came,
        since the command would print a local answer after the server's part of one."""
        error = _error(data, self.url)
        if isinstance(error, Fallback) and streamed:
            return RagError(
                f"rag serve at {self.url} declined the question after it had begun to "
                "answer it, " + NOT_RAG_SERVE
            )
        return error

    def _lost(self, exc: BaseException, wait: Wait, began: bool = True) -> RagError:
        """A connection that failed (before the answer `began`, or midway) as one line."""
        if isinstance(exc, TimeoutError):
            return RagError(
                f"rag serve at {self.url} {wait.why()}; gave up waiting (the server_timeout "
                "setting, RAG_SERVER_TIMEOUT, sets how long; a search waits "
                f"{SEARCH_TIMEOUT_S:g} s at most)."
            )
        if not began:
            return RagError(f"rag serve at {self.url} failed: {_reason(exc)}.")
        return RagError(f"Lost the connection to rag serve at {self.url}: {_reason(exc)}.")

    def _bad_url(self, why: str) -> UsageError:
        return UsageError(
            f"The server setting (RAG_SERVER) {self.url!r} is not an http(s) URL: {why}."
        )

    def _json(self, response: http.client.HTTPResponse) -> dict[str, Any]:
        if response.length is not None and response.length > MAX_ANSWER_BYTES:
            raise _too_big(self.url)
        raw = response.read(MAX_ANSWER_BYTES + 1)  # a lost connection: see `_Streamed`
        if len(raw) > MAX_ANSWER_BYTES:
            raise _too_big(self.url)
        if response.length:  # a Content-Length longer than what came
            raise self._incomplete()
        try:
            data = loads(raw)
        except NotFinite:
            raise _not_finite(self.url) from None
        except (ValueError, RecursionError):  # RecursionError: nested deeper than json goes
            data = None
        if response.status == 200 and isinstance(data, dict):
            return data
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            raise _error(data, self.url)
        raise RagError(f"{self.url} answered HTTP {response.status}, " + NOT_RAG_SERVE)


class _Streamed:
    """Closes the connection, and turns one lost midway, or a wait that ended, into one
    RagError."""

    def __init__(
        self,
        connection: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        client: Client,
        wait: Wait,
    ) -> None:
        self.connection, self.response, self.client, self.wait = connection, response, client, wait

    def __enter__(self) -> http.client.HTTPResponse:
        return self.response

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.response.close()
        self.connection.close()
        if isinstance(exc, _LOST):
            raise self.client._lost(exc, self.wait) from None


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
    if isinstance(exc, http.client.IncompleteRead):  # its text would be bytes counts
        return "it ended the answer before it was complete"
    return " ".join(str(exc).split())[:MAX_MESSAGE_CHARS] or type(exc).__name__


def _too_big(url: str) -> RagError:
    return RagError(
        f"rag serve at {url} sent an answer over {MAX_ANSWER_BYTES // 2**20} MiB; gave up, "
        + NOT_RAG_SERVE
    )


def _not_finite(url: str) -> RagError:
    return RagError(
        f"rag serve at {url} sent a number that is not finite (NaN or Infinity), " + NOT_RAG_SERVE
    )


def _error(data: dict[str, Any], url: str) -> Exception:
    """The server's JSON error as a RagError (its message on one line, its exit code 1 or
    2); `Fallback` for a request it cannot serve."""
    error = data.get("error") if isinstance(data.get("error"), dict) else {}
    kind = str(error.get("type", ""))
    message = " ".join(str(error.get("message", "")).split())
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[: MAX_MESSAGE_CHARS - 1] + "…"
    if kind in DECLINED:
        return Fallback(f"rag serve at {url} {DECLINED[kind]}; answering in this process")
    code = error.get("exit_code")
    code = code if type(code) is int and code in EXIT_CODES else 1
    return RemoteError(message or f"rag serve at {url} failed.", code, kind)


def _events(
    response: http.client.HTTPResponse, url: str
) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(event name, JSON object) of each server-sent event, as the lines arrive. A line,
    and the `data:` lines of one event together, are read up to `MAX_ANSWER_BYTES`."""
    event: str | None = None
    data: list[bytes] = []
    size = 0
    while True:
        line = response.readline(MAX_ANSWER_BYTES + 1)
        size += len(line)
        if size > MAX_ANSWER_BYTES:
            raise _too_big(url)
        ended = not line  # a last event without its blank line is still an event
        line = line.rstrip(b"\r\n")
        if line.startswith(b"event:"):
            event = line[len(b"event:") :].strip().decode("utf-8", "replace")
        elif line.startswith(b"data:"):
            data.append(line[len(b"data:") :].strip())
        elif not line.strip():
            if data:
                try:
                    payload = loads(b"\n".join(data))
                except NotFinite:
                    raise _not_finite(url) from None
                except (ValueError, RecursionError):
                    raise RagError(f"rag serve at {url} sent an event that is not JSON.") from None
                if not isinstance(payload, dict):
                    raise RagError(f"rag serve at {url} sent an event that is not a JSON object.")
                yield event, payload
            event, data, size = None, [], 0
        if ended:
            return


def _text(value: Any) -> str:
    """A setting as a query-string value (`true`/`false` for booleans)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
