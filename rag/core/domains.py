"""Domain lists (`--site`, `exclude_domains`): parsed and checked once, matched one way.

Why here, in the kernel: the settings check them as they are read (a typo is a usage
error naming the flag, variable or file), and every web engine's results are filtered by
the same rule, so `--site` and `exclude_domains` hold whichever engine answered. A domain
matches a host that is the domain itself or any subdomain of it: `wikipedia.org` matches
`en.wikipedia.org`, not `notwikipedia.org`. Names are compared in their ASCII (IDNA) form,
case-insensitively, without a trailing dot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from rag.core.errors import UsageError

_LABEL = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_SEPARATORS = re.compile(r"[,\s]+")


def ascii_host(name: str) -> str:
    """`name` lower-cased, without a trailing dot, in IDNA form (`bücher.de` ->
    `xn--bcher-kva.de`); "" when it cannot be encoded."""
    text = name.strip().lower().rstrip(".")
    if text.isascii():
        return text
    try:
        return text.encode("idna").decode("ascii")
    except UnicodeError:
        return ""


def parse_domains(raw: str | Iterable[str], origin: str) -> tuple[str, ...]:
    """The domains in `raw` (comma- or space-separated text, or a list of names), each
    normalised, repeats dropped, in order. A URL, a path or a malformed name is a
    UsageError naming `origin` and saying what to write instead."""
    items = _SEPARATORS.split(raw) if isinstance(raw, str) else list(raw)
    domains: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise UsageError(f"{origin}: a domain must be text, got {item!r}.")
        text = item.strip()
        if not text:
            continue
        if "://" in text or "/" in text or ":" in text:
            host = urlsplit(text if "://" in text else "//" + text).hostname or ""
            hint = f" (write {host!r})" if host else ""
            raise UsageError(
                f"{origin}: {text!r} is not a domain name{hint}; give names such as "
                "en.wikipedia.org or britannica.com, without scheme, port or path."
            )
        name = ascii_host(text.removeprefix("*.").removeprefix("."))
        labels = name.split(".") if name else []
        if not labels or not all(_LABEL.fullmatch(label) for label in labels):
            raise UsageError(
                f"{origin}: {text!r} is not a domain name; give names such as "
                "en.wikipedia.org or britannica.com."
            )
        if name not in domains:
            domains.append(name)
    return tuple(domains)


def domains_text(raw: str | Iterable[str], origin: str) -> str:
    """The setting's stored form: the parsed domains joined by commas."""
    return ",".join(parse_domains(raw, origin))


def url_host(url: str) -> str:
    """The host of `url` as `host_matches` compares it; "" when it has none."""
    try:
        host = urlsplit(url.strip()).hostname or ""
    except ValueError:  # an unbalanced `[` in the netloc
        return ""
    return ascii_host(host)


def host_matches(host: str, domains: Iterable[str]) -> bool:
    """Whether `host` is one of `domains` or a subdomain of one (both normalised)."""
    return bool(host) and any(host == d or host.endswith("." + d) for d in domains)
