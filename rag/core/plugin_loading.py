"""Filling the registry: pocketrag's own plugins, named by string, then every package's
entry points in the group `pocketrag`, each through the same `run_plugin`.

The built-in plugins are modules named here as text (`BUILTIN_PLUGINS`), as llm loads its
default plugins: the kernel never imports the application or `evals`, which register
their parts like anyone else. They load on the first lookup of a part, apart from the
entry points, which load only when a lookup needs them: a closed-book `rag ask` with a
local model names no plugin and never scans the installed packages (about 30 ms).

A plugin whose import or `register` fails (even by `sys.exit`) costs one warning line
naming it. While it is imported and registers, whatever it prints goes to stderr. A name
belongs to whoever registers it first (the built-ins, then the entry points by name): a
plugin that registers a taken name gets a warning, and that part is left out.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from rag.core.parts import KINDS, LABELS, Part, Registry
from rag.core.streams import stdout_to_stderr

log = logging.getLogger("rag.core.plugins")

ENTRY_POINT_GROUP = "pocketrag"
#: pocketrag's own plugins, loaded first and by name: each module has `register(registry)`.
BUILTIN_PLUGINS = ("rag.builtin_parts", "evals.plugin")

#: Every registered part, by kind and name.
PARTS: dict[str, dict[str, Part]] = {kind: {} for kind in KINDS}
#: Which plugin registered a part: (entry-point name, its value); built-ins included.
ORIGINS: dict[tuple[str, str], tuple[str, str]] = {}
#: Plugins that failed to load (their warning is out): their config sections are not
#: reported as unknown, since the failed plugin may have been the one to take them.
FAILED: list[str] = []
LOCK = threading.RLock()
_stage = 0  # 0: nothing loaded, 1: the built-ins, 2: the entry points too
_loading = False  # this thread is running plugins (the lock is reentrant)


def ensure_loaded(*, entry_points: bool = True) -> None:
    """Register the built-ins once per process, and (`entry_points`) every entry point's
    parts once; every lookup of the registry calls this first."""
    global _stage, _loading
    wanted = 2 if entry_points else 1
    if _stage >= wanted:
        return
    with LOCK:  # another thread waits here until the registry is whole
        if _stage >= wanted or _loading:  # _loading: a plugin's register looks parts up
            return
        _loading = True
        try:
            if _stage < 1:
                for module in BUILTIN_PLUGINS:
                    run_plugin(module, module, lambda m=module: importlib.import_module(m))
                _stage = 1
            if wanted == 2:
                for ep in _entry_points():
                    run_plugin(ep.name, ep.value, ep.load)
                _stage = 2
        finally:
            _loading = False


def is_builtin(value: str) -> bool:
    """Whether an entry point's value (`module:function`) is one of pocketrag's own."""
    return value.split(":")[0].strip() in BUILTIN_PLUGINS


def _entry_points() -> list[Any]:
    """The group's entry points by name, without the built-ins (an installation made
    before they were named here may still list one)."""
    try:
        from importlib.metadata import entry_points

        found = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # a damaged installation: warn, keep the built-ins
        log.warning("Cannot list pocketrag plugins (%s: %s).", type(exc).__name__, exc)
        return []
    unique = {(ep.name, ep.value): ep for ep in found if not is_builtin(ep.value)}
    return sorted(unique.values(), key=lambda ep: (ep.name, ep.value))


def describe(exc: BaseException) -> str:
    """`RuntimeError: the first line of its message`, for a one-line report."""
    text = str(exc).strip()
    return type(exc).__name__ + (f": {text.splitlines()[0]}" if text else "")


def run_plugin(name: str, value: str, load: Callable[[], Any]) -> None:
    """Load one plugin and run its `register` into a `Registry`, with stdout sent to
    stderr; keep its parts only when it all worked, else one warning and nothing of it.
    A part whose name is taken already is left out, with a warning."""
    registry = Registry()
    try:
        with stdout_to_stderr():
            target = load()
            function = target if callable(target) else getattr(target, "register", None)
            if not callable(function):
                raise TypeError(f"{value} is neither callable nor a module with register()")
            function(registry)
    except (Exception, SystemExit) as exc:  # someone else's code: report and carry on
        FAILED.append(value)  # (not KeyboardInterrupt: Ctrl-C still stops the command)
        log.warning(
            "Warning: plugin %r (%s) failed to load and is skipped: %s",
            name,
            value,
            describe(exc),
        )
        return
    for part in registry.parts:
        key = (part.kind, part.name)
        if part.name in PARTS[part.kind]:
            log.warning(
                "Warning: plugin %r (%s) registers the %s %r, which is taken: %s is kept "
                "and the plugin's left out.",
                name,
                value,
                LABELS[part.kind],
                part.name,
                _owner(key),
            )
            continue
        if part.fallback and any(p.fallback for p in PARTS[part.kind].values()):
            log.warning(
                "Warning: plugin %r (%s) registers a fallback %s, which pocketrag has: "
                "its part %r is left out.",
                name,
                value,
                LABELS[part.kind],
                part.name,
            )
            continue
        PARTS[part.kind][part.name] = part
        ORIGINS[key] = (name, value)


def _owner(key: tuple[str, str]) -> str:
    owner = ORIGINS.get(key)
    if owner is None:
        return "the one registered first"
    if is_builtin(owner[1]):
        return "pocketrag's own"
    return f"plugin {owner[0]!r}'s ({owner[1]})"
