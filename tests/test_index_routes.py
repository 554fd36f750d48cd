"""The research desk's index management over HTTP (`rag.serve.index_routes`): uploads
streamed into `$RAG_HOME/uploads/NAME/` and indexed by `rag index` itself, folders added,
reindex, removal (never a user's folder), jobs followed as server-sent events, and every
refusal of the upload's safety rules. A real `rag serve` on 127.0.0.1; the fake embedder;
bodies the hostile cases need are written byte by byte (an HTTP library would escape a
control character in a file name, or refuse to send a lying length)."""

# ruff: noqa: F811 - the fixtures imported from test_serve are the tests' parameters

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import FakeGenerator, returning
from index_fixtures import FakeEmbedder, docs, fake_embedder  # noqa: F401 - fixtures
from test_serve import fake, running  # noqa: F401 - fixtures
from test_serve_guard import Reply, port_of
from test_serve_guard import send as send_exactly

GARDEN = b"# Garden\n\nThe quince tree by the shed fruits in late October every year.\n"
BEES = b"# Bees\n\nThe beehive sits behind the greenhouse, facing south-east.\n"
BOUNDARY = "pocketrag-test-boundary"
TOKEN = "s3cret-token-for-uploads"


def send(url: str, method: str, path: str, body: bytes | None = None, **headers: str) -> Reply:
    """One request with exactly these headers (http.client adds Host and the length)."""
    return send_exactly(url, method, path, body, headers)


def multipart(*files: tuple[bytes, bytes], field: bytes = b"files") -> bytes:
    """A multipart/form-data body of `files` ((raw file name, content)), names as given."""
    out = b""
    for name, content in files:
        out += (
            f"--{BOUNDARY}\r\n".encode()
            + b'Content-Disposition: form-data; name="' + field + b'"; filename="' + name + b'"\r\n'
            + b"Content-Type: application/octet-stream\r\n\r\n"
            + content + b"\r\n"
        )  # fmt: skip
    return out + f"--{BOUNDARY}--\r\n".encode()


FORM = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
JSON_TYPE = {"Content-Type": "application/json"}


def upload(url: str, index: str, *files: tuple[bytes, bytes], **headers: str) -> Reply:
    return send(url, "POST", f"/v1/indexes/{index}/files", multipart(*files), **FORM, **headers)


def events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """Each server-sent event of a streamed response as it arrives: (name, data)."""
    name, data = "message", []
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if not line:
            if data:
                yield name, json.loads("\n".join(data))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line[len("event:") :].strip()
        elif line.startswith("data:"):
            data.append(line[len("data:") :].strip())


def follow(url: str, job: str) -> list[tuple[str, Any]]:
    """Every event of a job from now to its end."""
    seen = []
    with httpx.stream("GET", f"{url}/v1/jobs/{job}", timeout=120) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for name, data in events(response):
            seen.append((name, data))
            if name in ("done", "error"):
                break
    return seen


def finished(url: str, job: str) -> dict[str, Any]:
    """The `done` report of a job (the test fails on an `error`)."""
    name, data = follow(url, job)[-1]
    assert name == "done", data
    return data


def search(url: str, query: str, index: str) -> httpx.Response:
    return httpx.get(f"{url}/v1/search", params={"q": query, "index": index, "k": 3}, timeout=60)


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def assert_refused(reply: Reply, status: int, kind: str | None = None) -> None:
    assert reply.status == status, reply
    error = reply.error
    assert "\n" not in error["message"] and b"Traceback" not in reply.body
    if kind is not None:
        assert error["type"] == kind, error


# --- uploads, then search ---------------------------------------------------------------


def test_an_upload_is_indexed_and_searched(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    with running() as url:
        got = upload(url, "garden", (b"garden.md", GARDEN), (b"docs/bees.md", BEES))
        assert got.status == 202, got
        job = got.json["job"]
        assert got.json["files"] == ["garden.md", "bees.md"]  # a path: its last component
        seen = follow(url, job)
        report = seen[-1][1]
        assert seen[-1][0] == "done" and report["files_read"] == 2 and report["chunks"] >= 2
        # (progress, when the job had not ended before the stream began: see the gated test)
        assert all(set(d) == {"stage", "done", "total", "path"} for n, d in seen if n == "progress")
        folder = rag_home / "uploads" / "garden"
        assert tree(folder) == {"garden.md": GARDEN, "bees.md": BEES}

        found = search(url, "quince tree October", "garden").json()["results"]
        assert found and "quince" in found[0]["text"]
        assert found[0]["location"].startswith(str(folder))
        rows = httpx.get(f"{url}/v1/indexes").json()["indexes"]
        assert [(r["name"], r["files"]) for r in rows] == [("garden", 2)]

        # A second upload adds to the same index; the first files stay in it.
        more = upload(url, "garden", (b"plums.txt", b"The plum tree is pruned in June."))
        assert finished(url, more.json["job"])["files_read"] == 3
        assert "plum" in search(url, "plum pruned June", "garden").json()["results"][0]["text"]
        assert "quince" in search(url, "quince October", "garden").json()["results"][0]["text"]
        listed = httpx.get(f"{url}/v1/jobs").json()["jobs"]
        assert [j["id"] for j in listed] == [more.json["job"], job]  # newest first
        assert listed[1]["state"] == "done" and listed[1]["report"]["files_read"] == 2


def test_a_body_past_64_kb_is_taken_on_the_upload_route_only(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    """Every other route reads at most 64 KB; an upload has its own cap, streamed to disk."""
    big = b"".join(b"Line %d about the walled garden and its espalier pears.\n" % i
                   for i in range(8000))  # fmt: skip
    assert len(big) > 400_000
    with running(max_upload_bytes=1024 * 1024) as url:
        got = upload(url, "big", (b"walled.txt", big))
        assert got.status == 202, got
        assert finished(url, got.json["job"])["files_read"] == 1
        assert (rag_home / "uploads" / "big" / "walled.txt").read_bytes() == big
        ask = send(url, "POST", "/v1/ask", json.dumps({"question": "x " * 40_000}).encode(),
                   **JSON_TYPE)  # fmt: skip
        assert_refused(ask, 413, "PayloadTooLarge")


def test_names_collide_into_suffixes_and_skipped_files_are_reported(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    with running() as url:
        first = upload(url, "mixed", (b"a.txt", b"Apples in the orchard."),
                       (b"a.txt", b"Apricots on the wall."))  # fmt: skip
        assert first.json["files"] == ["a.txt", "a (2).txt"]
        finished(url, first.json["job"])
        again = upload(url, "mixed", (b"a.txt", b"Apples in the orchard."),  # the same bytes
                       (b"blob.dat", b"\x00\x01\x02\x03" * 64),
                       (b"id_rsa", b"-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n"))  # fmt: skip
        assert again.json["files"] == ["a.txt", "blob.dat", "id_rsa"]
        report = finished(url, again.json["job"])
        skipped = {Path(s["path"]).name: s["reason"] for s in report["skipped"]}
        assert skipped["blob.dat"] == "binary" and skipped["id_rsa"].startswith("likely secret")
        assert sorted(tree(rag_home / "uploads" / "mixed")) == sorted(
            ["a.txt", "a (2).txt", "blob.dat", "id_rsa"]
        )


def test_a_job_that_fails_takes_its_files_away(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    """Nothing indexable in a new index's first upload: the job's `error` says why, and
    neither the files nor an index stay."""
    with running() as url:
        got = upload(url, "nothing", (b"blob.dat", b"\x00\x01\x02\x03" * 64))
        assert got.status == 202, got
        name, data = follow(url, got.json["job"])[-1]
        assert name == "error" and data["error"]["exit_code"] == 2
        assert "binary" in data["error"]["message"]
        assert not (rag_home / "uploads" / "nothing").exists()
        assert httpx.get(f"{url}/v1/indexes").json()["indexes"] == []


# --- the safety rule of uploads ------------------------------------------------------------


def nothing_written(rag_home: Path, index: str) -> None:
    """No file of the upload anywhere: not in the upload folder, nor around RAG_HOME."""
    folder = rag_home / "uploads" / index
    assert not folder.exists() or tree(folder) == {}, tree(folder)
    around = [p for p in rag_home.parent.rglob("*") if p.is_file() and p.name in ("x", "x.txt")]
    assert around == []


@pytest.mark.parametrize(
    "name",
    [b"../x", b"..\\x.txt", b"a/../../x.txt", b"..", b".env", b".hidden.txt", b"sub/.x.txt",
     b"a\x01b.txt", b"nul\x00.txt", b"del\x7f.txt", b"tab\tname.txt", b"esc\x1b[31m.txt",
     "evil\u202etxt.exe".encode(), "zero\u200bwidth.txt".encode(), b"", b"  ", b"\xff\xfe.txt"],
    ids=repr,
)  # fmt: skip
def test_an_unsafe_file_name_refuses_the_whole_upload(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path, name: bytes
) -> None:
    with running() as url:
        got = upload(url, "safe", (b"fine.txt", b"A fine file about pears."), (name, b"x"))
        assert_refused(got, 400, "UnsafeFileName")
        assert httpx.get(f"{url}/v1/jobs").json()["jobs"] == []  # no job ran
        nothing_written(rag_home, "safe")
        ok = upload(url, "safe", (b"fine.txt", b"A fine file about pears."))  # the index is free
        assert ok.status == 202, ok


def test_a_long_name_is_cut_and_keeps_its_suffix(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    with running() as url:
        long = ("é" * 300 + ".md").encode()
        got = upload(url, "long", (long, b"# Long\n\nA long name for a short note on figs."))
        assert got.status == 202, got
        (saved,) = got.json["files"]
        assert saved.endswith(".md") and len(saved.encode()) <= 200
        finished(url, got.json["job"])
        assert [p.name for p in (rag_home / "uploads" / "long").iterdir()] == [saved]


@pytest.mark.parametrize(
    "index", ["..", ".hidden", "~root", "a b", "x" * 65, "a\\b", "%2e%2e", "a%2Fb", "-"], ids=repr
)
def test_an_index_name_that_is_a_path_is_refused(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path, index: str
) -> None:
    quoted = index.replace(" ", "%20").replace("\\", "%5C")
    with running() as url:
        for method, path, body, headers in [
            ("POST", f"/v1/indexes/{quoted}/files", multipart((b"n.txt", b"note")), FORM),
            ("POST", f"/v1/indexes/{quoted}/folders", b'{"path": "/tmp"}', JSON_TYPE),
            ("POST", f"/v1/indexes/{quoted}/reindex", None, {}),
            ("DELETE", f"/v1/indexes/{quoted}", None, {}),
        ]:  # fmt: skip
            got = send(url, method, path, body, **headers)
            if index == "a%2Fb" and got.status == 404:
                continue  # a slash, even encoded, never reaches the routes as a name
            assert_refused(got, 400, "UsageError")
            assert "not an index name" in got.error["message"]
    assert not (rag_home / "uploads").exists() or list((rag_home / "uploads").iterdir()) == []
    assert not (rag_home / "indexes").exists() or list((rag_home / "indexes").iterdir()) == []


def chunked_upload(url: str, index: str, total: int) -> bytes:
    """An upload of `total` bytes sent in chunks without a length (so only counting can
    stop it), stopped as soon as the server answers; the server's reply."""
    head = multipart((b"big.txt", b""))[: -len(f"\r\n--{BOUNDARY}--\r\n")]
    with socket.create_connection(("127.0.0.1", port_of(url)), timeout=60) as sock:
        sock.sendall(
            f"POST /v1/indexes/{index}/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
            "Transfer-Encoding: chunked\r\n\r\n".encode()
        )
        sent, piece = 0, b"y" * 16384
        data = head
        while sent < total:
            sock.sendall(b"%x\r\n%s\r\n" % (len(data), data))
            sent += len(data)
            data = piece
        sock.settimeout(30)
        reply = b""
        while True:
            got = sock.recv(65536)
            if not got:
                return reply
            reply += got


def test_an_upload_over_the_cap_is_413_and_leaves_nothing(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    limit = 200_000
    with running(max_upload_bytes=limit) as url:
        declared = send(url, "POST", "/v1/indexes/big/files", None, **FORM,
                        **{"Content-Length": str(limit + 1)})  # fmt: skip
        assert_refused(declared, 413, "PayloadTooLarge")
        assert "--max-upload-mb" in declared.error["message"]
        streamed = chunked_upload(url, "big", limit + 1)
        status, _, rest = streamed.partition(b"\r\n")
        assert status.startswith(b"HTTP/1.1 413"), streamed[:300]
        assert b"PayloadTooLarge" in rest and b"--max-upload-mb" in rest
        nothing_written(rag_home, "big")
        assert httpx.get(f"{url}/v1/jobs").json()["jobs"] == []
        fits = upload(url, "big", (b"under.txt", b"Just under the cap, about medlars. " * 5000))
        assert fits.status == 202, fits  # the cap is the server's, not 64 KB


def test_only_the_upload_route_takes_multipart(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "n.md").write_text("Notes about rhubarb forcing pots.")
    form = multipart((b"n.txt", b"note"))
    with running() as url:
        for path in ["/v1/indexes/x/folders", "/v1/indexes/x/reindex", "/v1/ask",
                     "/v1/conversations"]:  # fmt: skip
            for kind in [FORM["Content-Type"], "text/plain", "application/x-www-form-urlencoded"]:
                got = send(url, "POST", path, form, **{"Content-Type": kind})
                assert_refused(got, 415, "UnsupportedMediaType")
        body = json.dumps({"path": str(folder)}).encode()
        for kind in ["application/json", "text/plain", None]:
            got = send(url, "POST", "/v1/indexes/x/files", body,
                       **({"Content-Type": kind} if kind else {}))  # fmt: skip
            assert_refused(got, 415, "UnsupportedMediaType")
        assert httpx.get(f"{url}/v1/jobs").json()["jobs"] == []


def test_another_site_cannot_upload_or_change_an_index(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path, tmp_path: Path
) -> None:
    """A form on another site can post multipart/form-data anywhere without asking; the
    Guard refuses it (Origin, Sec-Fetch-Site) on every index route, before any byte of
    it is written. The same request from the server's own page is taken."""
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "m.md").write_text("My own notes about gooseberries.")
    with running() as url:
        own = f"http://127.0.0.1:{port_of(url)}"
        calls = [
            ("POST", "/v1/indexes/site/files", multipart((b"x.txt", b"x")), FORM),
            ("POST", "/v1/indexes/site/folders", json.dumps({"path": str(folder)}).encode(),
             JSON_TYPE),
            ("POST", "/v1/indexes/site/reindex", b"{}", JSON_TYPE),
            ("DELETE", "/v1/indexes/site", None, {}),
            ("GET", "/v1/jobs", None, {}),
        ]  # fmt: skip
        hostile = [{"Origin": "http://evil.example"}, {"Origin": "null"},
                   {"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                   {"Origin": f"http://127.0.0.1:{port_of(url) + 1}"}]  # fmt: skip
        for method, path, body, headers in calls:
            for extra in hostile:
                got = send(url, method, path, body, **headers, **extra)
                assert_refused(got, 403, "ForbiddenHost")
        nothing_written(rag_home, "site")
        page = {"Origin": own, "Sec-Fetch-Site": "same-origin"}
        got = upload(url, "site", (b"x.txt", b"Quinces from the page."), **page)
        assert got.status == 202, got
        finished(url, got.json["job"])
        got = send(url, "POST", "/v1/indexes/site/folders", calls[1][2], **JSON_TYPE, **page)
        assert got.status == 202, got
        finished(url, got.json["job"])


def test_a_server_with_a_token_needs_it_on_every_index_route(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    with running(token=TOKEN) as url:
        for method, path, body, headers in [
            ("POST", "/v1/indexes/locked/files", multipart((b"x.txt", b"x")), FORM),
            ("POST", "/v1/indexes/locked/folders", b'{"path": "/tmp"}', JSON_TYPE),
            ("POST", "/v1/indexes/locked/reindex", None, {}),
            ("DELETE", "/v1/indexes/locked", None, {}),
            ("GET", "/v1/jobs", None, {}),
            ("GET", "/v1/jobs/abc", None, {}),
        ]:  # fmt: skip
            for auth in [{}, {"Authorization": "Bearer wrong-token-123"},
                         {"Cookie": "rag_session=forged"}]:  # fmt: skip
                got = send(url, method, path, body, **headers, **auth)
                assert_refused(got, 401, "Unauthorized")
        nothing_written(rag_home, "locked")
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        got = upload(url, "locked", (b"x.txt", b"Walnuts, gathered in autumn."), **bearer)
        assert got.status == 202, got
        with httpx.stream("GET", f"{url}/v1/jobs/{got.json['job']}", headers=bearer,
                          timeout=60) as response:  # fmt: skip
            assert [n for n, _ in events(response)][-1] == "done"
        signed = httpx.post(f"{url}/v1/session", json={"token": TOKEN})
        cookie = {"Cookie": f"rag_session={signed.cookies['rag_session']}"}
        got = upload(url, "locked", (b"y.txt", b"Hazelnuts, gathered too."), **cookie)
        assert got.status == 202, got


# --- folders, reindex, remove ------------------------------------------------------------


def test_remove_takes_the_index_and_its_uploads_never_a_users_folder(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path, docs: Path
) -> None:
    before = tree(docs)
    with running() as url:
        got = send(url, "POST", "/v1/indexes/both/folders",
                   json.dumps({"path": str(docs)}).encode(), **JSON_TYPE)  # fmt: skip
        assert got.status == 202, got
        assert finished(url, got.json["job"])["files_read"] >= 3
        got = upload(url, "both", (b"up.txt", b"An uploaded note on sloes and gin."))
        report = finished(url, got.json["job"])
        assert report["files_embedded"] == 1  # the folder's files were unchanged
        row = httpx.get(f"{url}/v1/indexes").json()["indexes"][0]
        assert sorted(row["roots"]) == sorted([str(docs), str(rag_home / "uploads" / "both")])
        assert search(url, "compost heap", "both").json()["results"]

        gone = send(url, "DELETE", "/v1/indexes/both")
        assert gone.status == 204, gone
        assert tree(docs) == before  # every file of the user's folder, byte for byte
        assert not (rag_home / "uploads" / "both").exists()
        assert not (rag_home / "indexes" / "both").exists()
        assert httpx.get(f"{url}/v1/indexes").json()["indexes"] == []
        assert search(url, "compost", "both").status_code == 404
        again = send(url, "DELETE", "/v1/indexes/both")
        assert_refused(again, 404, "IndexNotFound")


def test_folders_must_be_absolute_existing_folders(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path, tmp_path: Path
) -> None:
    a_file = tmp_path / "single.txt"
    a_file.write_text("one file")
    cases = [({"path": "notes"}, 400), ({"path": "~/notes"}, 400), ({"path": "./x"}, 400),
             ({"path": ""}, 400), ({"path": 3}, 400), ({}, 400), ({"path": "/tmp\nx"}, 400),
             ({"path": "/tmp", "extra": 1}, 400), ({"path": str(tmp_path / "missing")}, 422),
             ({"path": str(a_file)}, 422), ({"path": str(rag_home)}, 422),
             ({"path": str(rag_home / "uploads")}, 422)]  # fmt: skip
    (rag_home / "uploads").mkdir()
    with running() as url:
        for body, status in cases:
            got = send(url, "POST", "/v1/indexes/f/folders", json.dumps(body).encode(),
                       **JSON_TYPE)  # fmt: skip
            assert_refused(got, status)
        assert httpx.get(f"{url}/v1/jobs").json()["jobs"] == []


def test_reindex_reads_the_recorded_folders_again(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, tmp_path: Path
) -> None:
    folder = tmp_path / "orchard"
    folder.mkdir()
    (folder / "apples.md").write_text("Apples are picked in September.")
    with running() as url:
        assert_refused(send(url, "POST", "/v1/indexes/orchard/reindex"), 404, "IndexNotFound")
        got = send(url, "POST", "/v1/indexes/orchard/folders",
                   json.dumps({"path": str(folder)}).encode(), **JSON_TYPE)  # fmt: skip
        finished(url, got.json["job"])
        (folder / "pears.md").write_text("Pears ripen off the tree, in a cool dark room.")
        got = send(url, "POST", "/v1/indexes/orchard/reindex")  # no body, as curl -X POST
        assert got.status == 202, got
        report = finished(url, got.json["job"])
        assert report["files_embedded"] == 1 and report["files_unchanged"] == 1
        assert (
            "Pears" in search(url, "pears ripen cool room", "orchard").json()["results"][0]["text"]
        )
        got = send(url, "POST", "/v1/indexes/orchard/reindex", b'{"rebuild": true}', **JSON_TYPE)
        assert finished(url, got.json["job"])["files_embedded"] == 2
        bad = send(url, "POST", "/v1/indexes/orchard/reindex", b'{"rebuild": 3}', **JSON_TYPE)
        assert_refused(bad, 400)


def test_a_server_with_index_manages_only_those(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, docs: Path, rag_home: Path
) -> None:
    from indexers.build import build_index
    from rag.core.config import load_settings

    build_index([docs / "notes.md"], "notes", load_settings(embedder="fake"))
    with running(indexes=("notes",)) as url:
        assert_refused(upload(url, "other", (b"x.txt", b"x")), 403, "Forbidden")
        assert_refused(send(url, "DELETE", "/v1/indexes/other"), 403, "Forbidden")
        got = upload(url, "notes", (b"x.txt", b"Damsons make the best jam."))
        assert got.status == 202, got
        finished(url, got.json["job"])
    assert not (rag_home / "uploads" / "other").exists()


# --- jobs ---------------------------------------------------------------------------------


class GatedEmbedder(FakeEmbedder):
    """The fake embedder, holding every embed until `gate` is set."""

    def __init__(self) -> None:
        super().__init__("fake")
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def embed(self, texts: Any) -> Any:
        self.waiting.set()
        assert self.gate.wait(60), "the test never opened the gate"
        return super().embed(texts)


@pytest.fixture
def gated(register_part: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[GatedEmbedder]:
    embedder = GatedEmbedder()
    register_part("embedder", "fake", returning(embedder))
    monkeypatch.setenv("RAG_EMBEDDER", "fake")
    yield embedder
    embedder.gate.set()


def test_a_job_streams_its_events_and_a_late_subscriber_gets_its_state(
    fake: FakeGenerator, gated: GatedEmbedder, rag_home: Path
) -> None:
    with running() as url:
        got = upload(url, "slow", (b"slow.md", b"Medlars are eaten bletted, in winter."))
        assert got.status == 202, got
        job = got.json["job"]
        assert gated.waiting.wait(60)  # the job is embedding, held
        # One job at a time per index: another upload, a reindex, a removal wait for it.
        busy = upload(url, "slow", (b"two.md", b"more"))
        assert_refused(busy, 409, "IndexBusy")
        assert job in busy.error["message"]
        assert_refused(send(url, "DELETE", "/v1/indexes/slow"), 409, "IndexBusy")
        assert sorted(tree(rag_home / "uploads" / "slow")) == ["slow.md"]  # not two.md
        other = upload(url, "elsewhere", (b"e.md", b"Another index is not held up by it."))
        assert other.status == 202, other  # queued behind it
        running_job = httpx.get(f"{url}/v1/jobs").json()["jobs"]
        assert {j["id"]: j["state"] for j in running_job}[job] == "running"

        with httpx.stream("GET", f"{url}/v1/jobs/{job}", timeout=60) as response:
            stream = events(response)
            first = next(stream)  # the job's current state, at once
            assert first[0] == "progress" and first[1]["stage"] in ("starting", "read"), first
            gated.gate.set()
            rest = list(stream)
        assert rest[-1][0] == "done" and rest[-1][1]["files_read"] == 1
        assert [n for n, _ in rest[:-1]] == ["progress"] * (len(rest) - 1)
        assert {d["stage"] for n, d in rest if n == "progress"} <= {"read", "embed", "write"}
        # After its end, a subscriber gets the end alone.
        assert follow(url, job) == [rest[-1]]
        assert finished(url, other.json["job"])["files_read"] == 1
        assert_refused(send(url, "GET", "/v1/jobs/nope"), 404, "NotFound")


def test_a_stalled_upload_is_408_and_leaves_nothing(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    """A client that stops sending mid-upload is let go after the read deadline; the part
    it sent is removed, and the index is free again."""
    body = multipart((b"stall.txt", b"s" * 50_000))
    with running(read_timeout_s=1.0) as url:
        with socket.create_connection(("127.0.0.1", port_of(url)), timeout=30) as sock:
            sock.sendall(
                f"POST /v1/indexes/stall/files HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:30_000]
            )
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
        assert b"RequestTimeout" in reply and b"stalled" in reply
        nothing_written(rag_home, "stall")
        assert httpx.get(f"{url}/v1/jobs").json()["jobs"] == []
        ok = upload(url, "stall", (b"fine.txt", b"Cobnuts in September."))
        assert ok.status == 202, ok


def test_rag_serve_takes_max_upload_mb(fake: FakeGenerator) -> None:
    from index_fixtures import cli

    for bad in ("0", "-3", "2000000"):
        result = cli("serve", "--max-upload-mb", bad)
        assert result.exit_code == 2, result.output
        assert "--max-upload-mb must be between 1 and 1048576" in result.output
    assert "--max-upload-mb" in cli("serve", "--help").output


def test_a_job_waits_for_another_writer_of_its_index(
    fake: FakeGenerator, fake_embedder: FakeEmbedder, rag_home: Path
) -> None:
    """A `rag index` in a terminal (or a `--watch` update) holding the index's lock makes
    a job wait for it, as `rag index --wait` does, instead of failing at once."""
    from filelock import FileLock

    with running() as url:
        got = upload(url, "shared", (b"one.md", b"Sloes are picked after the first frost."))
        finished(url, got.json["job"])
        lock = FileLock(str(rag_home / "indexes" / "shared" / "write.lock"))
        lock.acquire(timeout=10)
        try:
            got = send(url, "POST", "/v1/indexes/shared/reindex", b'{"rebuild": true}', **JSON_TYPE)
            assert got.status == 202, got
            with httpx.stream("GET", f"{url}/v1/jobs/{got.json['job']}", timeout=120) as response:
                stream = events(response)
                assert next(stream)[0] == "progress"
                lock.release()
                name, data = list(stream)[-1]
        finally:
            if lock.is_locked:
                lock.release()
        assert name == "done" and data["files_embedded"] == 1, data
