"""The runner API on tiny grids: rows, pinning, unavailable cores, latency,
several interpreters side by side, and (where giltrace can trace) --trace."""

import os
import sys

import pytest

from giltrace.bench import BenchConfig, run_bench
from giltrace.bench.execute import COLUMNS
from giltrace.bench.workloads.procinfo import parse_cpu_list

from .. import capabilities

USABLE = sorted(os.sched_getaffinity(0))
TOO_MANY = len(USABLE) + 1
TINY = dict(load=20000, io_ops=200, sync_ops=4, duration=0.05, repeat=1)


def bench(trace_dir=None, **options):
    config = BenchConfig(**dict(TINY, **options))
    return run_bench(config, trace_dir=trace_dir, progress=False, log=lambda message: None)


@pytest.fixture(scope="module")
def grid():
    """cpu, io, mix on 1 core, all cores and one core too many."""
    return bench(workloads=["cpu", "io", "mix"], cores=[1, len(USABLE), TOO_MANY], ns=[1, 2])


def test_one_row_per_run_with_every_column(grid):
    runs = grid.runs
    assert list(runs.columns) == COLUMNS
    ok = runs[runs["status"] == "ok"]
    cores = sorted({1, len(USABLE)})
    assert len(ok) == 3 * len(cores) * 2 * 3  # workloads x cores x N x modes
    assert set(ok["mode"]) == {"serial", "thread", "procs"}
    assert (ok["wall_s"] > 0).all() and (ok["cpu_ratio"] > 0).all()
    assert set(ok["python"]) == {grid.pythons[0].label}


def test_pinning_took_effect(grid):
    ok = grid.runs[grid.runs["status"] == "ok"]
    # what the child (and each worker) reports is what the runner asked for
    assert (ok["cpus"] == ok["cpus_requested"]).all()
    assert ok["workers_pinned"].all()
    assert set(ok[ok["cores"] == 1]["cpus"]) == {str(USABLE[0])}
    for seen, allowed in zip(ok["cpus_seen"], ok["cpus"]):
        assert set(parse_cpu_list(seen)) <= set(parse_cpu_list(allowed))
    assert not ok["flag"].fillna("").str.startswith(("pinning failed", "ran outside")).any()


def test_too_many_cores_are_unavailable_not_faked(grid):
    runs = grid.runs
    unavailable = runs[runs["cores"] == TOO_MANY]
    assert len(unavailable) == 3 * 2 * 3
    assert (unavailable["status"] == "unavailable").all() and unavailable["wall_s"].isna().all()
    assert unavailable["reason"].str.startswith("unavailable: only %d CPU" % len(USABLE)).all()
    text = grid.render()
    assert text.count("unavailable: only %d CPU" % len(USABLE)) == 3  # once per workload table


def test_aggregated_table_and_rendering(grid):
    table = grid.table
    assert len(table) == 3 * len({1, len(USABLE), TOO_MANY}) * 2 * 3
    ok = table[table["status"] == "ok"]
    assert (ok["runs"] == 1).all() and (ok["wall_min"] <= ok["wall_max"]).all()
    text = grid.render()
    assert "| cores  |      N | serial | thread | procs  |" in text
    assert "mix with N=1 runs a single cpu worker (no io)" in text
    assert grid.machine["usable_cpus"] and grid.machine["interpreters"][0]["version"] == grid.pythons[0].version


def test_latency_grid():
    result = bench(workloads=["latency", "latency-sync"], cores=[1], competitors=[0, 1])
    runs = result.runs
    assert list(zip(runs["workload"], runs["n"], runs["mode"])) == [
        ("latency", 0, "alone"),
        ("latency", 1, "thread"),
        ("latency", 1, "procs"),
        ("latency-sync", 0, "alone"),
        ("latency-sync", 1, "thread"),
        ("latency-sync", 1, "procs"),
    ]
    assert (runs["status"] == "ok").all()
    assert (runs["lat_p50_ms"] > 0).all() and (runs["ops_per_s"] > 0).all()
    assert (runs["cpus"] == str(USABLE[0])).all()
    text = result.render()
    # (a label may carry a "!" if the machine was busy meanwhile)
    assert "| 1 thread" in text and "| 1 process" in text and "| none" in text


def test_python27_side_by_side(python27):
    result = bench(workloads=["cpu"], cores=[1], ns=[2], modes=["thread", "procs"], pythons=[sys.executable, python27])
    runs = result.runs
    assert (runs["status"] == "ok").all()
    assert {v.rsplit(".", 1)[0] for v in runs["python_version"]} == {"2.7", "%d.%d" % sys.version_info[:2]}
    assert "python 2.7." in result.render()


def test_trace_adds_contention_figures(native, tmp_path):
    found, _ = capabilities.probe("python27")  # 2.7 beside this one where the host has it
    pythons = [sys.executable] + ([found] if found else [])
    result = bench(
        workloads=["cpu", "io", "latency-sync"],
        cores=[len(USABLE)],
        ns=[2],
        competitors=[1],
        modes=["serial", "thread", "procs"],
        trace=True,
        pythons=pythons,
        io_ops=400,
        trace_dir=str(tmp_path),
    )
    runs = result.runs.set_index(["workload", "python", "mode"])
    here = result.pythons[0].label
    thread = runs.loc[("cpu", here, "thread")]
    assert thread["traced"] and thread["gil_wait_share"] > 0 and thread["switches_per_s"] > 0
    io = runs.loc[("io", here, "thread")]
    assert io["io_reacq_n"] >= 4 * 400  # four GIL reacquisitions per operation, at least
    assert io["io_reacq_p50_us"] <= io["io_reacq_p99_us"] <= io["io_reacq_max_us"]
    procs = runs.loc[("cpu", here, "procs")]
    assert len(procs["trace_files"].split(",")) == 2  # one per worker process
    assert all(os.path.getsize(f) > 0 and f.startswith(str(tmp_path)) for f in procs["trace_files"].split(","))
    latency = runs.loc[("latency-sync", here, "thread")]
    assert 0 <= latency["io_wait_share"] <= 1
    if len(result.pythons) > 1:
        old = runs.loc[("cpu", result.pythons[1].label, "thread")]  # 2.7: the old-GIL recorder (giltrace/oldgil.py)
        assert old["traced"] and old["trace_note"] == "" and old["events_lost"] == 0 and old["switches_per_s"] > 0
    assert "GIL contention per cell" in result.render()
