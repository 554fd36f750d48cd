"""Number passages and pack them into the model's token budget.

Retrieved text is untrusted: each passage goes into the prompt inside
`<source id="N">` delimiters, with anything in it that looks like those
delimiters neutralised, so a page cannot close its own block and speak as the
instructions. Text that is HTML (a search snippet with `<b>` tags, a page the
extractor could not read) is reduced to its visible text first: scripts, styles,
comments and tags never reach the model, and entities are decoded before the
delimiter check so `&lt;/source&gt;` cannot sneak through either.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from urllib.parse import urlparse

from rag.core.html_text import html_to_text
from rag.core.types import Passage

#: A title longer than this is cut in the prompt: it would only spend the evidence budget.
TITLE_CHARS = 200
#: A passage is cut to fit only when at least this many tokens of room are left.
MIN_PARTIAL_TOKENS = 48
#: `<source ...>`, `</source>`, and unclosed `<source` / `</source` fragments.
#: (`(?:/\s*)?`, not `\s*/?\s*`: two runs of spaces to split backtrack quadratically.)
_TAG_LIKE = re.compile(r"<\s*(?:/\s*)?source\b[^<>]*>?", re.IGNORECASE)
_SPACES = re.compile(r"[ \t\r\f\v]+")
#: Markup that makes a text HTML rather than prose that mentions a `<` or two.
_LOOKS_LIKE_HTML = re.compile(
    r"<\s*(?:!--|!doctype|/?(?:html|head|body|script|style|div|span|p|a|b|i|em|strong|br|li|ul|"
    r"ol|table|tr|td|th|h[1-6]|article|section|nav|footer|header|img|meta|link|noscript|iframe|"
    r"form|input|button|svg|code|pre|blockquote)\b)",
    re.IGNORECASE,
)


def looks_like_html(text: str) -> bool:
    return bool(_LOOKS_LIKE_HTML.search(text))


def clean_text(text: str) -> str:
    """Visible text only: HTML reduced to what a reader sees, no source-tag look-alikes,
    collapsed spaces, bounded blank lines."""
    if looks_like_html(text):
        text = html_to_text(text)
    elif "&" in text:
        text = html.unescape(text)
    text = _TAG_LIKE.sub(" ", text)
    text = _SPACES.sub(" ", text)
    return re.sub(r"\n\s*\n\s*\n+", "\n\n", text).strip()


def _attr(value: str) -> str:
    return html.escape(" ".join(value.split()), quote=True)


def format_source(number: int, passage: Passage) -> str:
    """One numbered block. A web source names its site (a reader weighs a source by it); a
    file path would only spend a small model's tokens, so local sources give their title."""
    site = urlparse(passage.location).hostname if passage.origin == "web" else None
    where = f' site="{_attr(site[:100])}"' if site else ""
    return (
        f'<source id="{number}" title="{_attr(passage.title[:TITLE_CHARS])}"{where}>\n'
        f"{clean_text(passage.text)}\n</source>"
    )


def format_sources(passages: Sequence[Passage]) -> str:
    return "\n\n".join(format_source(i, p) for i, p in enumerate(passages, start=1))


def pack_passages(
    passages: Sequence[Passage],
    *,
    budget: int,
    count_tokens: Callable[[str], int],
) -> list[Passage]:
    """The best-ranked passages whose formatted blocks fit in `budget` tokens, in rank order.

    A passage too long for the room left is cut at a word boundary when at least
    `MIN_PARTIAL_TOKENS` remain (and packing stops: the budget is spent); with
    less room it is skipped and a shorter, lower-ranked passage may still fit.
    Blocks are numbered by their final position, so `[n]` in the prompt is the
    n-th packed passage. The sum of the blocks' token counts (plus two tokens
    each for the separator) never exceeds `budget`.
    """
    packed: list[Passage] = []
    remaining = budget
    for passage in passages:
        if remaining <= 2:
            break
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
    words = clean_text(passage.text).split(" ")
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
