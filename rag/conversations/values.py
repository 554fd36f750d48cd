"""What goes into the conversations store and what comes out of it, checked: ids,
titles, searches and limits as users give them (each refused in one line, with the bound
it broke), answers made storable (always UTF-8, finite numbers, bounded), and the
store's errors. The SQLite side is `rag.conversations.store`."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime, timezone
from typing import Any

from rag.core.errors import RagError, UsageError
from rag.core.safe_text import SURROGATE, replace_surrogates

#: What an untitled conversation is called until its first question names it.
UNTITLED = "New conversation"
MAX_TITLE_CHARS = 200
#: A title made from the first question is cut at a word to about this many characters.
DEFAULT_TITLE_CHARS = 80
#: Turns one conversation keeps; the model sees only the last few (`rag.chat`'s rules).
MAX_TURNS = 1000
DEFAULT_LIST = 100
MAX_LIST = 1000
MAX_QUERY_CHARS = 1000
MAX_QUERY_WORDS = 32
#: A stored turn's JSON; over it the candidates the model did not read lose their text.
MAX_TURN_CHARS = 4_000_000
DROPPED_TEXT_CHARS = 500
#: The largest id SQLite stores; any larger one names no conversation.
MAX_ID = 2**63 - 1


class ConversationNotFound(UsageError):
    status = 404


class ConversationsUnreadable(RagError):
    """The conversations file exists but cannot be used as one: damaged, not this store's,
    or written by a newer pocketrag. It is left exactly as it is."""


class ConversationsBusy(RagError):
    """Another process held the file's write lock longer than the wait."""

    status = 503


def now() -> str:
    """The time as ISO 8601 in UTC, to the millisecond: `2025-01-31T09:30:00.123Z`."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def parse_id(value: Any) -> int:
    """A conversation id from a URL or the command line: a whole number (never a path).
    One too large for SQLite names no conversation (404, not an error of the store)."""
    text = str(value).strip()
    if not text or not (text.isascii() and text.isdigit()):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise UsageError(f"A conversation id is a whole number (see `rag history`), got {shown!r}.")
    if len(text) > 19 or int(text) > MAX_ID:
        raise ConversationNotFound(f"No conversation {text[:40]}; see `rag history`.")
    return int(text)


def clean_title(title: Any) -> str:
    """A title the user gave, on one line; a UsageError when it is not text, is empty,
    is over MAX_TITLE_CHARS or holds text that is not Unicode."""
    if not isinstance(title, str):
        raise UsageError(f"A title must be text, got {type(title).__name__}.")
    if SURROGATE.search(title):
        raise UsageError("The title is not valid UTF-8 text; type it again in a UTF-8 terminal.")
    line = " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", title).split())
    if not line:
        raise UsageError("The title is empty.")
    if len(line) > MAX_TITLE_CHARS:
        raise UsageError(f"The title is {len(line)} characters; at most {MAX_TITLE_CHARS}.")
    return line


def default_title(question: str) -> str:
    """The first question on one line, cut at a word near DEFAULT_TITLE_CHARS."""
    line = " ".join(re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", replace_surrogates(question)).split())
    if len(line) <= DEFAULT_TITLE_CHARS:
        return line or UNTITLED
    cut = line[:DEFAULT_TITLE_CHARS].rsplit(" ", 1)[0] or line[:DEFAULT_TITLE_CHARS]
    return cut.rstrip(" ,;:.-") + "…"


def fts_query(text: str) -> str | None:
    """`text` as an FTS5 query every word of which must match (as a prefix); None when it
    has no words. Quoted, so no FTS5 syntax (`AND`, `"`, `*`, `NEAR(`) reaches SQLite."""
    if len(text) > MAX_QUERY_CHARS:
        raise UsageError(f"The search is {len(text)} characters; at most {MAX_QUERY_CHARS}.")
    words = re.findall(r"\w+", replace_surrogates(text))[:MAX_QUERY_WORDS]
    return " ".join(f'"{word}"*' for word in words) or None


def check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise UsageError(f"limit must be a whole number from 1 to {MAX_LIST}, got {limit!r}.")
    return limit


def encode_answer(answer: dict[str, Any]) -> str:
    """The answer object as stored JSON: text that is always UTF-8, numbers that are
    finite; over MAX_TURN_CHARS the dropped candidates keep only the start of their text
    (the sources, what the model read, are kept whole)."""
    data = _storable(answer)
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    if len(text) > MAX_TURN_CHARS and isinstance(data.get("dropped"), list):
        for item in data["dropped"]:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                item["text"] = item["text"][:DROPPED_TEXT_CHARS]
        text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    if len(text) > MAX_TURN_CHARS:
        raise UsageError(
            f"This turn is {len(text)} characters as JSON, over the {MAX_TURN_CHARS} a stored "
            "turn may be; ask with fewer or shorter sources (--k, --max-evidence-tokens)."
        )
    return text


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return replace_surrogates(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_storable(item) for item in value]
    return value
