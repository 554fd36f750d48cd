"""One exception tree for every failure a user can act on.

Library code raises these; only the CLI turns them into messages and exit codes
(0 success, 1 runtime failure, 2 usage or input error). Each message says what
went wrong and what to do next.
"""

from __future__ import annotations


class RagError(Exception):
    """A failure the user can act on. `exit_code` 1 means a runtime failure."""

    exit_code = 1


class UsageError(RagError):
    """Bad input from the user: an empty question, a missing file, an unknown name."""

    exit_code = 2


class ModelUnavailable(RagError):
    """The model file is not here and cannot be fetched (offline, wrong name, no space)."""


class GenerationError(RagError):
    """The model runtime or an HTTP model endpoint failed while answering."""


class PromptTooLong(UsageError):
    """The prompt does not fit the model's context; llama.cpp would silently truncate it."""

    def __init__(self, message: str, *, prompt_tokens: int, limit: int) -> None:
        super().__init__(message)
        self.prompt_tokens = prompt_tokens
        self.limit = limit


class SearchUnavailable(RagError):
    """A web search engine could not be reached or refused to answer.

    `engine` and `cause` (what went wrong, without the engine's name or advice) let a chain
    of engines say in one line what each one did (rag.web.chain); `hint` is what to do.
    An engine that gives only a message is described by the message."""

    def __init__(self, message: str, *, engine: str = "", cause: str = "", hint: str = ""):
        super().__init__(message)
        self.engine = engine
        self.cause = cause
        self.hint = hint


class IndexNotFound(UsageError):
    """No index by that name or path."""


class IndexCorrupt(RagError):
    """An index exists but its files cannot be read; rebuilding it fixes this."""


class IndexBusy(RagError):
    """Another process holds the index's write lock."""


class StorageError(RagError):
    """A file could not be written or removed: disk full, read-only folder, no permission."""


class StoreUnavailable(RagError):
    """An index store's server cannot be reached or used (exit 1: a runtime failure)."""
