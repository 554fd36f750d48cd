"""Where `rag chat` keeps its conversation: each finished turn saved as it ends, and a
saved conversation taken up again (`--resume ID`). The store is `rag.conversations`."""

from __future__ import annotations

from typing import Any

from rag.cli import output
from rag.core.config import Settings
from rag.core.errors import RagError


class Saving:
    """One `rag chat`'s saves. The conversation is made with its first finished turn (a
    chat that answers nothing leaves nothing behind); a turn that cannot be saved (disk
    full) is said so and the chat goes on. The file is opened at once, so a damaged one
    stops the chat before the first question, with the way out (`--no-save`)."""

    def __init__(self, settings: Settings, resume: str | None, *, save: bool) -> None:
        from rag.conversations import (
            ConversationsBusy,
            ConversationsUnreadable,
            open_store,
            parse_id,
        )
        from rag.core.errors import StorageError

        self.save = save
        self.store = open_store(settings)
        self.resumed = parse_id(resume) if resume is not None else None
        self.current = self.resumed
        self.added = 0
        try:
            if self.resumed is not None and save:
                self.store.check_room(self.resumed)  # there, and not full
            elif self.resumed is not None:
                self.store.summary(self.resumed)
            elif save:
                self.store.check()
        except (ConversationsUnreadable, ConversationsBusy, StorageError) as exc:
            raise type(exc)(f"{exc} Or chat without saving: rag chat --no-save.") from None

    def resume(self, session: Any) -> None:
        """Give `session` the saved conversation's last turns as its history."""
        from rag.conversations import history_messages

        if self.resumed is None:
            return
        found = self.store.summary(self.resumed)
        turns = self.store.recent_turns(self.resumed, session.max_history_turns)
        session.history = history_messages(turns)
        session.trim_history()  # at most a quarter of the context, as always
        output.note(
            f"(continuing conversation {found['id']}: {output.printable(found['title'])}, "
            f"{found['turns']} turn{'' if found['turns'] == 1 else 's'})"
        )

    def add(self, question: str, search_query: str, answer: dict[str, Any]) -> None:
        if not self.save:
            return
        try:
            self.current, _ = self.store.add_turn(self.current, question, search_query, answer)
        except RagError as exc:
            output.error(f"{exc} (This turn was not saved.)")
            return
        self.added += 1

    def close(self) -> None:
        """Say where the conversation went (when this chat saved any turn of it); the next
        turn, if any, starts a new one."""
        from rag.conversations import saved_line

        if self.current is not None and self.added:
            output.note(saved_line(self.current))
        self.current = None
        self.added = 0
