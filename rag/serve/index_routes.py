"""The research desk's index management: upload files into an index, add a folder to it,
reindex it, remove it, and follow each job as it runs.

    POST   /v1/indexes/NAME/files    multipart/form-data, field `files` -> 202 {"job", "files"}
    POST   /v1/indexes/NAME/folders  {"path": "/abs/folder"}             -> 202 {"job"}
    POST   /v1/indexes/NAME/reindex  {"rebuild"?: bool} or no body       -> 202 {"job"}
    DELETE /v1/indexes/NAME                                              -> 204
    GET    /v1/jobs                  {"jobs": [...]}, newest first
    GET    /v1/jobs/ID               server-sent events: progress, done, error

Every job is `rag index` itself (`indexers.build.build_index`, on the job thread of
`rag.serve.jobs`): the same loaders, skip rules and report (`done` is `rag index --json`).
An index keeps its folders: an upload adds `$RAG_HOME/uploads/NAME/` to them, a folder
adds itself, a reindex reads the ones recorded. Removing an index removes its files
(`rag indexes remove`) and its upload folder, never a folder of the user's.

NAME is a plain index name (`rag.core.names.NAME`), never a path (400); with
`rag serve --index`, only those indexes (403). A job already running for the index is
409, an unknown index 404, an upload over `--max-upload-mb` 413. These routes pass the
same checks as every /v1 route (`app.Guard`: Host, Origin, cross-site, token); the upload
route alone takes multipart, every other one JSON only (415).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from rag.core.config import Settings
from rag.core.errors import IndexNotFound, UsageError
from rag.core.names import NAME, is_path_name
from rag.serve import uploads
from rag.serve.errors import Forbidden, NotFound, Stopped, error_body, status_for
from rag.serve.fields import check_fields, flag
from rag.serve.jobs import TERMINAL, Job, Jobs, Progress
from rag.serve.routes import endpoint, read_json, warm_of
from rag.serve.streaming import EventStream, sse

#: The one route whose body is streamed to disk instead of read whole (`app.Guard`).
UPLOAD_PATH = re.compile(r"/v1/indexes/[^/]+/files")
#: Seconds between keep-alive comments on a quiet job stream (a proxy may drop an idle one).
KEEPALIVE_S = 15.0
#: Seconds a job waits for another writer of its index (a `rag index` in a terminal, a
#: `--watch` update) to finish before it fails with IndexBusy (`rag index --wait`).
WRITER_WAIT_S = 60.0


class BadFolder(UsageError):
    """A folder to add that is not an existing, absolute folder path."""

    status = 422


def is_upload(scope: Scope) -> bool:
    """Whether a request is an upload, whose body its endpoint streams to disk."""
    return (
        scope.get("method") == "POST" and UPLOAD_PATH.fullmatch(scope.get("path", "")) is not None
    )


def routes() -> list[Route]:
    """This module's routes, for `rag.serve.app.create_app`'s list."""
    return [
        Route("/v1/indexes/{name}", remove, methods=["DELETE"]),
        Route("/v1/indexes/{name}/files", upload, methods=["POST"]),
        Route("/v1/indexes/{name}/folders", add_folder, methods=["POST"]),
        Route("/v1/indexes/{name}/reindex", reindex, methods=["POST"]),
        Route("/v1/jobs", list_jobs, methods=["GET"]),
        Route("/v1/jobs/{ident}", watch_job, methods=["GET"]),
    ]


def jobs_of(request: Request) -> Jobs:
    state = request.app.state
    jobs = getattr(state, "jobs", None)
    if jobs is None:
        jobs = state.jobs = Jobs()
    return jobs


def name_of(request: Request) -> str:
    """The index the path names: a plain name (400 for a path), one this server serves
    (403 otherwise, with `rag serve --index`)."""
    name = request.path_params["name"]
    if is_path_name(name) or not NAME.fullmatch(name):
        raise UsageError(
            f"{name[:80]!r} is not an index name: use letters, digits, '.', '_' or '-' "
            "(up to 64, not starting with a dot); paths are not taken."
        )
    served = warm_of(request).config.indexes
    if served and name not in served:
        raise Forbidden(
            f"Index {name!r} is not served here; this server manages "
            f"{', '.join(sorted(served))} only."
        )
    return name


def _exists(settings: Settings, name: str) -> bool:
    from indexers import stores
    from indexers.stores.base import resolve_index_dir

    return stores.recorded_store(resolve_index_dir(name, settings)) is not None


def _not_found(name: str) -> IndexNotFound:
    return IndexNotFound(f"No index named {name!r}. See GET /v1/indexes.")


def _recorded(settings: Settings, name: str) -> tuple[list[str], str | None, list[str]] | None:
    """The folders, embedder and exclude patterns index `name` records, or None when there
    is no index."""
    from indexers import stores

    if not _exists(settings, name):
        return None
    state = stores.open_store(name, settings).state(allow_outdated=True)
    if state is None:
        return None
    p = state.params
    return [str(r) for r in p.get("roots", [])], p.get("embedder"), list(p.get("exclude", []))


def build(
    settings: Settings, name: str, add: Path | None, rebuild: bool, progress: Progress
) -> dict[str, Any]:
    """`rag index` for a job: the index's recorded folders plus `add` (when given), with
    the embedder and the exclude patterns it was built with (a new index: the server's,
    and none)."""
    from indexers.build import build_index

    recorded = _recorded(settings, name)
    roots, embedder, exclude = recorded if recorded is not None else ([], None, [])
    if add is not None and str(add.resolve()) not in roots:
        roots.append(str(add.resolve()))
    if embedder:
        settings = settings.with_overrides(embedder=embedder)
    report = build_index(
        roots,
        name,
        settings,
        rebuild=rebuild,
        exclude=exclude,
        wait=WRITER_WAIT_S,
        progress=progress,
    )
    return report.as_dict()


async def in_thread(work: Any) -> Any:
    return await anyio.to_thread.run_sync(work)


def accepted(job: Job, **more: Any) -> JSONResponse:
    return JSONResponse({"job": job.id, "index": job.index, **more}, status_code=202)


async def upload(request: Request) -> Response:
    """Stream the files to `$RAG_HOME/uploads/NAME/`, then index them (a new index is
    made from them). A refused upload leaves nothing behind; a job that fails removes
    the files it brought. An error may come before the body was read: the connection
    is then closed after it."""
    try:
        return await _upload(request)
    except (ClientDisconnect, Stopped):
        return Response(status_code=499)
    except Exception as exc:  # noqa: BLE001 - reported as JSON
        return JSONResponse(
            error_body(exc), status_code=status_for(exc), headers={"Connection": "close"}
        )


async def _upload(request: Request) -> Response:
    warm = warm_of(request)
    name = name_of(request)
    uploads.boundary_of(request)  # 415 before anything is reserved or written
    jobs = jobs_of(request)
    job = jobs.reserve(name, "files")
    try:
        folder = await in_thread(lambda: uploads.upload_folder(warm.settings, name))
        saved = await uploads.receive_files(request, folder)
    except BaseException:
        jobs.release(job)
        raise
    job.files = [item.name for item in saved]
    settings, new = warm.settings, not await in_thread(lambda: _exists(warm.settings, name))

    def cleanup(ok: bool) -> None:
        if ok:
            return
        uploads.remove_saved(saved)  # the upload did not happen: its files go too
        if new:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty

    jobs.start(job, lambda progress: build(settings, name, folder, False, progress), cleanup)
    return accepted(job, files=job.files)


def folder_path(raw: Any, settings: Settings) -> Path:
    """The folder to add: absolute, existing, a folder, outside RAG_HOME (400, 422)."""
    if not isinstance(raw, str) or not raw.strip():
        raise UsageError('Give the folder to add as {"path": "/absolute/folder"}.')
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise UsageError(f"The folder path {raw[:80]!r} holds a control character.")
    if not raw.startswith("/"):
        raise UsageError(
            f"The folder path {raw[:80]!r} is not absolute: give it from the root, "
            "/home/me/notes (not ~ or a relative path: the server has no current folder "
            "of yours)."
        )
    try:
        info = os.stat(raw)
    except OSError as exc:
        raise BadFolder(f"Cannot use {raw[:200]}: {exc.strerror or exc}.") from None
    if not stat.S_ISDIR(info.st_mode):
        raise BadFolder(f"{raw[:200]} is not a folder; add a folder (upload single files).")
    path = Path(raw).resolve()
    home = settings.home.resolve()
    if path == home or path.is_relative_to(home):
        raise BadFolder(f"{path} is inside pocketrag's own folder ({home}); it is not indexed.")
    return path


@endpoint
async def add_folder(request: Request) -> Response:
    """`{"path": "/abs/folder"}`: index the folder into NAME (made when new), beside the
    folders it already has."""
    warm = warm_of(request)
    name = name_of(request)
    fields = await read_json(request)
    check_fields(fields, {"path"}, f"POST /v1/indexes/{name}/folders")
    settings = warm.settings
    path = await in_thread(lambda: folder_path(fields.get("path"), settings))
    job = jobs_of(request).reserve(name, "folders")
    jobs_of(request).start(job, lambda progress: build(settings, name, path, False, progress))
    return accepted(job)


async def optional_json(request: Request) -> dict[str, Any]:
    """The JSON body, or {} for a request without one (`curl -X POST`)."""
    if not request.headers.get("content-type") and not await request.body():
        return {}
    return await read_json(request)


@endpoint
async def reindex(request: Request) -> Response:
    """Read NAME's recorded folders again (`rag index --name NAME`); `{"rebuild": true}`
    re-reads and re-embeds every file (`--rebuild`)."""
    warm = warm_of(request)
    name = name_of(request)
    where = f"POST /v1/indexes/{name}/reindex"
    fields = await optional_json(request)
    check_fields(fields, {"rebuild"}, where)
    rebuild = flag(fields, "rebuild", where)
    settings = warm.settings
    if not await in_thread(lambda: _exists(settings, name)):
        raise _not_found(name)
    job = jobs_of(request).reserve(name, "reindex")
    jobs_of(request).start(job, lambda progress: build(settings, name, None, rebuild, progress))
    return accepted(job)


def remove_index(settings: Settings, name: str) -> list[str]:
    """`rag indexes remove NAME` and the index's upload folder; the names of files left
    in the index folder because pocketrag did not write them. Never a folder the index
    reads other than its own uploads."""
    from indexers import stores

    had_index = _exists(settings, name)
    folder = settings.uploads_dir / name
    had_uploads = folder.is_dir() and not folder.is_symlink()
    if not had_index and not had_uploads:
        raise _not_found(name)
    left = stores.open_store(name, settings).remove() if had_index else []
    if had_uploads:
        try:
            shutil.rmtree(folder)
        except OSError as exc:
            from rag.core.files import storage_error

            raise storage_error(folder, exc, "remove") from None
    return left


@endpoint
async def remove(request: Request) -> Response:
    """The index and its uploads; 204. 409 while a job runs on it."""
    warm = warm_of(request)
    name = name_of(request)
    jobs = jobs_of(request)
    job = jobs.reserve(name, "remove")  # no job may start on it meanwhile
    try:
        left = await in_thread(lambda: remove_index(warm.settings, name))
    finally:
        jobs.release(job)
    headers = {"X-Pocketrag-Kept": str(len(left))} if left else None
    return Response(status_code=204, headers=headers)


def _listed(request: Request) -> Any:
    served = set(warm_of(request).config.indexes)
    return lambda index: not served or index in served


@endpoint
async def list_jobs(request: Request) -> Response:
    """`{"jobs": [...]}`: the jobs kept, newest first."""
    return JSONResponse({"jobs": jobs_of(request).listed(_listed(request))})


@endpoint
async def watch_job(request: Request) -> Response:
    """The job's events: its current state first, then each later one, to its end."""
    job = jobs_of(request).get(request.path_params["ident"])
    if not _listed(request)(job.index):  # an index this server does not serve
        raise NotFound(f"No job {job.id!r} on this server (GET /v1/jobs lists them).")

    async def events() -> Any:
        current, inbox = job.subscribe()
        try:
            event = current
            while True:
                yield sse(event[1], event[0])
                if event[0] in TERMINAL:
                    return
                event = None
                while event is None:
                    with anyio.move_on_after(KEEPALIVE_S):
                        event = await inbox.get()
                    if event is None:
                        yield b": keep-alive\n\n"
        finally:
            job.unsubscribe(inbox)

    return EventStream(events())
