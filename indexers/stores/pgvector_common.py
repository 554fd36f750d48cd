"""What the pgvector store's modules share: names, URLs without their passwords, vector
text, fingerprints. (A database failure as a one-line pocketrag error is
`PgSchema.as_rag_error`, indexers/stores/pgvector_schema.py.)"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np

from indexers.stores.base import IndexState

KIND = "pgvector"
URL_ENV = "RAG_STORE_PGVECTOR_URL"
K1, B = 1.2, 0.75
CONNECT_TIMEOUT_S = 5
_CONNINFO_PASSWORD = r"password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|(\S+))"


def shown_url(url: str) -> str:
    """`url` without its password, for messages and `rag indexes info`."""
    if "://" not in url:  # a key=value connection string: "host=db password=secret"
        return re.sub(_CONNINFO_PASSWORD, "password=***", url)
    url = re.sub(r"([?&]password=)[^&#]+", r"\1***", url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparseable URL)"
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(map(str, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def clean_text(text: str) -> str:
    return text.replace("\x00", "")  # PostgreSQL text cannot hold NUL; SQLite could


def fingerprint_of(where: str, state: IndexState) -> dict[str, Any]:
    """The fingerprint of version `state` of the index at `where` (`PgSchema.where()`)."""
    params = state.params
    canonical = json.dumps(params, sort_keys=True).encode()
    return {
        "store": KIND,
        "index_dir": where,
        "generation": f"gen-{state.generation:06d}",
        "embedder": params.get("embedder"),
        "embedder_id": params.get("embedder_id"),
        "chunks": params.get("chunks"),
        "params_sha256": hashlib.sha256(canonical).hexdigest(),
    }


def first_line(exc: BaseException, url: str = "") -> str:
    """The first non-blank line of `exc`, without the password of `url` if it echoes it."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    for secret in _secrets(url):
        text = text.replace(secret, "***")
    return text


def _secrets(url: str) -> list[str]:
    """The password in `url`, as written and decoded (libpq may quote either)."""
    found = [q or w for q, w in re.findall(_CONNINFO_PASSWORD, url)] if "://" not in url else []
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        netloc = ""
    raw = netloc.rsplit("@", 1)[0].partition(":")[2] if "@" in netloc else ""
    found += re.findall(r"[?&]password=([^&#]+)", url) + [raw]
    found += [unquote(f) for f in found]
    return sorted({f for f in found if f}, key=len, reverse=True)
