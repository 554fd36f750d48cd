"""The shapes of `rag serve`'s answers that the CLI prints: a search's results, an ask's
answer, sources and timings, with the types of their fields. `lacks` names what an answer
lacks of one, for one error line instead of a KeyError or TypeError from the printing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]


def _is(*kinds: type) -> Check:
    """isinstance, where a boolean is not a number (JSON tells them apart)."""
    return lambda value: isinstance(value, kinds) and not isinstance(value, bool)


def _optional(check: Check) -> Check:
    return lambda value: value is None or check(value)


def _list_of(check: Check) -> Check:
    return lambda value: isinstance(value, list) and all(check(item) for item in value)


class Items(dict[str, Any]):
    """A shape for a list whose items are objects of this shape."""


WHOLE, NUMBER, TEXT = _is(int), _is(int, float), _is(str)
SPAN = _list_of(WHOLE)  # [start, end), checked for two below
#: `rag.core.types.Source`'s fields (the commands print each result and source as one), with
#: their types; `spans` and `rerank_score` may be null or left out.
SOURCE_SHAPE: dict[str, Any] = {
    "id": WHOLE,
    "title": TEXT,
    "location": TEXT,
    "origin": TEXT,
    "score": NUMBER,
    "text": TEXT,
    "spans": _optional(_list_of(lambda span: SPAN(span) and len(span) == 2)),
    "rerank_score": _optional(NUMBER),
}
#: The timings `rag ask` prints on its last line.
TIMINGS_SHAPE: dict[str, Any] = {
    "prompt_tokens": WHOLE,
    "ttft_s": NUMBER,
    "completion_tokens": WHOLE,
    "tokens_per_s": NUMBER,
    "total_s": NUMBER,
}
#: The fields of `rag search --json`'s and `rag ask --json`'s objects that the commands print.
SEARCH_SHAPE: dict[str, Any] = {"results": Items(SOURCE_SHAPE)}
ASK_SHAPE: dict[str, Any] = {
    "answer": TEXT,
    "model": TEXT,
    "sources": Items(SOURCE_SHAPE),
    "warnings": _list_of(TEXT),
    "timings": TIMINGS_SHAPE,
}


def lacks(data: Any, shape: dict[str, Any]) -> list[str]:
    """What `data` lacks of `shape`, as the error names it: a field missing or of another
    type (`results`), items that are not objects (`sources as objects`), fields of the
    items or of a nested object (`id, score in results`, `ttft_s in timings`)."""
    if not isinstance(data, dict):
        return ["an object"]
    missing: list[str] = []
    for name, kind in shape.items():
        value = data.get(name)
        if isinstance(kind, Items):
            if not isinstance(value, list):
                missing.append(name)
            elif not all(isinstance(item, dict) for item in value):
                missing.append(f"{name} as objects")
            else:
                inner = {field for item in value for field in lacks(item, kind)}
                if inner:
                    missing.append(f"{', '.join(f for f in kind if f in inner)} in {name}")
        elif isinstance(kind, dict):
            if not isinstance(value, dict):
                missing.append(name)
            elif inner := lacks(value, kind):
                missing.append(f"{', '.join(inner)} in {name}")
        elif not kind(value):
            missing.append(name)
    return missing
