"""Local documents -> chunks -> embeddings -> a FAISS + SQLite index that `rag` can search.

Modules, in data-flow order: `discovery` (which files), `loaders` (file -> text),
`chunking` (text -> token-sized chunks), `embedders` (chunks -> vectors), `store`
(on-disk generations), `target` (where an index may be written; a failed run removes
only what it made), `build` (incremental, locked, atomic), `hybrid` (BM25 + RRF),
`retriever` (`IndexRetriever`, the Retriever seam). Nothing heavy is imported here,
so `rag --help` stays fast.
"""

import os

# ONNX Runtime's native library sends usage telemetry to Microsoft (seen here as lookups of
# mobile.events.data.microsoft.com while quantising an export; its Python switch,
# disable_telemetry_events, does not stop that one). pocketrag sends nothing it is not
# asked to: the library reads this variable when it starts, so it is set before any import.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
