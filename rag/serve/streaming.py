"""Between the event loop and the threads: await a request's work while noticing a
client that leaves (and telling the work to stop), run a stream's work on a thread of its
own, and send what it says as server-sent events."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import anyio
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from rag.serve.errors import Stopped

T = TypeVar("T")
Emit = Callable[[Any], None]


#: Headers of every stream of server-sent events (no proxy may buffer or cache one).
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class EventStream(StreamingResponse):
    """Server-sent events from an async generator, which is closed as soon as the response
    ends, however it ends. Starlette leaves it suspended when the response is cancelled
    while it waits to send (a client cut off for not reading): its `finally` (stop the
    work, wait for its thread, give the model's turn back) would then run only when the
    garbage collector got to it."""

    def __init__(self, events: AsyncGenerator[bytes, None]) -> None:
        super().__init__(events, media_type="text/event-stream", headers=SSE_HEADERS)
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.events.aclose()


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; `data` as JSON unless it is already text (`[DONE]`)."""
    payload = (
        data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, allow_nan=False)
    )
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


async def run_watched(
    request: Request, work: Callable[[], Awaitable[T]], stop: threading.Event
) -> T:
    """`await work()`, watching the client: when it disconnects meanwhile, `stop` is set
    and the work cancelled where it waits (queued for the model: it leaves the queue; on a
    thread: once that thread ends, at its next check of `stop`), and `Stopped` raised."""
    outcome: list[Any] = []
    async with anyio.create_task_group() as group:

        async def watch() -> None:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    stop.set()
                    group.cancel_scope.cancel()
                    return

        group.start_soon(watch)
        try:  # kept out of the task group, which would wrap it in an ExceptionGroup
            outcome.append(await work())
        except Exception as exc:  # noqa: BLE001 - raised again below, as itself
            outcome.append(exc)
        finally:
            group.cancel_scope.cancel()
    if not outcome:  # cancelled by `watch`: the client left
        raise Stopped()
    if isinstance(outcome[0], Exception):
        raise outcome[0]
    return outcome[0]


async def from_thread(work: Callable[[Emit], T], stop: threading.Event) -> AsyncIterator[Any]:
    """Run `work(emit)` on its own thread and yield what it emits, then ("result", value)
    or ("error", exception). When the reader stops early (the client disconnected, or was
    cut off for not reading, and the response was cancelled), `stop` is set so the work
    ends at its next check, and this waits for the thread to end: whoever holds the
    model's turn for it gives the model to the next request only once it is free."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    finished = asyncio.Event()

    def soon(callback: Callable[..., Any], *args: Any) -> None:
        try:
            loop.call_soon_threadsafe(callback, *args)
        except RuntimeError:  # the loop is gone: the server is shutting down
            stop.set()

    def run() -> None:
        try:
            soon(queue.put_nowait, ("result", work(lambda item: soon(queue.put_nowait, item))))
        except BaseException as exc:  # noqa: BLE001 - handed to the reader to report
            soon(queue.put_nowait, ("error", exc))
        finally:
            soon(finished.set)

    threading.Thread(target=run, name="rag-serve-stream", daemon=True).start()
    try:
        while True:
            item = await queue.get()
            yield item
            if isinstance(item, tuple) and item[:1] in (("result",), ("error",)):
                return
    finally:
        stop.set()
        with anyio.CancelScope(shield=True):
            await finished.wait()
