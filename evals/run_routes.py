"""GET /v1/runs, /v1/runs/NAME and /v1/runs/NAME/plot.png: the eval runs of `rag serve
--runs DIR`, for the research desk.

`evals` sits above the server, so these routes reach it as a `route` part (registered in
`evals.plugin`); the server's guard and token apply to them as to every route. Reading
and scoring are `evals.run_folders`'; this module only answers HTTP. A damaged run folder
is a 422 with the one line `rag eval report` gives for it; a name that is a path, a 400.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from evals.jsonl import read_regular
from evals.run_folders import PLOT, check_name, find_runs, run_detail, summary
from rag.core.errors import RagError, UsageError
from rag.core.files import storage_error
from rag.serve.config import ServeConfig
from rag.serve.errors import NotFound, error_body
from rag.serve.routes import endpoint


class DamagedRun(UsageError):
    """A run folder that cannot be read as a run (its manifest or a predictions line is
    damaged): the request is fine, the folder is not."""

    status = 422


#: The plot's name in the URL (the file in the folder is `PLOT`).
PLOT_NAME = "plot.png"
PNG_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
#: A report's plot is some 100 KB; a bigger file is not a plot `rag eval report` drew.
MAX_PLOT_BYTES = 20 * 1024 * 1024
FIX_PLOT = "Run `rag eval report` on the run folder to draw its plot again."
#: What GET /v1/runs gives for a run whose manifest cannot be read, besides its name and error.
EMPTY_SUMMARY = {"benchmark": None, "model": None, "conditions": None, "n": None, "created": None}


def routes(config: ServeConfig) -> list[Route]:
    """The runs API over `config.runs_dir`; without one, each route says how to get one."""
    root = config.runs_dir

    def folders() -> dict[str, Path]:
        if root is None:
            raise NotFound(
                "This server shows no eval runs: start rag serve with --runs DIR (a run "
                "folder of `rag eval run`, or a folder of run folders)."
            )
        return find_runs(root)

    def folder_of(name: str) -> Path:
        check_name(name)
        found = folders().get(name)
        if found is None:
            raise NotFound(f"No eval run {name!r} in {root}; GET /v1/runs lists the runs.")
        return found

    def listing() -> dict[str, Any]:
        rows = []
        for name, folder in folders().items():
            try:
                rows.append({**summary(name, folder), "error": None})
            except RagError as exc:
                rows.append({"name": name, **EMPTY_SUMMARY, "error": error_body(exc)["error"]})
        rows.sort(key=lambda row: row["created"] or "", reverse=True)  # newest first
        return {"runs": rows}

    def detail(name: str) -> dict[str, Any]:
        folder = folder_of(name)
        try:
            found = run_detail(folder)
        except UsageError as exc:  # the folder's fault, said as `rag eval report` says it
            raise DamagedRun(str(exc)) from None
        plot = f"/v1/runs/{urllib.parse.quote(name, safe='')}/{PLOT_NAME}"
        return {
            "name": name,
            "results": found["results"],
            "plot": plot if (folder / PLOT).is_file() else None,
            "helped": found["helped"],
            "hurt": found["hurt"],
        }

    def plot_of(name: str) -> bytes:
        path = folder_of(name) / PLOT
        if not path.is_file():
            raise NotFound(
                f"The run {name!r} has no plot ({PLOT}); `rag eval report` on its folder draws one."
            )
        try:  # never through a symlink out of the run folder, never a huge file
            return read_regular(path, FIX_PLOT, limit=MAX_PLOT_BYTES)
        except UsageError as exc:
            raise DamagedRun(str(exc)) from None
        except OSError as exc:
            raise storage_error(path, exc, "read") from None

    @endpoint
    async def runs(request: Request) -> Response:
        return JSONResponse(await anyio.to_thread.run_sync(listing))

    @endpoint
    async def run(request: Request) -> Response:
        rest = request.path_params["rest"]
        head, _, tail = rest.rpartition("/")
        if head and tail == PLOT_NAME:
            png = await anyio.to_thread.run_sync(plot_of, head)
            return Response(png, media_type="image/png", headers=PNG_HEADERS)
        return JSONResponse(await anyio.to_thread.run_sync(detail, rest))

    # `{rest:path}`: a name with an encoded `/` or `..` reaches `check_name` (a 400) rather
    # than missing every route (a 404 that would not say why)
    return [
        Route("/v1/runs", runs, methods=["GET"]),
        Route("/v1/runs/{rest:path}", run, methods=["GET"]),
    ]
