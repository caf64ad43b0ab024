"""Table layout on synthetic cells: the study's format, marks and footnotes."""

import pandas as pd

from giltrace.bench.aggregate import TABLE_COLUMNS
from giltrace.bench.view import latency_rows
from giltrace.render import bench_tables as tables


def cell(workload="cpu", python="3.11.7", cores=1, n=1, mode="serial", wall=1.0, **extra):
    row = {c: None for c in TABLE_COLUMNS}
    row.update(
        {
            "workload": workload,
            "python": python,
            "cores": cores,
            "n": n,
            "mode": mode,
            "status": "ok",
            "runs": 3,
            "failed": 0,
            "wall_median": wall,
            "wall_min": None if wall is None else wall - 0.1,
            "wall_max": None if wall is None else wall + 0.1,
            "flagged": 0,
            "flag": "",
            "traced": False,
            "trace_note": "",
            "notes": "",
            "reason": "",
        }
    )
    row.update(extra)
    return row


def frame(rows):
    return pd.DataFrame(rows, columns=TABLE_COLUMNS)


MODES = ["serial", "thread", "procs"]


def grid(cores, ns, pythons=("3.11.7",), workload="cpu"):
    rows = []
    for py in pythons:
        for c in cores:
            for n in ns:
                for i, m in enumerate(MODES):
                    rows.append(cell(workload, py, c, n, m, wall=c * 10 + n + i / 100))
    return rows


def test_single_interpreter_table_has_the_study_layout():
    text = tables.grid_table(frame(grid([1, 2], [1, 2])), "cpu", ["3.11.7"], [1, 2], [1, 2], MODES)
    assert text == "\n".join(
        [
            "+--------+--------+--------+--------+--------+",
            "| cores  |      N | serial | thread | procs  |",
            "|        |        | sec    | sec    | sec    |",
            "+--------+--------+--------+--------+--------+",
            "|     1  |      1 |  11.00 |  11.01 |  11.02 |",
            "|        |      2 |  12.00 |  12.01 |  12.02 |",
            "+--------+--------+--------+--------+--------+",
            "|     2  |      1 |  21.00 |  21.01 |  21.02 |",
            "|        |      2 |  22.00 |  22.01 |  22.02 |",
            "+--------+--------+--------+--------+--------+",
        ]
    )


def test_interpreters_sit_side_by_side_under_a_header():
    rows = grid([1], [1], pythons=("2.7.18", "3.11.7"))
    text = tables.grid_table(frame(rows), "cpu", ["2.7.18", "3.11.7"], [1], [1], MODES)
    lines = text.split("\n")
    assert lines[1] == "|        |        | python 2.7.18            | python 3.11.7            |"
    assert lines[2] == "| cores  |      N | serial | thread | procs  | serial | thread | procs  |"
    assert lines[5] == "|     1  |      1 |  11.00 |  11.01 |  11.02 |  11.00 |  11.01 |  11.02 |"
    assert len({len(line) for line in lines}) == 1  # every line as wide as the rules


def test_interpreter_names_widen_narrow_groups():
    rows = [cell(python=py, mode="thread") for py in ("2.7.18", "3.11.7")]
    text = tables.grid_table(frame(rows), "cpu", ["2.7.18", "3.11.7"], [1], [1], ["thread"])
    lines = text.split("\n")
    assert lines[1] == "|        |        | python 2.7.18 | python 3.11.7 |"
    assert len({len(line) for line in lines}) == 1


def test_unavailable_cores_are_one_line_with_the_reason():
    rows = grid([1], [1, 2])
    reason = "unavailable: only 2 CPUs (0-1)"
    rows += [cell(cores=8, n=n, mode=m, status="unavailable", reason=reason, wall=None) for n in (1, 2) for m in MODES]
    text = tables.grid_table(frame(rows), "cpu", ["3.11.7"], [1, 8], [1, 2], MODES)
    lines = text.split("\n")
    assert "|     8  | unavailable: only 2 CPUs (0-1)    |" in lines
    assert len({len(line) for line in lines}) == 1
    assert sum("unavailable" in line for line in lines) == 1


def test_flagged_and_failed_cells_are_marked_and_explained():
    rows = [
        cell(mode="serial", wall=3.0),
        cell(mode="thread", status="failed", runs=0, failed=3, reason="child failed: MemoryError: "),
        cell(mode="procs", wall=3.1, flagged=2, flag="did not spread: CPU/wall 1.00 where ~2 expected"),
    ]
    text = tables.grid_table(frame(rows), "cpu", ["3.11.7"], [1], [1], MODES)
    assert "|     1  |      1 |   3.00 |    ERR |  3.10! |" in text
    assert "ERR  cores 1, N 1, thread: child failed: MemoryError: " in text
    assert "!    cores 1, N 1, procs: did not spread: CPU/wall 1.00 where ~2 expected (2 of 3 runs)" in text


def test_ranges_widen_the_columns_consistently():
    text = tables.grid_table(frame(grid([1], [1])), "cpu", ["3.11.7"], [1], [1], MODES, show_range=True)
    assert "11.00 (10.90-11.10)" in text
    assert len({len(line) for line in text.split("\n")}) == 1


def test_notes_are_printed_once():
    rows = [cell(workload="mix", mode=m, notes="mix with N=1 runs a single cpu worker (no io)") for m in MODES]
    text = tables.grid_table(frame(rows), "mix", ["3.11.7"], [1], [1], MODES)
    assert text.count("mix with N=1 runs a single cpu worker") == 1


def test_missing_cells_are_blank():
    rows = [cell(mode="serial", wall=2.0)]
    text = tables.grid_table(frame(rows), "cpu", ["3.11.7"], [1], [1], MODES)
    assert "|     1  |      1 |   2.00 |        |        |" in text


def test_latency_table_rows_and_columns():
    rows = [
        cell("latency-sync", cores=2, n=0, mode="alone", lat_p50_ms=0.088, lat_p99_ms=0.131, lat_mean_ms=0.0844, ops_per_s=11848.0),
        cell(
            "latency-sync",
            cores=2,
            n=1,
            mode="thread",
            lat_p50_ms=5.24,
            lat_p99_ms=15.7,
            lat_mean_ms=7.17,
            ops_per_s=139.0,
            competitor_iters_per_s=80.3e6,
        ),
        cell(
            "latency-sync",
            cores=2,
            n=1,
            mode="procs",
            lat_p50_ms=0.0939,
            lat_p99_ms=0.161,
            lat_mean_ms=0.102,
            ops_per_s=9757.0,
            competitor_iters_per_s=65.5e6,
        ),
    ]
    text = tables.latency_table(frame(rows), "latency-sync", ["3.11.7"], [2], latency_rows([0, 1]))
    lines = text.split("\n")
    assert lines[1].split("|")[1:-1] == [
        " python ",
        " cores  ",
        " competitors ",
        " p50 ms ",
        " p99 ms ",
        " mean ms ",
        " ops/s  ",
        " cpu Mit/s ",
    ]
    assert "| 3.11.7 |     2  | none        | 0.0880 |  0.131 |  0.0844 |  11848 |           |" in lines
    assert "|        |        | 1 thread    |   5.24 |   15.7 |    7.17 |    139 |      80.3 |" in lines
    assert "|        |        | 1 process   | 0.0939 |  0.161 |   0.102 |   9757 |      65.5 |" in lines


def test_latency_table_marks_unavailable_cores():
    rows = [
        cell("latency", cores=4, n=k, mode=m, status="unavailable", reason="unavailable: only 2 CPUs (0-1)")
        for k, m in [(0, "alone"), (1, "thread"), (1, "procs")]
    ]
    text = tables.latency_table(frame(rows), "latency", ["3.11.7"], [4], latency_rows([0, 1]))
    assert "| 3.11.7 |     4  | unavailable: only 2 CPUs (0-1)" in text


def test_contention_table_shows_traced_cells_only():
    rows = [
        cell(
            "io",
            mode="serial",
            traced=True,
            gil_wait_share=0.01,
            switches_per_s=0.0,
            drop_requests=0,
            io_reacq_p50_us=0.04,
            io_reacq_p99_us=0.051,
            io_reacq_max_us=0.3,
        ),
        cell(
            "io",
            mode="thread",
            traced=True,
            gil_wait_share=0.493,
            switches_per_s=41113.0,
            drop_requests=7,
            io_reacq_p50_us=0.04,
            io_reacq_p99_us=5120.0,
            io_reacq_max_us=10234.0,
        ),
        cell("io", mode="procs", traced=False),
    ]
    text = tables.contention_table(frame(rows), "io", ["3.11.7"], [1], [1], MODES)
    assert "| 3.11.7 |     1  |      1 | thread |   1.00 |     49.3 |    41113 |        7 |   0.0400 |     5120 |    10234 |" in text
    assert "procs" not in text.split("\n", 3)[3]
    assert tables.contention_table(frame([cell("io")]), "io", ["3.11.7"], [1], [1], MODES) == ""


def test_sig_keeps_three_significant_digits_without_exponent():
    assert [tables.sig(v) for v in (0.00004, 0.0939, 5.24, 15.66, 62.1, 1234.5, 0)] == [
        "0.0000400",
        "0.0939",
        "5.24",
        "15.7",
        "62.1",
        "1234",
        "0",
    ]
    assert tables.sig(None) == "" and tables.sig(float("nan")) == ""
