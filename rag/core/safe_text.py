"""Text that can always be encoded: the one place lone surrogates are dealt with.

Python strings may hold lone surrogates (U+D800-U+DFFF): JSON's `"\\ud800"` escape decodes
to one, and bytes that are not UTF-8 come back from the OS (a file name, a terminal) as
`surrogateescape` ones. No UTF-8 encoder takes them: SQLite, a tokenizer, a JSON reply or a
terminal would fail on the whole text. So text that is *data* (a document, a web result) has
them replaced with U+FFFD where it enters, and text that is *shown* (a file name, `--json`
output) has them written as escapes (`\\xff` for an undecodable byte, `\\ud800` otherwise).
Text that is a *command* (a question) is refused instead: see `validate_question`.
"""

from __future__ import annotations

import re

SURROGATE = re.compile("[\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def replace_surrogates(text: str) -> str:
    """`text` with each lone surrogate as U+FFFD: for data, which must be stored and read."""
    return SURROGATE.sub(REPLACEMENT, text) if SURROGATE.search(text) else text


def escape_surrogates(text: str, backslash: str = "\\") -> str:
    """`text` with each lone surrogate written as an escape, `bad\\xff.txt`; inside a JSON
    string pass `backslash="\\\\"`, so the escape decodes to the same text."""

    def escape(match: re.Match[str]) -> str:
        code = ord(match.group())
        if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte of a file name
            return f"{backslash}x{code - 0xDC00:02x}"
        return f"{backslash}u{code:04x}"

    return SURROGATE.sub(escape, text)
