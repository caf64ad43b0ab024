"""Choosing CPUs, describing them, and the grid of cells built from them."""

import pytest

from giltrace.bench import cells, pinning
from giltrace.bench.config import BenchConfig
from giltrace.bench.interpreters import Interpreter, make_labels
from giltrace.bench.workloads import procinfo
from giltrace.cpus import format_cpus, parse_cpu_list


@pytest.mark.parametrize("cpus, text", [([0], "0"), ([0, 1], "0-1"), ([3, 0, 1, 2, 5], "0-3,5"), ([], "")])
def test_cpu_lists_round_trip(cpus, text):
    assert format_cpus(cpus) == text
    assert parse_cpu_list(text) == sorted(cpus)
    assert procinfo.parse_cpu_list(text) == sorted(cpus)  # the child's, read from the same file


def test_an_empty_cpu_list_can_say_so():
    assert format_cpus([], empty="?") == "?" and format_cpus([2, 1], empty="?") == "1-2"


def test_choose_prefers_one_cpu_per_physical_core():
    # 4 logical CPUs: 0/2 share a core, 1/3 share another.
    siblings = {0: [0, 2], 2: [0, 2], 1: [1, 3], 3: [1, 3]}
    assert pinning.choose_cpus([0, 1, 2, 3], 2, siblings) == [0, 1]
    assert pinning.choose_cpus([0, 1, 2, 3], 3, siblings) == [0, 1, 2]
    assert pinning.choose_cpus([2, 3], 1, siblings) == [2]  # sibling 0 not usable


def test_choose_without_topology_takes_the_lowest():
    assert pinning.choose_cpus([4, 6, 5], 2) == [4, 5]
    with pytest.raises(ValueError):
        pinning.choose_cpus([0, 1], 3)


def test_unavailable_reason_only_when_too_many():
    assert pinning.unavailable_reason(2, [0, 1]) is None
    assert pinning.unavailable_reason(4, [0, 1]) == "unavailable: only 2 CPUs (0-1)"
    assert pinning.unavailable_reason(2, [3]) == "unavailable: only 1 CPU (3)"


def test_pinned_argv_wraps_the_command():
    argv = pinning.pinned_argv([0, 1], ["/usr/bin/python2.7", "child.py", "--n", "2"])
    assert argv[-5:] == ["0,1", "/usr/bin/python2.7", "child.py", "--n", "2"]


PY = Interpreter(path="/py", version="3.11.7", implementation="CPython", gil_enabled=True, switching="switch interval 5 ms", label="3.11.7")


def test_grid_cells_repeat_outermost_and_mark_unavailable_cores():
    config = BenchConfig(workloads=["cpu"], cores=[1, 2, 4], ns=[1, 2], modes=["serial", "procs"], repeat=2)
    grid = cells.build_cells(config, [PY], [0, 1])
    unavailable = [c for c in grid if c.unavailable]
    assert len(unavailable) == 4 and {c.cores for c in unavailable} == {4} and {c.repeat for c in unavailable} == {0}
    runnable = [c for c in grid if not c.unavailable]
    assert len(runnable) == 2 * 2 * 2 * 2
    assert [c.repeat for c in runnable] == [1] * 8 + [2] * 8
    assert {c.cores: c.cpus for c in runnable} == {1: (0,), 2: (0, 1)}


def test_latency_cells_have_competitors_as_threads_and_processes():
    config = BenchConfig(workloads=["latency-sync"], cores=[2], competitors=[0, 2], repeat=1)
    grid = cells.build_cells(config, [PY], [0, 1])
    assert [(c.n, c.mode) for c in grid] == [(0, "alone"), (2, "thread"), (2, "procs")]
    argv = cells.child_argv(grid[0], config, None)
    assert argv[argv.index("--mode") + 1] == "thread" and argv[argv.index("--n") + 1] == "0"


def test_child_argv_passes_sizes_and_trace():
    config = BenchConfig(load=123, io_ops=45, sync_ops=6, block=512, start_method="spawn", tmpdir="/scratch")
    cell = cells.Cell("io", PY, 2, 2, "thread", 1, (0, 1))
    argv = cells.child_argv(cell, config, "/t/x.gtr")
    assert argv[:2] == ["/py", cells.CHILD_SCRIPT]
    pairs = dict(zip(argv[2::2], argv[3::2]))
    assert pairs == {
        "--workload": "io",
        "--mode": "thread",
        "--n": "2",
        "--load": "123",
        "--io-ops": "45",
        "--sync-ops": "6",
        "--block": "512",
        "--duration": "2.0",
        "--start-method": "spawn",
        "--tmpdir": "/scratch",
        "--trace": "/t/x.gtr",
    }
    assert cell.name == "io-py3.11.7-c2-n2-thread-r1"


def test_labels_are_unique():
    assert make_labels(["2.7.18", "3.11.7", "3.11.7"]) == ["2.7.18", "3.11.7", "3.11.7#2"]
