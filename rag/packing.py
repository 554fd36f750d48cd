"""Number passages and pack them into the model's token budget.

Retrieved text is untrusted: each passage goes into the prompt inside
`<source id="N">` delimiters, with anything in it that looks like those
delimiters (or other markup) neutralised, so a page cannot close its own block
and speak as the instructions.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import replace

from rag.types import Passage

#: A passage is cut to fit only when at least this many tokens of room are left.
MIN_PARTIAL_TOKENS = 48
_TAG_LIKE = re.compile(r"<\s*/?\s*source\b[^>]*>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")


def clean_text(text: str) -> str:
    """Visible text only: no source-tag look-alikes, collapsed spaces, bounded blank lines."""
    text = _TAG_LIKE.sub(" ", text)
    text = _SPACES.sub(" ", text)
    return re.sub(r"\n\s*\n\s*\n+", "\n\n", text).strip()


def _attr(value: str) -> str:
    return html.escape(" ".join(value.split()), quote=True)


def format_source(number: int, passage: Passage) -> str:
    return (
        f'<source id="{number}" title="{_attr(passage.title)}" '
        f'location="{_attr(passage.location)}">\n{clean_text(passage.text)}\n</source>'
    )


def format_sources(passages: Sequence[Passage]) -> str:
    return "\n\n".join(format_source(i, p) for i, p in enumerate(passages, start=1))


def pack_passages(
    passages: Sequence[Passage],
    *,
    budget: int,
    count_tokens: Callable[[str], int],
) -> list[Passage]:
    """The best-ranked passages whose formatted blocks fit in `budget` tokens, in order.

    The last one may be cut short when enough room is left; the sum of the
    blocks' token counts (plus one separator token each) never exceeds `budget`.
    """
    packed: list[Passage] = []
    remaining = budget
    for passage in passages:
        number = len(packed) + 1
        cost = count_tokens(format_source(number, passage)) + 2
        if cost <= remaining:
            packed.append(passage)
            remaining -= cost
            continue
        if remaining >= MIN_PARTIAL_TOKENS:
            cut = _truncate_to_fit(passage, number, remaining, count_tokens)
            if cut is not None:
                packed.append(cut)
        break
    return packed


def _truncate_to_fit(
    passage: Passage, number: int, room: int, count_tokens: Callable[[str], int]
) -> Passage | None:
    """The longest word-boundary prefix of the passage whose block fits in `room` tokens."""
    words = passage.text.split(" ")
    lo, hi, best = 1, len(words) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = replace(passage, text=" ".join(words[:mid]) + " …")
        if count_tokens(format_source(number, candidate)) + 2 <= room:
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    if best is not None:
        best.meta = {**passage.meta, "truncated": True}
    return best
