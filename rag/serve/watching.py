"""`rag serve --watch`: every local index served kept in step with its folders.

One thread per index runs `indexers.watch.IndexWatcher`, the loop `rag index --watch`
runs, so both update an index through the same `build_index` call. Requests see each
commit: `Warm.retriever` compares the index's live generation on every request and reopens
it when it changed, while a request already under way keeps the generation it opened (a
generation never changes, and the previous one stays on disk for it). `/healthz` shows
each watched index's last update (`Warm.watching`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from indexers import stores
from indexers.watch import IndexWatcher, Update, WatchStopped
from rag.core.errors import RagError
from rag.serve.warm import Warm

#: Seconds `close` waits for an update to end (an abandoned one ends at its next file or
#: embedding window; a commit that has begun, when its files are written).
CLOSE_WAIT_S = 60.0


class Watchers:
    """The watcher threads of one server: `start` them once it is warm, `close` them once
    it has stopped serving (an update in progress is abandoned, or its commit finished)."""

    def __init__(self, warm: Warm, say: Callable[[str], None]) -> None:
        self.warm = warm
        self.say = say
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> list[str]:
        """Start a thread per local index served (`--index`, or every index in RAG_HOME);
        the names watched."""
        settings = self.warm.settings
        names = list(self.warm.config.indexes) or [
            index.label for index in stores.list_indexes(settings)
        ]
        watched = []
        for name in names:
            store = stores.open_store(name, settings)
            if store.kind != "local":  # a shared database: its writers are its own business
                self.say(f"Not watching index {name!r}: it lives in the {store.kind} store.")
                continue
            self._record(name, None)
            thread = threading.Thread(
                target=self._run, args=(IndexWatcher(name, settings, stop=self.stop),),
                name=f"rag-watch-{name}", daemon=True,
            )  # fmt: skip
            thread.start()
            self.threads.append(thread)
            watched.append(name)
        return watched

    def close(self, timeout: float = CLOSE_WAIT_S) -> None:
        self.stop.set()
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _run(self, watcher: IndexWatcher) -> None:
        name = watcher.name

        def said(update: Update) -> None:
            self._record(name, update)
            self.say(update.line())

        try:
            watcher.run(said)  # its first update: what changed while no server watched
        except WatchStopped:
            return
        except Exception as exc:  # noqa: BLE001 - the server goes on serving the index as it is
            why = str(exc) if isinstance(exc, RagError) else f"{type(exc).__name__}: {exc}"
            self._record(name, Update(name, error=why))
            self.say(f"Stopped watching index {name!r}: {why}")

    def _record(self, name: str, update: Update | None) -> None:
        """The index's entry in `/healthz`: when its live generation was written, which one
        it is, and the last update's error (None once an update succeeds)."""
        entry: dict[str, Any] = dict(self.warm.watching.get(name, {"error": None}))
        if update is None or update.report is not None:
            try:
                state = stores.open_store(name, self.warm.settings).state()
            except RagError as exc:
                state, entry["error"] = None, str(exc)
            if state is not None:
                entry.update(updated_at=state.params.get("updated_at"),
                             generation=state.generation)  # fmt: skip
            if update is not None:
                entry["error"] = None
        else:
            entry["error"] = update.error
        self.warm.watching = {**self.warm.watching, name: entry}  # swapped whole: no locks
