"""One way to plug parts in: web engines, generators, stores, embedders, rerankers and
commands, pocketrag's own and every other package's alike.

A plugin is a function `register(registry)` (or a module that has one) that calls
`registry.register(registry.Part(...))` for each of its parts. Another package names it
with an entry point in the group `pocketrag`; pocketrag's own plugins are named in
`rag.core.plugin_loading.BUILTIN_PLUGINS` and go through the same path. See
`rag.core.plugin_loading` for when plugins load and what happens when one fails.

One lookup, `create(kind, spec, settings, *extra)`, makes every part. A spec is `NAME`,
or `NAME:ARGUMENT` for a part that takes an argument (`cross-encoder:HF_ID`,
`openai:URL#MODEL`); a spec naming no part goes whole to its kind's fallback, where the
kind has one (a local GGUF for `generator`, a sentence-transformers model for
`embedder`). The factory is called as `factory(argument, settings, *extra,
options=OPTIONS)`, `argument` being "" for a part that takes none and `options` the
part's checked option values:

    kind       chosen by                       extra          returns
    engine     --engine / RAG_ENGINE           -              rag.web.base.SearchEngine
    generator  --model / RAG_MODEL             -              rag.generators.Generator
    store      --store / RAG_STORE             label, folder  indexers.stores.IndexStore
    embedder   --embedder / RAG_EMBEDDER       runtime        indexers.embedders.Embedder
    reranker   --reranker / RAG_RERANKER       -              rag.evidence.rerankers.Reranker
    command    `rag NAME`                      -              a typer.Typer (its subcommands)
    route      every `rag serve`               ServeConfig    a list of starlette routes

An embedder is made once per process and may get `settings=None` (an index opened for a
query knows only its own params). A command part's factory takes no arguments: the CLI
adds the group it returns when that command is asked for (`evals` contributes `rag eval`
this way, from above the CLI's layer).

A plugin's factory runs with stdout sent to stderr, and its failure (any exception but
Ctrl-C's) is one line naming the part and the plugin (a RagError, exit 1); a RagError it
raises on purpose passes through as it is. `call_plugin` does the same for the methods
of what a plugin's factory made (`indexers.checked_embedder` checks a plugin embedder's
every call and output this way). A part's options are resolved as: environment
`RAG_<KIND>_<NAME>_<OPTION>` (upper case, any other character than a letter or digit as
`_`) > its config-file section `[<kind>s.<name>]` in `$RAG_HOME/config.toml` > the
option's default, each checked by the code that checks settings
(`rag.core.config.parse_value`). A section naming no part, or an option the part does not
declare, is a usage error naming the file.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rag.core.config import CONFIG_FILE, Settings, rag_home, read_config_file
from rag.core.errors import RagError, UsageError
from rag.core.parts import ARGUMENT_ONLY, KINDS, LABELS, TABLES, Option, Part, Registry
from rag.core.plugin_loading import (
    FAILED,
    LOCK,
    ORIGINS,
    PARTS,
    STOPPING,
    describe,
    divert,
    ensure_loaded,
    is_builtin,
    refuse_removal,
)
from rag.core.streams import stdout_to_stderr

__all__ = [
    "KINDS",
    "Option",
    "Part",
    "Registry",
    "call_plugin",
    "create",
    "env_name",
    "get_part",
    "part_options",
    "parts",
    "plugin_failure",
    "plugin_of",
    "register",
    "resolve",
    "unregister",
]

log = logging.getLogger(__name__)


def register(part: Part) -> Part | None:
    """Add `part` in this process, replacing one of the same kind and name (which is
    returned, so that a caller, such as a test's fixture, can put it back).

    Called by a plugin while it loads, `part` joins that plugin's parts instead, under
    the rule they all follow: a taken name is refused, with a warning (returns None)."""
    part.check()
    with LOCK:
        if divert(part):
            return None
        ensure_loaded()
        previous = PARTS[part.kind].get(part.name)
        PARTS[part.kind][part.name] = part
        ORIGINS.pop((part.kind, part.name), None)
        return previous


def unregister(kind: str, name: str, *, restore: Part | None = None) -> None:
    """Remove part `name` of `kind` (or put `restore` back in its place); refused, with a
    warning, when a plugin asks while it loads."""
    with LOCK:
        if refuse_removal(kind, name):
            return
        ensure_loaded()
        PARTS[kind].pop(name, None)
        ORIGINS.pop((kind, name), None)
        if restore is not None:
            PARTS[kind][name] = restore


def parts(kind: str) -> dict[str, Part]:
    """Every registered part of `kind`, by name (loading the plugins on first use)."""
    ensure_loaded()
    return dict(PARTS[kind])


def get_part(kind: str, name: str, hint: str = "") -> Part:
    """The part named `name`; a UsageError listing the known names otherwise. `hint` says
    where the name came from, e.g. ` (--engine or RAG_ENGINE)`."""
    ensure_loaded()
    part = PARTS[kind].get(name)
    if part is None:
        known = ", ".join(sorted(p.usage for p in PARTS[kind].values())) or "none"
        raise UsageError(f"Unknown {LABELS[kind]} {name!r}; choose one of: {known}{hint}.")
    return part


def resolve(kind: str, spec: str, hint: str = "") -> tuple[Part, str]:
    """The part a spec names and its argument: `NAME` or `NAME:ARGUMENT`, else the kind's
    fallback with the whole spec (see the module's docstring)."""
    spec = spec.strip()
    name, colon, argument = spec.partition(":")
    if kind in ARGUMENT_ONLY and not colon:
        ensure_loaded(entry_points=False)  # no plugin part can be named without `:`
        part = None
    else:
        ensure_loaded()
        part = PARTS[kind].get(name)
    if part is None:
        fallback = next((p for p in PARTS[kind].values() if p.fallback), None)
        if fallback is not None:
            return fallback, spec
        get_part(kind, name, hint)  # raises: an unknown name, with the known ones
    assert part is not None
    if part.takes_argument and not colon:  # an empty one is the factory's to judge
        raise UsageError(f"The {LABELS[kind]} {name!r} needs an argument: {part.usage}{hint}.")
    if not part.takes_argument and colon:
        raise UsageError(f"The {LABELS[kind]} {name!r} takes no argument: {name}{hint}.")
    return part, argument.strip()


def create(kind: str, spec: str, settings: Settings | None, *extra: Any, hint: str = "") -> Any:
    """The part `spec` names, made: `factory(argument, settings, *extra, options=...)`.
    `hint` goes into the error for an unknown name (see `get_part`)."""
    part, argument = resolve(kind, spec, hint)
    options = _options(kind, part, settings)
    return call_plugin(kind, part.name, part.factory, argument, settings, *extra, options=options)


def plugin_of(kind: str, name: str) -> tuple[str, str] | None:
    """The plugin that registered part `name` (its entry point's name and value), or None
    for pocketrag's own parts and those registered in this process (a test's)."""
    origin = ORIGINS.get((kind, name))
    return None if origin is None or is_builtin(origin[1]) else origin


def call_plugin(kind: str, name: str, function: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """`function(*args, **kw)` for part `name`: its factory, or a method of what the factory
    made. A plugin's part runs with stdout sent to stderr, and whatever it raises but a
    RagError (its message for the user) or Ctrl-C is `plugin_failure`; anyone else's part
    is called as it is."""
    if plugin_of(kind, name) is None:
        return function(*args, **kw)
    try:
        with stdout_to_stderr():
            return function(*args, **kw)
    except (RagError, *STOPPING):
        raise
    except BaseException as exc:  # even SystemExit or a BaseException of its own
        log.debug("%s %r failed", kind, name, exc_info=True)
        raise plugin_failure(kind, name, describe(exc)) from None


def plugin_failure(kind: str, name: str, what: str) -> RagError:
    """`Embedder 'x' from plugin 'p' (module:register) failed: WHAT. Update or uninstall
    that plugin.`: one line that tells the user whose part went wrong."""
    plugin, value = ORIGINS.get((kind, name)) or ("?", "?")
    label = LABELS.get(kind, kind)
    return RagError(
        f"{label[0].upper()}{label[1:]} {name!r} from plugin {plugin!r} ({value}) failed: "
        f"{what}. Update or uninstall that plugin."
    )


def env_name(kind: str, part_name: str, option: str) -> str:
    """`RAG_ENGINE_SEARXNG_URL`: the environment variable that sets a part's option."""
    words = [kind, part_name, option]
    return "RAG_" + "_".join(re.sub(r"[^A-Za-z0-9]", "_", w).upper() for w in words)


def part_options(kind: str, name: str, settings: Settings | None = None) -> dict[str, Any]:
    """The options of part `name`, each from the environment > its config-file section >
    its default, checked; the config file's `[<kind>s.*]` sections are checked whole."""
    return _options(kind, get_part(kind, name), settings)


def _options(kind: str, part: Part, settings: Settings | None) -> dict[str, Any]:
    """`part_options` for a part already found: a built-in found without the entry points
    (a local GGUF) stays so, unless a config section names a part they may hold."""
    path = (settings.home if settings is not None else rag_home()) / CONFIG_FILE
    section = _sections(kind, path).get(part.name, {})
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
    known = PARTS[kind]
    checked: dict[str, dict[str, Any]] = {}
    for section_name, section in sections.items():
        part = known.get(section_name)
        if part is None:  # a plugin's, maybe: only now are the entry points worth a scan
            ensure_loaded()
            part = known.get(section_name)
        if part is None:
            if FAILED:
                continue  # maybe the failed plugin's: its warning said so already
            names = ", ".join(sorted(known)) or "none"
            raise UsageError(
                f"Unknown {LABELS[kind]} {section_name!r} in section [{table}.{section_name}] "
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
