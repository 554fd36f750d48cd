"""Stored conversations: `rag chat` saves each one, `rag chat --resume ID` continues it,
`rag history` lists, shows, exports, renames and removes them, and `rag serve` offers
the same at `/v1/conversations` (the research desk).

A turn keeps the question, the search query it was rewritten into, and the whole
`rag ask --json` object (answer, sources, dropped, timings, warnings). Continuing a
conversation asks with its stored turns as history, trimmed by `rag.chat`'s rules (the
last few turns, at most a quarter of the context).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rag.conversations.export import markdown
from rag.conversations.store import FILE_NAME, ConversationStore
from rag.conversations.values import (
    MAX_TITLE_CHARS,
    MAX_TURNS,
    ConversationNotFound,
    ConversationsBusy,
    ConversationsUnreadable,
    parse_id,
)
from rag.core.config import Settings
from rag.core.types import Message

__all__ = [
    "FILE_NAME",
    "MAX_TITLE_CHARS",
    "MAX_TURNS",
    "ConversationNotFound",
    "ConversationStore",
    "ConversationsBusy",
    "ConversationsUnreadable",
    "history_messages",
    "markdown",
    "open_store",
    "parse_id",
    "saved_line",
]


def open_store(settings: Settings) -> ConversationStore:
    """The store of `settings.home` (`$RAG_HOME/conversations.sqlite`)."""
    return ConversationStore(settings.home / FILE_NAME)


def history_messages(turns: Sequence[dict[str, Any]]) -> list[Message]:
    """Stored turns as chat history: each question and its answer without `[n]`
    citations (source numbers restart every turn), as `rag.chat` keeps its own."""
    from rag.chat import strip_citations

    messages: list[Message] = []
    for turn in turns:
        answer = turn.get("answer") or {}
        messages += [
            Message("user", str(turn.get("question", ""))),
            Message("assistant", strip_citations(str(answer.get("answer", "")))),
        ]
    return messages


def saved_line(ident: int) -> str:
    """What `rag chat` says at the end about where its conversation went."""
    return f"Saved as conversation {ident} (rag chat --resume {ident})"
