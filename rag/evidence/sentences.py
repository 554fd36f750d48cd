"""Split text into sentences as character spans, so a kept sentence can be named by its
offsets in the source (what `rag ask --json` reports) and read next to its neighbours.

A rule-based splitter, not a model: evidence is selected on every question, so it must
cost microseconds. It breaks after `.`, `!`, `?` (and closing quotes or brackets) before
a capital, digit or opening quote, and on blank lines; it does not break after an
initial, a common abbreviation or a number's decimal point. A "sentence" longer than
`MAX_SENTENCE_CHARS` (a table row, a list without stops) is cut at spaces, so one unit
never swallows a whole budget.
"""

from __future__ import annotations

import re

MAX_SENTENCE_CHARS = 600
_BREAK = re.compile(r"""[.!?]["'”’)\]]*(?P<gap>\s+)(?=["'“‘(\[]?[A-Z0-9])|(?P<blank>\n\s*\n)""")
_ABBREVIATION = re.compile(
    r"(?:\b[A-Za-z]|\b(?:Mr|Mrs|Ms|Dr|Prof|Sr|Jr|St|Mt|Ft|vs|etc|e\.g|i\.e|cf|al|No|Nos|"
    r"Vol|pp|ca|approx|Inc|Ltd|Co|Corp|Gen|Gov|Sen|Rep|Rev|Lt|Col|Capt|Sgt|Jan|Feb|Mar|Apr|"
    r"Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|U\.S|U\.K))\.[\"'”’)\]]*$"
)


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of `text`, in order, stripped of surrounding space."""
    spans: list[tuple[int, int]] = []
    start = 0
    for found in _BREAK.finditer(text):
        if found["blank"] is None:
            end = found.start("gap")
            if _ABBREVIATION.search(text[max(start, end - 12) : end]):
                continue
        else:
            end = found.start()
        _add(text, start, end, spans)
        start = found.end()
    _add(text, start, len(text), spans)
    return spans


def _add(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while end - start > MAX_SENTENCE_CHARS:
        cut = text.rfind(" ", start + MAX_SENTENCE_CHARS // 2, start + MAX_SENTENCE_CHARS)
        cut = cut if cut > start else start + MAX_SENTENCE_CHARS
        spans.append((start, cut))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        spans.append((start, end))
