"""Between the event loop and the worker threads: run a request's work on a thread,
notice a client that leaves (and tell the work to stop), and stream what the work says as
server-sent events."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.requests import Request

T = TypeVar("T")
Emit = Callable[[Any], None]


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; `data` as JSON unless it is already text (`[DONE]`)."""
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


async def run_watched(request: Request, work: Callable[[], T], stop: threading.Event) -> T:
    """`work()` on a worker thread; `stop` is set if the client disconnects meanwhile."""

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                stop.set()
                return

    outcome: list[Any] = []
    async with anyio.create_task_group() as group:
        group.start_soon(watch)
        try:  # kept out of the task group, which would wrap it in an ExceptionGroup
            outcome.append(await anyio.to_thread.run_sync(work))
        except Exception as exc:  # noqa: BLE001 - raised again below, as itself
            outcome.append(exc)
        finally:
            group.cancel_scope.cancel()
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


async def from_thread(work: Callable[[Emit], T], stop: threading.Event) -> AsyncIterator[Any]:
    """Run `work(emit)` on its own thread and yield what it emits, then ("result", value)
    or ("error", exception). When the reader stops early (the client disconnected and the
    response was cancelled), `stop` is set so the work ends at its next check."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def emit(item: Any) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone: the server is shutting down
            stop.set()

    def run() -> None:
        try:
            emit(("result", work(emit)))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader to report
            emit(("error", exc))

    threading.Thread(target=run, name="rag-serve-stream", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            yield item
            if isinstance(item, tuple) and item[:1] in (("result",), ("error",)):
                return
    finally:
        stop.set()
