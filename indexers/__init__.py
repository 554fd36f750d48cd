"""Local documents -> chunks -> embeddings -> a FAISS + SQLite index that `rag` can search.

Modules, in data-flow order: `discovery` (which files), `loaders` (file -> text),
`chunking` (text -> token-sized chunks), `embedders` (chunks -> vectors), `store`
(on-disk generations), `target` (where an index may be written; a failed run removes
only what it made), `build` (incremental, locked, atomic), `hybrid` (BM25 + RRF),
`retriever` (`IndexRetriever`, the Retriever seam). Nothing heavy is imported here,
so `rag --help` stays fast.
"""
