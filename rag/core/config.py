"""Settings, resolved as flag > `RAG_*` environment > config file > default.

`RAG_HOME` moves all state (config, indexes, caches); tests point it at a
temporary folder. The config file is `$RAG_HOME/config.toml` with the same keys
as the `Settings` fields, e.g. `model = "smollm2-135m"`, and one section per plugin part
that takes options, e.g. `[engines.searxng]` `url = "http://localhost:8888"` (`rag.core.plugins`).
"""

from __future__ import annotations

import math
import os
import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rag.core.domains import domains_text, parse_domains
from rag.core.errors import UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ENV_PREFIX = "RAG_"
CONFIG_FILE = "config.toml"


def rag_home() -> Path:
    """Where pocketrag keeps its state: `$RAG_HOME`, else `~/.pocketrag`."""
    raw = os.environ.get("RAG_HOME")
    return expand_path(raw, "RAG_HOME") if raw else expand_path("~/.pocketrag")


def expand_path(raw: str | Path, what: str = "") -> Path:
    """`raw` with a leading `~` or `~user` expanded: the one place every path a user gives
    (a folder to index, an index folder, RAG_HOME) is expanded. A `~user` that names no
    user on this machine (or a `~` without a home) is a UsageError naming `what` (the
    setting or option it came from), not pathlib's RuntimeError traceback."""
    try:
        return Path(raw).expanduser()
    except RuntimeError:
        text = str(raw)
        user = text[1:].split("/", 1)[0]
        who = f"there is no user {user!r} on this machine" if user else "there is no home folder"
        where = f"{what}=" if what else ""
        raise UsageError(
            f"Cannot expand {where}{text!r}: {who}. Give the path in full, without `~`."
        ) from None


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=rag_home)
    # model runtime
    model: str = "phi-3-mini"
    max_tokens: int = 512
    temperature: float = 0.0
    context_cap: int = 4096
    threads: int = 0  # 0: half the logical CPUs (about the physical cores)
    seed: int = 0
    weight_repack: str = "auto"  # llama.cpp's extra weight buffers: auto (off on AMX), on, off
    openai_api_key: str = ""
    concurrency: int = 1  # questions `rag eval run` sends a model server at once
    # retrieval
    k: int = 5
    engine: str = "ddgs"  # or a chain, tried in order: "ddgs,searxng" (rag.web.chain)
    searxng_url: str = ""
    region: str = ""  # country-language, e.g. us-en; "" (or the old "wt-wt"): none
    safesearch: str = "moderate"
    timelimit: str = ""
    fetch: int = 3  # result pages read per search; 3 measured best (README: Reading pages)
    allow_private_fetch: bool = False
    # only these IP:port pairs, comma-separated, besides public pages (rag.web.fetch)
    private_fetch_hosts: str = ""
    search_cache_ttl: int = 86400
    site: str = ""  # only results from these domains, comma-separated (rag.core.domains)
    exclude_domains: str = ""  # never results from these domains (nor their subdomains)
    embedder: str = "all-MiniLM-L6-v2"
    embedder_runtime: str = "auto"  # onnx-int8 for new indexes, else what the index records
    store: str = "local"  # where a new index keeps chunks and vectors: indexers.stores
    hybrid: bool = True
    # evidence selection
    reranker: str = "hybrid"  # hybrid, embedder, bm25, cross-encoder:HF_ID, none
    evidence_tokens: int = 0  # 0: sized to the model (small models read less)
    relevance_cut: float = 2.0  # drop sentences this many std devs below the best; 0: keep
    evidence_order: str = "best-last"  # the best source next to the question; or best-first
    # a running `rag serve` that `rag ask` and `rag search` send their work to ("": none)
    server: str = ""  # e.g. http://127.0.0.1:8765
    server_token: str = ""  # sent as `Authorization: Bearer TOKEN`
    server_timeout: float = 300.0  # seconds an ask waits on a silent server (a search: <= 60)

    @property
    def indexes_dir(self) -> Path:
        return self.home / "indexes"

    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def uploads_dir(self) -> Path:
        """Files uploaded to `rag serve`, one folder per index: the user's documents,
        indexed like any folder (the rest of RAG_HOME is pocketrag's own and never is)."""
        return self.home / "uploads"

    def with_overrides(self, **flags: Any) -> Settings:
        """Apply command-line flags; a flag left at None keeps the lower layer's value."""
        return replace(self, **{k: v for k, v in flags.items() if v is not None})


def _coerce(name: str, raw: Any, kind: type, origin: str) -> Any:
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    if kind is str:  # a TOML number, list, table or date is not a name, a URL or a key
        raise UsageError(f"{origin}: {name} must be text in quotes, got {raw!r}.")
    text = str(raw).strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(text)
        return kind(text)
    except ValueError:
        wanted = {int: "a whole number", float: "a number", bool: "true or false"}.get(kind, "text")
        raise UsageError(f"{origin}: {name} must be {wanted}, got {raw!r}.") from None


_TYPES: dict[str, type] = {f.name: type(f.default) for f in fields(Settings) if f.name != "home"}
#: Config-file tables holding the options of plugin parts, by part kind: `[engines.searxng]`
#: `url = "..."` (see `rag.core.plugins`, which checks their names and values when a part of
#: that kind is used, once every plugin has registered).
PART_TABLES: dict[str, str] = {
    "engines": "engine",
    "generators": "generator",
    "stores": "store",
    "embedders": "embedder",
    "rerankers": "reranker",
    "commands": "command",
    "routes": "route",
}


def read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"Cannot read config file {path}: {exc}. Fix or remove it.") from None
    unknown = sorted(set(data) - set(_TYPES) - set(PART_TABLES))
    if unknown:
        raise UsageError(
            f"Unknown setting(s) in {path}: {', '.join(unknown)}. "
            f"Known settings: {', '.join(sorted(_TYPES))}; and sections "
            f"{', '.join(f'[{table}.NAME]' for table in PART_TABLES)}."
        )
    for table in PART_TABLES:
        sections = data.get(table, {})
        if not isinstance(sections, dict):
            raise UsageError(
                f"{path}: {table} must be sections such as [{table}.NAME], got {sections!r}."
            )
        for name, section in sections.items():
            if not isinstance(section, dict):
                raise UsageError(
                    f"{path}: {table}.{name} must be a section [{table}.{name}] of options, "
                    f"got {section!r}."
                )
    return data


def parse_setting(name: str, raw: Any, origin: str) -> Any:
    """`raw` (text from the environment, a TOML value, an eval condition's option) as the
    setting's type, range-checked and in its stored form (a region lower-cased, a domain
    list normalised); a UsageError naming `origin` otherwise."""
    if name in DOMAIN_SETTINGS and isinstance(raw, list | tuple):
        raw = domains_text(raw, origin)  # a TOML list: exclude_domains = ["a.org", "b.com"]
    return stored_setting(name, _coerce(name, raw, _TYPES[name], origin), origin)


def stored_setting(name: str, value: Any, origin: str) -> Any:
    """`value` (of the setting's type) checked, in the form Settings keeps."""
    check_setting(name, value, origin)
    if name == "region":
        return "" if is_no_region(value) else value.strip().lower()
    if name in DOMAIN_SETTINGS:
        return domains_text(value, origin)
    return value


def parse_value(
    name: str,
    raw: Any,
    kind: type,
    origin: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> Any:
    """`raw` as `kind` (str, int, float or bool), checked by `check_value`: how a plugin
    part's option is read (`rag.core.plugins.Option`), the same way as a setting."""
    value = _coerce(name, raw, kind, origin)
    check_value(name, value, origin, low=low, high=high, choices=choices)
    return value


def load_settings(**flags: Any) -> Settings:
    """Resolve every setting through the four layers; `flags` are the top layer."""
    home = expand_path(flags.pop("home", None) or rag_home(), "RAG_HOME")
    file_values = read_config_file(home / CONFIG_FILE)
    values: dict[str, Any] = {}
    for name in _TYPES:
        env_name = ENV_PREFIX + name.upper()
        if flags.get(name) is not None:
            values[name] = stored_setting(name, flags[name], f"--{name.replace('_', '-')}")
        elif env_name in os.environ:
            values[name] = parse_setting(name, os.environ[env_name], env_name)
        elif name in file_values:
            values[name] = parse_setting(name, file_values[name], str(home / CONFIG_FILE))
    return Settings(home=home, **values)


#: Inclusive bounds of every numeric setting; a value outside them is a usage error, whichever
#: layer it came from (flag, environment, config file): this is the one check for all three.
#: Upper bounds keep a typo from exhausting the machine (RAG_THREADS=100000 used to crash
#: llama.cpp; a context of a million tokens asks for gigabytes of KV cache).
_RANGES: dict[str, tuple[float, float]] = {
    "k": (1, 100),
    "max_tokens": (1, 32_768),
    "context_cap": (64, 1_048_576),
    "temperature": (0.0, 2.0),
    "threads": (0, 1024),
    "seed": (0, 2**32 - 1),
    "fetch": (0, 10),
    "search_cache_ttl": (0, 10 * 365 * 86_400),
    "evidence_tokens": (0, 1_048_576),
    "relevance_cut": (0.0, 100.0),
    "concurrency": (1, 64),
    "server_timeout": (1, 86_400),
}
#: Settings that take one of a few words (the web engines share the safesearch and time
#: limit words: `rag.web.base`).
SAFESEARCH_LEVELS = ("on", "moderate", "off")
TIMELIMITS = ("", "d", "w", "m", "y")
#: Settings that hold domain names, comma-separated (or a TOML list): rag.core.domains.
DOMAIN_SETTINGS = frozenset({"site", "exclude_domains"})
#: A search region is country-language, two letters each (`us-en`, `de-de`): ddgs splits it
#: on `-` into the two and builds host names from them (`en.wikipedia.org`). Empty, or the
#: old default `wt-wt` (which sent ddgs to `wt.wikipedia.org`, a host that does not
#: exist), is no region.
REGION = re.compile(r"[a-z]{2}-[a-z]{2}")
NO_REGION = ("", "wt-wt")


def is_no_region(region: str) -> bool:
    return region.strip().lower() in NO_REGION


_CHOICES: dict[str, tuple[str, ...]] = {
    "weight_repack": ("auto", "on", "off"),
    "evidence_order": ("best-first", "best-last"),
    "embedder_runtime": ("auto", "onnx", "onnx-int8", "torch"),
    "safesearch": SAFESEARCH_LEVELS,
    "timelimit": TIMELIMITS,
}


def check_setting(name: str, value: Any, origin: str) -> None:
    """A UsageError naming `origin` when `value` is out of the setting's range or choices,
    or not a region or domain list where one is wanted."""
    if name == "region" and isinstance(value, str):
        text = value.strip().lower()
        if not is_no_region(text) and not REGION.fullmatch(text):
            raise UsageError(
                f"{origin}: region must be country-language, two letters each (us-en, "
                f"de-de, fr-fr), or empty for none; got {value!r}."
            )
        return
    if name in DOMAIN_SETTINGS and isinstance(value, str):
        parse_domains(value, origin)
        return
    low, high = _RANGES.get(name, (None, None))
    check_value(name, value, origin, low=low, high=high, choices=_CHOICES.get(name))


def check_value(
    name: str,
    value: Any,
    origin: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
) -> None:
    """The one range and choice check, for settings and for plugin parts' options alike:
    a UsageError naming `origin` when `value` is not one of `choices` or outside
    [`low`, `high`] (either bound may be None) or not finite."""
    if choices is not None:
        if value not in choices:
            words = ", ".join(w or repr(w) for w in choices)
            raise UsageError(f"{origin}: {name} must be one of {words}, got {value!r}.")
        return
    if low is None and high is None:
        return
    if low is not None and high is not None:
        bounds = f"between {low} and {high}"
    else:
        bounds = f"at least {low}" if low is not None else f"at most {high}"
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{origin}: {name} must be a finite number {bounds}.")
    if (low is not None and value < low) or (high is not None and value > high):
        raise UsageError(f"{origin}: {name} must be {bounds}, got {value!r}.")
