"""Documents -> chunks sized in the embedder's own tokens, cut on paragraph/sentence boundaries.

Why token-aware: MiniLM reads at most 256 word pieces and silently drops the rest,
so a chunk sized in characters or words could lose its tail. Chunks are about
`max_tokens` long with `overlap` tokens of context repeated from the previous
chunk, and keep character offsets into the document so a citation can point back.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from indexers.documents import Document, Section, section_after
from rag.core.types import SECTION_MARK

MAX_TOKENS = 230  # leaves room for the title line and [CLS]/[SEP] within MiniLM's 256
OVERLAP_TOKENS = 40
#: Anchors whose chunk count is remembered, so that a document whose anchor came before
#: continues its numbering: the latest this many (anchors are places in a file, met in
#: order, so an older one does not come back), never one per document of a file: a
#: 4-million-row sheet's counts would grow `rag index` by hundreds of MB.
ANCHORS_KEPT = 4096
#: A document is chunked this many characters at a time, cut at a paragraph (else line,
#: else word) boundary: the tokenizer never sees more at once, so memory and time per
#: piece are bounded however long the document (one 5 MB line included).
PIECE_CHARS = 1 << 18

CountTokens = Callable[[Sequence[str]], list[int]]

_PARAGRAPH = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE = re.compile(r"(?<=[.!?。！？])[\"')\]]*\s+")
_LINE = re.compile(r"\n")
_WORD = re.compile(r"\S+")
_NEVER = re.compile(r"(?!)")


@dataclass(frozen=True)
class Chunk:
    text: str
    title: str
    location: str
    start: int
    end: int
    tokens: int


def embedding_text(title: str, text: str) -> str:
    """What gets embedded and BM25-indexed: the title gives a short passage its topic."""
    if not title or text.lstrip().startswith(title):
        return text
    return f"{title}\n{text}"


def _spans(text: str, start: int, end: int, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Split text[start:end] at `pattern`, returning non-blank (start, end) spans."""
    spans, pos = [], start
    for m in pattern.finditer(text, start, end):
        spans.append((pos, m.start()))
        pos = m.end()
    spans.append((pos, end))
    out = []
    for a, b in spans:
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        if b > a:
            out.append((a, b))
    return out


def _units(text: str, count: CountTokens, max_tokens: int) -> list[tuple[int, int, int]]:
    """(start, end, tokens) pieces no longer than max_tokens: paragraphs, else sentences,
    else lines, else runs of words."""
    pending = _spans(text, 0, len(text), _PARAGRAPH)
    result: list[tuple[int, int, int]] = []
    for pattern in (_SENTENCE, _LINE, None):
        counts = count([text[a:b] for a, b in pending]) if pending else []
        too_long = []
        for (a, b), n in zip(pending, counts, strict=False):
            if n <= max_tokens:
                result.append((a, b, n))
            elif pattern is None:
                result.extend(_split_words(text, a, b, n, max_tokens))
            else:
                too_long.append((a, b))
        pending = [s for a, b in too_long for s in _spans(text, a, b, pattern)] if pattern else []
    result.sort()
    return result


def _split_words(text: str, a: int, b: int, n: int, max_tokens: int) -> list[tuple[int, int, int]]:
    """Last resort for a run with no breaks: cut by words, assuming tokens spread evenly."""
    words = [(m.start(), m.end()) for m in _WORD.finditer(text, a, b)]
    per_word = max(n / max(len(words), 1), 1.0)
    step = max(int(max_tokens / per_word), 1)
    pieces = []
    for i in range(0, len(words), step):
        group = words[i : i + step]
        if len(group) == 1 and per_word > max_tokens:  # one giant "word": cut by characters
            ws, we = group[0]
            size = max(int((we - ws) * max_tokens / per_word), 1)
            pieces += [(s, min(s + size, we), max_tokens) for s in range(ws, we, size)]
        else:
            pieces.append((group[0][0], group[-1][1], min(int(len(group) * per_word), max_tokens)))
    return pieces


def _pack(
    units: list[tuple[int, int, int]], max_tokens: int, overlap: int
) -> list[tuple[int, int, int]]:
    """Greedy: fill a chunk with whole units; start the next with the last ~overlap tokens."""
    chunks: list[tuple[int, int, int]] = []
    current: list[tuple[int, int, int]] = []
    total = 0
    for unit in units:
        if current and total + unit[2] > max_tokens:
            chunks.append((current[0][0], current[-1][1], total))
            keep: list[tuple[int, int, int]] = []
            kept = 0
            for prev in reversed(current[1:]):  # never carry the whole chunk over
                if kept + prev[2] > overlap or kept + prev[2] + unit[2] > max_tokens:
                    break
                keep.insert(0, prev)
                kept += prev[2]
            current, total = keep, kept
        current.append(unit)
        total += unit[2]
    if current:
        chunks.append((current[0][0], current[-1][1], total))
    return chunks


def titled(title: str, section: Section) -> str:
    """A chunk's title: the document's, then the section path it sits in
    (`report.docx › Budget › Q3`); a first heading that repeats the title is not repeated."""
    names = [text for _, text in section]
    if names and names[0] == title:
        names = names[1:]
    return SECTION_MARK.join([title, *names] if title else names)


def _title_at(doc: Document, offset: int) -> str:
    i = bisect.bisect_right([h[0] for h in doc.headings], offset)
    return titled(doc.title, section_after(doc.section, doc.headings[:i]))


def pieces(doc: Document, limit: int | None = None) -> Iterator[Document]:
    """`doc` in parts of at most `limit` (PIECE_CHARS) characters, each knowing its offset."""
    limit = limit or PIECE_CHARS
    text = doc.text
    if len(text) <= limit:
        yield doc
        return
    start = 0
    while start < len(text):
        end = min(start + limit, len(text))
        if end < len(text):
            window = text[start:end]
            for pattern in ("\n\n", "\n", " "):
                cut = window.rfind(pattern)
                if cut > limit // 4:
                    end = start + cut + len(pattern)
                    break
        headings = [(o - start, lv, h) for o, lv, h in doc.headings if start <= o < end]
        section = section_after(doc.section, [h for h in doc.headings if h[0] < start])
        yield replace(doc, text=text[start:end], headings=headings, section=section,
                      offset=doc.offset + start)  # fmt: skip
        start = end


def iter_chunks(
    docs: Iterable[Document],
    path: str,
    count: CountTokens,
    max_tokens: int = MAX_TOKENS,
    overlap: int = OVERLAP_TOKENS,
) -> Iterator[Chunk]:
    """Chunks of every document of one file, as they are made; `location` is
    `path#[anchor:]chunkN` (`paper.pdf#page=12:chunk0`), numbered per anchor across the
    pieces of a long document; `title` the document's title and section path."""
    numbers: dict[str, int] = {"": 0}  # "" and the latest anchors' counts, oldest first
    for whole in docs:
        for doc in pieces(whole):
            (n,) = count([doc.text])
            if n <= max_tokens:
                spans = [(a, b, n) for a, b in _spans(doc.text, 0, len(doc.text), _NEVER)]
            else:
                spans = _pack(_units(doc.text, count, max_tokens), max_tokens, overlap)
            prefix = f"{path}#{doc.anchor + ':' if doc.anchor else ''}chunk"
            first = numbers.pop(doc.anchor, 0)
            numbers[doc.anchor] = first + len(spans)  # now the most recent
            if len(numbers) > ANCHORS_KEPT:  # the oldest anchor goes, never the file's own ""
                del numbers[next(a for a in numbers if a)]
            for i, (a, b, tokens) in enumerate(spans, start=first):
                yield Chunk(doc.text[a:b], _title_at(doc, a), f"{prefix}{i}",
                            doc.offset + a, doc.offset + b, tokens)  # fmt: skip


def chunk_documents(
    docs: Sequence[Document],
    path: str,
    count: CountTokens,
    max_tokens: int = MAX_TOKENS,
    overlap: int = OVERLAP_TOKENS,
) -> list[Chunk]:
    """All chunks of one file at once (small inputs, tests); see `iter_chunks`."""
    return list(iter_chunks(docs, path, count, max_tokens, overlap))
