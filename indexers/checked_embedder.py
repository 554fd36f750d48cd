"""A plugin's embedder, checked where pocketrag uses it.

Only the factory call of a part was guarded, so an embedder that was made but then failed
gave a traceback deep inside `rag index` or a search: `embed()` raising, vectors of the
wrong shape (a store's write or a FAISS search failing far from the cause), `dim = 0` (a
ZeroDivisionError in the store's segment sizing), NaN vectors (an index that finds
nothing, silently). `get_embedder` wraps every embedder a plugin makes in `Checked`, so
each of its calls goes through `rag.core.plugins.call_plugin` (stdout to stderr, a failure
is one line naming the plugin) and each output is checked before it is used. pocketrag's
own embedders are not wrapped: their outputs are known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rag.core import plugins


def _whole(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


class Checked:
    """`inner` (made by the plugin part `name`) with its attributes, calls and outputs checked:
    `id` text, `dim` and `max_tokens` whole numbers of at least 1; `embed` a finite float
    array of one `dim`-long row per text; `count_tokens` one whole number per text."""

    def __init__(self, inner: Any, name: str) -> None:
        self.inner = inner
        self.name = name
        self.id = self._attribute("id", lambda v: isinstance(v, str) and v.strip(), "text")
        self.dim = int(self._attribute("dim", lambda v: _whole(v) and v >= 1, "at least 1"))
        self.max_tokens = int(
            self._attribute("max_tokens", lambda v: _whole(v) and v >= 1, "at least 1")
        )

    def __getattr__(self, attribute: str) -> Any:  # `runtime` and the like: the plugin's own
        return getattr(self.__dict__["inner"], attribute)

    def _fail(self, what: str) -> Exception:
        return plugins.plugin_failure("embedder", self.name, what)

    def _attribute(self, attribute: str, good: Any, wanted: str) -> Any:
        value = plugins.call_plugin("embedder", self.name, getattr, self.inner, attribute, None)
        if not good(value):
            kind = "text" if wanted == "text" else f"a whole number {wanted}"
            raise self._fail(f"its {attribute} is {_shown(value)}, not {kind}")
        return value

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        got = plugins.call_plugin("embedder", self.name, self.inner.embed, texts)
        try:
            vectors = np.asarray(got)
        except Exception:  # whatever the plugin returned (ragged lists, say)
            raise self._fail(f"embed() returned {type(got).__name__}, not an array") from None
        wanted = (len(texts), self.dim)
        if vectors.shape != wanted:
            raise self._fail(
                f"embed() returned an array of shape {vectors.shape} for {len(texts)} texts "
                f"of dim {self.dim}; it must be {wanted}"
            )
        if vectors.dtype.kind not in "fiu":  # floats, or whole numbers (made float32 below)
            raise self._fail(f"embed() returned {vectors.dtype} values, not numbers")
        vectors = vectors.astype(np.float32, copy=False)
        if not np.isfinite(vectors).all():
            raise self._fail("embed() returned vectors holding NaN or infinity")
        return vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        got = plugins.call_plugin("embedder", self.name, self.inner.count_tokens, texts)
        counts = list(got) if isinstance(got, (list, tuple, np.ndarray)) else None
        if (
            counts is None
            or len(counts) != len(texts)
            or not all(_whole(c) and c >= 0 for c in counts)
        ):
            raise self._fail(
                f"count_tokens() returned {_shown(got)} for {len(texts)} texts; it must be "
                "one whole number per text"
            )
        return [int(c) for c in counts]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def checked(embedder: Any, name: str) -> Any:
    """`embedder`, made by part `name`, wrapped in `Checked` when a plugin made it."""
    return embedder if plugins.plugin_of("embedder", name) is None else Checked(embedder, name)
