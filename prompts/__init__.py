"""Prompt templates, one plain file per use, so wording changes never touch code.

A template file has `[system]` and `[user]` sections; `{name}` placeholders are
filled with `str.format_map`, so retrieved text containing braces is safe.
Template hashes go into eval manifests, so a changed prompt is visible in results.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from rag.core.errors import UsageError
from rag.core.types import Message

TEMPLATES_DIR = Path(__file__).resolve().parent
_SECTION = re.compile(r"^\[(system|user)\]\s*$", re.MULTILINE)


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str
    sections: tuple[tuple[str, str], ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(
            name
            for _, body in self.sections
            for _, name, _, _ in string.Formatter().parse(body)
            if name
        )

    def render(self, history: list[Message] | None = None, **values: str) -> list[Message]:
        """Messages for the model: the system section, earlier turns, then this turn."""
        missing = self.fields - values.keys()
        if missing:
            raise KeyError(f"prompt {self.name!r} needs {sorted(missing)}")
        rendered = [Message(role, body.format_map(values)) for role, body in self.sections]  # type: ignore[arg-type]
        system = [m for m in rendered if m.role == "system"]
        turn = [m for m in rendered if m.role != "system"]
        return system + list(history or []) + turn


@cache
def load(name: str) -> PromptTemplate:
    path = TEMPLATES_DIR / f"{name}.txt"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in TEMPLATES_DIR.glob("*.txt")))
        raise UsageError(f"No prompt template {name!r}; known templates: {known}.")
    text = path.read_text(encoding="utf-8")
    parts = _SECTION.split(text)
    sections = tuple(
        (role, body.strip("\n")) for role, body in zip(parts[1::2], parts[2::2], strict=True)
    )
    if not sections:
        raise UsageError(f"Prompt template {path} has no [system] or [user] section.")
    return PromptTemplate(name=name, text=text, sections=sections)
