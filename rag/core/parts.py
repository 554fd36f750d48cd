"""What a part is: `Part` (a kind, a name, a factory, its options) and `Option`.

Kept apart from the registry (`rag.core.plugins`) and its loading
(`rag.core.plugin_loading`) so both can check a part the same way.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rag.core.config import PART_TABLES, parse_value

#: Part kinds, each with its config-file table (`[engines.NAME]`).
TABLES: dict[str, str] = {kind: table for table, kind in PART_TABLES.items()}
KINDS: tuple[str, ...] = tuple(TABLES)
#: How a part of each kind is named in messages.
LABELS = {
    "engine": "search engine",
    "generator": "model prefix",
    "store": "index store",
    "embedder": "embedder",
    "reranker": "reranker",
    "command": "command",
    "route": "server route",
}
#: Kinds whose every part takes an argument, declared or not (a model prefix:
#: `openai:URL#MODEL`): a spec without `:` names none of them, so it goes to the kind's
#: fallback without loading any plugin.
ARGUMENT_ONLY = frozenset({"generator"})
_OPTION_TYPES = (str, int, float, bool)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


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
    """A swappable part of `kind` (one of KINDS), chosen by `name`.

    A spec names a part as `NAME` or, when the part takes an `argument` (its description,
    such as "HF_ID"), as `NAME:ARGUMENT`: `hybrid`, `cross-encoder:BAAI/bge-reranker-base`,
    `openai:http://127.0.0.1:8080/v1#phi3`. A `fallback` part takes every spec of its
    kind that names no part, whole, as its argument: a GGUF path or alias for `generator`,
    a sentence-transformers model for `embedder`. See `rag.core.plugins` for how `factory`
    is called.

    `reserves` are names this part answers to without registering them, which no later part
    may take: the default embedder `all-MiniLM-L6-v2` is an argument of the
    sentence-transformers fallback, and a plugin part by that name would otherwise take
    every index built without `--embedder`."""

    kind: str
    name: str
    factory: Callable[..., Any]
    options: tuple[Option, ...] = ()
    help: str = ""
    argument: str = ""
    fallback: bool = False
    reserves: tuple[str, ...] = ()

    def check(self) -> None:
        """A plugin's mistake shows here, when it registers, not when a user picks the part."""
        where = f"{self.kind} {self.name!r}"
        if self.kind not in TABLES:
            raise ValueError(f"part kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"a {self.kind} part needs a name of letters, digits, . _ -")
        if not callable(self.factory):
            raise ValueError(f"{where}: factory {self.factory!r} is not callable")
        if not all(isinstance(n, str) and _NAME.fullmatch(n) for n in self.reserves):
            raise ValueError(f"{where}: reserves {self.reserves!r} are not all part names")
        seen: set[str] = set()
        for option in self.options:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", option.name) or option.name in seen:
                raise ValueError(f"{where}: bad or repeated option {option.name!r}")
            if option.type not in _OPTION_TYPES:
                raise ValueError(
                    f"{where}: option {option.name!r} has type {option.type!r}; "
                    "use str, int, float or bool"
                )
            seen.add(option.name)
            # a default outside its own range is the plugin's bug: reported as its failure
            option.parse(option.default, f"{where} default")

    @property
    def takes_argument(self) -> bool:
        return bool(self.argument) or self.kind in ARGUMENT_ONLY

    @property
    def usage(self) -> str:
        """How a spec names it: `hybrid`, `cross-encoder:HF_ID`."""
        return f"{self.name}:{self.argument or 'ARGUMENT'}" if self.takes_argument else self.name


class Registry:
    """What a plugin's `register(registry)` receives: `registry.register(registry.Part(...))`.
    Its parts join the registry only if `register` returns without an error."""

    Part = Part
    Option = Option

    def __init__(self) -> None:
        self.parts: list[Part] = []

    def register(self, part: Part) -> None:
        part.check()
        self.parts.append(part)
