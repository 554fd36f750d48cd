"""Whose a pgvector index is: the home that created it, or a home that attached it.

Many homes (people, machines) may point at one server, and each names its indexes freely,
so a name cannot say which schema is whose: two homes both building `team` must get two
indexes, never one that the second silently updates or drops. So an index gets a random
id when it is created. The id is in its schema's name (`rag_team_<12 hex>`, so two homes'
`team` never meet), in the schema's meta table (the `owner` row: id and name) and in the
creating home's marker (`pocketrag-index.json`).

Sharing is explicit: `rag indexes attach NAME [--schema S] [--writable]` records in another
home's marker that it uses that schema (`attached`, and `writable` if it may update it).
An attached home queries the index; it updates it only when writable, and only from the
folders the index records; `rag indexes detach` forgets it there and leaves the data.
Only the creating home's `rag indexes remove` drops the schema.

Schemas from before ids (`rag_<name>_<hash of the name>`, no owner row) are legacy: owned
by whichever home's marker names them, as before, until that home's next `rag index`
claims them (gives them an id). A home whose marker names a schema claimed by another
home is refused, with the commands to attach it instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from indexers.stores import local_layout, ownership
from rag.core.errors import UsageError
from rag.core.files import fsync_dir, read_small_text, storage_error, write_atomic
from rag.core.names import is_path_name

_SCHEMA = re.compile(r"[a-z0-9_]{1,63}")
_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Identity:
    """The schema a home's index uses and this home's claim on it."""

    schema: str
    index_id: str | None  # None: a legacy index, or an attached legacy schema
    attached: bool = False  # another home created it; this one attached it
    writable: bool = False  # attached, and allowed to update it
    recorded: bool = True  # False: no marker yet, a new index this home would create


def valid_schema(name: str) -> bool:
    return bool(_SCHEMA.fullmatch(name))


def is_pocketrag_name(name: str) -> bool:
    """A schema name pocketrag gives (new or legacy): `rag_` and more. Any other (`public`,
    an application's) is never written into or dropped, whatever a marker says."""
    return valid_schema(name) and name.startswith("rag_") and len(name) > 4


def readable(label: str) -> str:
    return re.sub(r"[^a-z0-9_]", "_", Path(label).name.lower())[:40]


def new_schema_name(label: str, index_id: str) -> str:
    """A new index's schema: readable, and its own whatever other homes call theirs."""
    return f"rag_{readable(label)}_{index_id[:12]}"


def legacy_schema_name(label: str, index_dir: Path) -> str:
    """The schema pocketrag gave an index before ids: by name alone, so every home that
    built `team` on one server wrote the same schema."""
    key = str(index_dir) if is_path_name(label) else label
    return f"rag_{readable(label)}_{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def _marker(index_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(read_small_text(index_dir / ownership.MARKER, ownership.MARKER_BYTES))
    except (OSError, ValueError, RecursionError):  # a FIFO, a device, garbage: no marker
        return None
    return data if isinstance(data, dict) else None


def identity(label: str, index_dir: Path) -> Identity:
    """What this home's marker records; for an index not made yet, a fresh id and schema."""
    data = _marker(index_dir)
    if data is None:
        index_id = uuid.uuid4().hex
        return Identity(new_schema_name(label, index_id), index_id, recorded=False)
    schema = data.get("schema")
    if not isinstance(schema, str) or not valid_schema(schema):
        schema = legacy_schema_name(label, index_dir)
    index_id = data.get("index_id")
    return Identity(
        schema,
        index_id if isinstance(index_id, str) and _ID.fullmatch(index_id) else None,
        attached=data.get("attached") is True,
        writable=data.get("writable") is True,
    )


def _fields(ident: Identity, created_at: float | None = None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "format": local_layout.FORMAT, "created_at": created_at or time.time(),
        "store": "pgvector", "schema": ident.schema,
    }  # fmt: skip
    if ident.index_id:
        fields["index_id"] = ident.index_id
    if ident.attached:
        fields.update(attached=True, writable=ident.writable)
    return fields


def create_marker(index_dir: Path, ident: Identity) -> bool:
    """Write the marker of a new index unless one appeared meanwhile (another `rag index`
    creating the same index in this home); True when this call wrote it. Written whole and
    linked into place, so a concurrent reader never sees half a marker."""
    path = index_dir / ownership.MARKER
    tmp = index_dir / f".{ownership.MARKER}.{os.getpid()}.tmp"
    try:
        tmp.write_text(json.dumps(_fields(ident)) + "\n", encoding="utf-8")
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        fsync_dir(index_dir)
        return True
    except OSError as exc:
        raise storage_error(path, exc) from None
    finally:
        tmp.unlink(missing_ok=True)


def rewrite_marker(index_dir: Path, ident: Identity) -> None:
    """Replace the marker (a legacy index claimed, an attachment made or changed)."""
    old = _marker(index_dir) or {}
    created = old.get("created_at") if isinstance(old.get("created_at"), (int, float)) else None
    write_atomic(index_dir / ownership.MARKER, json.dumps(_fields(ident, created)) + "\n")


def claimed(ident: Identity) -> Identity:
    """A legacy index given an id by its home's next write."""
    return replace(ident, index_id=uuid.uuid4().hex)


def owner_row(label: str, index_id: str) -> str:
    return json.dumps({"index_id": index_id, "name": label, "created_at": time.time()})


def owner_id(owner: Any) -> str | None:
    """The id in a schema's `owner` row; None for a legacy schema (no row)."""
    value = owner.get("index_id") if isinstance(owner, dict) else None
    return value if isinstance(value, str) else None


def check(ident: Identity, owner: Any, label: str, where: str) -> None:
    """Refuse a schema that another home created or claimed: this home neither reads,
    writes nor removes it, and is told how to share it explicitly."""
    theirs = owner_id(owner)
    if theirs is None or theirs == ident.index_id or (ident.attached and not ident.index_id):
        return
    mine = f"records id {ident.index_id[:12]}" if ident.index_id else "records no id"
    raise UsageError(
        f"Index {label!r} ({where}) belongs to another pocketrag home (id {theirs[:12]}; "
        f"this home's marker {mine}): not using it from here. To share it, run `rag "
        f"indexes detach {label}`, then `rag indexes attach {label} --schema "
        f"{ident.schema}`."
    )
