"""Shared pieces for the tests of the mail, notebook, table, data and feed readers: index
a folder through the CLI, read back every chunk the index holds, search it, and write a
real Outlook .msg.

extract-msg reads .msg files but has no message writer; it does ship the OLE compound
file writer it uses to save embedded messages (`extract_msg.OleWriter`), so `write_msg`
lays out the MAPI streams Outlook writes (the property stream, UTF-16 string properties,
the transport headers, attachment storages) with it: a file any .msg reader opens.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from pathlib import Path
from typing import Any

from index_fixtures import cli, settings


def index(folder: Path, name: str = "f") -> dict[str, Any]:
    """`rag index FOLDER --name NAME --json`, its object."""
    result = cli("index", str(folder), "--name", name, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def chunks(name: str = "f") -> list[tuple[str, str, str]]:
    """(title, location, text) of every chunk in the index."""
    from indexers.stores import local_layout
    from indexers.stores.base import resolve_index_dir

    gen = local_layout.open_current(resolve_index_dir(name, settings()), name)
    conn = gen.connect()
    try:
        return list(conn.execute("SELECT title, location, text FROM chunks ORDER BY id"))
    finally:
        conn.close()


def search(query: str, name: str = "f", k: int = 5) -> list[dict[str, Any]]:
    """`rag search QUERY --index NAME --json`, its results."""
    result = cli("search", query, "--index", name, "--k", str(k), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["results"]


def skipped(report: dict[str, Any]) -> dict[str, str]:
    """File name -> skip reason."""
    return {Path(s["path"]).name: s["reason"] for s in report["skipped"]}


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-le")


def _prop(tag: int, value: bytes) -> bytes:
    """One 16-byte entry of a property stream: tag, flags (readable, writable), value."""
    return struct.pack("<II", tag, 6) + value.ljust(8, b"\0")


def write_msg(
    path: Path,
    subject: str,
    body: str,
    headers: str,
    attachments: tuple[tuple[str, bytes], ...] = (),
    when: dt.datetime = dt.datetime(2025, 3, 3, 9, 30, tzinfo=dt.timezone.utc),
) -> Path:
    """An Outlook message (class IPM.Note) as Outlook lays it out: PT_UNICODE string
    streams `__substg1.0_XXXX001F`, the fixed-size properties in `__properties_version1.0`
    (its 32-byte header counting attachments), the named-property storage, and one
    `__attach_version1.0_#N` storage per attachment (long file name, data, method)."""
    from extract_msg import OleWriter

    writer = OleWriter()
    strings = {
        0x001A: "IPM.Note",
        0x0037: subject,
        0x1000: body,
        0x007D: headers,
        0x0C1A: "Alice Example",
        0x0E04: "Bob Example",
    }
    props = []
    for pid, text in strings.items():
        data = _utf16(text)
        writer.addEntry(f"__substg1.0_{pid:04X}001F", data)
        props.append(_prop((pid << 16) | 0x001F, struct.pack("<I", len(data) + 2)))
    filetime = int((when - dt.datetime(1601, 1, 1, tzinfo=dt.timezone.utc)).total_seconds())
    props.append(_prop(0x00390040, struct.pack("<Q", filetime * 10**7)))  # PR_CLIENT_SUBMIT_TIME
    count = len(attachments)
    header = b"\0" * 8 + struct.pack("<IIII", 0, count, 0, count) + b"\0" * 8
    writer.addEntry("__properties_version1.0", header + b"".join(props))
    writer.addEntry("__nameid_version1.0", storage=True)
    for stream in ("__substg1.0_00020102", "__substg1.0_00030102", "__substg1.0_00040102"):
        writer.addEntry(["__nameid_version1.0", stream], b"")
    for i, (name, data) in enumerate(attachments):
        folder = f"__attach_version1.0_#{i:08X}"
        writer.addEntry(folder, storage=True)
        writer.addEntry([folder, "__substg1.0_3707001F"], _utf16(name))
        writer.addEntry([folder, "__substg1.0_37010102"], data)
        own = [
            _prop(0x37050003, struct.pack("<I", 1)),  # PR_ATTACH_METHOD: by value
            _prop(0x0E200003, struct.pack("<I", len(data))),  # PR_ATTACH_SIZE
            _prop(0x3707001F, struct.pack("<I", len(_utf16(name)) + 2)),
            _prop(0x37010102, struct.pack("<I", len(data))),
        ]
        writer.addEntry([folder, "__properties_version1.0"], b"\0" * 8 + b"".join(own))
    writer.write(str(path))
    return path
