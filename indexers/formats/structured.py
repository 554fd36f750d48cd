"""JSON and YAML documents: their text values with their keys, as lines `key.path: value`.

A record with a text field (`text`, `contents`, `content`, `body`) is that text, titled
by its `title`/`name`, as before; any other value is read whole (`flat_text`): every
string, number and boolean on a line of its own after its key path (`authors[0].name:
Ada`), the top-level scalars first, then one section per top-level key that holds an
object or a list, so a chunk's title says where it is (`config.yaml › database`). Lines
under the same parent stay one paragraph (the chunker keeps paragraphs whole), so a
record's fields travel together. A top-level list of objects is one document per item
(`item=N`, its index in the list); a YAML stream one per document (`doc=N`).

Hostile data is bounded: an object met a second time (a YAML alias, a cycle) is named,
not expanded again, so an alias bomb costs its size on disk; YAML merge keys and aliases
are counted while the file is composed and refused past a limit; nesting too deep to
parse is a skip reason; and the text made may not outgrow the file by more than
`MAX_GROWTH`. `indexers.loaders` reads JSON (`value_documents`) and each JSON Lines
record (`record_document`) the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from indexers.documents import Document, LoadError, clean, decode
from indexers.formats.containers import MiB, read_whole
from indexers.formats.tables import TextBuilder, one_line

TEXT_FIELDS = ("text", "contents", "content", "body")
TITLE_FIELDS = ("title", "name")
#: JSON and YAML are parsed whole: above this (once decompressed) a file is skipped.
WHOLE_LIMIT = 32 * MiB
#: The most aliases (and merged keys) one YAML file may use: real files use tens.
MAX_ALIASES = 10_000
#: YAML nested deeper than this is refused while it is composed. libyaml 0.2.6 caps
#: nesting at 1,000 itself, but 0.2.5 (in PyYAML 6.0.3 wheels) recurses in C until the
#: process dies (a 100,000-deep `[[[...` killed the CI run with SIGSEGV); PyYAML's own
#: Python parser would hit the recursion limit a little past 300 levels.
MAX_YAML_DEPTH = 256
#: The text made from a document may be at most this many times its size (plus 1 MiB).
MAX_GROWTH = 16
#: A key path longer than this keeps its last components (`….deep.key`).
MAX_PATH = 160
#: A paragraph of lines is closed past this many characters.
PARAGRAPH_CHARS = 700
_SHORT = 64  # strings up to this long are repeated where an alias repeats them


def load_yaml(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A YAML file, one document per `---` document when it holds several (`doc=N`)."""
    import yaml

    text = decode(read_whole(path, WHOLE_LIMIT))
    try:
        values = list(yaml.load_all(text, Loader=_counting_loader()))
    except RecursionError:
        raise LoadError("invalid YAML (nested too deeply to read)") from None
    except yaml.YAMLError as exc:
        raise LoadError(f"invalid YAML ({one_line(str(exc))[:200]})") from None
    values = [v for v in values if v is not None]
    for number, value in enumerate(values, start=1):
        anchor = f"doc={number}" if len(values) > 1 else ""
        yield from value_documents(value, path.name, len(text), anchor)


def value_documents(value: Any, name: str, size: int, anchor: str = "") -> Iterator[Document]:
    """The documents of one parsed value: a list of objects one per item, else one."""
    budget = Budget(size)
    if isinstance(value, list) and value and all(isinstance(v, (dict, list)) for v in value):
        for i, item in enumerate(value):
            where = "&".join(filter(None, (anchor, f"item={i}")))
            doc = record_document(item, name, where, budget)
            if doc is not None:
                yield doc
        return
    doc = record_document(value, name, anchor, budget)
    if doc is not None:
        yield doc


def record_document(
    record: Any, fallback_title: str, anchor: str, budget: Budget | None = None
) -> Document | None:
    """One record -> a document: its text field when it has one (titled by its title
    field), else all of it (`flat_text`); None when it holds no text at all."""
    title = ""
    if isinstance(record, dict):
        text = next((record[f] for f in TEXT_FIELDS if isinstance(record.get(f), str)), None)
        title = next((record[f] for f in TITLE_FIELDS if isinstance(record.get(f), str)), "")
        title = one_line(title)
        if text is not None and text.strip():
            return Document(clean(text), title or fallback_title, anchor=anchor)
    builder = TextBuilder(title or fallback_title, fallback_title, anchor=anchor)
    flat_text(record, builder, budget or Budget(0))
    parts = list(builder.parts(final=True))
    return parts[0] if parts else None


class Budget:
    """The characters a document's text may still grow by (`MAX_GROWTH`)."""

    def __init__(self, size: int) -> None:
        self.left = MAX_GROWTH * size + MiB

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise LoadError(
                f"its values expand to over {MAX_GROWTH} times its size (an alias bomb?)"
            )


def flat_text(value: Any, builder: TextBuilder, budget: Budget) -> None:
    """`value` as `key.path: value` lines into `builder`: top-level scalars first, then a
    section (heading) per top-level key holding an object or a list. Iterative, so any
    depth the parser accepted is read; an object met again is named, never re-expanded."""
    seen: dict[int, str] = {}
    if isinstance(value, dict):
        items = [(_key(k), v) for k, v in value.items()]
        scalars = [(k, v) for k, v in items if not isinstance(v, (dict, list))]
        containers = [(k, v) for k, v in items if isinstance(v, (dict, list))]
        seen[id(value)] = "(the whole document)"
        _lines(scalars, builder, budget, seen)
        for key, sub in containers:
            builder.heading(1, key)
            _lines([(key, sub)], builder, budget, seen)
    else:
        _lines([("", value)], builder, budget, seen)


def _lines(
    items: list[tuple[str, Any]], builder: TextBuilder, budget: Budget, seen: dict[int, str]
) -> None:
    """Depth first, in document order, with an explicit stack of (parent, path, value);
    the loop every value of a 30 MB file goes through, so written for speed."""
    stack: list[tuple[str, str, Any]] = [("", key, value) for key, value in reversed(items)]
    keys: dict[Any, str] = {}
    paragraph: list[str] = []
    size = 0
    current = ""
    left = budget.left
    while stack:
        parent, path, value = stack.pop()
        if type(value) is str:
            text = value.strip()
            if "\r" in text or "\x00" in text:
                text = clean(text).strip()
            if not text:
                continue
            if len(text) > _SHORT:
                if id(value) in seen:
                    text = f"(the same as {_shown(seen[id(value)])})"
                else:
                    seen[id(value)] = path
        elif isinstance(value, (dict, list)):
            if id(value) in seen:
                text = f"(the same as {_shown(seen[id(value)])})"
            else:
                seen[id(value)] = path or "(the whole document)"
                if isinstance(value, dict):
                    prefix = path + "." if path else ""
                    for k, v in reversed(value.items()):
                        name = keys.get(k) if type(k) is str else None
                        if name is None:
                            name = keys[k] = _key(k)
                        stack.append((path, prefix + name, v))
                else:
                    stack.extend(
                        (path, f"{path}[{i}]", value[i]) for i in range(len(value) - 1, -1, -1)
                    )
                continue
        else:
            text = _scalar(value)
            if text is None:
                continue
        line = f"{path if len(path) <= MAX_PATH else _shown(path)}: {text}" if path else text
        left -= len(line) + 1
        if left < 0:
            budget.left = left
            budget.spend(0)
        if paragraph and (parent != current or size + len(line) > PARAGRAPH_CHARS):
            builder.paragraph("\n".join(paragraph))
            paragraph, size = [], 0
        current = parent
        paragraph.append(line)
        size += len(line) + 1
    budget.left = left
    if paragraph:
        builder.paragraph("\n".join(paragraph))


def _shown(path: str) -> str:
    return path if len(path) <= MAX_PATH else "…" + path[-(MAX_PATH - 1) :]


def _key(key: Any) -> str:
    return " ".join(str(key).split()) or '""'


def _scalar(value: Any) -> str | None:
    """A value as a line's text: strings as they are, JSON's spelling of booleans, dates
    in ISO form; None for null and binary data (no text to find)."""
    if value is None or isinstance(value, (bytes, bytearray)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, str):
        text = clean(value).strip()
        return text or None
    return str(value)


def _counting_loader() -> type:
    """PyYAML's safe loader (libyaml's parser when installed) that refuses a file nested
    deeper than MAX_YAML_DEPTH (counted in the resolver hooks both parsers call once per
    node entered and left, before any deeper node is composed) or using more than
    MAX_ALIASES aliases or merged keys.
    An alias is one object however often it is named (`flat_text` names it again rather
    than expanding it), but a merge key (`<<: *a`) copies the mapping it names into each
    that merges it, so nested merges grow exponentially before any code of ours sees the
    data: they are counted before PyYAML copies them."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class CountingLoader(base):  # type: ignore[misc, valid-type]
        uses = 0
        depth = 0

        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            self.depth += 1
            if self.depth > MAX_YAML_DEPTH:
                raise LoadError(f"YAML nested more than {MAX_YAML_DEPTH} levels deep")
            super().descend_resolver(current_node, current_index)

        def ascend_resolver(self) -> None:
            self.depth -= 1
            super().ascend_resolver()

        def count(self, n: int = 1) -> None:
            self.uses += n
            if self.uses > MAX_ALIASES:
                raise LoadError(
                    f"more than {MAX_ALIASES:,} YAML aliases or merged keys (an alias bomb?)"
                )

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            if node in self.constructed_objects:  # an alias: the object built before
                self.count()
            return super().construct_object(node, deep)

        def flatten_mapping(self, node: Any) -> None:
            merged = 0
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    subs = value.value if isinstance(value, yaml.SequenceNode) else [value]
                    for sub in subs:
                        if isinstance(sub, yaml.MappingNode):
                            self.flatten_mapping(sub)
                            merged += len(sub.value)
            if merged:
                self.count(merged)
            super().flatten_mapping(node)

    return CountingLoader


SUFFIXES = {".yaml": load_yaml, ".yml": load_yaml}
BINARY: frozenset[str] = frozenset()
