"""Store `hello`: an index kept as one JSON file (`hello-store.json`) in the index folder,
written whole on each commit. Small on purpose: it shows that the IndexStore seam is
everything a store implements, with nothing of pocketrag's own stores reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

DATA = "hello-store.json"
_WORD = re.compile(r"\w+")


def make_store(label: str, index_dir: Path, settings: Any, options: dict[str, Any]) -> Any:
    return HelloStore(label, index_dir, options["note"])


class HelloStore:
    kind = "hello"

    def __init__(self, label: str, index_dir: Path, note: str) -> None:
        self.label, self.index_dir, self.note = label, index_dir, note

    @property
    def path(self) -> Path:
        return self.index_dir / DATA

    def where(self) -> str:
        return f"{self.note}: {self.path}"

    def _load(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def state(self, *, allow_outdated: bool = False) -> Any:
        from indexers.stores import IndexState

        data = self._load()
        return IndexState(data["params"], data["generation"], handle=data) if data else None

    def file_table(self, state: Any) -> dict[str, tuple[str, int, int]]:
        return {p: tuple(v) for p, v in state.handle["files"].items()}

    @contextlib.contextmanager
    def writing(self, roots: Any, wait: float) -> Iterator[None]:
        from indexers.stores import ownership

        new = not self.index_dir.exists()
        self.index_dir.mkdir(parents=True, exist_ok=True)
        if not ownership.has_marker(self.index_dir):
            ownership.write_marker(self.index_dir, store=self.kind)
        try:
            yield
        except BaseException:
            if new and not self.path.exists():
                shutil.rmtree(self.index_dir, ignore_errors=True)
            raise

    def writer(self, params: dict[str, Any], base: Any, approx_threshold: int) -> Any:
        data = base.handle if base is not None else {"files": {}, "chunks": {}, "generation": 0}
        return HelloWriter(self, json.loads(json.dumps(data)), params)

    def reader(self) -> Any:
        from rag.core.errors import IndexNotFound

        state = self.state()
        if state is None:
            raise IndexNotFound(f"No index named {self.label!r} in the hello store.")
        return HelloReader(state)

    def fingerprint(self) -> dict[str, Any] | None:
        state = self.state()
        return HelloReader(state).fingerprint() if state else None

    def verify(self) -> Any:
        return self.reader().state

    def stats(self) -> dict[str, Any]:
        size = self.path.stat().st_size if self.path.exists() else 0
        return {"store": self.kind, "where": self.where(), "bytes": size}

    def remove(self) -> list[str]:
        shutil.rmtree(self.index_dir)
        return []


class HelloWriter:
    def __init__(self, store: HelloStore, data: dict[str, Any], params: dict[str, Any]) -> None:
        self.store, self.data, self.params = store, data, params
        self.next_id = max(map(int, data["chunks"]), default=0) + 1

    def remove_paths(self, paths: Any) -> None:
        for path in paths:
            self.discard_file(path)
            self.data["files"].pop(path, None)

    def add_chunks(self, path: str, chunks: Any, vectors: np.ndarray) -> None:
        for chunk, vector in zip(chunks, vectors, strict=True):
            row = [path, chunk.title, chunk.location, chunk.text, chunk.start, chunk.end]
            self.data["chunks"][str(self.next_id)] = [*row, vector.tolist()]
            self.next_id += 1

    def add_file(self, path: str, sha256: str, size: int, mtime_ns: int) -> None:
        self.data["files"][path] = [sha256, size, mtime_ns]

    def discard_file(self, path: str) -> None:
        chunks = self.data["chunks"]
        for key in [k for k, row in chunks.items() if row[0] == path]:
            del chunks[key]

    def commit(self) -> Any:
        from indexers.stores import IndexState

        self.params.update(chunks=len(self.data["chunks"]), files=len(self.data["files"]))
        self.data.update(params=self.params, generation=self.data["generation"] + 1)
        temporary = self.store.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.data), encoding="utf-8")
        os.replace(temporary, self.store.path)
        return IndexState(self.params, self.data["generation"], handle=self.data)

    def abort(self) -> None:
        pass


class HelloReader:
    def __init__(self, state: Any) -> None:
        self.state = state
        rows = state.handle["chunks"]
        self.ids = [int(k) for k in rows]
        self.rows = {int(k): tuple(v[:6]) for k, v in rows.items()}
        dim = state.params["dim"]
        vectors = [v[6] for v in rows.values()]
        self.vectors = np.array(vectors, dtype=np.float32).reshape(len(vectors), dim)

    def snapshot(self) -> Any:
        return contextlib.nullcontext()

    def dense(self, vector: np.ndarray, n: int) -> list[tuple[int, float]]:
        scores = self.vectors @ np.asarray(vector, dtype=np.float32).reshape(-1)
        best = np.argsort(-scores)[:n]
        return [(self.ids[i], float(scores[i])) for i in best]

    def bm25(self, query: str, n: int) -> list[tuple[int, float]]:
        words = set(_WORD.findall(query.lower()))
        scored = []
        for chunk_id, row in self.rows.items():
            overlap = len(words & set(_WORD.findall(row[3].lower())))
            if overlap:
                scored.append((chunk_id, float(overlap)))
        return sorted(scored, key=lambda s: (-s[1], s[0]))[:n]

    def fetch(self, ids: Any) -> dict[int, Any]:
        return {i: self.rows[i] for i in ids if i in self.rows}

    def fingerprint(self) -> dict[str, Any]:
        params = json.dumps(self.state.params, sort_keys=True).encode()
        return {
            "store": "hello",
            "generation": self.state.generation,
            "embedder": self.state.params.get("embedder"),
            "params_sha256": hashlib.sha256(params).hexdigest(),
        }

    def close(self) -> None:
        pass
