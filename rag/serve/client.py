"""The CLI's side of `rag serve`: `rag ask` and `rag search` send their work to a running
server when the `server` setting (`RAG_SERVER`) names one, and print what it answers exactly
as they print their own results.

Light on purpose: this imports httpx and nothing of the model, the indexes or the web
(no numpy, faiss, onnxruntime, torch or llama_cpp), so a `rag search` through the server
costs a process start and one request.

Three outcomes of a call: the server's answer; a `RagError` with the server's message and
exit code (its JSON error, `{"error": {"message", "type", "exit_code"}}`); or `Fallback`,
when the server is not reachable (connection refused, no connection within
`CONNECT_TIMEOUT_S`) or cannot do what was asked (another model, an index it does not
serve, an index given as a folder path): the command then works in its own process.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx

from rag.config import Settings
from rag.errors import RagError, UsageError
from rag.serve.config import SEARCH_SETTING_FIELDS, SETTING_FIELDS

#: Seconds to wait for the connection; the answer itself may take as long as the model does.
CONNECT_TIMEOUT_S = 3.0
#: `GET /v1/search`'s warnings (a source that failed while others answered): a JSON list.
WARNINGS_HEADER = "X-Pocketrag-Warnings"
#: Error types that mean "this server cannot do that", not "that is wrong": answer locally.
DECLINED = {"ModelMismatch": "runs another model", "Forbidden": "does not serve that index"}


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
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # trust_env=False: no proxy from the environment between the CLI and its own server.
        self.http = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(None, connect=CONNECT_TIMEOUT_S),
            trust_env=False,
        )

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
        with self._request("GET", "/v1/search", params=params) as response:
            body = self._json(response)
            raw = response.headers.get(WARNINGS_HEADER)
        try:
            warnings = json.loads(raw) if raw else []
        except ValueError:
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
        with self._request("POST", "/v1/ask", json=body) as response:
            if on_text is None:
                return self._json(response)
            if response.status_code != 200:
                self._json(response)  # raises the server's error
            for event, data in _events(response.iter_lines(), self.url):
                if event == "text":
                    on_text(str(data.get("text", "")))
                elif event == "answer":
                    return data
                elif event == "error":
                    raise _error(data, self.url)
        raise RagError(f"rag serve at {self.url} ended the answer before it was complete.")

    # --- plumbing ----------------------------------------------------------------------
    def _names(self, indexes: Iterable[str]) -> list[str]:
        names = list(indexes)
        if any(is_path_name(name) for name in names):
            raise Fallback("")  # a folder path: this process opens it, silently
        return names

    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The response as a context manager; `Fallback` when the server is not reachable."""
        try:
            request = self.http.build_request(method, path, **kwargs)
            response = self.http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout):
            raise Fallback(
                f"rag serve at {self.url} is not reachable; answering in this process"
            ) from None
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise UsageError(
                f"The server setting (RAG_SERVER) {self.url!r} is not an http(s) URL: {exc}."
            ) from None
        except httpx.HTTPError as exc:
            raise RagError(
                f"rag serve at {self.url} failed: {exc or type(exc).__name__}."
            ) from None
        return _Streamed(response, self.url)

    def _json(self, response: httpx.Response) -> dict[str, Any]:
        try:
            response.read()
            data = response.json()
        except httpx.HTTPError as exc:
            raise RagError(
                f"rag serve at {self.url} failed: {exc or type(exc).__name__}."
            ) from None
        except ValueError:
            data = None
        if response.status_code == 200 and isinstance(data, dict):
            return data
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            raise _error(data, self.url)
        raise RagError(
            f"{self.url} answered HTTP {response.status_code}, not as rag serve does: "
            "is RAG_SERVER the address of `rag serve`?"
        )


class _Streamed:
    """Closes the response, and turns a connection lost midway into one RagError."""

    def __init__(self, response: httpx.Response, url: str) -> None:
        self.response, self.url = response, url

    def __enter__(self) -> httpx.Response:
        return self.response

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        self.response.close()
        if isinstance(exc, httpx.HTTPError):
            raise RagError(
                f"Lost the connection to rag serve at {self.url}: {exc or type(exc).__name__}."
            ) from None


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
            except ValueError:
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
