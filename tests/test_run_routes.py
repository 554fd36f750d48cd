"""`rag serve --runs DIR`: eval runs over HTTP (GET /v1/runs, /v1/runs/NAME, its plot), served
by the `route` part `evals` plugs in. A real run made with `rag eval run` (the fake model
reading from a fake-embedder index), then a real server on 127.0.0.1."""

# ruff: noqa: F811 - pytest fixtures imported from index_fixtures are redefined as arguments
from __future__ import annotations

import http.client
import json
import shutil
import urllib.parse
from pathlib import Path

import httpx
import pytest
from conftest import FakeGenerator
from index_fixtures import fake_embedder  # noqa: F401 - fixture
from test_serve import running
from typer.testing import CliRunner

from rag.cli.app import app

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "eval"
NQ = str(FIXTURES / "nq_open.jsonl")
NOT_STARTED = "start rag serve with --runs DIR"


def cli(*args: str):  # noqa: ANN201 - click Result
    return CliRunner().invoke(app, list(args))


def reply(messages) -> str:  # noqa: ANN001 - rag.core.types.Message list
    """Closed book it knows only Emma's author; with evidence it finds Canberra and is misled
    about Emma: one question the evidence helps, one it hurts."""
    user = messages[-1].content
    with_evidence = "<source" in user
    if "emma" in user:
        return "Charles Dickens" if with_evidence else "Jane Austen"
    if "australia" in user and with_evidence:
        return "Canberra"
    return "I am not sure."


@pytest.fixture
def runs(tmp_path: Path, fake_model: FakeGenerator, fake_embedder) -> Path:
    """A folder of run folders: `good` (closed + index:tiny), `broken` (a manifest that is
    not JSON), `badline` (a damaged predictions line), and `notes` (no manifest: not a run)."""
    built = cli("index", str(FIXTURES / "corpus.jsonl"), "--name", "tiny")
    assert built.exit_code == 0, built.output
    fake_model.reply = reply
    root = tmp_path / "runs"
    good = root / "good"
    done = cli(
        "eval", "run", "-b", NQ, "-c", "closed,index:tiny", "-k", "1", "-m", "fake:",
        "--out", str(good),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    (root / "broken").mkdir()
    (root / "broken" / "manifest.json").write_text("{not json")
    shutil.copytree(good, root / "badline")
    with (root / "badline" / "predictions.jsonl").open("a") as fh:
        fh.write('{"qid": "q9"}\n')
    (root / "notes").mkdir()
    (root / "notes" / "todo.txt").write_text("not a run")
    return root


def report_error(folder: Path) -> str:
    """The one line `rag eval report FOLDER` fails with, without its `Error: `."""
    result = cli("eval", "report", str(folder))
    assert result.exit_code == 2 and "Traceback" not in result.output
    return " ".join(result.output.split()).removeprefix("Error: ")


def raw_get(url: str, path: str) -> tuple[int, dict]:
    """GET `path` byte for byte (httpx would resolve `..` before sending it)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_runs_list_the_run_folders_and_name_the_damaged_ones(runs: Path) -> None:
    with running(runs_dir=runs) as url:
        got = httpx.get(f"{url}/v1/runs", timeout=60)
    assert got.status_code == 200, got.text
    listed = {run["name"]: run for run in got.json()["runs"]}
    assert set(listed) == {"good", "broken", "badline"}  # `notes` holds no manifest.json
    manifest = json.loads((runs / "good" / "manifest.json").read_text())
    good = listed["good"]
    assert good == {
        "name": "good",
        "benchmark": manifest["benchmark"],
        "model": "fake:",
        "conditions": ["closed", "index:tiny"],
        "n": 5,
        "created": manifest["created"],
        "error": None,
    }
    broken = listed["broken"]["error"]
    assert broken["message"] == report_error(runs / "broken") and broken["exit_code"] == 2
    assert listed["broken"]["benchmark"] is None


def test_a_run_has_its_results_plot_and_the_questions_evidence_helped_and_hurt(
    runs: Path,
) -> None:
    good = runs / "good"
    with running(runs_dir=runs) as url:
        got = httpx.get(f"{url}/v1/runs/good", timeout=60)
        plot = httpx.get(f"{url}/v1/runs/good/plot.png", timeout=60)
    assert got.status_code == 200, got.text
    body = got.json()
    results = json.loads((good / "results.json").read_text())
    assert body["name"] == "good" and body["results"] == results
    assert body["plot"] == "/v1/runs/good/plot.png"
    assert plot.status_code == 200 and plot.headers["content-type"] == "image/png"
    assert plot.content == (good / "report.png").read_bytes()
    # the report's own counts, question by question
    comparison = results["comparisons"][0]
    assert comparison["helped"] == len(body["helped"]) == 1
    assert comparison["hurt"] == len(body["hurt"]) == 1
    helped, hurt = body["helped"][0], body["hurt"][0]
    assert helped["question"] == "what is the capital of australia"
    assert helped["answers"] == ["Canberra"] and helped["condition"] == "index:tiny"
    assert helped["closed_answer"] == "I am not sure." and helped["answer"] == "Canberra"
    assert [e["title"] for e in helped["evidence"]] == ["Canberra"]
    assert "capital city of Australia" in helped["evidence"][0]["text"]
    assert set(helped["evidence"][0]) == {"title", "location", "text"}
    assert hurt["question"] == "who wrote the novel emma"
    assert hurt["closed_answer"] == "Jane Austen" and hurt["answer"] == "Charles Dickens"
    assert hurt["evidence"] and all(e["text"] for e in hurt["evidence"])


def test_a_damaged_run_is_the_one_line_rag_eval_report_gives(runs: Path) -> None:
    with running(runs_dir=runs) as url:
        badline = httpx.get(f"{url}/v1/runs/badline", timeout=60)
        broken = httpx.get(f"{url}/v1/runs/broken", timeout=60)
    for folder, got in ((runs / "badline", badline), (runs / "broken", broken)):
        assert got.status_code == 422, got.text
        error = got.json()["error"]
        assert error["message"] == report_error(folder)
        assert error["exit_code"] == 2 and "Traceback" not in got.text
    assert "line 11" in badline.json()["error"]["message"]


def test_a_run_name_is_never_a_path(runs: Path) -> None:
    (runs / "secret.png").write_bytes(b"\x89PNG not yours")
    with running(runs_dir=runs / "good") as url:
        for path in (
            "/v1/runs/..",
            "/v1/runs/%2E%2E",
            "/v1/runs/../plot.png",
            "/v1/runs/%2E%2E/plot.png",
            "/v1/runs/good%2F..%2Fbroken",
            "/v1/runs/..%5Csecret.png",
            "/v1/runs/good/../../secret.png",
        ):
            status, body = raw_get(url, path)
            assert status == 400, (path, status, body)
            assert "not a path" in body["error"]["message"], (path, body)
        status, body = raw_get(url, "/v1/runs/badline")
        assert status == 404 and "GET /v1/runs" in body["error"]["message"]


def test_one_run_folder_as_dir_and_a_run_without_its_plot(runs: Path) -> None:
    (runs / "good" / "report.png").unlink()
    with running(runs_dir=runs / "good") as url:
        listed = httpx.get(f"{url}/v1/runs", timeout=60).json()["runs"]
        run = httpx.get(f"{url}/v1/runs/good", timeout=60)
        plot = httpx.get(f"{url}/v1/runs/good/plot.png", timeout=60)
    assert [r["name"] for r in listed] == ["good"]
    assert run.status_code == 200 and run.json()["plot"] is None
    assert plot.status_code == 404 and "no plot" in plot.json()["error"]["message"]


def test_without_runs_the_api_says_how_to_start_it(fake_model: FakeGenerator) -> None:
    with running() as url:
        for path in ("/v1/runs", "/v1/runs/good", "/v1/runs/good/plot.png"):
            got = httpx.get(f"{url}{path}", timeout=60)
            assert got.status_code == 404, (path, got.text)
            assert NOT_STARTED in got.json()["error"]["message"]


def test_the_runs_api_needs_the_token(runs: Path) -> None:
    with running(runs_dir=runs, token="s3cret-token") as url:
        refused = httpx.get(f"{url}/v1/runs", timeout=60)
        allowed = httpx.get(
            f"{url}/v1/runs", headers={"Authorization": "Bearer s3cret-token"}, timeout=60
        )
    assert refused.status_code == 401 and allowed.status_code == 200


def test_serve_refuses_a_runs_folder_that_does_not_exist(tmp_path: Path) -> None:
    result = cli("serve", "--runs", str(tmp_path / "missing"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--runs" in result.output and "does not exist" in result.output


def test_a_symlink_in_a_run_folder_never_serves_a_file_from_elsewhere(
    runs: Path, tmp_path: Path
) -> None:
    """A plot, a manifest or a whole run folder that is a symlink to a file elsewhere is
    refused, never read: before, GET .../plot.png served whatever the link named."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the password is hunter2")
    (runs / "good" / "report.png").unlink()
    (runs / "good" / "report.png").symlink_to(secret)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(runs / "good", elsewhere, symlinks=True)
    (runs / "linked").symlink_to(elsewhere, target_is_directory=True)
    shutil.copytree(runs / "good", runs / "linkedmanifest", symlinks=True)
    (runs / "linkedmanifest" / "manifest.json").unlink()
    (runs / "linkedmanifest" / "manifest.json").symlink_to(secret)
    with running(runs_dir=runs) as url:
        plot = httpx.get(f"{url}/v1/runs/good/plot.png", timeout=60)
        listed = httpx.get(f"{url}/v1/runs", timeout=60).json()["runs"]
        linked = httpx.get(f"{url}/v1/runs/linked", timeout=60)
        manifest = httpx.get(f"{url}/v1/runs/linkedmanifest", timeout=60)
    assert plot.status_code == 422 and "symlink" in plot.json()["error"]["message"]
    assert "hunter2" not in plot.text
    assert "linked" not in {run["name"] for run in listed}
    assert linked.status_code == 404 and "hunter2" not in linked.text
    assert manifest.status_code in (404, 422) and "hunter2" not in manifest.text


def test_a_huge_predictions_file_is_one_line_not_the_server_s_memory(runs: Path) -> None:
    """A 3 GB predictions.jsonl took the server to 9.7 GB; now it is refused by its size
    (a sparse file here: nothing is written to disk)."""
    predictions = runs / "good" / "predictions.jsonl"
    with predictions.open("ab") as handle:
        handle.truncate(300 * 1024 * 1024)
    with running(runs_dir=runs) as url:
        got = httpx.get(f"{url}/v1/runs/good", timeout=120)
    assert got.status_code == 422, got.text
    assert "MiB pocketrag reads from one file" in got.json()["error"]["message"]
    report = cli("eval", "report", str(runs / "good"))
    assert report.exit_code == 2 and "Traceback" not in report.output
