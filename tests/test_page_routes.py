"""The research desk over HTTP: `GET /` and `/static/*` from a real `rag serve` on
127.0.0.1 (its headers, ETags, what it refuses to serve), the session cookie that stands
in for the token, and `rag serve --open`. The page in a real browser is
tests/test_page_browser.py."""

# ruff: noqa: F811 - the fixtures imported from test_serve are the tests' parameters

from __future__ import annotations

import json
import re
import shutil
import threading
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeGenerator
from index_fixtures import docs, fake_embedder  # noqa: F401 - fixtures
from test_serve import fake, notes, running  # noqa: F401 - fixtures
from test_serve_guard import port_of, send
from web_servers import free_port

from rag.serve import page_routes
from rag.serve.session import cookie_value

TOKEN = "s3cret-token-for-the-page"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
PAGE = page_routes.PAGE_DIR
JSON_TYPE = {"Content-Type": "application/json"}


def page_files() -> list[Path]:
    return sorted(p for p in PAGE.rglob("*") if p.is_file())


def assert_page_headers(headers: dict[str, str]) -> None:
    assert headers["content-security-policy"] == CSP
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert not any(name.startswith("access-control-") for name in headers)


def test_the_page_and_its_files_are_served_with_a_strict_policy(fake: FakeGenerator) -> None:
    types = {".html": "text/html", ".css": "text/css", ".js": "text/javascript",
             ".svg": "image/svg+xml"}  # fmt: skip
    with running() as url:
        index = send(url, "GET", "/")
        assert index.status == 200 and index.headers["content-type"].startswith("text/html")
        assert b'<script type="module" src="/static/js/main.js">' in index.body
        assert_page_headers(index.headers)
        for path in page_files():
            key = path.relative_to(PAGE).as_posix()
            got = send(url, "GET", f"/static/{key}")
            assert got.status == 200, key
            assert got.body == path.read_bytes()
            assert got.headers["content-type"].split(";")[0] == types[path.suffix], key
            assert_page_headers(got.headers)
            assert got.headers["etag"].startswith('"')


def test_an_unchanged_file_is_a_304(fake: FakeGenerator) -> None:
    with running() as url:
        first = send(url, "GET", "/static/js/main.js")
        etag = first.headers["etag"]
        for given in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = send(url, "GET", "/static/js/main.js", headers={"If-None-Match": given})
            assert again.status == 304 and again.body == b"", given
            assert again.headers["etag"] == etag
            assert_page_headers(again.headers)
        changed = send(url, "GET", "/static/js/main.js", headers={"If-None-Match": '"old"'})
        assert changed.status == 200 and changed.body == first.body


#: Paths that try to leave the page folder, list it, or name what it does not ship.
ESCAPES = [
    "/static/../app.py",
    "/static/../../../pyproject.toml",
    "/static/%2e%2e/app.py",
    "/static/%2E%2E%2Fapp.py",
    "/static/..%2f..%2f..%2fpyproject.toml",
    "/static/js/../../page_routes.py",
    "/static/js/%2e%2e/%2e%2e/session.py",
    "/static/..%5capp.py",
    "/static/..\\app.py",
    "/static//etc/passwd",
    "/static/%2fetc%2fpasswd",
    "/static/%252e%252e/app.py",
    "/static/index.html%00.js",
    "/static/",
    "/static/js/",
    "/static/js",
    "/static/./js/main.js",
    "/static/js//main.js",
    "/static/JS/MAIN.JS",
    "/static/js/nope.js",
    "/static/../__init__.py",
]


def test_nothing_outside_the_page_is_served(fake: FakeGenerator) -> None:
    here = Path(page_routes.__file__).resolve().parent
    secrets = [(here / "app.py").read_bytes()[:200], b"root:", b"[build-system]"]
    with running() as url:
        for path in ESCAPES:
            got = send(url, "GET", path)
            assert got.status == 404, (path, got.status, got.body[:200])
            assert not any(secret in got.body for secret in secrets), path
            assert got.error["type"] == "NotFound" and "\n" not in got.error["message"]


def test_symlinks_hidden_files_and_other_types_are_never_served(
    fake: FakeGenerator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.js").write_text("const key = 'the secret';\n")
    page = tmp_path / "page"
    shutil.copytree(PAGE, page)
    (page / "js" / "leak.js").symlink_to(secret / "key.js")
    (page / "linked").symlink_to(secret, target_is_directory=True)
    (page / "js" / ".hidden.js").write_text("const hidden = 'the secret';\n")
    (page / "notes.txt").write_text("the secret")
    (page / "js" / "map.js.map").write_text("the secret")
    monkeypatch.setattr(page_routes, "PAGE_DIR", page)
    with running() as url:
        assert send(url, "GET", "/static/js/main.js").status == 200  # the copy is served
        for path in ("js/leak.js", "linked/key.js", "js/.hidden.js", "notes.txt", "js/map.js.map"):
            got = send(url, "GET", f"/static/{path}")
            assert got.status == 404 and b"the secret" not in got.body, path


def test_the_page_needs_no_token_and_the_api_still_does(fake: FakeGenerator) -> None:
    with running(token=TOKEN) as url:
        assert send(url, "GET", "/").status == 200
        assert send(url, "GET", "/static/js/main.js").status == 200
        state = send(url, "GET", "/v1/session")
        assert state.status == 200
        assert json.loads(state.body) == {"token_required": True, "signed_in": False}
        for path in ("/v1/indexes", "/healthz", "/static/../v1/indexes", "/static/%2e%2e/healthz"):
            got = send(url, "GET", path)
            assert got.status in (401, 404) and b'"indexes"' not in got.body, path
            assert b'"ok"' not in got.body, path


def session_cookie(reply: Any) -> str:
    return reply.headers["set-cookie"]


def test_the_token_is_traded_for_an_httponly_strict_cookie(fake: FakeGenerator) -> None:
    with running(token=TOKEN) as url:
        wrong = send(url, "POST", "/v1/session", {"token": "not-the-token"}, JSON_TYPE)
        assert wrong.status == 401 and "set-cookie" not in wrong.headers
        assert wrong.error["type"] == "Unauthorized"
        for body in ({}, {"token": 12345678}, {"token": TOKEN, "extra": 1}):
            bad = send(url, "POST", "/v1/session", body, JSON_TYPE)
            assert bad.status == 400 and "set-cookie" not in bad.headers, body
        as_text = send(url, "POST", "/v1/session", f'{{"token": "{TOKEN}"}}'.encode())
        assert as_text.status == 415 and "set-cookie" not in as_text.headers

        right = send(url, "POST", "/v1/session", {"token": TOKEN}, JSON_TYPE)
        assert right.status == 204
        cookie = session_cookie(right)
        attributes = [part.strip().lower() for part in cookie.split(";")]
        name, _, value = cookie.split(";")[0].partition("=")
        assert name == "rag_session" and value == cookie_value(TOKEN)
        assert TOKEN not in cookie and value != TOKEN
        assert "httponly" in attributes and "samesite=strict" in attributes
        assert "path=/" in attributes

        with_cookie = {"Cookie": f"theme=dark; rag_session={value}"}
        assert send(url, "GET", "/v1/indexes", headers=with_cookie).status == 200
        state = json.loads(send(url, "GET", "/v1/session", headers=with_cookie).body)
        assert state == {"token_required": True, "signed_in": True}
        asked = send(url, "POST", "/v1/ask", {"question": "Who wrote Emma?"},
                     {**JSON_TYPE, **with_cookie})  # fmt: skip
        assert asked.status == 200 and json.loads(asked.body)["answer"]
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        assert send(url, "GET", "/v1/indexes", headers=bearer).status == 200
        for forged in (TOKEN, cookie_value("another-token"), value[:-1], "", value.upper()):
            got = send(url, "GET", "/v1/indexes", headers={"Cookie": f"rag_session={forged}"})
            assert got.status == 401, forged

        out = send(url, "DELETE", "/v1/session", headers=with_cookie)
        assert out.status == 204
        cleared = session_cookie(out).lower()
        assert cleared.startswith('rag_session="";') or cleared.startswith("rag_session=;")
        assert "max-age=0" in cleared


def test_a_cookie_from_another_origin_s_page_is_still_refused(fake: FakeGenerator) -> None:
    """The cookie opens the API only for this server's own pages: a sign-in or a call from
    another origin is refused by the Guard before the cookie is looked at."""
    with running(token=TOKEN) as url:
        port = port_of(url)
        value = cookie_value(TOKEN)
        other = {"Origin": f"http://127.0.0.1:{port + 1}"}
        login = send(url, "POST", "/v1/session", {"token": TOKEN}, {**JSON_TYPE, **other})
        assert login.status == 403 and "set-cookie" not in login.headers
        for headers in (other, {"Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors"}):
            got = send(
                url, "GET", "/v1/indexes", headers={**headers, "Cookie": f"rag_session={value}"}
            )
            assert got.status == 403, headers
        assert fake.calls == []


def test_without_a_token_there_is_nothing_to_sign_in_to(fake: FakeGenerator) -> None:
    with running() as url:
        assert json.loads(send(url, "GET", "/v1/session").body) == {
            "token_required": False,
            "signed_in": True,
        }
        done = send(url, "POST", "/v1/session", {"token": "anything-at-all"}, JSON_TYPE)
        assert done.status == 204 and "set-cookie" not in done.headers


def test_every_page_file_ships_in_the_package() -> None:
    """pyproject's package-data for rag.serve names every file of the page."""
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    line = re.search(r'^"rag\.serve" = \[(.*)\]$', text, re.M)
    assert line, "no package-data for rag.serve in pyproject.toml"
    patterns = re.findall(r'"([^"]+)"', line.group(1))
    serve = PAGE.parent
    for path in page_files():
        relative = path.relative_to(serve).as_posix()
        assert any(
            fnmatch(relative, p) and relative.count("/") == p.count("/") for p in patterns
        ), f"{relative} is not in [tool.setuptools.package-data]"


def test_the_first_load_is_small() -> None:
    """Every file of the page together (the first load needs no more) under 150 KB."""
    assert sum(p.stat().st_size for p in page_files()) < 150_000


#: What would let data become markup or code, or need 'unsafe-inline'.
UNSAFE = re.compile(
    r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function|"
    r"setAttribute\(\s*[\"'](?:style|on)|\.style\.|javascript:"
)


def test_the_page_never_parses_data_as_html() -> None:
    for path in page_files():
        if path.suffix == ".js":
            assert not UNSAFE.search(path.read_text()), path
        if path.suffix == ".html":
            markup = path.read_text()
            assert not re.search(r"<script(?![^>]*\bsrc=)", markup), "an inline script"
            assert not re.search(r"\s(?:style|on\w+)\s*=", markup), "an inline style or handler"
            assert "<style" not in markup


def test_serve_open_opens_the_page_once_listening(
    fake: FakeGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rag serve --open` calls webbrowser.open with the page's address once the server
    accepts connections (the fake browser loads the page, then stops the server)."""
    import webbrowser

    from index_fixtures import cli

    import rag.serve.app as serve_app

    servers: list[Any] = []
    real_build = serve_app.build_server

    def build(*args: Any, **kwargs: Any) -> Any:
        servers.append(real_build(*args, **kwargs))
        return servers[-1]

    opened: list[tuple[str, int]] = []

    def browser(url: str, *args: Any, **kwargs: Any) -> bool:
        assert threading.current_thread() is not threading.main_thread()
        opened.append((url, send(url.rstrip("/"), "GET", "/").status))
        servers[0].should_exit = True
        return True

    monkeypatch.setattr(serve_app, "build_server", build)
    monkeypatch.setattr(webbrowser, "open", browser)
    port = free_port()
    result = cli("serve", "--open", "--model", "fake:", "--port", str(port))
    assert result.exit_code == 0, result.output
    assert opened == [(f"http://127.0.0.1:{port}/", 200)]
    assert f"http://127.0.0.1:{port}/" in result.stderr
