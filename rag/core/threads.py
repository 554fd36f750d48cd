"""Thread counts for every pool in the process (llama.cpp, ONNX Runtime, faiss, torch),
chosen from the cores that are free now, not only those that exist.

Each library sizes its own pool to every logical CPU by default, and their idle threads
spin: on a 2-core machine two pools fought (a warm query spent 3.7 ms in FAISS next to
torch's pool, 0.3 ms once both were sized), and beside one process busy on one core a
2-thread llama.cpp answer took 3x as long as a 1-thread one, because every matrix product
waits for the thread that is not running. So the default is one thread per physical core
this process may use (affinity), capped by the cgroup's CPU quota and reduced by the
cores other processes keep busy (`/proc/stat` minus this process's own time, over the
window since an earlier reading, so measuring costs no wall time). The `threads` setting
(`RAG_THREADS`), when not 0, wins.

The decision is re-taken where a library allows it: per generation for llama.cpp, per
query for faiss (whose OpenMP count is per calling thread). ONNX Runtime's pool is fixed
when its session is made, so it is sized then and does not spin (`spinning_allowed`).
"""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

_LOCK = threading.Lock()  # held while a pool is sized
_METER_LOCK = threading.Lock()  # held while the meter is made (sizing a pool asks for it)

#: A thread is worth starting on a CPU at least this much free: a pool whose threads meet at
#: every operation runs at the pace of its slowest, so a half-free CPU is not worth a thread.
FREE_SHARE = 0.7
#: The shortest window whose CPU counters are trusted (100 ticks a second on each CPU).
MIN_WINDOW_S = 0.25
#: Readings older than this are dropped once a newer one can serve as a window's start.
KEEP_S = 5.0


def thread_count(setting: int, cpus: int | None = None, cores: int | None = None) -> int:
    """The static count: one thread per physical core (a second thread on a core's sibling
    only contends for its units: llama.cpp and ONNX Runtime both slow down); half the
    logical CPUs where the cores cannot be counted. Never more than the logical CPUs."""
    cpus = max(1, cpus or os.cpu_count() or 2)
    if setting > 0:
        return min(setting, cpus)
    return max(1, min(cpus, cores or physical_cores() or cpus // 2))


def decide(
    setting: int,
    *,
    cpus: int,
    cores: int | None,
    quota: float | None,
    others_busy: float | None,
) -> int:
    """Threads for a pool: `setting` when set (at most `cpus`); else one per physical core
    among `cpus` allowed CPUs, at most the cgroup `quota` (in CPUs, rounded up) and the
    CPUs that other processes leave free (`others_busy`, in CPUs; None when unknown)."""
    cpus = max(1, cpus)
    if setting > 0:
        return min(setting, cpus)
    limit = max(1, min(cpus, cores or cpus // 2))
    if quota is not None and quota > 0:
        limit = min(limit, max(1, math.ceil(quota - 0.05)))
    if others_busy is not None:
        free = cpus - max(0.0, others_busy)
        limit = min(limit, max(1, math.floor(free + 1 - FREE_SHARE)))
    return max(1, limit)


# --- readings of the machine: pure parsers over files, so tests give them tmp_path ---


@dataclass(frozen=True)
class CpuReading:
    """Cumulative CPU ticks at one moment: busy and total over the allowed CPUs, and this
    process's own (user + system)."""

    at: float
    busy: int
    total: int
    own: int


def read_cpu(proc: Path, cpus: frozenset[int] | None, at: float) -> CpuReading | None:
    """`/proc/stat`'s lines for `cpus` (all of them when None) and `/proc/self/stat`."""
    try:
        stat = (proc / "stat").read_text()
        own_fields = (proc / "self" / "stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    busy = total = 0
    for line in stat.splitlines():
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and (not name[3:].isdigit() or int(name[3:]) not in cpus):
            continue
        # user nice system idle iowait irq softirq steal (guest is counted in user)
        ticks = [int(v) for v in rest.split()[:8]]
        total += sum(ticks)
        busy += sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
    if not total:
        return None
    try:  # fields after the command: state is [0], utime [11], stime [12]
        own = int(own_fields[11]) + int(own_fields[12])
    except (IndexError, ValueError):
        return None
    return CpuReading(at, busy, total, own)


def others_busy(before: CpuReading, after: CpuReading, cpus: int) -> float | None:
    """CPUs other processes kept busy between two readings (this process's time taken
    out; steal, time the hypervisor gave away, counts as busy)."""
    total = after.total - before.total
    if total <= 0:
        return None
    per_cpu = total / max(1, cpus)  # ticks in the window on one CPU
    busy = (after.busy - before.busy) - (after.own - before.own)
    return max(0.0, busy / per_cpu)


def instant_others(proc: Path) -> float | None:
    """Runnable tasks of other processes right now (`/proc/loadavg`'s running count less
    this process's running threads): a fallback when no window is long enough yet."""
    try:
        running = int((proc / "loadavg").read_text().split()[3].split("/")[0])
    except (OSError, IndexError, ValueError):
        return None
    own = 0
    try:
        for task in (proc / "self" / "task").iterdir():
            try:
                if (task / "stat").read_text().rpartition(")")[2].split()[0] == "R":
                    own += 1
            except (OSError, IndexError):
                continue
    except OSError:
        own = 1
    return float(max(0, running - max(1, own)))


def cgroup_quota(root: Path, self_cgroup: Path) -> float | None:
    """The CPU quota of this process's cgroup, in CPUs (None: no quota): v2's `cpu.max`
    (`max 100000` or `QUOTA PERIOD`), v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us`. The
    smallest quota on the way from the cgroup up to the root applies."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    v2, v1 = "/", "/"
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        elif "cpu" in parts[1].split(","):
            v1 = parts[2]
    found: list[float] = []
    for folder in _ancestors(root, v2):
        try:
            quota, period = ((folder / "cpu.max").read_text().split() + ["100000"])[:2]
        except OSError:
            continue
        if quota.isdigit() and period.isdigit() and int(period) > 0:
            found.append(int(quota) / int(period))
    for mount in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        for folder in _ancestors(root / mount, v1):
            try:
                quota_us = int((folder / "cpu.cfs_quota_us").read_text().split()[0])
                period_us = int((folder / "cpu.cfs_period_us").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if quota_us > 0 and period_us > 0:
                found.append(quota_us / period_us)
    return min(found) if found else None


def _ancestors(root: Path, path: str) -> list[Path]:
    parts = [p for p in path.strip("/").split("/") if p and p not in (".", "..")]
    return [root.joinpath(*parts[:n]) for n in range(len(parts), -1, -1)]


def physical_cores(sys_cpu: Path = Path("/sys/devices/system/cpu"), allowed=None) -> int | None:
    """Cores among the CPUs this process may run on, from Linux's topology files."""
    if allowed is None:
        allowed = allowed_cpus()
    if allowed is None:
        return None
    cores = set()
    for cpu in allowed:
        topology = sys_cpu / f"cpu{cpu}" / "topology"
        try:
            package = (topology / "physical_package_id").read_text().strip()
            core = (topology / "core_id").read_text().strip()
        except OSError:
            return None
        cores.add((package, core))
    return len(cores) or None


def allowed_cpus() -> frozenset[int] | None:
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


class LoadMeter:
    """Decides thread counts from the machine's state now. Every decision (and `sample`)
    keeps a reading; the next decision measures the others' load over the window from
    the newest reading at least `MIN_WINDOW_S` old, so a long-running process follows
    the load as it changes. The paths and clock are parameters for tests."""

    def __init__(
        self,
        proc: Path = Path("/proc"),
        cgroup: Path = Path("/sys/fs/cgroup"),
        sys_cpu: Path = Path("/sys/devices/system/cpu"),
        affinity: Callable[[], frozenset[int] | None] = allowed_cpus,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.proc, self.cgroup, self.sys_cpu = proc, cgroup, sys_cpu
        self._affinity, self._clock = affinity, clock
        self._readings: list[CpuReading] = []
        self._lock = threading.Lock()
        self._sampler: threading.Thread | None = None
        self.last: dict[str, Any] = {}
        self.sample()

    def sample(self) -> CpuReading | None:
        """Keep a reading now (a window's start for a later decision)."""
        reading = read_cpu(self.proc, self._affinity(), self._clock())
        if reading is not None:
            with self._lock:
                self._readings.append(reading)
                starts = [r for r in self._readings if reading.at - r.at >= MIN_WINDOW_S]
                if starts:  # keep the newest usable start and everything after it
                    keep_from = max(
                        (r for r in starts if reading.at - r.at <= KEEP_S or r is starts[-1]),
                        key=lambda r: r.at,
                    )
                    self._readings = [r for r in self._readings if r.at >= keep_from.at]
        return reading

    def others(self) -> float | None:
        """CPUs other processes keep busy: over the latest long-enough window, else now."""
        allowed = self._affinity()
        cpus = len(allowed) if allowed else (os.cpu_count() or 1)
        with self._lock:
            earlier = list(self._readings)
        now = self.sample()
        if now is not None:
            starts = [r for r in earlier if now.at - r.at >= MIN_WINDOW_S]
            if starts:
                return others_busy(starts[-1], now, cpus)
        return instant_others(self.proc)

    def threads(self, setting: int) -> int:
        """The thread count for a pool now (`setting` when it is not 0)."""
        allowed = self._affinity()
        cpus = len(allowed) if allowed else (os.cpu_count() or 1)
        if setting > 0:
            return decide(setting, cpus=cpus, cores=None, quota=None, others_busy=None)
        now = self._clock()
        last = self.last
        if last and last["allowed"] == allowed and now - last["at"] < MIN_WINDOW_S:
            return last["threads"]  # no new window to measure yet
        if not last or last["allowed"] != allowed or now - last["fixed_at"] >= KEEP_S:
            quota = cgroup_quota(self.cgroup, self.proc / "self" / "cgroup")
            cores = physical_cores(self.sys_cpu, allowed) if allowed else None
            fixed_at = now
        else:  # quota and topology change rarely: read again every few seconds
            quota, cores, fixed_at = last["quota"], last["cores"], last["fixed_at"]
        others = self.others()
        chosen = decide(0, cpus=cpus, cores=cores, quota=quota, others_busy=others)
        self.last = {
            "allowed": allowed,
            "at": now,
            "fixed_at": fixed_at,
            "cpus": cpus,
            "cores": cores,
            "quota": quota,
            "others": others,
            "threads": chosen,
        }
        return chosen

    def keep_sampling(self, interval: float = 1.0) -> None:
        """Take a reading every `interval` seconds on a daemon thread, so a long idle spell
        (a server between requests) does not make the next window minutes long."""
        if self._sampler is not None:
            return

        def run() -> None:
            while True:
                time.sleep(interval)
                self.sample()

        self._sampler = threading.Thread(target=run, name="rag-load-meter", daemon=True)
        self._sampler.start()


_METER: LoadMeter | None = None


def meter() -> LoadMeter:
    """The process's meter (its first reading is taken when it is first asked for)."""
    global _METER
    with _METER_LOCK:
        if _METER is None:
            _METER = LoadMeter()
        return _METER


def set_meter(replacement: LoadMeter | None) -> None:
    """Use another meter (tests inject readings this way)."""
    global _METER
    with _METER_LOCK:
        _METER = replacement


def setting() -> int:
    from rag.core.config import load_settings

    return load_settings().threads


def pool_size() -> int:
    """Threads for a pool made now, from the settings and the machine's current load."""
    return meter().threads(setting())


#: ONNX Runtime's intra-op threads block instead of spinning when idle: its pool is sized
#: once per session, so it must not burn a core that another process needs later.
spinning_allowed = "0"


def session_pool_size() -> int:
    """Threads for an ONNX Runtime session: one per physical core whatever the load now
    (`setting` when set). Its pool cannot be re-sized, and a pool that does not spin loses
    little beside a busy neighbour (the scheduler shares the cores by thread) while a
    server that started under load would otherwise keep one thread for good: warm
    searches were 1.27x slower idle with the pool sized by the load at start, and 2
    blocking threads embedded faster than 1 beside a spinning neighbour."""
    allowed = allowed_cpus()
    cores = physical_cores(allowed=allowed) if allowed else None
    return thread_count(setting(), cpus=len(allowed) if allowed else None, cores=cores)


@functools.cache
def _sized(library: str) -> None:
    if library == "torch":
        import torch

        torch.set_num_threads(pool_size())


def load_faiss() -> ModuleType:
    """faiss (its OpenMP count is set per search by `faiss_threads`, on the searching
    thread: OpenMP keeps the count per thread, so one call at load reached one thread)."""
    import faiss

    return faiss


def faiss_threads(faiss: ModuleType | None = None) -> None:
    """Size OpenMP for faiss on this thread, from the current decision."""
    if faiss is None:
        import faiss
    faiss.omp_set_num_threads(pool_size())


def configure_torch() -> None:
    """Size torch's pool by the policy (once per process; later calls do nothing)."""
    with _LOCK:
        _sized("torch")
