"""Mail: a message saved as .eml (the standard library's `email`, policy=default), a
mailbox (.mbox: one document per message, `message=N`) and Outlook's .msg (extract-msg).

Each message reads as its header block (From, To, Cc, Date, Subject) then its body: the
plain text part, else the HTML part's text (`rag.core.html_text`); its subject is its
title (in a mailbox, the section under the file's name). Attachments are named in an
`Attachments:` line; a small text attachment (text/*, up to ATTACHMENT_CHARS) and a
forwarded message are read under their own heading. Nothing is run or opened beyond
that: an attachment that is not text is never decoded. Its base64 body is not even kept
while the message is parsed (`_Skipper` drops the lines of every non-text base64 part as
they stream past), so a mail carrying a 150 MB video costs what its text costs.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from indexers.documents import Document, LoadError, clean, decode
from indexers.formats.containers import OLE_MAGIC, MiB, as_corrupt, magic, open_file
from indexers.formats.feeds import html_text
from indexers.formats.tables import TextBuilder, one_line

HEADERS = ("From", "To", "Cc", "Date", "Subject")
#: A header value is shown up to this many characters (a list's thousand recipients).
HEADER_CHARS = 2000
#: A text attachment is read when it is at most this long (else only named).
ATTACHMENT_CHARS = 1 * MiB
#: The most attachments named one by one; the rest are counted.
MAX_NAMED = 200
#: A forwarded message inside a forwarded message... is read this deep.
MAX_DEPTH = 3
#: The most MIME parts one message may have: real mail has a few dozen, while 10,000 parts
#: nested in each other took the standard library's parser 65 s (its cost grows with depth).
MAX_PARTS = 500
#: Lines are read at most this long (a longer one comes in pieces).
LINE_BYTES = 64 * 1024
_HEADER_LINE = re.compile(rb"^([!-9;-~]+)[ \t]*:[ \t]*(.*)$", re.DOTALL)
_MBOX_FROM = b"From "
_QUOTED_FROM = re.compile(rb">+From ")


def load_eml(path: Path, warnings: list[str]) -> Iterator[Document]:
    """One message: titled by its subject."""
    with open_file(path) as handle:
        message = parse_message(_read_lines(handle))
    builder = TextBuilder(_header(message, "Subject"), path.name)
    _message(builder, message, 1)
    yield from builder.parts(final=True)


def load_mbox(path: Path, warnings: list[str]) -> Iterator[Document]:
    """A mailbox, one message at a time (`message=N`, its subject the section)."""
    with open_file(path) as handle:
        for number, lines in enumerate(_mbox_messages(_read_lines(handle)), start=1):
            try:
                message = parse_message(lines)
            except LoadError as exc:  # one bad message, not the mailbox
                warnings.append(f"{path.name} message {number}: {exc}")
                for _ in lines:  # past the rest of it, to the next message
                    pass
                continue
            subject = _header(message, "Subject") or f"Message {number}"
            builder = TextBuilder(
                path.name,
                path.name,
                anchor=f"message={number}",
                section=((1, subject),),
                level_shift=1,
            )
            _message(builder, message, 1)
            yield from builder.parts(final=True)


def _read_lines(handle: BinaryIO) -> Iterator[bytes]:
    while line := handle.readline(LINE_BYTES):
        yield line


def _mbox_messages(lines: Iterable[bytes]) -> Iterator[Iterator[bytes]]:
    """The messages of an mbox, each read as it is parsed: a message starts at a `From `
    line that follows a blank one (or opens the file); `>From ` quoting is undone."""
    iterator = iter(lines)
    more = True

    def one() -> Iterator[bytes]:
        nonlocal more
        blank = True
        for line in iterator:
            if blank and line.startswith(_MBOX_FROM):
                return
            blank = not line.strip()
            yield line[1:] if _QUOTED_FROM.match(line) else line
        more = False

    first = next(iterator, None)
    if first is None:
        return
    if not first.startswith(_MBOX_FROM):
        raise LoadError("not an mbox mailbox (it does not start with a From line)")
    while more:
        yield one()


class _Skipper:
    """Which lines of a raw message the parser needs: all but the body of each part that
    is base64 and not text (a boundary line starts with `--`, which base64 never does,
    so a skipped body always ends where the next part begins)."""

    def __init__(self) -> None:
        self.state = "headers"
        self.headers: list[bytes] = []
        self.dropped = 0
        self.parts = 0

    def keep(self, line: bytes) -> bool:
        if self.state == "headers":
            if line.strip():
                if len(self.headers) < 200:
                    self.headers.append(line)
                return True
            self.state = "skip" if self._binary() else "body"
            self.headers = []
            self.parts += 1
            if self.parts > MAX_PARTS:
                raise LoadError(f"more than {MAX_PARTS} MIME parts in one message: not read")
            return True
        if line.startswith(b"--"):
            self.state = "headers"
            return True
        if self.state == "skip":
            self.dropped += len(line)
            return False
        return True

    def _binary(self) -> bool:
        fields: dict[bytes, bytes] = {}
        name = b""
        for line in self.headers:
            if line[:1] in (b" ", b"\t") and name:
                fields[name] += b" " + line.strip()
                continue
            match = _HEADER_LINE.match(line)
            if match:
                name = match.group(1).lower()
                fields[name] = match.group(2).strip()
        kind = fields.get(b"content-type", b"text/plain").split(b";")[0].strip().lower()
        encoding = fields.get(b"content-transfer-encoding", b"").strip().lower()
        return encoding == b"base64" and not kind.startswith((b"text/", b"multipart/", b"message/"))


def parse_message(lines: Iterable[bytes]) -> Any:
    """An `email.message.EmailMessage` from raw lines, the bodies of binary attachments
    left out as they are read."""
    from email import policy
    from email.parser import BytesFeedParser

    parser = BytesFeedParser(policy=policy.default)
    skipper = _Skipper()
    for line in lines:
        if skipper.keep(line):
            parser.feed(line)
    return parser.close()


def _header(message: Any, name: str) -> str:
    """A header's decoded value on one line ("" when absent or unreadable)."""
    try:
        value = message.get(name)
    except Exception:  # a malformed header the parser's registry chokes on
        raw = next((v for k, v in message.raw_items() if k.lower() == name.lower()), "")
        value = str(raw)
    text = one_line(str(value)) if value is not None else ""
    return text[:HEADER_CHARS] + ("…" if len(text) > HEADER_CHARS else "")


def _message(builder: TextBuilder, message: Any, level: int) -> None:
    """A message's header block, body, attachments into `builder`."""
    block = [f"{h}: {v}" for h in HEADERS if (v := _header(message, h))]
    builder.paragraph("\n".join(block))
    builder.paragraph(_body(message))
    named: list[str] = []
    for part in _attachments(message):
        name = _part_name(part)
        kind = part.get_content_type()
        if kind == "message/rfc822" and level < MAX_DEPTH:
            inner = _inner(part)
            if inner is not None:
                builder.heading(level, f"Forwarded message: {_header(inner, 'Subject')}")
                _message(builder, inner, level + 1)
                continue
        text = _attached_text(part) if kind.startswith("text/") else ""
        if text:
            builder.heading(level, f"Attachment: {name}")
            builder.paragraph(text)
        else:
            named.append(f"{name} ({kind})")
    builder.paragraph(_named(named))


def _named(names: list[str]) -> str:
    if not names:
        return ""
    shown = ", ".join(names[:MAX_NAMED])
    more = f", and {len(names) - MAX_NAMED} more" if len(names) > MAX_NAMED else ""
    return f"Attachments: {shown}{more}"


def _body(message: Any) -> str:
    try:
        part = message.get_body(preferencelist=("plain", "html"))
        if part is None:
            return ""
        text = part.get_content()
    except (LookupError, ValueError, KeyError, TypeError, AssertionError):
        return ""
    if not isinstance(text, str):
        return ""
    if part.get_content_subtype() == "html":
        text = html_text(text)
    return clean(text).strip()


def _attachments(message: Any) -> list[Any]:
    try:
        return list(message.iter_attachments()) if message.is_multipart() else []
    except (KeyError, TypeError, ValueError):
        return []


def _part_name(part: Any) -> str:
    try:
        name = part.get_filename()
    except (KeyError, TypeError, ValueError):
        name = None
    return one_line(name or "")[:200] or "(unnamed)"


def _inner(part: Any) -> Any:
    try:
        inner = part.get_content()
    except (KeyError, TypeError, ValueError, LookupError):
        return None
    return inner if hasattr(inner, "get_body") else None


def _attached_text(part: Any) -> str:
    try:
        text = part.get_content()
    except (KeyError, TypeError, ValueError, LookupError, AssertionError):
        return ""
    if not isinstance(text, str) or len(text) > ATTACHMENT_CHARS:
        return ""
    if part.get_content_subtype() == "html":
        text = html_text(text)
    return clean(text).strip()


def load_msg(path: Path, warnings: list[str]) -> Iterator[Document]:
    """An Outlook message (OLE compound file), read with extract-msg; its attachments are
    named from their properties, never loaded."""
    logging.getLogger("extract_msg").setLevel(logging.CRITICAL)
    with open_file(path) as handle, as_corrupt("Outlook message"), _ole_errors():
        if magic(handle) != OLE_MAGIC:
            raise LoadError("corrupt: not an Outlook message (not an OLE compound file)")
        import email.utils

        import extract_msg

        message = extract_msg.openMsg(handle, delayAttachments=True)
        try:
            builder = TextBuilder(_text(message, "subject"), path.name)
            date = getattr(message, "date", None)
            values = {
                "From": _text(message, "sender"),
                "To": _text(message, "to"),
                "Cc": _text(message, "cc"),
                "Date": email.utils.format_datetime(date) if date else "",
                "Subject": _text(message, "subject"),
            }
            block = [f"{h}: {v[:HEADER_CHARS]}" for h in HEADERS if (v := values[h])]
            builder.paragraph("\n".join(block))
            builder.paragraph(_msg_body(message))
            builder.paragraph(_named(_msg_attachments(message)))
        finally:
            message.close()
    yield from builder.parts(final=True)


@contextlib.contextmanager
def _ole_errors() -> Iterator[None]:
    """olefile says a torn or malformed file with an OSError (its OleFileError, or a bare
    one for a short read) that no system call raised: without an errno it is the file's
    fault, a skip reason, not the disk's."""
    try:
        yield
    except OSError as exc:
        if exc.errno is not None:
            raise
        raise LoadError(f"corrupt: not a readable Outlook message ({exc})") from None


def _text(message: Any, attribute: str) -> str:
    value = getattr(message, attribute, None)
    return one_line(value) if isinstance(value, str) else ""


def _msg_body(message: Any) -> str:
    body = getattr(message, "body", None)
    if isinstance(body, str) and body.strip():
        return clean(body).strip()
    html = getattr(message, "htmlBody", None)
    if isinstance(html, bytes) and html.strip():
        return clean(html_text(decode(html))).strip()
    return ""


def _msg_attachments(message: Any) -> list[str]:
    """`name (type)` of each attachment, from its storage's name properties."""
    names = []
    for entry in message.listDir(streams=False, storages=True):
        if len(entry) != 1 or not entry[0].lower().startswith("__attach_version1.0_#"):
            continue
        name = ""
        for prop in ("__substg1.0_3707", "__substg1.0_3704", "__substg1.0_3001"):
            name = one_line(message.getStringStream([entry[0], prop]) or "")
            if name:
                break
        kind = one_line(message.getStringStream([entry[0], "__substg1.0_370E"]) or "")
        names.append(f"{name[:200] or '(unnamed)'} ({kind or 'attachment'})")
    return names


SUFFIXES = {".eml": load_eml, ".mbox": load_mbox, ".msg": load_msg}
BINARY = frozenset({".msg"})
