"""A self-hosted SearxNG instance through its JSON API (no rate limits, no API key).

Why a separate engine: ddgs scrapes public engines and gets rate-limited, which
hurts eval runs; a SearxNG instance the user runs does not. SearxNG serves JSON
only when `json` is listed in `search.formats` in its `settings.yml`; otherwise
it answers 403, and the error says exactly that.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from rag.core.config import Settings
from rag.core.errors import SearchUnavailable, UsageError
from rag.web.base import WebResult, check_search_options

DEFAULT_TIMEOUT_S = 10.0
_SAFESEARCH = {"off": 0, "moderate": 1, "on": 2}
_TIME_RANGE = {"": None, "d": "day", "w": "week", "m": "month", "y": "year"}
#: Where the URL is set: the searxng engine's `url` option (the flat `searxng_url` setting
#: and RAG_SEARXNG_URL are its deprecated alias).
URL_SETTING = "url under [engines.searxng] in config.toml, or RAG_ENGINE_SEARXNG_URL"
JSON_HINT = (
    "SearxNG serves its JSON API only when `json` is enabled: add it to `search: formats:` "
    "in the instance's settings.yml (formats: [html, json]) and restart SearxNG."
)


def search_endpoint(base_url: str) -> str:
    """`http://host:8888` or `http://host:8888/searx/` -> `.../search`; a `/search` URL stays."""
    url = base_url.strip()
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise UsageError(
            f"The SearxNG URL {base_url!r} is not an http(s) URL; set {URL_SETTING} "
            "to e.g. http://localhost:8888."
        )
    url = url.split("?", 1)[0].rstrip("/")
    return url if url.endswith("/search") else url + "/search"


def _language(region: str) -> str:
    """ddgs-style region (`us-en`; "" or `wt-wt`: none) -> SearxNG language (`en-US`, `all`)."""
    country, _, lang = region.partition("-")
    if not lang or country in {"wt", "xa", "xl"}:
        return "all"
    return f"{lang}-{country.upper()}"


class SearxngEngine:
    """`GET {url}/search?q=...&format=json`; `client` is an httpx.Client (tests may pass one)."""

    name = "searxng"
    site_operator = True  # passed on to its engines, which read `site:` (rag.web.sites)

    def __init__(
        self,
        base_url: str,
        *,
        region: str = "",
        safesearch: str = "moderate",
        timelimit: str = "",
        timeout_s: float = DEFAULT_TIMEOUT_S,
        client: Any = None,
    ) -> None:
        if not base_url.strip():
            raise UsageError(
                f"The searxng engine needs the instance's URL: set {URL_SETTING} "
                "(e.g. http://localhost:8888)."
            )
        check_search_options(safesearch, timelimit)
        self.endpoint = search_endpoint(base_url)
        self.region = region
        self.safesearch = safesearch
        self.timelimit = timelimit
        self.timeout_s = timeout_s
        self._client = client

    @classmethod
    def from_settings(
        cls, settings: Settings, url: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> SearxngEngine:
        """`url`: the engine's `url` option (`rag.builtin_parts`); None reads the deprecated
        flat `searxng_url` setting."""
        return cls(
            settings.searxng_url if url is None else url,
            region=settings.region,
            safesearch=settings.safesearch,
            timelimit=settings.timelimit,
            timeout_s=timeout_s,
        )

    def cache_identity(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "region": self.region,
            "safesearch": self.safesearch,
            "timelimit": self.timelimit,
        }

    def params(self, query: str) -> dict[str, str | int]:
        params: dict[str, str | int] = {
            "q": query,
            "format": "json",
            "safesearch": _SAFESEARCH[self.safesearch],
            "language": _language(self.region),
            "pageno": 1,
        }
        time_range = _TIME_RANGE[self.timelimit]
        if time_range:
            params["time_range"] = time_range
        return params

    def search(self, query: str, max_results: int) -> list[WebResult]:
        import httpx

        where = f"SearxNG at {self.endpoint}"
        try:
            if self._client is not None:
                response = self._client.get(
                    self.endpoint, params=self.params(query), timeout=self.timeout_s
                )
            else:
                with httpx.Client(
                    timeout=self.timeout_s,
                    follow_redirects=True,
                    headers={"Accept": "application/json", "User-Agent": "pocketrag"},
                ) as client:
                    response = client.get(self.endpoint, params=self.params(query))
        except httpx.TimeoutException:
            raise _unavailable(
                f"{where} did not answer within {self.timeout_s:g}s",
                "Check that the instance is running.",
            ) from None
        except httpx.HTTPError as exc:
            raise _unavailable(
                f"cannot reach {where}: {type(exc).__name__}: {exc}",
                f"Check that the instance is running and its URL ({URL_SETTING}) is right.",
            ) from None
        return self._parse(response, where, max_results)

    def _parse(self, response: Any, where: str, max_results: int) -> list[WebResult]:
        status = response.status_code
        if status == 403:
            raise _unavailable(f"{where} refused the request (HTTP 403)", JSON_HINT)
        if status == 429:
            raise _unavailable(
                f"{where} is rate limiting (HTTP 429)",
                "Disable its limiter (server.limiter: false) for a private instance.",
            )
        if status >= 400:
            raise _unavailable(f"{where} answered HTTP {status}")
        try:
            data = response.json()
        except ValueError:
            raise _unavailable(
                f"{where} did not return JSON "
                f"(content type {response.headers.get('content-type', '?')!r})",
                "Is the URL the instance's base URL? " + JSON_HINT,
            ) from None
        raw = data.get("results") if isinstance(data, dict) else None
        if not isinstance(raw, list):
            raise _unavailable(f"{where} returned JSON without a `results` list")
        results = []
        for item in raw:
            if not isinstance(item, dict) or not item.get("url"):
                continue
            url = str(item["url"]).strip()
            results.append(
                WebResult(
                    title=str(item.get("title") or url).strip(),
                    url=url,
                    snippet=str(item.get("content") or "").strip(),
                )
            )
        if not results:
            broken = data.get("unresponsive_engines") or []
            if broken:
                names = ", ".join(
                    f"{e[0]} ({e[1]})" if isinstance(e, list) and len(e) > 1 else str(e)
                    for e in broken
                )
                raise _unavailable(
                    f"{where} got no results because its engines did not answer: {names}"
                )
        return results[:max_results]


def _unavailable(cause: str, hint: str = "") -> SearchUnavailable:
    """`Web search failed (engine searxng): CAUSE. HINT`, with its parts for a chain."""
    message = f"Web search failed (engine searxng): {cause}." + (f" {hint}" if hint else "")
    return SearchUnavailable(message, engine="searxng", cause=cause, hint=hint)
