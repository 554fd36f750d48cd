"""Request fields -> Settings and sources: the one mapping `rag serve` applies, named like
`rag ask`'s options (`--max-tokens` is `max_tokens`). A thin client of the server, or any
other front end, imports `settings_for_request` and `sources_for_request` to read a
request exactly as the server does.

Every value is checked as a flag is (`rag.config.parse_setting`): out of range, the wrong
type or not an allowed word is a UsageError naming the field (HTTP 400).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rag.config import Settings, parse_setting
from rag.errors import UsageError
from rag.evidence.rerankers import NO_RERANK
from rag.serve.config import SETTING_FIELDS

#: Request fields that choose the sources.
SOURCE_FIELDS = ("search", "index")
#: Every field `POST /v1/ask` takes (an unknown field is an error, not silently ignored).
ASK_FIELDS = frozenset(
    {"question", "stream", "model", "no_rerank", *SETTING_FIELDS, *SOURCE_FIELDS}
)
#: Every field of the `pocketrag` object a chat completion request may carry.
CHAT_FIELDS = frozenset({"no_rerank", *SETTING_FIELDS, *SOURCE_FIELDS})


def check_fields(fields: Mapping[str, Any], known: Iterable[str], where: str) -> None:
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise UsageError(
            f"Unknown field(s) in the {where}: {', '.join(unknown)}. "
            f"Known: {', '.join(sorted(known))}."
        )


def flag(fields: Mapping[str, Any], name: str, where: str, default: bool = False) -> bool:
    """A true/false field: JSON true/false, or (a query string) true/false/1/0/yes/no."""
    raw = fields.get(name)
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().lower() in {"1", "true", "yes", "on", "0", "false",
                                                       "no", "off", ""}:  # fmt: skip
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    raise UsageError(f"{where}: {name} must be true or false, got {raw!r}.")


def settings_for_request(
    base: Settings, fields: Mapping[str, Any], *, where: str = "request"
) -> Settings:
    """`base` (the server's settings) with the request's setting fields applied.

    `no_rerank: true` is `reranker: "none"`. A reranker that takes an argument
    (`cross-encoder:HF_ID`, which may download a model) is taken only when it is the
    server's own; the argument-free ones (`hybrid`, `embedder`, `bm25`, `none`) always are.
    """
    overrides: dict[str, Any] = {}
    for name in SETTING_FIELDS:
        raw = fields.get(name)
        if raw is None:
            continue
        if isinstance(raw, dict | list):
            raise UsageError(f"{where}: {name} must be one value, got {raw!r}.")
        overrides[name] = parse_setting(name, raw, f"{where} field {name!r}")
    reranker = overrides.get("reranker")
    if flag(fields, "no_rerank", where):
        if reranker not in (None, NO_RERANK):
            raise UsageError(f"{where}: no_rerank and reranker {reranker!r} contradict each other.")
        overrides["reranker"] = NO_RERANK
    elif reranker is not None and ":" in reranker and reranker.strip() != base.reranker.strip():
        raise UsageError(
            f"{where}: reranker {reranker!r} is not this server's ({base.reranker!r}); a request "
            "may choose hybrid, embedder, bm25 or none, or the server's own."
        )
    return base.with_overrides(**overrides)


def index_names(raw: Any, where: str) -> list[str]:
    """The `index` field: one name or a list of names, each a plain index name."""
    from indexers.store import is_path_name

    names = [raw] if isinstance(raw, str) else raw
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise UsageError(f"{where}: index must be a name or a list of names, got {raw!r}.")
    for name in names:
        if not name.strip() or is_path_name(name):
            raise UsageError(
                f"{where}: index {name!r} is not an index name. Name an index from "
                "`GET /v1/indexes` (letters, digits, '.', '_', '-'); paths are not taken."
            )
    return list(dict.fromkeys(names))


def sources_for_request(
    fields: Mapping[str, Any],
    *,
    indexes: Iterable[str] = (),
    search: bool = False,
    allowed: Iterable[str] | None = None,
    where: str = "request",
) -> list[str]:
    """The source specs (`index:NAME`, `web`) a request asks for. `index` and `search`
    each default to the server's (`indexes`, `search`); `"index": []` or `"search": false`
    turn them off. With `allowed` (the server was started with --index), naming any other
    index is refused (403)."""
    from rag.retrieval import source_specs
    from rag.serve.errors import Forbidden

    raw = fields.get("index")
    names = list(indexes) if raw is None else index_names(raw, where)
    if allowed is not None:
        allowed = set(allowed)
        outside = [n for n in names if n not in allowed]
        if outside:
            raise Forbidden(
                f"{where}: index {outside[0]!r} is not served here; this server answers "
                f"from {', '.join(sorted(allowed))} only."
            )
    return source_specs(web=flag(fields, "search", where, default=search), indexes=names)
