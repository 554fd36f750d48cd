"""The Reranker seam: score short texts (sentences, passages) against a question.

Retrievers rank whole chunks by a vector or by BM25 over the corpus; a reranker looks at
the question and one candidate at a time, at sentence level, which is what locates the
one sentence a small model needs. Built-ins, by name (`Settings.reranker`):

- `hybrid` (default): the query embedder's cosine plus BM25 over the candidates, each
  standardised per question. It reuses the embedder the index already loaded, so it
  works offline from the install and adds no model to memory.
- `embedder`: the cosine alone; `bm25`: the lexical score alone (no model at all).
- `cross-encoder:HF_ID` (e.g. `cross-encoder:cross-encoder/ms-marco-MiniLM-L-6-v2`): a
  sentence-transformers CrossEncoder, stronger and slower, downloaded from the Hugging
  Face hub on first use.
- `none`: keep the retrievers' order (`--no-rerank`).

Scores are comparable within one call only; selection works on them per question.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np

from rag.core import plugins
from rag.core.config import Settings
from rag.core.errors import ModelUnavailable, UsageError

log = logging.getLogger(__name__)

DEFAULT_RERANKER = "hybrid"
NO_RERANK = "none"


@runtime_checkable
class Reranker(Protocol):
    name: str

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, higher is better."""
        ...


def get_reranker(spec: str, settings: Settings) -> Reranker | None:
    """The reranker a setting names (a `reranker` part; built-ins in rag.builtin_parts);
    None for `none`: the retrievers' order."""
    return plugins.create(
        "reranker", spec, settings, hint=" (RAG_RERANKER, `reranker` in config.toml, --reranker)"
    )


# --- lexical -----------------------------------------------------------------------------

_WORD = re.compile(r"\w+")
#: Question words and glue: they match everywhere and say nothing about relevance.
_STOPWORD_TEXT = """
a an and are as at be been being but by did do does for from had has have he her his how i
if in into is it its me my of on or our she so than that the their them then there these
they this those to was we were what when where which who whom whose why will with would you
your
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def terms(text: str) -> list[str]:
    """Lower-cased words without stopwords, plural `s` folded (`ships` ~ `ship`)."""
    words = _WORD.findall(text.lower())
    return [w[:-1] if len(w) > 3 and w.endswith("s") else w for w in words if w not in STOPWORDS]


def bm25_scores(
    question: str, texts: Sequence[str], k1: float = 1.2, b: float = 0.75
) -> list[float]:
    """BM25 of the question against each text, the texts themselves as the collection: a
    word rare among the candidates (a name, a year) weighs more than one they all share."""
    wanted = set(terms(question))
    docs = [Counter(terms(t)) for t in texts]
    if not wanted or not docs:
        return [0.0] * len(texts)
    lengths = [sum(d.values()) for d in docs]
    average = max(1.0, sum(lengths) / len(docs))
    df = Counter(w for d in docs for w in wanted if w in d)
    n = len(docs)
    scores = []
    for doc, length in zip(docs, lengths, strict=False):
        total = 0.0
        for word in wanted:
            tf = doc.get(word, 0)
            if tf:
                idf = math.log(1 + (n - df[word] + 0.5) / (df[word] + 0.5))
                total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / average))
        scores.append(total)
    return scores


class BM25Reranker:
    name = "bm25"
    cheap = True  # no model: nothing to save by shortlisting

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        return bm25_scores(question, texts)


# --- dense -------------------------------------------------------------------------------


class EmbedderReranker:
    """Cosine between the question and each text under the query embedder."""

    name = "embedder"

    def __init__(self, settings: Settings) -> None:
        from indexers.embedders import any_embedder

        self.embedder = any_embedder(settings.embedder, settings)

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        from indexers.embedders import embed_query

        question_vector = embed_query(self.embedder, question)[0]  # as the index's search had it
        return [float(x) for x in self.embedder.embed(list(texts)) @ question_vector]


def standardised(values: Sequence[float]) -> np.ndarray:
    """(x - mean) / std within one question; all zeros when the values do not differ."""
    array = np.asarray(values, dtype=np.float64)
    spread = array.std() if len(array) > 1 else 0.0
    return (array - array.mean()) / spread if spread > 1e-9 else np.zeros_like(array)


class HybridReranker:
    """Dense and lexical evidence together: the embedder finds paraphrases, BM25 the exact
    name or number the question asks about; neither alone ranks sentences as well."""

    name = "hybrid"

    def __init__(self, settings: Settings, lexical_weight: float = 1.0) -> None:
        self.dense = EmbedderReranker(settings)
        self.lexical_weight = lexical_weight

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        dense = standardised(self.dense.score(question, texts))
        lexical = standardised(bm25_scores(question, texts))
        return [float(x) for x in dense + self.lexical_weight * lexical]


# --- cross-encoder -----------------------------------------------------------------------


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder: reads question and text together.

    It runs on ONNX Runtime (float weights: scores as torch gives them) from an export
    made once, so a query does not import torch; on torch where ONNX cannot serve."""

    batch_size = 16

    def __init__(self, model_id: str, settings: Settings) -> None:
        self.name = f"cross-encoder:{model_id}"
        self.model_id = model_id
        if not self.model_id:
            raise UsageError(
                "Give the cross-encoder's model, e.g. "
                "RAG_RERANKER=cross-encoder:cross-encoder/ms-marco-MiniLM-L-6-v2."
            )
        self.onnx: Any = None
        self.model: Any = None
        if settings.embedder_runtime == "torch":
            self.model = _load_cross_encoder(self.model_id)
            return
        from indexers.onnx_embedder import OnnxCrossEncoder
        from indexers.onnx_models import load_onnx, onnx_session

        tried_torch = False

        def reference() -> tuple[Any, str]:
            nonlocal tried_torch
            tried_torch = True
            self.model = _load_cross_encoder(self.model_id)  # the error a user can act on
            return self.model, self.model_id

        try:
            self.onnx = load_onnx(
                self.model_id,
                lambda e: onnx_session(OnnxCrossEncoder, self.model_id, e, int8=False),
                reference,
                cross=True,
            )
        except ModelUnavailable as exc:
            if tried_torch and self.model is None:
                raise  # the model itself cannot load: that message names what to do
            log.warning("%s Reranking with torch instead (slower to start).", exc)
            if self.model is None:
                self.model = _load_cross_encoder(self.model_id)

    def score(self, question: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        if self.onnx is not None:
            return self.onnx.predict(question, texts)
        scores = self.model.predict(
            [(question, t) for t in texts], batch_size=self.batch_size, show_progress_bar=False
        )
        return [float(x) for x in np.asarray(scores).reshape(len(texts), -1)[:, -1]]


def _load_cross_encoder(model_id: str) -> Any:
    from pathlib import Path

    from rag.core.hub import hub_unreachable_reason

    offline_reason = None if Path(model_id).is_dir() else hub_unreachable_reason()
    try:
        from sentence_transformers import CrossEncoder

        return CrossEncoder(model_id, device="cpu", local_files_only=bool(offline_reason))
    except Exception as exc:  # hub, network and format errors all mean "cannot use it"
        cause = (
            f" It is not in the local Hugging Face cache and the hub is unreachable "
            f"({offline_reason})."
            if offline_reason
            else f" ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        )
        raise ModelUnavailable(
            f"Cannot load reranker cross-encoder:{model_id}.{cause} Set RAG_RERANKER=hybrid "
            "(works offline) or pass --no-rerank."
        ) from None
