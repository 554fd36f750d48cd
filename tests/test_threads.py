"""The thread decision from the machine's state: readings injected as files under tmp_path
(`/proc`, cgroup, CPU topology) and a clock the test moves; no timing is asserted."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from rag.core import threads
from rag.core.threads import (
    CpuReading,
    LoadMeter,
    cgroup_quota,
    decide,
    instant_others,
    others_busy,
    read_cpu,
)


class FakeMachine:
    """A /proc, a cgroup tree and a topology under tmp_path, and a clock. `run(seconds,
    others=..., own=...)` advances the counters as if other processes kept `others` CPUs
    busy and this one `own`, spread over the CPUs."""

    def __init__(self, root: Path, cpus: int = 2, cores: int | None = None) -> None:
        self.proc = root / "proc"
        self.cgroup = root / "cgroup"
        self.sys_cpu = root / "sys-cpu"
        (self.proc / "self" / "task" / "1").mkdir(parents=True)
        self.cgroup.mkdir()
        self.cpus = cpus
        self.allowed = frozenset(range(cpus))
        for cpu in range(cpus):
            topology = self.sys_cpu / f"cpu{cpu}" / "topology"
            topology.mkdir(parents=True)
            (topology / "physical_package_id").write_text("0\n")
            core = cpu if cores is None else cpu % cores
            (topology / "core_id").write_text(f"{core}\n")
        (self.proc / "self" / "cgroup").write_text("0::/\n")
        (self.proc / "loadavg").write_text("0.00 0.00 0.00 1/100 999\n")
        (self.proc / "self" / "task" / "1" / "stat").write_text("1 (python) R 0\n")
        self.now = 100.0
        self.busy = [0] * cpus
        self.idle = [1000] * cpus  # since boot
        self.own = 0
        self.write()

    def write(self) -> None:
        lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
        for cpu in range(self.cpus):
            # user nice system idle iowait irq softirq steal guest guest_nice
            lines.append(f"cpu{cpu} {self.busy[cpu]} 0 0 {self.idle[cpu]} 0 0 0 0 0 0")
        (self.proc / "stat").write_text("\n".join(lines) + "\nintr 0\n")
        fields = ["S"] + ["0"] * 10 + [str(self.own), "0"] + ["0"] * 30
        (self.proc / "self" / "stat").write_text("4242 (python (x)) " + " ".join(fields) + "\n")

    def run(self, seconds: float, others: float = 0.0, own: float = 0.0) -> None:
        ticks = int(seconds * 100)  # 100 ticks a second per CPU
        busy_total = int((others + own) * ticks)
        for cpu in range(self.cpus):
            share = min(ticks, busy_total)
            self.busy[cpu] += share
            self.idle[cpu] += ticks - share
            busy_total -= share
        self.own += int(own * ticks)
        self.now += seconds
        self.write()

    def meter(self) -> LoadMeter:
        return LoadMeter(
            proc=self.proc,
            cgroup=self.cgroup,
            sys_cpu=self.sys_cpu,
            affinity=lambda: self.allowed,
            clock=lambda: self.now,
        )


# --- the pure decision ---


def test_an_idle_machine_gets_one_thread_per_physical_core() -> None:
    assert decide(0, cpus=2, cores=2, quota=None, others_busy=0.0) == 2
    assert decide(0, cpus=8, cores=4, quota=None, others_busy=0.1) == 4  # SMT siblings
    assert decide(0, cpus=16, cores=None, quota=None, others_busy=None) == 8


def test_cores_other_processes_keep_busy_are_not_used() -> None:
    assert decide(0, cpus=2, cores=2, quota=None, others_busy=1.0) == 1
    assert decide(0, cpus=2, cores=2, quota=None, others_busy=0.6) == 1  # a 0.4-free CPU
    assert decide(0, cpus=2, cores=2, quota=None, others_busy=0.2) == 2
    assert decide(0, cpus=8, cores=8, quota=None, others_busy=4.0) == 4
    assert decide(0, cpus=2, cores=2, quota=None, others_busy=7.5) == 1  # never 0


def test_a_cgroup_quota_caps_the_threads() -> None:
    assert decide(0, cpus=8, cores=8, quota=2.0, others_busy=0.0) == 2
    assert decide(0, cpus=8, cores=8, quota=1.5, others_busy=0.0) == 2
    assert decide(0, cpus=8, cores=8, quota=0.5, others_busy=0.0) == 1


def test_an_explicit_setting_wins_over_load_and_quota() -> None:
    assert decide(3, cpus=8, cores=4, quota=1.0, others_busy=7.0) == 3
    assert decide(100, cpus=8, cores=4, quota=None, others_busy=None) == 8  # at most the CPUs


# --- readings ---


def test_other_processes_load_is_the_busy_time_less_this_process(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    before = read_cpu(machine.proc, machine.allowed, machine.now)
    machine.run(1.0, others=1.0, own=0.5)
    after = read_cpu(machine.proc, machine.allowed, machine.now)
    assert before is not None and after is not None
    assert others_busy(before, after, cpus=2) == pytest.approx(1.0)


def test_only_the_allowed_cpus_are_read(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path, cpus=4)
    before = read_cpu(machine.proc, frozenset({2, 3}), 0.0)
    machine.run(1.0, others=2.0)  # fills cpu0 and cpu1, not ours
    after = read_cpu(machine.proc, frozenset({2, 3}), 1.0)
    assert before and after and others_busy(before, after, cpus=2) == 0.0


def test_unreadable_proc_means_unknown(tmp_path: Path) -> None:
    assert read_cpu(tmp_path / "nowhere", None, 0.0) is None
    assert instant_others(tmp_path / "nowhere") is None
    same = CpuReading(0.0, 10, 100, 0)
    assert others_busy(same, same, cpus=2) is None


def test_cgroup_v2_cpu_max(tmp_path: Path) -> None:
    cgroup = tmp_path / "cg"
    (cgroup / "user.slice" / "app").mkdir(parents=True)
    own = tmp_path / "self-cgroup"
    own.write_text("0::/user.slice/app\n")
    assert cgroup_quota(cgroup, own) is None
    (cgroup / "cpu.max").write_text("max 100000\n")
    (cgroup / "user.slice" / "app" / "cpu.max").write_text("150000 100000\n")
    assert cgroup_quota(cgroup, own) == 1.5
    (cgroup / "user.slice" / "cpu.max").write_text("50000 100000\n")  # a parent's is lower
    assert cgroup_quota(cgroup, own) == 0.5


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    cgroup = tmp_path / "cg"
    folder = cgroup / "cpu,cpuacct" / "docker" / "abc"
    folder.mkdir(parents=True)
    own = tmp_path / "self-cgroup"
    own.write_text("4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n")
    (folder / "cpu.cfs_quota_us").write_text("-1\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_quota(cgroup, own) is None
    (folder / "cpu.cfs_quota_us").write_text("200000\n")
    assert cgroup_quota(cgroup, own) == 2.0


# --- the meter: a long-running process follows the load ---


def test_the_meter_follows_the_load_as_it_changes(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    meter = machine.meter()
    machine.run(1.0, own=1.0)  # only this process worked
    assert meter.threads(0) == 2
    machine.run(1.0, others=1.0, own=0.6)  # a neighbour spins on one core
    assert meter.threads(0) == 1
    assert meter.last["others"] == pytest.approx(1.0)
    machine.run(1.0, own=1.0)  # the neighbour left
    assert meter.threads(0) == 2


def test_a_window_too_short_to_measure_keeps_the_decision(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    meter = machine.meter()
    machine.run(1.0)
    assert meter.threads(0) == 2
    machine.run(0.05, others=2.0)
    assert meter.threads(0) == 2  # 5 ticks a CPU say nothing yet
    machine.run(0.5, others=1.0)
    assert meter.threads(0) == 1  # measured from the decision before the short window


def test_with_no_window_yet_the_runnable_count_decides(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    (machine.proc / "loadavg").write_text("3.00 1.00 0.50 2/100 999\n")  # us + one more
    assert machine.meter().threads(0) == 1
    (machine.proc / "loadavg").write_text("3.00 1.00 0.50 1/100 999\n")  # us alone
    assert machine.meter().threads(0) == 2


def test_affinity_and_quota_reach_the_meter(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path, cpus=8)
    meter = machine.meter()
    machine.run(1.0)
    assert meter.threads(0) == 8
    machine.allowed = frozenset({0, 1, 2})  # taskset
    assert meter.threads(0) == 3
    (machine.cgroup / "cpu.max").write_text("100000 100000\n")
    machine.now += 10  # the quota is read again every few seconds
    machine.run(1.0)
    assert meter.threads(0) == 1


def test_the_setting_wins_in_the_meter(tmp_path: Path) -> None:
    machine = FakeMachine(tmp_path)
    meter = machine.meter()
    machine.run(1.0, others=2.0)
    assert meter.threads(0) == 1
    assert meter.threads(2) == 2


@pytest.fixture
def fake_machine(tmp_path: Path) -> FakeMachine:
    machine = FakeMachine(tmp_path)
    threads.set_meter(machine.meter())
    yield machine
    threads.set_meter(None)


def test_faiss_is_sized_on_the_searching_thread(fake_machine: FakeMachine) -> None:
    """OpenMP keeps its count per thread: a server's worker threads each size their own."""
    faiss = pytest.importorskip("faiss")
    fake_machine.run(1.0, others=1.0)
    seen: list[int] = []

    def search() -> None:
        threads.faiss_threads()
        seen.append(faiss.omp_get_max_threads())

    worker = threading.Thread(target=search)
    worker.start()
    worker.join()
    assert seen == [1]


def test_a_loaded_model_changes_its_threads_when_the_load_changes(
    fake_machine: FakeMachine, llama_cpp_runs_here: None
) -> None:
    """The generator `rag serve` and `rag eval` keep for the whole run re-decides per
    generation, and llama.cpp takes the new count on the loaded model."""
    import llama_cpp

    from rag.core.types import Message
    from rag.generators.llama import LlamaGenerator
    from rag.generators.model_files import ALIASES

    question = [Message("user", "What is the capital of France?")]
    fake_machine.run(1.0)
    generator = LlamaGenerator(
        ALIASES["smollm2-135m"].fetch(), model_name="smollm2-135m", context_cap=512
    )
    ctx = generator.llama.ctx
    first = generator.generate(question, max_tokens=4).text
    assert generator.threads == llama_cpp.llama_n_threads(ctx) == 2
    fake_machine.run(1.0, others=1.0, own=0.5)  # a neighbour starts spinning
    second = generator.generate(question, max_tokens=4).text
    assert generator.threads == llama_cpp.llama_n_threads(ctx) == 1
    assert llama_cpp.llama_n_threads_batch(ctx) == 1
    assert second == first  # the same answer with fewer threads
    fake_machine.run(1.0, own=1.0)  # it stopped
    assert generator.generate(question, max_tokens=4).text == first
    assert generator.threads == llama_cpp.llama_n_threads(ctx) == 2


def test_an_explicit_setting_keeps_the_model_on_it(
    fake_machine: FakeMachine, llama_cpp_runs_here: None
) -> None:
    import llama_cpp

    from rag.core.types import Message
    from rag.generators.llama import LlamaGenerator
    from rag.generators.model_files import ALIASES

    fake_machine.run(1.0, others=1.5)
    generator = LlamaGenerator(
        ALIASES["smollm2-135m"].fetch(), model_name="smollm2-135m", context_cap=512, threads=2
    )
    assert generator.generate([Message("user", "Hi")], max_tokens=2).text is not None
    assert generator.threads == llama_cpp.llama_n_threads(generator.llama.ctx) == 2


def test_sizing_torch_asks_the_meter_without_deadlock(fake_machine: FakeMachine) -> None:
    """Sizing a pool holds the pools' lock and asks for the meter, which has its own."""
    pytest.importorskip("torch")
    threads._sized.cache_clear()
    threads.set_meter(None)  # the meter is made while the pools' lock is held
    worker = threading.Thread(target=threads.configure_torch, daemon=True)
    worker.start()
    worker.join(120)  # a hang guard, not a timing
    assert not worker.is_alive()


def test_an_onnx_session_gets_a_pool_per_core_whatever_the_load(
    fake_machine: FakeMachine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its pool is fixed at load and does not spin: the load at that moment must not keep
    a long-running server on one thread."""
    fake_machine.run(1.0, others=2.0)
    assert threads.pool_size() == 1
    assert threads.session_pool_size() == threads.thread_count(0)
    monkeypatch.setenv("RAG_THREADS", "1")
    assert threads.session_pool_size() == 1
