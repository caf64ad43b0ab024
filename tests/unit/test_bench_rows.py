"""One run's row from a child's JSON and what the runner saw of it."""

import math

from giltrace.bench.cells import Cell
from giltrace.bench.execute import COLUMNS, empty_row, row_from_child
from giltrace.bench.interpreters import Interpreter

PY = Interpreter(path="/py", version="3.11.7", implementation="CPython", gil_enabled=True, switching="switch interval 5 ms", label="3.11.7")


def child_json(affinity=(0, 1), workers_affinity=((0, 1), (0, 1)), wall=2.0, cpu=3.9, latency=None, trace=None):
    return {
        "wall_s": wall,
        "user_s": cpu - 0.1,
        "sys_s": 0.1,
        "affinity": list(affinity),
        "python": {"version": "3.11.7", "gil_enabled": True},
        "start_method": "fork",
        "workers": [
            {"role": "cpu-%d" % i, "affinity": list(a), "last_cpu": a[-1], "native_id": 100 + i} for i, a in enumerate(workers_affinity)
        ],
        "params": {"load": 10, "io_ops": 20, "sync_ops": 3, "block": 4096, "duration": 2.0},
        "notes": [],
        "latency": latency,
        "trace": trace or {"requested": False, "enabled": False, "reason": None, "files": []},
    }


def seen(busy=3.9, tree=3.9, steal=0.0, cpus=(0, 1)):
    return {"cpus_seen": list(cpus), "elapsed_s": 2.0, "busy_s": busy, "tree_cpu_s": tree, "steal_s": steal}


CELL = Cell("cpu", PY, 2, 2, "procs", 1, (0, 1))


def test_a_healthy_procs_run():
    row = row_from_child(CELL, child_json(), seen())
    assert list(row) == COLUMNS
    assert (row["status"], row["wall_s"], row["cpus"], row["cpus_seen"]) == ("ok", 2.0, "0-1", "0-1")
    assert math.isclose(row["cpu_ratio"], 1.95)
    assert row["expected_parallel"] == 2 and row["flag"] == "" and row["workers_pinned"] is True
    assert row["others_cpu_share"] == 0.0
    assert row["lat_p50_ms"] is None and row["traced"] is False


def test_packed_processes_are_flagged():
    row = row_from_child(CELL, child_json(cpu=2.0), seen(busy=2.0, tree=2.0, cpus=[0]))
    assert row["flag"].startswith("did not spread: CPU/wall 1.00 where ~2 expected")


def test_other_processes_on_the_cpus_are_flagged():
    # the CPUs were busy 3.9 s, the cell used 2.0 s: 1.9 s of 4 CPU-seconds went elsewhere
    row = row_from_child(CELL, child_json(cpu=2.0), seen(busy=3.9, tree=2.0))
    assert math.isclose(row["others_cpu_share"], 1.9 / 4.0)
    assert row["flag"] == "shared CPUs: other processes used 48% of its CPUs' time"


def test_an_unpinned_worker_is_flagged():
    row = row_from_child(CELL, child_json(workers_affinity=((0, 1), (0, 1, 2))), seen())
    assert row["workers_pinned"] is False
    assert row["flag"] == "pinning failed: a worker was allowed CPUs [0, 1, 2]"


def test_latency_figures_are_in_milliseconds():
    lat = {"ops": 280, "ops_per_s": 140.0, "p50_s": 0.0052, "p99_s": 0.0106, "mean_s": 0.0071, "max_s": 0.02, "competitor_iters_per_s": 7e7}
    cell = Cell("latency-sync", PY, 2, 1, "thread", 1, (0, 1))
    row = row_from_child(cell, child_json(latency=lat), seen())
    assert (row["lat_ops"], row["ops_per_s"]) == (280, 140.0)
    assert math.isclose(row["lat_p50_ms"], 5.2) and math.isclose(row["lat_p99_ms"], 10.6)
    assert row["duration"] == 2.0


def test_untraced_cells_say_why():
    trace = {"requested": True, "enabled": False, "reason": "tracing needs CPython 3.9-3.13; this is 2.7", "files": []}
    row = row_from_child(CELL, child_json(trace=trace), seen())
    assert row["traced"] is False
    assert row["trace_note"] == "untraced: tracing needs CPython 3.9-3.13; this is 2.7"


def test_empty_row_names_the_cell():
    row = empty_row(CELL)
    assert (row["workload"], row["python"], row["cores"], row["n"], row["mode"], row["cpus_requested"]) == (
        "cpu",
        "3.11.7",
        2,
        2,
        "procs",
        "0-1",
    )
