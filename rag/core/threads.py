"""One thread count for every pool in the process: llama.cpp, ONNX Runtime, faiss, torch.

Each library sizes its own pool to every logical CPU by default, and their idle threads
spin. On a 2-core machine two such pools fight: a warm query spent 3.7 ms in FAISS next to
torch's pool and 0.3 ms once both were fixed, and the embedder used to switch torch's
count per query to dodge its own pool. So each pool is sized once, when its library is
first loaded, from the `threads` setting (`RAG_THREADS`; 0 picks for the machine).
"""

from __future__ import annotations

import functools
import os
import threading
from types import ModuleType

_LOCK = threading.Lock()


def thread_count(setting: int, cpus: int | None = None, cores: int | None = None) -> int:
    """One thread per physical core by default (a second thread on a core's sibling only
    contends for its units: llama.cpp and ONNX Runtime both slow down); half the logical
    CPUs where the cores cannot be counted. Never more than the logical CPUs."""
    cpus = max(1, cpus or os.cpu_count() or 2)
    if setting > 0:
        return min(setting, cpus)
    return max(1, min(cpus, cores or physical_cores() or cpus // 2))


def physical_cores() -> int | None:
    """Cores among the CPUs this process may run on, from Linux's topology files."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return None
    cores = set()
    for cpu in allowed:
        topology = f"/sys/devices/system/cpu/cpu{cpu}/topology/"
        try:
            with open(topology + "physical_package_id") as p, open(topology + "core_id") as c:
                cores.add((p.read().strip(), c.read().strip()))
        except OSError:
            return None
    return len(cores) or None


def pool_size() -> int:
    """The threads each library's pool gets, from the settings (re-read: it is cheap, and a
    pool is made once)."""
    from rag.core.config import load_settings

    return thread_count(load_settings().threads)


@functools.cache
def _sized(library: str) -> None:
    size = pool_size()
    if library == "faiss":
        import faiss

        faiss.omp_set_num_threads(size)
    elif library == "torch":
        import torch

        torch.set_num_threads(size)


def load_faiss() -> ModuleType:
    """faiss, its OpenMP pool sized by the policy the first time."""
    import faiss

    with _LOCK:
        _sized("faiss")
    return faiss


def configure_torch() -> None:
    """Size torch's pool by the policy (once per process; later calls do nothing)."""
    with _LOCK:
        _sized("torch")
