"""The workloads' building blocks, in-process (their 2.7 runs are integration tests)."""

import os

import numpy as np
import pytest

from giltrace.bench import machine, monitor, view
from giltrace.bench.cells import Cell
from giltrace.bench.config import BenchConfig
from giltrace.bench.workloads import gtrace, kernels, plan, procinfo, registry


def test_count_is_the_study_loop():
    assert kernels.count(1000) is None
    assert kernels.count(0) is None and kernels.count(-5) is None


def test_block_file_writes_and_reads_back(tmp_path):
    path = str(tmp_path / "w0")
    kernels.io_loop(path, 3, 4096, sync=False)
    assert os.path.getsize(path) == 4096  # overwritten in place, not appended
    f = kernels.BlockFile(path, 100, sync=True)
    try:
        latencies = f.run_timed(0.02, procinfo.clock)
    finally:
        f.close()
    assert latencies and all(t > 0 for t in latencies)


def test_spin_stops_when_told():
    calls = []
    done = kernels.spin(10, lambda: calls.append(1) or len(calls) > 3)
    assert done == 30


@pytest.mark.parametrize(
    "workload, n, kinds",
    [
        ("cpu", 2, ["cpu", "cpu"]),
        ("io", 2, ["io", "io"]),
        ("mix", 1, ["cpu"]),
        ("mix", 2, ["cpu", "io"]),
        ("mix", 3, ["cpu", "cpu", "io"]),
        ("mix-sync", 4, ["cpu", "cpu", "io", "io"]),
    ],
)
def test_worker_specs(workload, n, kinds):
    specs = plan.worker_specs(workload, n, load=1000, io_ops=100, sync_ops=10)
    assert [s["kind"] for s in specs] == kinds
    roles = [s["role"] for s in specs]
    assert len(set(roles)) == n and all(r.startswith(("cpu-", "io-")) for r in roles)
    for s in specs:  # each worker: 1/N of its kind's total
        total = 1000 if s["kind"] == "cpu" else (10 if workload.endswith("-sync") else 100)
        assert s["amount"] == total // n
        assert s["sync"] == (s["kind"] == "io" and workload.endswith("-sync"))


def test_mix_with_one_worker_says_so():
    assert plan.notes_for("mix", 1) == ["mix with N=1 runs a single cpu worker (no io)"]
    assert plan.notes_for("mix", 2) == [] and plan.notes_for("cpu", 1) == []


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert procinfo.percentile(values, 50) == 50
    assert procinfo.percentile(values, 99) == 99
    assert procinfo.percentile([7], 99) == 7
    assert procinfo.percentile([], 50) is None
    ordered = np.sort(np.array([5, 1, 3, 2, 4]))  # the runner's contention figures pass numpy arrays
    assert procinfo.percentile(ordered, 50) == 3 and procinfo.percentile(np.array([]), 50) is None


def test_this_threads_facts():
    assert procinfo.allowed_cpus() == sorted(os.sched_getaffinity(0))
    assert procinfo.last_cpu() in procinfo.allowed_cpus()


def test_untraced_when_not_asked():
    value, info = gtrace.run_traced(None, lambda: 42)
    assert value == 42 and info == {"requested": False, "enabled": False, "reason": None, "files": []}


def test_worker_trace_paths():
    assert gtrace.worker_trace_path("/t/cell.gtr", 1) == "/t/cell.p1.gtr"
    assert gtrace.worker_trace_path("/t.d/cell", 0) == "/t.d/cell.p0"
    assert gtrace.worker_trace_path(None, 0) is None


def test_proc_stat_parsing():
    line = "123 (a (weird) name) R 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 3 0 0"
    assert procinfo.parse_stat(line) == {"state": "R", "ticks": 11 + 12, "processor": 3}
    assert monitor.parse_stat is procinfo.parse_stat  # one parser, runner and child


def test_busy_and_steal_ticks_are_summed_over_the_cells_cpus():
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat = "cpu  1 2 3 4 5 6 7 900 0 0\ncpu0 10 1 20 500 7 2 3 100 0 0\ncpu1 30 0 40 400 9 0 1 250 0 0\nintr 1\n"
    assert monitor.cpu_ticks([1], stat) == {"busy": 71, "steal": 250}
    assert monitor.cpu_ticks([0, 1], stat) == {"busy": 107, "steal": 350}


def test_filesystem_of_picks_the_longest_mount():
    mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\ntmpfs /tmpx tmpfs rw 0 0\n"
    assert machine.filesystem_of("/tmp/a", mounts) == {"mount": "/tmp", "type": "tmpfs"}
    assert machine.filesystem_of("/var/tmp", mounts) == {"mount": "/", "type": "ext4"}


def test_sampler_watches_a_process_tree():
    cpus = sorted(os.sched_getaffinity(0))
    sampler = monitor.CpuSampler(os.getpid(), cpus, period_s=0.01)
    sampler.start()
    kernels.count(2_000_000)  # be seen using some CPU
    seen = sampler.stop()
    assert sampler.samples >= 1
    assert seen and seen <= set(cpus)
    assert sampler.cpu_seen_s > 0


def test_the_registry_declares_every_workload_once():
    assert [w.name for w in registry.WORKLOADS] == ["cpu", "io", "io-sync", "mix", "mix-sync", "latency", "latency-sync"]
    assert plan.WORKLOADS == ("cpu", "io", "io-sync", "mix", "mix-sync")
    assert plan.LATENCY_WORKLOADS == ("latency", "latency-sync")
    assert [w.name for w in registry.WORKLOADS if w.sync] == ["io-sync", "mix-sync", "latency-sync"]
    assert [w.name for w in registry.WORKLOADS if w.page_cache_io] == ["io", "mix", "latency"]
    assert Cell("latency-sync", None, 1, 1, "alone", 1, (0,)).is_latency
    assert not Cell("mix-sync", None, 1, 1, "thread", 1, (0,)).is_latency
    with pytest.raises(ValueError):
        registry.get("nope")


def test_titles_come_from_the_registry_with_the_sizes():
    titles = view.titles(BenchConfig(load=10, io_ops=20, sync_ops=3, block=512, duration=0.5))
    assert set(titles) == set(w.name for w in registry.WORKLOADS)
    assert titles["cpu"] == "cpu bound: counter, LOAD 10 split into N parts"
    assert titles["io-sync"] == "io bound, disk: 3 write+fsync+read-back operations of 512 bytes, split into N parts"
    assert titles["mix"] == ("io / cpu mix: N - N//2 counters (LOAD/N each) + N//2 page-cache io workers (1/N of 20 ops each)")
    assert titles["latency"] == ("latency (convoy): one I/O thread, 512-byte page-cache operations for 0.5s, beside K CPU competitors")


def test_roles_name_their_kind():
    assert plan.role("io", 1) == "io-1" and plan.role_kind("io-1") == "io"
    assert plan.role_kind("cpu-0") == "cpu" and plan.role_kind("io-serial") == "io"
    assert plan.role_kind("mix-serial") == plan.MIXED
    for other in (None, "", "MainThread", "iox-1", "io", "latency-0"):
        assert plan.role_kind(other) is None
