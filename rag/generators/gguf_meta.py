"""Read a few metadata values from a GGUF file's header without loading the model.

Why: the context size must be chosen before llama.cpp allocates its KV cache, and a cap
above the model's training context only wastes memory (a 131072-token cap cost 3.1 GB
for SmolLM2, whose training context is 8192). The header is read until the wanted keys
are found; weights are never touched.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q"}
_SCALARS.update({11: "<q", 12: "<d"})
_STRING, _ARRAY = 8, 9
#: No real model has this many metadata entries or this long a key; beyond it the file is
#: not a GGUF header we understand, and the caller falls back to llama.cpp's own reading.
_MAX_KV = 1_000_000
_MAX_STRING = 1 << 24


class GGUFError(ValueError):
    """The file is not a GGUF file this reader understands."""


def _read(handle: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = handle.read(size)
    if len(data) != size:
        raise GGUFError("unexpected end of file in the GGUF header")
    return struct.unpack(fmt, data)[0]


def _string(handle: BinaryIO) -> str:
    length = _read(handle, "<Q")
    if length > _MAX_STRING:
        raise GGUFError(f"implausible string length {length} in the GGUF header")
    data = handle.read(length)
    if len(data) != length:
        raise GGUFError("unexpected end of file in the GGUF header")
    return data.decode("utf-8", errors="replace")


def _value(handle: BinaryIO, kind: int, keep: bool) -> Any:
    if kind in _SCALARS:
        return _read(handle, _SCALARS[kind])
    if kind == _STRING:
        return _string(handle)
    if kind == _ARRAY:
        item_kind, count = _read(handle, "<I"), _read(handle, "<Q")
        if item_kind in _SCALARS and not keep:  # skip fixed-size items in one seek
            handle.seek(count * struct.calcsize(_SCALARS[item_kind]), 1)
            return None
        items = [_value(handle, item_kind, keep) for _ in range(count)]
        return items if keep else None
    raise GGUFError(f"unknown GGUF value type {kind}")


def read_metadata(path: str | Path, wanted: set[str] | None = None) -> dict[str, Any]:
    """Scalar and string metadata of a GGUF file; stops once every `wanted` key is found.

    Keys named `{arch}.` stand for the file's architecture (`llama.context_length`...).
    """
    found: dict[str, Any] = {}
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise GGUFError(f"{path} is not a GGUF file")
        version = _read(handle, "<I")
        if version < 2:
            raise GGUFError(f"GGUF version {version} is too old")
        _read(handle, "<Q")  # tensor count
        n_kv = _read(handle, "<Q")
        if n_kv > _MAX_KV:
            raise GGUFError(f"implausible metadata count {n_kv}")
        for _ in range(n_kv):
            key = _string(handle)
            kind = _read(handle, "<I")
            value = _value(handle, kind, keep=False)
            if kind != _ARRAY:
                found[key] = value
            if wanted is not None:
                arch = found.get("general.architecture", "{arch}")
                names = {w.replace("{arch}", str(arch)) for w in wanted}
                if names <= found.keys():
                    break
    return found


def training_context(path: str | Path) -> int:
    """The context length the model was trained with, 0 when the header does not say."""
    meta = read_metadata(path, {"general.architecture", "{arch}.context_length"})
    value = meta.get(f"{meta.get('general.architecture')}.context_length", 0)
    return int(value) if isinstance(value, int) and value > 0 else 0
