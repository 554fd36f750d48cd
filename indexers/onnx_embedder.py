"""A sentence-transformers model run by ONNX Runtime: the same vectors without importing torch.

The float graph gives the vectors sentence-transformers gives (cosine 1.0 to six places),
so it reads and extends indexes built either way; the int8 graph is faster and smaller
but its vectors differ slightly, so an index records which one made it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexers.onnx_export import ExportedModel, graph_positions
from rag.core.threads import spinning_allowed


class _OnnxGraph:
    """An exported graph and its tokenizer: tokenise with `tokenizers`, pad, run."""

    # Rows per run, longest texts first so each batch pads to similar lengths. Measured on
    # 192 Wikipedia leads (about 230 tokens), 2 threads: 8 rows embed 45 passages/s (float)
    # and 63 (int8); 16 rows 35 and 55; 64 rows 27 and 39. Small batches stay in cache.
    batch_size = 8
    # A batch also ends at a row shorter than this share of its longest, so no row is more
    # than a fifth padding: sentences vary in length far more than chunks do, and 10 of a
    # reranker's sentences embedded in 43 ms instead of 53 (int8, 60 NQ questions).
    pad_share = 0.8

    def __init__(self, name: str, exported: ExportedModel, int8: bool, threads: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self.name = name
        self.id = exported.model_id
        self.dim = exported.dim
        self.max_tokens = exported.max_tokens
        self.runtime = "onnx-int8" if int8 else "onnx"
        self._inputs = exported.inputs
        self._pad_id = exported.pad_id
        self._tokenizer_file = str(exported.tokenizer)
        self._tokenizer = Tokenizer.from_file(self._tokenizer_file)
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_tokens)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # The pool is sized once per session: idle, its threads block rather than spin, so
        # a core another process takes later is not fought over between runs.
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning_allowed)
        options.log_severity_level = 3  # warnings about unused initialisers are not the user's
        self._session = onnxruntime.InferenceSession(
            str(exported.graph(int8)), options, providers=["CPUExecutionProvider"]
        )
        self._check()

    def _check(self) -> None:
        """ValueError when export.json does not fit its graph and tokenizer (damaged or
        edited): the export is then made again, rather than failing on the first text with
        a missing input, an index past the vocabulary or past the position table."""
        width = self._session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != self.dim:
            raise ValueError(f"the graph gives {width} values per row, export.json says {self.dim}")
        takes = sorted(i.name for i in self._session.get_inputs())
        if takes != sorted(self._inputs):
            raise ValueError(f"the graph takes {takes}, export.json says {list(self._inputs)}")
        vocab = self._tokenizer.get_vocab_size(with_added_tokens=True)
        if self._pad_id >= vocab:
            raise ValueError(f"export.json's pad_id {self._pad_id} is past the {vocab} tokens")
        limit = graph_positions(self._session.get_modelmeta().custom_metadata_map)
        if self.max_tokens > limit:
            raise ValueError(
                f"export.json's max_tokens {self.max_tokens} is past the graph's {limit} positions"
            )

    def _outputs(self, inputs: list) -> np.ndarray:
        """One output row per input (a text, or a pair), in the caller's order."""
        encodings = self._tokenizer.encode_batch(inputs)
        order = sorted(range(len(encodings)), key=lambda i: -len(encodings[i].ids))
        out = np.empty((len(inputs), self.dim), dtype=np.float32)
        start = 0
        while start < len(order):
            shortest = self.pad_share * len(encodings[order[start]].ids)
            end = start + 1
            while (
                end < len(order)
                and end - start < self.batch_size
                and len(encodings[order[end]].ids) >= shortest
            ):
                end += 1
            rows = order[start:end]
            out[rows] = self._run([encodings[i] for i in rows])
            start = end
        return out

    def _run(self, encodings: list) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids = np.full((len(encodings), width), self._pad_id, dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            ids[row, :n] = encoding.ids
            mask[row, :n] = 1
            types[row, :n] = encoding.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        (vectors,) = self._session.run(None, {n: feed[n] for n in self._inputs})
        return vectors


class OnnxEmbedder(_OnnxGraph):
    """Normalised float32 rows, one per text: the Embedder protocol."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._outputs(list(texts))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        encoded = self._counter.encode_batch(list(texts), add_special_tokens=False)
        return [len(e.ids) for e in encoded]

    @functools.cached_property
    def _counter(self) -> Any:
        """The tokenizer untruncated, for sizing chunks: only indexing counts, so a query
        never loads it (about 30 ms)."""
        from tokenizers import Tokenizer

        counter = Tokenizer.from_file(self._tokenizer_file)
        counter.no_padding()
        counter.no_truncation()
        return counter


class OnnxCrossEncoder(_OnnxGraph):
    """A CrossEncoder's scores for (question, text) pairs, as its `predict` gives them."""

    def predict(self, question: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return [float(row[-1]) for row in self._outputs([(question, t) for t in texts])]
