"""DuckDuckGo & co. through the `ddgs` metasearch library (the default engine, no API key).

What ddgs (9.x) really does, and what this engine does about it:
- `backend` picks its backends (`auto`: Wikipedia and Grokipedia first, then the others in
  random order); an unknown name silently becomes `auto`, so pocketrag checks the names
  against the installed ddgs first (`check_backend`).
- `region` is split on `-` into country and language, and host names are built from them
  (`en.wikipedia.org`): the old "no region" `wt-wt` sent every search's Wikipedia request
  to `wt.wikipedia.org`, which does not exist. Regions are checked as country-language
  (rag.core.config); no region is left to ddgs's own default (`us-en`).
- a backend that answers anything but HTTP 200 (DuckDuckGo's `202 Ratelimit`, a 429, a
  403) is dropped without a word, so a rate limit arrives as "No results found". The
  backends' HTTP clients are watched (`_Watch`), so such an answer is reported as a
  probable rate limit, naming who refused, with what to do.
Only transient failures (a timeout, a lost connection) are tried again, with a short
backoff: asking a rate-limiting engine again at once only prolongs the limit, and a chain
(rag.web.chain) has the next engine ready. `ddgs` is imported on first search, so
`rag --help` stays fast.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rag.core.config import Settings, check_setting, is_no_region
from rag.core.errors import SearchUnavailable, UsageError
from rag.web.base import WebResult, check_search_options

DEFAULT_TIMEOUT_S = 10
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 0.5
DEFAULT_BACKEND = "auto"
#: How refusals that mean "slow down" arrive: DuckDuckGo's 202, 429 Too Many Requests,
#: a 403 (a CAPTCHA wall), 503.
RATE_LIMIT_STATUSES = frozenset({202, 403, 429, 503})
BACKEND_SETTING = "backend under [engines.ddgs] in config.toml, or RAG_ENGINE_DDGS_BACKEND"

HINT = (
    "Check the internet connection, try again later, or use a SearxNG instance "
    "(--engine searxng with RAG_ENGINE_SEARXNG_URL)."
)
RATE_LIMIT_HINT = (
    "Wait a few minutes before searching again, or add a SearxNG instance to the chain "
    "(--engine ddgs,searxng with RAG_ENGINE_SEARXNG_URL), or choose other ddgs backends "
    f'({BACKEND_SETTING}, e.g. "mojeek,brave").'
)


def ddgs_backends() -> tuple[str, ...]:
    """The text backends of the installed ddgs (ImportError when it is not installed)."""
    from ddgs.engines import ENGINES

    return tuple(sorted(ENGINES.get("text", {})))


def _ddgs_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ddgs")
    except PackageNotFoundError:
        return "?"


def check_backend(backend: str) -> str:
    """`auto`, or a comma-separated list of the installed ddgs's text backends, normalised;
    a UsageError listing the valid names otherwise (ddgs would use `auto` silently)."""
    names = list(dict.fromkeys(b.strip().lower() for b in backend.split(",") if b.strip()))
    if not names or names == [DEFAULT_BACKEND]:
        return DEFAULT_BACKEND
    try:
        known = ddgs_backends()
    except ImportError:
        return ",".join(names)  # the search says ddgs is missing, and how to install it
    bad = [n for n in names if n not in known]
    if bad:
        raise UsageError(
            f"ddgs has no backend {bad[0]!r} ({BACKEND_SETTING}); choose auto or one or more "
            f'of: {", ".join(known)} (ddgs {_ddgs_version()}), e.g. "duckduckgo,brave".'
        )
    return ",".join(names)


def _default_client(timeout: int) -> Any:
    from ddgs import DDGS

    return DDGS(timeout=timeout)


class _Watch:
    """What each backend's HTTP requests came to during one search: status codes, or the
    error. Recorded from ddgs's own threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.statuses: dict[str, list[int]] = {}
        self.errors: dict[str, list[str]] = {}

    def attach(self, client: Any, backend: str) -> bool:
        """Wrap the HTTP client of each backend `client` will ask; False when this ddgs is
        not built the way 9.x is (then a refusal cannot be told from no results)."""
        try:
            engines = client._get_engines("text", backend)  # the instances text() reuses
        except Exception:  # noqa: BLE001 - another ddgs, or a fake client
            return False
        attached = False
        for engine in engines:
            http = getattr(engine, "http_client", None)
            request = getattr(http, "request", None)
            if request is None:
                continue
            http.request = self._recording(request, str(getattr(engine, "name", "?")))
            attached = True
        return attached

    def _recording(self, request: Callable[..., Any], name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                response = request(*args, **kwargs)
            except Exception as exc:
                with self._lock:
                    self.errors.setdefault(name, []).append(_describe(exc))
                raise
            with self._lock:
                self.statuses.setdefault(name, []).append(int(response.status_code))
            return response

        return call

    def refusals(self) -> dict[str, int]:
        """Each backend that answered something but 200, with its (first) status."""
        return {
            name: next(code for code in codes if code != 200)
            for name, codes in sorted(self.statuses.items())
            if any(code != 200 for code in codes)
        }


class _Failure:
    """Why one attempt found nothing: `cause` for the message, `transient` when trying
    again may help, `hint` what the user can do."""

    def __init__(self, cause: str, *, transient: bool, hint: str = HINT) -> None:
        self.cause, self.transient, self.hint = cause, transient, hint


def _diagnose(watch: _Watch | None, error: Exception | None) -> _Failure:
    """Why ddgs found nothing, from what its backends answered (`watch`) and what it
    raised (`error`; None: it returned an empty list)."""
    if watch is not None:
        refused = watch.refusals()
        said = ", ".join(f"{name} HTTP {code}" for name, code in refused.items())
        limiting = {n: c for n, c in refused.items() if c in RATE_LIMIT_STATUSES}
        if limiting:
            said = ", ".join(f"{name} HTTP {code}" for name, code in limiting.items())
            others = len(refused) - len(limiting)
            if others:
                said += f"; {others} other backend{'s' if others != 1 else ''} refused too"
            return _Failure(
                f"no results, probably rate-limited ({said}; ddgs reports a refused request "
                "as no results)",
                transient=False,
                hint=RATE_LIMIT_HINT,
            )
        if watch.errors:  # a timeout, a lost connection: worth another try
            timed_out = all("timed out" in t[0] for t in watch.errors.values())
            first = next(iter(watch.errors.values()))[0]
            names = ", ".join(sorted(watch.errors))
            what = "timed out" if timed_out else "search error"
            return _Failure(f"{what} ({names}; {_short(first)})", transient=True)
        if refused:
            return _Failure(f"no results ({said})", transient=False)
        if error is None or "No results found" in str(error):
            answered = ", ".join(sorted(watch.statuses)) or "none"
            return _Failure(f"no results (backends that answered: {answered})", transient=False)
    if error is None:
        return _Failure(
            "no results (ddgs reports a refused request, such as a rate limit, as no results)",
            transient=False,
            hint=RATE_LIMIT_HINT,
        )
    if type(error).__name__ == "RatelimitException":  # what ddgs before 9 raised
        return _Failure(_describe(error), transient=False, hint=RATE_LIMIT_HINT)
    return _Failure(_describe(error), transient=True)


class DdgsEngine:
    """`DDGS().text(query, backend=, region=, safesearch=, timelimit=, max_results=)`.

    `client_factory` builds the DDGS object (tests pass a fake, or let the real one talk to
    a local server); `sleep` is the backoff clock (tests pass a recorder).
    """

    name = "ddgs"
    site_operator = True  # DuckDuckGo, Brave, Mojeek, Yahoo and Startpage read `site:`

    def __init__(
        self,
        *,
        backend: str = DEFAULT_BACKEND,
        region: str = "",
        safesearch: str = "moderate",
        timelimit: str = "",
        timeout_s: int = DEFAULT_TIMEOUT_S,
        attempts: int = DEFAULT_ATTEMPTS,
        backoff_s: float | None = None,
        client_factory: Callable[[int], Any] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        check_search_options(safesearch, timelimit)
        check_setting("region", region, "region (RAG_REGION)")
        self.backend = check_backend(backend)
        self.region = "" if is_no_region(region) else region.strip().lower()
        self.safesearch = safesearch
        self.timelimit = timelimit
        self.timeout_s = timeout_s
        self.attempts = max(1, attempts)
        self.backoff_s = DEFAULT_BACKOFF_S if backoff_s is None else backoff_s
        self._client_factory = client_factory or _default_client
        self._sleep = sleep

    @classmethod
    def from_settings(cls, settings: Settings, options: dict[str, Any] | None = None) -> DdgsEngine:
        """`options`: the engine's `[engines.ddgs]` options (rag.builtin_parts)."""
        chosen = options or {}
        return cls(
            backend=chosen.get("backend", DEFAULT_BACKEND),
            region=settings.region,
            safesearch=settings.safesearch,
            timelimit=settings.timelimit,
            timeout_s=chosen.get("timeout", DEFAULT_TIMEOUT_S),
            attempts=chosen.get("attempts", DEFAULT_ATTEMPTS),
        )

    def cache_identity(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "region": self.region,
            "safesearch": self.safesearch,
            "timelimit": self.timelimit,
        }

    def _arguments(self, max_results: int) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "backend": self.backend,
            "safesearch": self.safesearch,
            "timelimit": self.timelimit or None,
            "max_results": max_results,
        }
        if self.region:  # no region: ddgs's own default, which its backends can split
            arguments["region"] = self.region
        return arguments

    def search(self, query: str, max_results: int) -> list[WebResult]:
        """Best-first results; raises `SearchUnavailable` naming the cause when none came."""
        failure = _Failure("no results", transient=False)
        attempt = 0
        for attempt in range(1, self.attempts + 1):
            watch: _Watch | None = _Watch()
            try:
                client = self._client_factory(self.timeout_s)
                if not watch.attach(client, self.backend):
                    watch = None
                raw = client.text(query, **self._arguments(max_results))
            except ImportError as exc:
                raise SearchUnavailable(
                    f"Web search (engine ddgs) is not available: {exc}. Install it with "
                    "`pip install ddgs`, or use --engine searxng.",
                    engine=self.name,
                    cause=f"not installed ({exc})",
                ) from None
            except Exception as exc:  # noqa: BLE001 - ddgs and its HTTP stack raise many kinds
                failure = _diagnose(watch, exc)
            else:
                results = _parse(raw or [])[:max_results]
                if results:
                    return results
                failure = _diagnose(watch, None)
            if not failure.transient:
                break
            if attempt < self.attempts:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
        tries = (
            f"; gave up after {attempt} attempt{'s' if attempt != 1 else ''}"
            if failure.transient
            else ""
        )
        raise SearchUnavailable(
            f"Web search failed (engine ddgs): {failure.cause}{tries}. {failure.hint}",
            engine=self.name,
            cause=failure.cause + tries,
            hint=failure.hint,
        )


def _describe(exc: Exception) -> str:
    """A one-line cause: the exception kind (rate limit, timeout...) and its first line."""
    kind = type(exc).__name__
    labels = {
        "RatelimitException": "rate limited",
        "TimeoutException": "timed out",
        "DDGSException": "search error",
    }
    text = " ".join(str(exc).split())
    if len(text) > 240:
        text = text[:237] + "..."
    label = labels.get(kind, kind)
    return f"{label}: {text}" if text else label


def _short(text: str, most: int = 160) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def _parse(raw: list[dict[str, Any]]) -> list[WebResult]:
    """ddgs text results are dicts with `title`, `href`, `body`; keep those with a URL."""
    results = []
    for item in raw:
        url = str(item.get("href") or item.get("url") or "").strip()
        if not url:
            continue
        results.append(
            WebResult(
                title=str(item.get("title") or url).strip(),
                url=url,
                snippet=str(item.get("body") or item.get("snippet") or "").strip(),
            )
        )
    return results
