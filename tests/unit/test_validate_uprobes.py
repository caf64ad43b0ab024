"""The uprobe validator's arithmetic (benchmarks/validate_uprobes.py): the
per-take split of the probes' window into trap preemption, preemption after
ownership, the traps' CPU cost and the residual (docs/how-it-works.md, "What
a probe on take_gil measures")."""

import os
import runpy

import numpy as np
import pytest

from ..conftest import REPO

V = runpy.run_path(os.path.join(REPO, "benchmarks", "validate_uprobes.py"), run_name="validate_uprobes")


def test_offcpu_between_sums_the_overlaps():
    spans = np.array([[10, 20], [30, 35], [100, 200]], dtype=np.int64)
    lo = np.array([0, 15, 21, 34, 150, 0, 300], dtype=np.int64)
    hi = np.array([5, 32, 29, 120, 160, 1000, 400], dtype=np.int64)
    got = V["offcpu_between"](spans, lo, hi)
    assert got.tolist() == [0, 5 + 2, 0, 1 + 20, 10, 10 + 5 + 100, 0]
    assert V["offcpu_between"](np.zeros((0, 2), dtype=np.int64), lo, hi).tolist() == [0] * 7


def test_offcpu_intervals_pairs_switch_out_with_switch_in():
    script = "\n".join(
        [
            "  42/42 1.000000100: sched:sched_switch: prev_comm=a prev_pid=42 prev_prio=120 prev_state=R ==> next_comm=b next_pid=7 next_prio=120",
            "   7/7 1.000000300: sched:sched_switch: prev_comm=b prev_pid=7 prev_prio=120 prev_state=S ==> next_comm=a next_pid=42 next_prio=120",
            "  42/42 1.000000500: probe_x:take_gil: (7f00)",
        ]
    )
    spans = V["offcpu_intervals"](script)
    assert spans[42].tolist() == [[1000000100, 1000000300]]
    assert 7 not in spans  # switched out, never back in: no closed stretch


def test_compare_takes_sets_the_trap_preemption_apart():
    # 4 takes; the probes' window is ours plus 2 us of trap cost each, and take 2 was
    # preempted for 1 ms right after the entry probe (before our start).
    t0 = np.array([0, 10_000_000, 20_000_000, 30_000_000], dtype=np.int64)
    ours_start = t0 + 1_000 + np.array([0, 0, 1_000_000, 0])
    ours_end = ours_start + np.array([100, 5_000_000, 100, 3_000_000])
    t1 = ours_end + 1_000
    truth = list(zip(t0.tolist(), t1.tolist()))
    spans = np.array([[20_000_500, 21_000_500]], dtype=np.int64)
    contended = np.array([False, True, False, True])
    c = V["compare_takes"](truth, ours_start, ours_end, contended, spans)
    assert c["trap_off_ms"] == pytest.approx(1.0)
    assert c["held_off_ms"] == 0
    assert c["cost_us"] == pytest.approx(2.0)
    assert c["residual_ms"] == pytest.approx(0.0, abs=1e-9) and c["ok"]
    # a giltrace that missed 1 ms of a real wait is caught
    c = V["compare_takes"](truth, ours_start, ours_end - np.array([0, 1_000_000, 0, 0]), contended, spans)
    assert c["residual_ms"] == pytest.approx(-1.0) and not c["ok"]


def test_compare_takes_refuses_unequal_counts():
    c = V["compare_takes"]([(0, 10)], np.array([1, 2]), np.array([3, 4]), np.array([False, False]), np.zeros((0, 2), dtype=np.int64))
    assert not c["ok"] and c["acq"] == 2 and c["truth_acq"] == 1


def test_probe_takes_keeps_the_traced_process_only():
    script = "\n".join(
        [
            "  10/11 1.000000000: probe_x:take_gil: (7f00)",
            "  20/21 1.000000100: probe_x:take_gil: (7f00)",
            "  10/11 1.000000400: probe_x:take_gil__return: (7f00 <- 7f10)",
            "  20/21 1.000000500: probe_x:take_gil__return: (7f00 <- 7f10)",
        ]
    )
    assert V["probe_takes"](script, "take_gil", 0, 2 * 10**9, pid=10) == {11: [(1000000000, 1000000400)]}
    assert set(V["probe_takes"](script, "take_gil", 0, 2 * 10**9)) == {11, 21}
