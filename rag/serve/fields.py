"""Request fields -> Settings and sources: the one mapping `rag serve` applies, named like
`rag ask`'s options (`--max-tokens` is `max_tokens`). A thin client of the server, or any
other front end, imports `settings_for_request` and `sources_for_request` to read a
request exactly as the server does.

The per-question fields are `rag.question_options`, as the CLI's flags are; every value is
checked as a flag is: out of range, the wrong type or not an allowed word is a UsageError
naming the field (HTTP 400).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rag.core.config import Settings
from rag.core.errors import UsageError
from rag.question_options import ASK_OPTIONS, overrides

#: Request fields that choose the sources.
SOURCE_FIELDS = ("search", "index")
#: Every field `POST /v1/ask` takes (an unknown field is an error, not silently ignored).
ASK_FIELDS = frozenset({"question", "stream", "model", *ASK_OPTIONS, *SOURCE_FIELDS})
#: Every field of the `pocketrag` object a chat completion request may carry.
CHAT_FIELDS = frozenset({*ASK_OPTIONS, *SOURCE_FIELDS})


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
    """`base` (the server's settings) with the request's per-question options applied,
    read as the CLI reads its flags (`rag.question_options`).

    A reranker that takes an argument (`cross-encoder:HF_ID`, which may download a model)
    is taken only when it is the server's own; the argument-free ones (`hybrid`,
    `embedder`, `bm25`, `none`) always are.
    """
    given = {name: fields.get(name) for name in ASK_OPTIONS}
    given["no_rerank"] = flag(fields, "no_rerank", where)
    chosen = overrides(given, origin=lambda option: f"{where} field {option.name!r}")
    reranker = chosen.get("reranker")
    if reranker is not None and ":" in reranker and reranker.strip() != base.reranker.strip():
        raise UsageError(
            f"{where}: reranker {reranker!r} is not this server's ({base.reranker!r}); a request "
            "may choose hybrid, embedder, bm25 or none, or the server's own."
        )
    return base.with_overrides(**chosen)


def index_names(raw: Any, where: str) -> list[str]:
    """The `index` field: one name or a list of names, each a plain index name."""
    from rag.core.names import is_path_name

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
    from rag.serve.errors import Forbidden
    from rag.sources import source_specs

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
