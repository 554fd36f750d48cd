"""Filling the registry: pocketrag's own plugins, named by string, then every package's
entry points in the group `pocketrag`, each through the same `run_plugin`.

The built-in plugins are modules named here as text (`BUILTIN_PLUGINS`), as llm loads its
default plugins: the kernel never imports the application or `evals`, which register
their parts like anyone else. They load on the first lookup of a part, apart from the
entry points, which load only when a lookup needs them: a closed-book `rag ask` with a
local model names no plugin and never scans the installed packages (about 30 ms).

A plugin whose import or `register` fails (even by `sys.exit`, or any exception but
Ctrl-C's KeyboardInterrupt) costs one warning line naming it. While it is imported and
registers, whatever it prints goes to stderr. A name belongs to whoever registers it first
(the built-ins, then the entry points by name), and so do the names a part `reserves`: a
plugin that registers a taken name gets a warning, and that part is left out. That holds
for a plugin that calls the module-level `rag.core.plugins.register` while it loads too
(its parts join its own registry, `divert`); `unregister` is refused then.
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
#: The plugin whose register is running, innermost last: (name, value, its registry).
_running: list[tuple[str, str, Registry]] = []
#: What stops a command at once, even inside someone else's code: never caught here.
STOPPING = (KeyboardInterrupt, GeneratorExit)


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


def divert(part: Part) -> bool:
    """Whether `part`, given to the module-level `register` while a plugin's `register`
    runs on this thread (the caller holds LOCK), joined that plugin's own registry instead:
    then it is checked like the plugin's other parts, and a taken name is refused."""
    if not _running:
        return False
    _running[-1][2].register(part)
    return True


def refuse_removal(kind: str, name: str) -> bool:
    """Whether `unregister(kind, name)` comes from a plugin while it loads (the caller holds
    LOCK): refused with a warning, as a plugin cannot take a part from another."""
    if not _running:
        return False
    plugin, value, _ = _running[-1]
    log.warning(
        "Warning: plugin %r (%s) tried to remove the %s %r while it loaded: refused.",
        plugin,
        value,
        LABELS.get(kind, kind),
        name,
    )
    return True


def run_plugin(name: str, value: str, load: Callable[[], Any]) -> None:
    """Load one plugin and run its `register` into a `Registry`, with stdout sent to
    stderr; keep its parts only when it all worked, else one warning and nothing of it.
    A part whose name is taken already is left out, with a warning."""
    registry = Registry()
    with LOCK:
        _running.append((name, value, registry))
        try:
            with stdout_to_stderr():
                target = load()
                function = target if callable(target) else getattr(target, "register", None)
                if not callable(function):
                    raise TypeError(f"{value} is neither callable nor a module with register()")
                function(registry)
        except STOPPING:  # Ctrl-C still stops the command
            raise
        except BaseException as exc:  # someone else's code, even `sys.exit`: report, go on
            FAILED.append(value)
            log.warning(
                "Warning: plugin %r (%s) failed to load and is skipped: %s",
                name,
                value,
                describe(exc),
            )
            return
        finally:
            _running.pop()
        _keep(name, value, registry)


def _reserved(kind: str) -> dict[str, tuple[str, str]]:
    """The names the registered parts of `kind` reserve, each with its owner's key."""
    return {n: (kind, p.name) for p in PARTS[kind].values() for n in p.reserves}


def _keep(name: str, value: str, registry: Registry) -> None:
    """Add a plugin's parts whose names are free; a warning for each one left out."""
    for part in registry.parts:
        key = (part.kind, part.name)
        reserved = _reserved(part.kind)
        if part.name in PARTS[part.kind] or part.name in reserved:
            owner = key if part.name in PARTS[part.kind] else reserved[part.name]
            log.warning(
                "Warning: plugin %r (%s) registers the %s %r, which is taken: %s is kept "
                "and the plugin's left out.",
                name,
                value,
                LABELS[part.kind],
                part.name,
                _owner(owner),
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
