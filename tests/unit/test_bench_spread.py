"""When a cell must be flagged as not spread (or not pinned)."""

import pytest

from giltrace.bench.spread import busy_workers, expected_parallelism, spread_flag


@pytest.mark.parametrize(
    "workload, n, mode, cores, expected",
    [
        ("cpu", 4, "serial", 2, 1),
        ("cpu", 4, "thread", 2, 1),  # one GIL: one thread runs Python at a time
        ("cpu", 2, "procs", 2, 2),
        ("cpu", 4, "procs", 2, 2),  # capped by the cores
        ("cpu", 2, "procs", 1, 1),
        ("io", 2, "procs", 2, 2),  # page-cache I/O keeps a CPU busy (kernel time)
        ("io-sync", 4, "procs", 2, 1),  # fsync workers sleep: nothing to expect
        ("mix", 2, "procs", 2, 2),
        ("mix-sync", 2, "procs", 2, 1),  # one counter; the fsync worker sleeps
        ("mix", 1, "procs", 2, 1),  # N=1 is a single counter
        ("latency", 1, "procs", 2, 2),  # competitor + page-cache I/O thread
        ("latency-sync", 1, "procs", 2, 1),
        ("latency", 2, "thread", 2, 1),
        ("latency", 0, "alone", 2, 1),
    ],
)
def test_expected_parallelism(workload, n, mode, cores, expected):
    assert expected_parallelism(workload, n, mode, cores) == expected


def test_threads_without_a_gil_should_spread():
    assert expected_parallelism("cpu", 2, "thread", 2, gil_enabled=False) == 2


def test_busy_workers_of_a_mix():
    assert busy_workers("mix", 4) == 4 and busy_workers("mix-sync", 4) == 2 and busy_workers("mix-sync", 3) == 2


CPUS = [0, 1]


def test_healthy_cell_is_not_flagged():
    assert spread_flag(2, 1.96, 2.0, CPUS, CPUS, CPUS) == ""


def test_packed_processes_are_flagged():
    flag = spread_flag(2, 1.00, 2.0, CPUS, CPUS, [1])
    assert flag == "did not spread: CPU/wall 1.00 where ~2 expected (seen only on CPU 1)"


def test_threshold_is_three_quarters_of_the_expectation():
    assert spread_flag(2, 1.51, 2.0, CPUS, CPUS, CPUS) == ""
    assert spread_flag(2, 1.49, 2.0, CPUS, CPUS, CPUS).startswith("did not spread")


def test_nothing_expected_nothing_flagged():
    assert spread_flag(1, 0.2, 2.0, CPUS, CPUS, [0]) == ""


def test_short_cells_are_not_judged_by_their_ratio():
    assert spread_flag(2, 0.8, 0.1, CPUS, CPUS, [0]) == ""
    assert spread_flag(2, 0.8, 0.1, CPUS, CPUS, [0], steal_s=1.0, others_share=0.9) == ""


def test_pinning_failures_are_flagged_even_when_short():
    assert spread_flag(1, 1.0, 0.01, [0, 1], [0], [0]).startswith("pinning failed")
    assert spread_flag(1, 1.0, 0.01, [0], [0], [0], workers_affinity=[[0], [0, 1]]) == ("pinning failed: a worker was allowed CPUs [0, 1]")
    assert spread_flag(1, 1.0, 0.01, [0], [0], [0], workers_affinity=[[0], [0]]) == ""
    assert spread_flag(1, 1.0, 0.01, [0], [0], [0, 1]) == "ran outside its CPUs: seen on [0, 1]"


def test_hypervisor_steal_is_flagged_for_any_mode():
    # 2 s on 2 CPUs = 4 CPU-seconds; 1.2 s stolen = 30 %.
    assert spread_flag(1, 1.0, 2.0, CPUS, CPUS, CPUS, steal_s=1.2) == "VM steal: the hypervisor took 30% of its CPUs' time"
    assert spread_flag(1, 1.0, 2.0, CPUS, CPUS, CPUS, steal_s=0.4) == ""


def test_other_processes_on_the_cells_cpus_are_flagged():
    assert spread_flag(1, 1.0, 2.0, CPUS, CPUS, CPUS, others_share=0.35) == ("shared CPUs: other processes used 35% of its CPUs' time")
    assert spread_flag(1, 1.0, 2.0, CPUS, CPUS, CPUS, others_share=0.05) == ""
    # the cause is named before its symptom
    assert spread_flag(2, 1.0, 2.0, CPUS, CPUS, CPUS, others_share=0.5).startswith("shared CPUs")
