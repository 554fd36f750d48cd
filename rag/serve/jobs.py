"""Index jobs of `rag serve`: an upload, a folder added or a reindex, each run on the
server's one job thread through the call `rag index` makes (`indexers.build.build_index`),
while any number of clients follow it as server-sent events.

One job at a time per index: a second one for the same index is refused (409) until the
first ends, and jobs for different indexes take turns (one build at a time, so two never
share the two cores and the memory of one). A job says what it is doing as it goes: each
event is kept as the job's current state, so a client that subscribes late first gets
that state (its last `progress`, or its `done` or `error`), then every later event.
Jobs are kept in memory only: the newest `KEEP` finished ones stay listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import queue
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rag.core.errors import IndexBusy
from rag.serve.errors import NotFound, error_body

#: Finished jobs kept for `GET /v1/jobs` and late subscribers.
KEEP = 100
#: (stage, done, total): `rag index`'s progress callback.
Progress = Callable[[str, int, int], None]
#: A job's work, run on the job thread: its progress callback in, the report out.
Work = Callable[[Progress], dict[str, Any]]
#: What a job's work calls when it ends, whichever way (cleanup of an upload that failed).
Finally = Callable[[bool], None]
TERMINAL = ("done", "error")


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Job:
    """One job and the clients following it. `state`: queued, running, done or error."""

    id: str
    index: str
    kind: str  # files, folders, reindex
    created: str = field(default_factory=_now)
    state: str = "queued"
    finished: str | None = None
    #: The last event, as a late subscriber gets it first.
    last: tuple[str, dict[str, Any]] = ("progress", {})
    files: list[str] = field(default_factory=list)  # what an upload saved
    _subscribers: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Any]]] = field(
        default_factory=list
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.last = ("progress", progress_event("queued", 0, 0))

    def publish(self, event: str, data: dict[str, Any]) -> None:
        """Record `event` as the current state and hand it to every subscriber (from any
        thread: each gets it on its own event loop)."""
        with self._lock:
            self.last = (event, data)
            if event in TERMINAL:
                self.state, self.finished = event, _now()
            elif self.state == "queued" and data.get("stage") != "queued":
                self.state = "running"
            subscribers = list(self._subscribers)
        for loop, inbox in subscribers:
            with contextlib.suppress(RuntimeError):  # a closed loop: the server is stopping
                loop.call_soon_threadsafe(inbox.put_nowait, (event, data))

    def subscribe(self) -> tuple[tuple[str, dict[str, Any]], asyncio.Queue[Any]]:
        """The current state and a queue of the events after it (on the running loop)."""
        inbox: asyncio.Queue[Any] = asyncio.Queue()
        with self._lock:
            self._subscribers.append((asyncio.get_running_loop(), inbox))
            return self.last, inbox

    def unsubscribe(self, inbox: asyncio.Queue[Any]) -> None:
        with self._lock:
            self._subscribers = [(lp, q) for lp, q in self._subscribers if q is not inbox]

    @property
    def done(self) -> bool:
        return self.state in TERMINAL

    def summary(self) -> dict[str, Any]:
        """The job as `GET /v1/jobs` lists it."""
        with self._lock:
            event, data = self.last
            row: dict[str, Any] = {
                "id": self.id,
                "index": self.index,
                "kind": self.kind,
                "state": self.state,
                "created": self.created,
                "finished": self.finished,
                "files": list(self.files),
                "progress": data if event == "progress" else None,
            }
            if event == "done":
                row["report"] = data
            elif event == "error":
                row["error"] = data["error"]
            return row


def progress_event(stage: str, done: int, total: int, path: str | None = None) -> dict[str, Any]:
    """A `progress` event's data. `total` 0: not known ahead (chunks embedded so far)."""
    return {"stage": stage, "done": done, "total": total, "path": path}


class Jobs:
    """Every job of one server, and the thread that runs them one after another."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._active: dict[str, Job] = {}  # index name -> its unfinished job
        self._lock = threading.Lock()
        self._queue: queue.Queue[tuple[Job, Work, Finally | None]] = queue.Queue()
        self._thread: threading.Thread | None = None

    def reserve(self, index: str, kind: str) -> Job:
        """A new job for `index`, not started yet; IndexBusy (409) while another one of
        that index has not ended."""
        with self._lock:
            busy = self._active.get(index)
            if busy is not None:
                raise IndexBusy(
                    f"Index {index!r} has a job running ({busy.kind}, job {busy.id}); wait "
                    f"for it to end (GET /v1/jobs/{busy.id}), then try again."
                )
            job = Job(id=secrets.token_hex(6), index=index, kind=kind)
            self._active[index] = job
            self._jobs[job.id] = job
            self._trim()
            return job

    def release(self, job: Job) -> None:
        """Forget a reserved job that never started (its upload failed)."""
        with self._lock:
            if self._active.get(job.index) is job:
                del self._active[job.index]
            self._jobs.pop(job.id, None)

    def start(self, job: Job, work: Work, cleanup: Finally | None = None) -> None:
        """Queue `job` to run `work` on the job thread; `cleanup(ok)` runs after it."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="rag-serve-jobs", daemon=True
                )
                self._thread.start()
        self._queue.put((job, work, cleanup))

    def get(self, ident: str) -> Job:
        with self._lock:
            job = self._jobs.get(ident)
        if job is None:
            raise NotFound(f"No job {ident!r} on this server (GET /v1/jobs lists them).")
        return job

    def running(self, index: str) -> Job | None:
        with self._lock:
            return self._active.get(index)

    def listed(self, allowed: Callable[[str], bool]) -> list[dict[str, Any]]:
        """Every job kept whose index `allowed` says may be shown, newest first."""
        with self._lock:
            jobs = list(self._jobs.values())
        return [job.summary() for job in reversed(jobs) if allowed(job.index)]

    def _trim(self) -> None:
        finished = [ident for ident, job in self._jobs.items() if job.done]
        for ident in finished[: max(0, len(finished) - KEEP)]:
            del self._jobs[ident]

    def _run(self) -> None:
        while True:
            self._run_one(*self._queue.get())

    def _run_one(self, job: Job, work: Work, cleanup: Finally | None) -> None:
        """`work` for `job`; the index is free for the next job before `done` or `error`
        is said, so a client may start another as soon as it hears it."""

        def progress(stage: str, done: int, total: int) -> None:
            job.publish("progress", progress_event(stage, done, total))

        ok = False
        try:
            progress("starting", 0, 0)
            report = work(progress)
            ok = True
        except BaseException as exc:  # noqa: BLE001 - every failure is the job's error
            report = error_body(exc)
        finally:
            if cleanup is not None:
                with contextlib.suppress(Exception):  # the job's own outcome stands
                    cleanup(ok)
            with self._lock:
                if self._active.get(job.index) is job:
                    del self._active[job.index]
                self._trim()
        job.publish("done" if ok else "error", report)
