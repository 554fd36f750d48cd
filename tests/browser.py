"""The system's Chromium driven by Playwright for Python, for the research desk's tests
and benchmarks/page.py: headless, a fresh profile, no background traffic, no name ever
resolved, and every request to a host other than 127.0.0.1 aborted and recorded (a test
asserts the record stays empty). Playwright's own browsers are never downloaded
(`playwright install` is never run): `executable_path` is /usr/bin/chromium."""

from __future__ import annotations

import contextlib
import os
import tempfile
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Belt and braces: Chromium itself resolves no name (a prefetch of a link in a
    # document would otherwise ask DNS about it); only IP literals are reached.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--dns-prefetch-disable",
]
ALLOWED_HOSTS = {"127.0.0.1"}


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} is missing (the browser tests use the system's Chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright; never `playwright install`)"
    return None


@dataclass
class Browser:
    """A browser context; `refused` lists every request it tried beyond 127.0.0.1."""

    context: Any
    refused: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def page(self, width: int = 1280, height: int = 900) -> Any:
        page = self.context.new_page()
        page.set_viewport_size({"width": width, "height": height})
        page.on("dialog", self._dialog)
        return page

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()


@contextlib.contextmanager
def chromium(*, color_scheme: str = "light") -> Iterator[Browser]:
    """A fresh headless Chromium (its own temporary profile) for the block."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="rag-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=CHROMIUM,
            args=ARGS,
            headless=True,
            color_scheme=color_scheme,
            service_workers="block",
        )
        browser = Browser(context)

        def guard(route: Any) -> None:
            url = route.request.url
            host = urllib.parse.urlsplit(url).hostname
            if host in ALLOWED_HOSTS:
                route.continue_()
            else:
                browser.refused.append(url)
                route.abort("blockedbyclient")

        context.route("**/*", guard)
        try:
            yield browser
        finally:
            context.close()
