"""Aggregation of repeats into cells, on synthetic runs."""

import math

import pandas as pd

from giltrace.bench.aggregate import TABLE_COLUMNS, aggregate
from giltrace.bench.execute import COLUMNS


def run(workload="cpu", python="3.11.7", cores=2, n=2, mode="thread", repeat=1, wall=1.0, **extra):
    row = {c: None for c in COLUMNS}
    row.update(
        {
            "workload": workload,
            "python": python,
            "cores": cores,
            "n": n,
            "mode": mode,
            "repeat": repeat,
            "status": "ok",
            "wall_s": wall,
            "cpu_ratio": 1.0,
            "cpus": "0-1",
            "cpus_seen": "0",
            "expected_parallel": 1,
            "flag": "",
            "traced": False,
            "trace_note": "",
            "notes": "",
        }
    )
    row.update(extra)
    return row


def table_of(rows):
    return aggregate(pd.DataFrame(rows, columns=COLUMNS))


def test_median_and_range_over_repeats():
    rows = [
        run(repeat=1, wall=3.0, cpu_ratio=1.0),
        run(repeat=2, wall=1.0, cpu_ratio=1.2),
        run(repeat=3, wall=2.0, cpu_ratio=1.1, cpus_seen="1"),
    ]
    table = table_of(rows)
    assert list(table.columns) == TABLE_COLUMNS
    assert len(table) == 1
    cell = table.iloc[0]
    assert (cell.status, cell.runs, cell.failed) == ("ok", 3, 0)
    assert (cell.wall_median, cell.wall_min, cell.wall_max) == (2.0, 1.0, 3.0)
    assert math.isclose(cell.cpu_ratio, 1.1)
    assert cell.cpus_seen == "0-1"  # union over repeats


def test_cells_keep_their_first_appearance_order():
    rows = [run(mode="thread"), run(mode="serial"), run(mode="thread", repeat=2), run(cores=1, mode="serial")]
    table = table_of(rows)
    assert list(zip(table["cores"], table["mode"])) == [(2, "thread"), (2, "serial"), (1, "serial")]


def test_cells_differ_by_every_key():
    rows = [run(), run(python="2.7.18"), run(workload="io"), run(n=4), run(cores=1)]
    assert len(table_of(rows)) == 5


def test_failed_runs_are_counted_and_left_out_of_the_median():
    rows = [run(repeat=1, wall=2.0), run(repeat=2, status="failed", wall=None, reason="timed out after 900s"), run(repeat=3, wall=4.0)]
    cell = table_of(rows).iloc[0]
    assert (cell.status, cell.runs, cell.failed, cell.wall_median) == ("ok", 2, 1, 3.0)
    assert cell.reason == "timed out after 900s"


def test_a_cell_with_only_failures_is_failed():
    rows = [run(repeat=r, status="failed", wall=None, reason="child failed: boom") for r in (1, 2)]
    cell = table_of(rows).iloc[0]
    assert (cell.status, cell.runs, cell.failed, cell.reason) == ("failed", 0, 2, "child failed: boom")
    assert pd.isna(cell.wall_median)


def test_unavailable_cells_keep_their_reason():
    rows = [run(cores=8, repeat=0, status="unavailable", wall=None, reason="unavailable: only 2 CPUs (0-1)")]
    cell = table_of(rows).iloc[0]
    assert (cell.status, cell.reason, cell.runs) == ("unavailable", "unavailable: only 2 CPUs (0-1)", 0)


def test_flags_are_counted_and_their_texts_kept_once():
    packed = "did not spread: CPU/wall 1.00 where ~2 expected"
    rows = [run(repeat=1, flag=packed), run(repeat=2, flag=""), run(repeat=3, flag=packed)]
    cell = table_of(rows).iloc[0]
    assert cell.flagged == 2
    assert cell.flag == packed


def test_latency_and_contention_medians_ignore_missing_values():
    rows = [
        run(workload="latency", n=1, lat_p50_ms=5.0, ops_per_s=100.0, gil_wait_share=0.9),
        run(workload="latency", n=1, repeat=2, lat_p50_ms=7.0, ops_per_s=300.0, gil_wait_share=None),
    ]
    cell = table_of(rows).iloc[0]
    assert (cell.lat_p50_ms, cell.ops_per_s, cell.gil_wait_share) == (6.0, 200.0, 0.9)
    assert cell.io_reacq_p50_us is None or pd.isna(cell.io_reacq_p50_us)


def test_empty_runs_give_an_empty_table():
    assert list(aggregate(pd.DataFrame(columns=COLUMNS)).columns) == TABLE_COLUMNS
