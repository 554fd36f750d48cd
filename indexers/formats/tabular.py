"""CSV and TSV tables in any common encoding, read as a stream of rows that keep their
column headers.

The encoding is told from a bounded sample (`detect_encoding`): a byte-order mark, else
UTF-8 when the sample is valid UTF-8, else what charset-normalizer finds among the
encodings people's tools write (Excel's cp1252, Shift-JIS, GBK, Big5, EUC-KR, cp1251...),
so a Shift-JIS export's names are text, not mojibake. A sample that is all ASCII says
nothing: the file is read as UTF-8 until a byte says otherwise, and from there in the
encoding that the rest tells. The delimiter is sniffed (`csv.Sniffer`; Excel's `sep=;`
line is honoured; `.tsv` is tabs). Rows become Markdown pipe rows in groups of at most
~700 characters, each group a document that repeats the header (`tables.TableGroups`)
and cites the row it starts at: `row=N`, counting records as a spreadsheet numbers its
rows (the header is row 1). Nothing is held but the group being filled: a 200 MB table
streams. A line longer than MAX_LINE_CHARS is skipped (counted in a warning) without
being held; a sample with control bytes is binary data, not a table (a skip reason).
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from indexers.documents import Document, LoadError
from indexers.formats.containers import MiB, open_file
from indexers.formats.tables import TableGroups

#: How much of the file tells its encoding and its delimiter.
SAMPLE_BYTES = 256 * 1024
#: A line (a physical one) longer than this is skipped, never held whole.
MAX_LINE_CHARS = 1 * MiB
READ_BYTES = 1 * MiB
#: Encodings a table may come in without a BOM, the likelier first where two read alike.
COMMON_ENCODINGS = (
    "cp1252", "cp1250", "cp1251", "cp1253", "cp1254", "cp1257", "cp1255", "cp1256",
    "cp1258", "iso8859_15", "koi8_r", "cp932", "euc_jp", "iso2022_jp", "gb18030", "big5",
    "cp949", "mac_roman", "cp850", "cp437", "cp874",
)  # fmt: skip
#: Bytes that text never holds (all controls but tab, line breaks and form feed)...
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\x0c") + b"\x7f"
#: ... and how many of them in a sample make it binary.
MAX_CONTROL_RATIO = 0.01
#: charset-normalizer's "chaos" ceiling when its default (0.2) finds no reading. A table
#: of accented names with symbols in every row ("José Muñoz – €0;...", cp1252, 9 KB) reads
#: at 0.23 in every encoding; with control bytes already ruled out, such a sample is text.
LENIENT_CHAOS = 0.5
DELIMITERS = ",;\t|"
_SEP_LINE = re.compile(r"\A\ufeff?sep=(.)[ \t]*\r?\n")
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def load_csv(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A comma-, semicolon-, tab- or pipe-separated table."""
    return _table(path, warnings, None)


def load_tsv(path: Path, warnings: list[str]) -> Iterator[Document]:
    return _table(path, warnings, "\t")


def detect_encoding(sample: bytes) -> tuple[str, bool]:
    """(codec, settled) for a file starting with `sample`; `settled` is False when the
    sample is ASCII (UTF-8 until a later byte says otherwise). LoadError for binary data."""
    for bom, codec in _BOMS:
        if sample.startswith(bom):
            return codec, True
    if not sample:
        return "utf-8", True
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    if controls > MAX_CONTROL_RATIO * len(sample):
        raise LoadError("binary data, not a table (control bytes where text would be)")
    if sample.isascii():
        return "utf-8", False
    cut = sample.rfind(b"\n") + 1 if len(sample) >= SAMPLE_BYTES else len(sample)
    sample = sample[: cut or len(sample)]
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8", True
    except UnicodeDecodeError:
        pass
    return _guess(sample), True


def _guess(sample: bytes) -> str:
    """charset-normalizer's pick among COMMON_ENCODINGS: of the readings about as clean as
    the cleanest (its "chaos"), those whose text reads about as much like a language as
    the best (a Shift-JIS table also decodes as garbled but "clean" Korean, which reads
    as no language), and of these the first in COMMON_ENCODINGS: on a short sample
    cp1250 reads "José" as well as cp1252, but would turn "Señor" into "Seńor"."""
    from charset_normalizer import from_bytes

    matches = list(from_bytes(sample, cp_isolation=list(COMMON_ENCODINGS)))
    if not matches:  # controls are ruled out already: allow a messier reading
        matches = list(
            from_bytes(sample, cp_isolation=list(COMMON_ENCODINGS), threshold=LENIENT_CHAOS)
        )
    if not matches:
        raise LoadError("binary data, not a table (no text encoding reads it)")
    near = [m for m in matches if m.chaos <= matches[0].chaos + 0.05]
    top = max(m.coherence for m in near)
    tied = {n for m in near if m.coherence >= top - 0.1 for n in m.could_be_from_charset}
    return next((name for name in COMMON_ENCODINGS if name in tied), matches[0].encoding)


class _Decoder:
    """Bytes in, text out, in the detected encoding; unsettled (an ASCII sample), UTF-8
    until a byte is not, then the encoding that the rest of the file tells."""

    def __init__(self, codec: str, settled: bool) -> None:
        self.settled = settled
        self.non_ascii = False
        self.decoder = codecs.getincrementaldecoder(codec)("replace" if settled else "strict")

    def decode(self, block: bytes, final: bool = False) -> str:
        if self.settled:
            return self.decoder.decode(block, final)
        try:
            text = self.decoder.decode(block, final)
        except UnicodeDecodeError as exc:
            data = exc.object
            good = bytes(data[: exc.start]).decode("utf-8")
            rest = bytes(data[exc.start :])
            codec = "utf-8" if self.non_ascii or not good.isascii() else _guess_rest(rest)
            self.settled = True
            self.decoder = codecs.getincrementaldecoder(codec)("replace")
            return good + self.decoder.decode(rest, final)
        self.non_ascii = self.non_ascii or not text.isascii()
        return text


def _guess_rest(rest: bytes) -> str:
    try:
        return _guess(rest[:SAMPLE_BYTES])
    except LoadError:
        return "cp1252"


class _Counts:
    long = 0
    bad = 0


def _lines(handle: BinaryIO, decoder: _Decoder, newline: str, counts: _Counts) -> Iterator[str]:
    """The file's lines (ends kept, as `csv` wants), a line over MAX_LINE_CHARS dropped
    as it is read (counted), never held."""
    carry = ""
    skipping = False
    while True:
        block = handle.read(READ_BYTES)
        text = carry + decoder.decode(block, final=not block)
        parts = text.split(newline)
        carry = parts.pop()
        for line in parts:
            if skipping:
                skipping = False
                continue
            yield line + newline
        if len(carry) > MAX_LINE_CHARS:
            if not skipping:
                counts.long += 1
            carry, skipping = "", True
        if not block:
            if carry and not skipping:
                yield carry
            return


def _delimiter(sample: str, fixed: str | None) -> tuple[str, bool]:
    """(delimiter, whether a `sep=` line states it)."""
    stated = _SEP_LINE.match(sample)
    if stated:
        return stated.group(1), True
    if fixed:
        return fixed, False
    head = sample[: 32 * 1024]
    head = head[: head.rfind("\n") + 1] or head
    try:
        return csv.Sniffer().sniff(head, delimiters=DELIMITERS).delimiter, False
    except csv.Error:
        first = head.split("\n", 1)[0]
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return (best if counts[best] else ","), False


def _table(path: Path, warnings: list[str], fixed: str | None) -> Iterator[Document]:
    counts = _Counts()
    with open_file(path) as handle:
        sample = handle.read(SAMPLE_BYTES)
        codec, settled = detect_encoding(sample)
        text = codecs.getincrementaldecoder(codec)("replace").decode(sample)
        if text.count("\ufffd") > MAX_CONTROL_RATIO * max(len(text), 1):
            raise LoadError(f"binary data, not a table (not {codec} text)")
        delimiter, stated = _delimiter(text, fixed)
        newline = "\r" if "\n" not in text and "\r" in text else "\n"
        handle.seek(0)
        lines = _lines(handle, _Decoder(codec, settled), newline, counts)
        if stated:
            next(lines, None)
        yield from _groups(csv.reader(lines, delimiter=delimiter), path.name, counts)
    if counts.long:
        limit = MAX_LINE_CHARS // MiB
        warnings.append(f"{counts.long} line(s) longer than {limit} MiB skipped")
    if counts.bad:
        warnings.append(f"{counts.bad} row(s) unreadable (broken quoting or a cell over 128 KiB)")


def _groups(reader: Iterator[list[str]], name: str, counts: _Counts) -> Iterator[Document]:
    """The rows as documents of one group each, `row=N` the group's first row."""
    groups = TableGroups()
    number = start = header = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:
            number += 1
            counts.bad += 1
            continue
        number += 1
        filling = bool(groups.rows)
        # `tables.cell_text` for strings, at a third of its cost: `str.split` splits where
        # its `\s+` matches (Unicode spaces included).
        done = groups.add([" ".join(cell.split()).replace("|", "\\|") for cell in row])
        header = header or (number if groups.header is not None else 0)
        if done:
            yield Document(done, name, anchor=f"row={start}")
            start = number  # this row begins the next group
        elif groups.rows and not filling:
            start = number
    last = groups.flush()
    if last:
        yield Document(last, name, anchor=f"row={start or header}")


SUFFIXES = {".csv": load_csv, ".tsv": load_tsv}
BINARY: frozenset[str] = frozenset()
