"""One way to plug parts in: web engines, generators, stores, embedders and rerankers.

Every part, built-in or from another package, is a `Part` in one registry, and every
package contributes its parts the same way: an entry point in the group `pocketrag`
names a function `register(registry)` (or a module that has one), which calls
`registry.register(Part(...))` for each part. pocketrag's own parts come in through its
own entry point (`builtins = "rag.builtin_parts:register"` in pyproject.toml); run from
a source tree without installed metadata, the built-ins register directly instead.

Entry points load once, the first time any registry is consulted, never at import: a
`register` function must stay light (no heavy imports; a factory imports what it needs
when it is called). A plugin whose import or `register` fails (even by `sys.exit`) costs
one warning line naming it, and the command carries on without it. While a plugin is
imported and registers, and while its factories run, whatever it prints goes to stderr:
stdout carries only pocketrag's output (`rag search --json`, the `rag mcp` protocol).

A name belongs to whoever registers it first: the built-ins, then the entry points by
name. A plugin that registers a name already taken (the `openai` model prefix, say) is
not allowed to replace it: one warning naming the plugin, and its part is left out. A
plugin factory's exception becomes one line naming the part and the plugin (a RagError,
exit 1); a RagError the factory raises on purpose passes through as it is.

How a part is made (`create`): its factory is called with the arguments its kind
passes, plus `options=` (a dict of checked values) when the part declares options:

    kind       name                                    factory call
    engine     --engine / RAG_ENGINE                   factory(settings) -> SearchEngine
    generator  the prefix of a model spec PREFIX:REST  factory(rest, settings) -> Generator
    store      --store / RAG_STORE                     factory(label, index_dir, settings)
    embedder   the embedder's model name               factory(name) -> Embedder
    reranker   a name, or a prefix ending in `:`       factory(spec, settings) -> Reranker

A part's options are resolved as: environment `RAG_<KIND>_<NAME>_<OPTION>` (upper case,
any other character than a letter or digit as `_`) > its config-file section
`[<kind>s.<name>]` in `$RAG_HOME/config.toml` > the option's default; each value is
coerced to the option's type and checked against its range or choices by the same code
that checks settings (`rag.config.parse_value`). A section naming no registered part, or
an option the part does not declare, is a usage error naming the file.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rag.config import CONFIG_FILE, PART_TABLES, Settings, parse_value, rag_home, read_config_file
from rag.errors import RagError, UsageError
from rag.streams import stdout_to_stderr

__all__ = [
    "ENTRY_POINT_GROUP",
    "KINDS",
    "Option",
    "Part",
    "Registry",
    "create",
    "env_name",
    "FactoryMap",
    "get_part",
    "part_options",
    "parts",
    "register",
    "unregister",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pocketrag"
#: Part kinds, each with its config-file table (`[engines.NAME]`).
TABLES: dict[str, str] = {kind: table for table, kind in PART_TABLES.items()}
KINDS: tuple[str, ...] = tuple(TABLES)
#: How an unknown name is reported, per kind.
_LABELS = {
    "engine": "search engine",
    "generator": "model prefix",
    "store": "index store",
    "embedder": "embedder",
    "reranker": "reranker",
}
_OPTION_TYPES = (str, int, float, bool)
_BUILTINS = "rag.builtin_parts"


@dataclass(frozen=True)
class Option:
    """One option a part declares: its type (str, int, float or bool), default, help, and
    either a range (`low`..`high`, inclusive, either may be None) or `choices`."""

    name: str
    type: type = str
    default: Any = ""
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None

    def parse(self, raw: Any, origin: str) -> Any:
        """`raw` (text from the environment, a TOML value) as this option's checked value."""
        return parse_value(
            self.name,
            raw,
            self.type,
            origin,
            low=self.low,
            high=self.high,
            choices=self.choices,
        )


@dataclass(frozen=True)
class Part:
    """A swappable part: `kind` (one of KINDS), `name` (for a generator the model-spec prefix,
    `openai`; a reranker name ending in `:` takes an argument, `cross-encoder:ID`), the
    `factory` that makes it (see the table in this module's docstring), its `options`."""

    kind: str
    name: str
    factory: Callable[..., Any]
    options: tuple[Option, ...] = ()
    help: str = ""

    @property
    def section(self) -> str:
        """Its config-file section's name, `[<kind>s.<section>]`: the name without a final `:`."""
        return self.name.rstrip(":")


class Registry:
    """What a plugin's `register(registry)` receives: `registry.register(registry.Part(...))`.
    Its parts join the registry only if `register` returns without an error."""

    Part = Part
    Option = Option

    def __init__(self) -> None:
        self.parts: list[Part] = []

    def register(self, part: Part) -> None:
        _check_part(part)
        self.parts.append(part)


_PARTS: dict[str, dict[str, Part]] = {kind: {} for kind in KINDS}
_LOCK = threading.RLock()
_loaded = False
_loading = False  # this thread is running the entry points (the lock is reentrant)
#: Entry points that failed to load (their warning is out): their config sections are
#: not reported as unknown, since the failed plugin may have been the one to take them.
_FAILED: list[str] = []
#: The entry point, (name, value), that registered each (kind, part name); parts
#: registered in-process (`register`) have none.
_ORIGINS: dict[tuple[str, str], tuple[str, str]] = {}


def _check_part(part: Part) -> None:
    """A plugin's mistake shows here, when it registers, not when a user picks the part."""
    if part.kind not in _PARTS:
        raise ValueError(f"part kind {part.kind!r} is not one of {', '.join(KINDS)}")
    if not isinstance(part.name, str) or not part.name.strip(":").strip():
        raise ValueError(f"a {part.kind} part needs a name, got {part.name!r}")
    if not callable(part.factory):
        raise ValueError(f"{part.kind} {part.name!r}: factory {part.factory!r} is not callable")
    seen: set[str] = set()
    for option in part.options:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", option.name) or option.name in seen:
            raise ValueError(f"{part.kind} {part.name!r}: bad or repeated option {option.name!r}")
        if option.type not in _OPTION_TYPES:
            raise ValueError(
                f"{part.kind} {part.name!r}: option {option.name!r} has type "
                f"{option.type!r}; use str, int, float or bool"
            )
        seen.add(option.name)
        # a default outside its own range is the plugin's bug: reported as its failure
        option.parse(option.default, f"{part.kind} {part.name!r} default")


def register(part: Part) -> None:
    """Add `part`, replacing one of the same kind and name. Plugins call this through the
    `Registry` their `register` receives; calling it directly (tests do) works too."""
    _check_part(part)
    with _LOCK:
        _ensure_loaded()
        _PARTS[part.kind][part.name] = part
        _ORIGINS.pop((part.kind, part.name), None)


def unregister(kind: str, name: str) -> None:
    with _LOCK:
        _ensure_loaded()
        _PARTS[kind].pop(name, None)
        _ORIGINS.pop((kind, name), None)


def parts(kind: str) -> dict[str, Part]:
    """Every registered part of `kind`, by name (loading the plugins on first use)."""
    _ensure_loaded()
    return dict(_PARTS[kind])


def get_part(kind: str, name: str, hint: str = "") -> Part:
    """The part named `name`; a UsageError listing the known names otherwise. `hint` says
    where the name came from, e.g. ` (--engine or RAG_ENGINE)`."""
    _ensure_loaded()
    part = _PARTS[kind].get(name)
    if part is None:
        known = ", ".join(sorted(_PARTS[kind])) or "none"
        raise UsageError(f"Unknown {_LABELS[kind]} {name!r}; choose one of: {known}{hint}.")
    return part


def create(
    kind: str, name: str, *args: Any, settings: Settings | None = None, hint: str = ""
) -> Any:
    """`name`'s factory called with `args`, plus `options=` when the part declares options
    (resolved for `settings.home`, or `$RAG_HOME` without settings). The config file's
    sections of this kind are checked either way, so a misspelt section is reported.
    `hint` goes into the error for an unknown name (see `get_part`). A plugin's factory
    runs with stdout sent to stderr, and its failure is one line naming it (a RagError)."""
    part = get_part(kind, name, hint)
    options = part_options(kind, name, settings)
    kwargs = {"options": options} if part.options else {}
    origin = _ORIGINS.get((kind, part.name))
    if origin is None or _is_builtin(origin[1]):
        return part.factory(*args, **kwargs)
    try:
        with stdout_to_stderr():
            return part.factory(*args, **kwargs)
    except RagError:  # the plugin's own message for the user
        raise
    except (Exception, SystemExit) as exc:  # not KeyboardInterrupt: Ctrl-C still stops
        log.debug("%s %r failed", kind, part.name, exc_info=True)
        label = _LABELS[kind]
        raise RagError(
            f"{label[0].upper()}{label[1:]} {part.name!r} from plugin {origin[0]!r} "
            f"({origin[1]}) failed: {_describe(exc)}. Update or uninstall that plugin."
        ) from None


def env_name(kind: str, part_name: str, option: str) -> str:
    """`RAG_ENGINE_SEARXNG_URL`: the environment variable that sets a part's option."""
    words = [kind, part_name.rstrip(":"), option]
    return "RAG_" + "_".join(re.sub(r"[^A-Za-z0-9]", "_", w).upper() for w in words)


def part_options(kind: str, name: str, settings: Settings | None = None) -> dict[str, Any]:
    """The options of part `name`, each from the environment > its config-file section >
    its default, checked; the config file's `[<kind>s.*]` sections are checked whole."""
    part = get_part(kind, name)
    path = (settings.home if settings is not None else rag_home()) / CONFIG_FILE
    section = _sections(kind, path).get(part.section, {})
    values: dict[str, Any] = {}
    for option in part.options:
        variable = env_name(kind, part.name, option.name)
        if variable in os.environ:
            values[option.name] = option.parse(os.environ[variable], variable)
        elif option.name in section:
            values[option.name] = section[option.name]
        else:
            values[option.name] = option.default
    return values


def _sections(kind: str, path: Path) -> dict[str, dict[str, Any]]:
    """The `[<kind>s.NAME]` sections of the config file, names and values checked."""
    table = TABLES[kind]
    sections = read_config_file(path).get(table, {})
    known = {part.section: part for part in _PARTS[kind].values()}
    checked: dict[str, dict[str, Any]] = {}
    for section_name, section in sections.items():
        part = known.get(section_name)
        if part is None:
            if _FAILED:
                continue  # maybe the failed plugin's: its warning said so already
            names = ", ".join(sorted(known)) or "none"
            raise UsageError(
                f"Unknown {_LABELS[kind]} {section_name!r} in section [{table}.{section_name}] "
                f"of {path}; known: {names}."
            )
        declared = {option.name: option for option in part.options}
        origin = f"{path} [{table}.{section_name}]"
        for key in section:
            if key not in declared:
                takes = ", ".join(declared) or "no options"
                raise UsageError(
                    f"{origin}: unknown option {key!r}; {section_name} takes: {takes}."
                )
        checked[section_name] = {k: declared[k].parse(v, origin) for k, v in section.items()}
    return checked


class FactoryMap(MutableMapping[str, Callable[..., Any]]):
    """The factories of one kind as a live dict, for code written against the registries
    that were plain dicts (`ENGINES["fake"] = factory`, `monkeypatch.setitem(REGISTRY, ...)`).
    Setting a name keeps the options an existing part of that name declares."""

    def __init__(self, kind: str) -> None:
        if kind not in _PARTS:
            raise ValueError(f"part kind {kind!r} is not one of {', '.join(KINDS)}")
        self.kind = kind

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return parts(self.kind)[name].factory

    def __setitem__(self, name: str, factory: Callable[..., Any]) -> None:
        old = parts(self.kind).get(name)
        register(replace(old, factory=factory) if old else Part(self.kind, name, factory))

    def __delitem__(self, name: str) -> None:
        if name not in parts(self.kind):
            raise KeyError(name)
        unregister(self.kind, name)

    def __iter__(self) -> Iterator[str]:
        return iter(parts(self.kind))

    def __len__(self) -> int:
        return len(parts(self.kind))

    def __repr__(self) -> str:
        return f"FactoryMap({self.kind!r}: {', '.join(sorted(self))})"


# --- loading entry points ---------------------------------------------------------------


def _ensure_loaded() -> None:
    """Run every `pocketrag` entry point's `register` once per process (the built-ins'
    first); called by every read of the registry."""
    global _loaded, _loading
    if _loaded:
        return
    with _LOCK:  # another thread waits here until the registry is whole
        if _loaded or _loading:  # _loading: a plugin's register consults the registry
            return
        _loading = True
        try:
            entry_points = _entry_points()
            if not any(_is_builtin(ep.value) for ep in entry_points):
                # a source tree without installed metadata: the built-ins still register
                from rag.builtin_parts import register as builtins

                _run_plugin("builtins", _BUILTINS, lambda: builtins)
            for ep in entry_points:
                _run_plugin(ep.name, ep.value, ep.load)
        finally:
            _loaded, _loading = True, False


def _entry_points() -> list[Any]:
    """The group's entry points, the built-ins first, then by name; none without metadata."""
    try:
        from importlib.metadata import entry_points

        found = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # a damaged installation: warn, keep the built-ins
        log.warning("Cannot list pocketrag plugins (%s: %s).", type(exc).__name__, exc)
        return []
    unique = {(ep.name, ep.value): ep for ep in found}
    return sorted(
        unique.values(),
        key=lambda ep: (not _is_builtin(ep.value), ep.name, ep.value),
    )


def _is_builtin(value: str) -> bool:
    return value.split(":")[0].strip() == _BUILTINS


def _describe(exc: BaseException) -> str:
    """`RuntimeError: the first line of its message`, for a one-line report."""
    text = str(exc).strip()
    return type(exc).__name__ + (f": {text.splitlines()[0]}" if text else "")


def _run_plugin(name: str, value: str, load: Callable[[], Any]) -> None:
    """Load one entry point and run its `register` into a `Registry`, with stdout sent to
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
        _FAILED.append(value)  # (not KeyboardInterrupt: Ctrl-C still stops the command)
        log.warning(
            "Warning: plugin %r (%s) failed to load and is skipped: %s",
            name,
            value,
            _describe(exc),
        )
        return
    for part in registry.parts:
        key = (part.kind, part.name)
        if part.name in _PARTS[part.kind]:
            owner = _ORIGINS.get(key)
            if owner is None:
                kept = "the one registered first"
            elif _is_builtin(owner[1]):
                kept = "pocketrag's own"
            else:
                kept = f"plugin {owner[0]!r}'s ({owner[1]})"
            log.warning(
                "Warning: plugin %r (%s) registers the %s %r, which is taken: %s is kept "
                "and the plugin's left out.",
                name,
                value,
                _LABELS[part.kind],
                part.name,
                kept,
            )
            continue
        _PARTS[part.kind][part.name] = part
        _ORIGINS[key] = (name, value)
