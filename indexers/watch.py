"""Keep an index in step with its folders: `rag index --watch` and `rag serve --watch`.

One loop for both (`IndexWatcher.run`). watchfiles (inotify and its kin, in Rust) says
which paths changed under the folders; a file named as a root is polled. A changed path
waits until its size and mtime have stayed the same for `quiet` seconds, so a burst of
saves is one update and a file still being written is never read half-written; once
`cap` seconds have passed since the first change, the steady paths are updated anyway
and one still changing is held (`build_index(hold=...)`: the index keeps what it had of
it) for a later update. Changes the walk would skip anyway (hidden, temporary, excluded,
the index's own files) are ignored, by discovery's own rules.

Each update is one `build_index` call, the same incremental run as `rag index`: only
changed files are re-read and re-embedded, and the new generation becomes live atomically,
so a reader sees each commit whole. A stop (`stop` set by Ctrl-C, SIGTERM or a server
shutting down) abandons an update before its commit starts, through the store's own
clean-up (the live generation stays as it was: `WatchStopped` is raised), and lets a
commit that has started finish.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from indexers import stores
from indexers.build import BuildReport, Progress, build_index, pocketrag_data
from indexers.discovery import one_line, skipped_by_name
from rag.core.config import Settings, expand_path
from rag.core.errors import IndexBusy, RagError

#: Seconds a changed file must keep its size and mtime before it is read.
QUIET_S = 1.0
#: Seconds after the first change of a round when the steady files are updated even though
#: another keeps changing (that one waits for the next round).
CAP_S = 10.0
#: Seconds between two looks at the pending files (and the stop), without events too.
TICK_S = 0.25
#: Seconds before an update that failed (the index busy, an embedder down) is tried again.
RETRY_S = 10.0
#: Seconds an update waits for another writer of the index (a `rag index`, an upload)
#: before it counts as failed, to be tried again RETRY_S later.
LOCK_WAIT_S = 60.0
#: Seconds one wait for another writer's lock lasts, so a stop is seen in between.
_LOCK_SLICE_S = 1.0


class WatchStopped(BaseException):
    """A stop asked for during an update, before its commit: the update is abandoned and
    the index is as it was. A BaseException, as KeyboardInterrupt is, so that no `except
    Exception` on the way (a file's read, an embedding window) takes it for a failure."""


@dataclass(frozen=True)
class Update:
    """One update of a watched index: its report, or the one-line error that stopped it."""

    name: str
    report: BuildReport | None = None
    error: str | None = None

    @property
    def changed(self) -> bool:
        return self.report is not None and self.report.changed

    def line(self) -> str:
        """What changed, on one line (`rag index --watch` prints it, `rag serve` logs it)."""
        if self.report is None:
            return f"Index {self.name!r} not updated: {self.error} Trying again later."
        r = self.report
        text = (
            f"Updated index {self.name!r}: {r.files_added} added, "
            f"{r.files_embedded - r.files_added} updated, {r.files_removed} removed "
            f"({r.chunks_added} chunks added, {r.chunks_total} in all), {r.seconds:.1f}s."
        )
        if r.files_held:
            text += f" {r.files_held} file(s) still being written: next time."
        return text


@dataclass
class _Pending:
    """A changed path: how it looked last, and since when it has looked so."""

    seen: tuple[int, int, int] | None
    since: float


def _signature(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime_ns), or None for a path that is gone: what 'steady' compares."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_ino, info.st_size, info.st_mtime_ns


class IndexWatcher:
    """Index `name` kept in step with `paths` (empty: the folders it records), until `stop`.

    `build` is one update (the first one of `rag index --watch` too); `run` watches and
    calls `on_update` after each update that changed the index or failed.
    """

    def __init__(
        self,
        name: str,
        settings: Settings,
        *,
        paths: Sequence[str | Path] = (),
        exclude: Sequence[str] | None = None,
        stop: threading.Event | None = None,
        store_kind: str | None = None,
        quiet: float = QUIET_S,
        cap: float = CAP_S,
    ) -> None:
        self.name = name
        self.settings = settings
        self.paths = list(paths)
        self.exclude = None if exclude is None else list(exclude)  # None: as recorded
        self.stop = stop or threading.Event()
        self.store_kind = store_kind
        self.quiet = quiet
        self.cap = cap

    def build(
        self,
        hold: Collection[str] = (),
        *,
        wait: float = 0.0,
        rebuild: bool = False,
        progress: Progress | None = None,
    ) -> BuildReport:
        """One update through `build_index`; WatchStopped when stopped before its commit.
        Another writer's lock is waited for (up to `wait` s) a second at a time, so a stop
        is seen meanwhile."""
        inner = progress or (lambda phase, done, total: None)

        def stoppable(phase: str, done: int, total: int) -> None:
            # ("write", 1, ...) comes once the commit is done: too late to abandon it.
            if self.stop.is_set() and not (phase == "write" and done > 0):
                raise WatchStopped()
            inner(phase, done, total)

        deadline = time.monotonic() + wait
        while True:
            if self.stop.is_set():
                raise WatchStopped()
            try:
                return build_index(
                    self.paths, self.name, self.settings, rebuild=rebuild,
                    exclude=self.exclude, progress=stoppable, store_kind=self.store_kind,
                    wait=min(_LOCK_SLICE_S, max(0.0, deadline - time.monotonic())), hold=hold,
                )  # fmt: skip
            except IndexBusy:
                if time.monotonic() >= deadline:
                    raise

    def update(self, hold: Collection[str] = ()) -> Update:
        """One update (behind another writer, if need be), its failure (one line) kept in
        the Update rather than raised."""
        try:
            return Update(self.name, self.build(hold, wait=LOCK_WAIT_S))
        except RagError as exc:
            return Update(self.name, error=one_line(str(exc)))

    def roots(self) -> list[Path]:
        """The folders and files watched: `paths`, or those the index records."""
        if self.paths:
            return [expand_path(p).resolve() for p in self.paths]
        return [Path(r) for r in self._recorded("roots")]

    def patterns(self) -> list[str]:
        """The `--exclude` globs changes are filtered by: given, or those the index records
        (the update just made recorded them, so they are read again after each)."""
        return self.exclude if self.exclude is not None else self._recorded("exclude")

    def _recorded(self, key: str) -> list[str]:
        state = stores.open_store(self.name, self.settings, self.store_kind).state()
        return list(state.params.get(key, [])) if state else []

    def run(
        self, on_update: Callable[[Update], None], on_ready: Callable[[], None] | None = None
    ) -> None:
        """Watch until `stop`; an update that changed the index, or failed (each new
        failure once), goes to `on_update`. The first update comes as soon as the watch is
        in place, for what changed before it was (then `on_ready`: from now on no change is
        missed). WatchStopped when the stop came during an update (abandoned)."""
        roots = self.roots()
        index_dir = stores.open_store(self.name, self.settings, self.store_kind).index_dir
        ours = pocketrag_data(self.settings, index_dir)
        folders = [r for r in roots if r.is_dir()]
        files = {r: _signature(r) for r in roots if r not in folders}
        pending: dict[Path, _Pending] = {}
        first: float | None = None  # when this round's first change came
        retry_at: float | None = None
        last_error: str | None = None
        ready = False
        exclude = self.patterns()

        def relevant(path: Path) -> bool:
            if ours(path):
                return False
            root = next((r for r in folders if path.is_relative_to(r)), None)
            return root is not None and not skipped_by_name(path, root, exclude)

        for changed in self._events(folders):
            now = time.monotonic()
            touched = {p for p in changed if relevant(p)}
            for root, seen in files.items():  # a root that is a file: polled
                signature = _signature(root)
                if signature != seen:
                    files[root] = signature
                    touched.add(root)
            for path in touched:  # an event counts as a change, whatever stat says
                pending[path] = _Pending(_signature(path), now)
            for path, state in pending.items():
                signature = _signature(path)
                if signature != state.seen:
                    state.seen, state.since = signature, now
            if touched and first is None:
                first = now
            due = not ready or (retry_at is not None and now >= retry_at)
            steady = {p for p, s in pending.items() if now - s.since >= self.quiet}
            waiting = [p for p in pending if p not in steady]
            if not due and (not steady or (waiting and now - (first or now) < self.cap)):
                continue
            update = self.update(hold=[str(p) for p in waiting])
            if not ready:
                ready = True
                if on_ready is not None:
                    on_ready()
            if update.report is None:  # the next walk finds these changes again
                pending, first, retry_at = {}, None, now + RETRY_S
                if update.error != last_error:  # the same failure is said once
                    on_update(update)
                last_error = update.error
                continue
            pending = {p: pending[p] for p in waiting}
            first, retry_at, last_error = (now if pending else None), None, None
            if update.changed:
                exclude = self.patterns()
                on_update(update)

    def _events(self, folders: list[Path]) -> Iterator[set[Path]]:
        """The paths changed since the last look, every TICK_S at least, until `stop`."""
        if not folders:
            while not self.stop.wait(TICK_S):
                yield set()
            return
        import watchfiles

        tick = int(TICK_S * 1000)
        try:
            for changes in watchfiles.watch(
                *folders, watch_filter=None, step=50, debounce=tick, rust_timeout=tick,
                yield_on_timeout=True, stop_event=self.stop, raise_interrupt=False,
            ):  # fmt: skip
                yield {Path(path) for _, path in changes}
        except OSError as exc:  # no inotify left (fs.inotify.max_user_watches), a root gone
            where = ", ".join(one_line(f) for f in folders)
            raise RagError(f"Cannot watch {where}: {exc.strerror or exc}.") from None
