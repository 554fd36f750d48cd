"""The per-question options, declared once: `rag ask`, `rag chat` and `rag search` take them
as flags (rag.cli.options builds the flags from here), `rag serve` as request fields, and
the CLI's client of a server sends them by these names. A new per-question option is one
`QuestionOption` here plus its use where the setting is read.

Each option sets the setting of its name, except `no_rerank`, which is `reranker = none`.
Values are checked as every setting is (`rag.core.config.parse_setting`), whichever front
end they came through.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rag.core.config import parse_setting, parse_value
from rag.core.errors import UsageError

NO_RERANK = "none"


@dataclass(frozen=True)
class QuestionOption:
    """`name` is the setting (and request field); `flags` its spellings on the command line
    (default `--name-with-dashes`); `generation` marks an option that shapes the answer,
    not the search, so `rag search` does not take it. A `repeatable` option (text) may be
    given several times, or as a list in a request, or as comma-separated text anywhere:
    its setting holds the values joined by commas."""

    name: str
    type: type
    help: str
    flags: tuple[str, ...] = ()
    generation: bool = False
    repeatable: bool = False

    @property
    def spellings(self) -> tuple[str, ...]:
        return self.flags or (f"--{self.name.replace('_', '-')}",)


QUESTION_OPTIONS: tuple[QuestionOption, ...] = (
    QuestionOption(
        "k",
        int,
        "Most sources in the prompt (a reranker reads 10 candidates per source). Env: RAG_K.",
        ("--k", "-k"),
    ),
    QuestionOption(
        "max_tokens", int, "Longest answer, in tokens. Env: RAG_MAX_TOKENS.", generation=True
    ),
    QuestionOption(
        "temperature",
        float,
        "0 is greedy (default), at most 2. Env: RAG_TEMPERATURE.",
        generation=True,
    ),
    QuestionOption(
        "engine",
        str,
        "Web search engine: ddgs, searxng or a plugin's; several, tried in order: "
        "ddgs,searxng. Env: RAG_ENGINE.",
    ),
    QuestionOption("fetch", int, "Read the top N result pages (default 3; 0: snippets only)."),
    QuestionOption(
        "region",
        str,
        "Search region, country-language: us-en, de-de; empty: none. Env: RAG_REGION.",
    ),
    QuestionOption(
        "site",
        str,
        "Only results from this domain or its subdomains (repeatable), whatever the engine.",
        repeatable=True,
    ),
    QuestionOption("safesearch", str, "on, moderate or off. Env: RAG_SAFESEARCH."),
    QuestionOption("timelimit", str, "Results from the last d(ay), w(eek), m(onth), y(ear)."),
    QuestionOption(
        "reranker",
        str,
        "hybrid (default, offline), embedder, bm25, cross-encoder:HF_ID or none. "
        "Env: RAG_RERANKER.",
    ),
    QuestionOption("no_rerank", bool, "Keep the retrievers' order and whole passages."),
    QuestionOption(
        "evidence_tokens",
        int,
        "Token budget for sources in the prompt; 0 sizes it to the model. "
        "Env: RAG_EVIDENCE_TOKENS.",
        generation=True,
    ),
)
#: The options each kind of front end takes, by name.
ASK_OPTIONS: tuple[str, ...] = tuple(o.name for o in QUESTION_OPTIONS)
SEARCH_OPTIONS: tuple[str, ...] = tuple(o.name for o in QUESTION_OPTIONS if not o.generation)
#: The settings they set (what a client sends a server, resolved in its own process).
ASK_SETTINGS: tuple[str, ...] = tuple(n for n in ASK_OPTIONS if n != "no_rerank")
SEARCH_SETTINGS: tuple[str, ...] = tuple(n for n in SEARCH_OPTIONS if n != "no_rerank")


Origin = Callable[[QuestionOption], str]


def flag_origin(option: QuestionOption) -> str:
    """How the command line names an option in a message: `--max-tokens`."""
    return option.spellings[0]


def overrides(values: Mapping[str, Any], origin: Origin = flag_origin) -> dict[str, Any]:
    """The settings that option `values` set (None or absent: not given), each checked as
    a flag is, a bad one a UsageError naming `origin(option)`."""
    chosen: dict[str, Any] = {}
    for option in QUESTION_OPTIONS:
        raw = values.get(option.name)
        if raw is None:
            continue
        if option.repeatable and isinstance(raw, list | tuple):
            if not all(isinstance(item, str) for item in raw):
                raise UsageError(f"{origin(option)} must be text or a list of text, got {raw!r}.")
            raw = ",".join(raw)
        if isinstance(raw, dict | list):
            raise UsageError(f"{origin(option)} must be one value, got {raw!r}.")
        if option.name == "no_rerank":
            if parse_value(option.name, raw, bool, origin(option)):
                chosen["no_rerank"] = True
            continue
        chosen[option.name] = parse_setting(option.name, raw, origin(option))
    if chosen.pop("no_rerank", False):
        reranker = chosen.get("reranker")
        if reranker not in (None, NO_RERANK):
            raise UsageError(f"--no-rerank and --reranker {reranker} contradict each other.")
        chosen["reranker"] = NO_RERANK
    return chosen
