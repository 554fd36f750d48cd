"""A stored conversation as Markdown: each turn's question, answer and numbered sources
(title — location, then the text the model read, quoted), so the file stands on its own.

Everything in it came from a user, a model or a document, so it is written to stay
inert: HTML is escaped (a viewer that renders Markdown runs no `<script>`), titles and
locations stay on one line, and a source's text is quoted line by line, so nothing in a
document can end its quote or start a heading of the export's own.
"""

from __future__ import annotations

import re
from typing import Any

from rag.core.types import shown_text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _text(value: Any) -> str:
    """Text as it may appear in the export: no control characters, no live HTML."""
    text = _CONTROL.sub("", str(value if value is not None else ""))
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _line(value: Any) -> str:
    return " ".join(_text(value).split())


def _quoted(text: str) -> str:
    lines = text.strip("\n").splitlines() or [""]
    return "\n".join(f"> {line}".rstrip() for line in lines)


def markdown(conversation: dict[str, Any]) -> str:
    """The export of `ConversationStore.get`'s conversation."""
    turns = conversation.get("turns", [])
    parts = [
        f"# {_line(conversation['title'])}",
        f"Conversation {conversation['id']}, started {conversation['created']}, updated "
        f"{conversation['updated']}; {len(turns)} turn{'s' if len(turns) != 1 else ''}. "
        "Exported from pocketrag.",
    ]
    for number, turn in enumerate(turns, 1):
        parts.append(_turn(number, turn))
    return "\n\n".join(parts) + "\n"


def _turn(number: int, turn: dict[str, Any]) -> str:
    answer = turn.get("answer") or {}
    question = _line(turn.get("question", ""))
    parts = [f"## {number}. {question}"]
    query = _line(turn.get("search_query", ""))
    if query and query != question:
        parts.append(f"*Searched for:* {query}")
    parts.append(_text(answer.get("answer", "")).strip() or "*(no answer)*")
    for warning in answer.get("warnings") or []:
        parts.append(f"*Warning:* {_line(warning)}")
    sources = [s for s in answer.get("sources") or [] if isinstance(s, dict)]
    if sources:
        parts.append("### Sources")
        for source in sources:
            head = f"[{source.get('id', '?')}] {_line(source.get('title', ''))} — "
            parts.append(head + _line(source.get("location", "")))
            spans = source.get("spans")
            read = shown_text(
                str(source.get("text", "")), spans if isinstance(spans, list) else None
            )
            parts.append(_quoted(_text(read)))
    return "\n\n".join(parts)
