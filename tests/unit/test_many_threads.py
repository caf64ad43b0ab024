"""Thread-per-request traces: blame and lane selection do work in proportion
to the events, not to threads x threads (issue 25: 5,000 threads).  Counted
in Python calls, not seconds (benchmarks/bench_threads.py has the times)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from giltrace import analysis
from giltrace.render.timeline import select_threads


def spans(threads: int, alive: int = 20, rounds: int = 3, hold: int = 100) -> pd.DataFrame:
    """Waves of ``alive`` threads taking the GIL in turn: each waits while the
    others of its wave hold it."""
    rows = []
    t = 0
    for wave in range(0, threads, alive):
        tids = list(range(wave, min(wave + alive, threads)))
        since = {tid: t for tid in tids}
        for _ in range(rounds):
            for tid in tids:
                rows.append((tid, "wait", since[tid], t))
                rows.append((tid, "hold", t, t + hold))
                t += hold
                since[tid] = t
    df = pd.DataFrame(rows, columns=["tid", "state", "start_ns", "end_ns"])
    df["duration_ns"] = df["end_ns"] - df["start_ns"]
    return df


def calls(fn, *args) -> int:
    n = 0

    def count(frame, event, arg):
        nonlocal n
        if event in ("call", "c_call"):
            n += 1

    sys.setprofile(count)
    try:
        fn(*args)
    finally:
        sys.setprofile(None)
    return n


def test_blame_matches_the_pairwise_definition():
    sp = spans(45, alive=7)
    b = analysis.blame(sp)
    waits, holds = sp[sp.state == "wait"], sp[sp.state == "hold"]
    for waiter in (0, 8, 44):
        for holder in (1, 3, 9, 43):
            w, h = waits[waits.tid == waiter], holds[holds.tid == holder]
            want = sum(max(0, min(b_, e) - max(a, s)) for a, b_ in zip(w.start_ns, w.end_ns) for s, e in zip(h.start_ns, h.end_ns))
            assert b.loc[waiter, holder] == want / 1e9
    assert np.allclose(b.drop(columns="nobody").sum(axis=1) + b["nobody"], waits.groupby("tid").duration_ns.sum() / 1e9)


def test_blame_work_does_not_grow_with_threads_squared():
    small, large = calls(analysis.blame, spans(100)), calls(analysis.blame, spans(1600))
    assert large < 2 * small + 2000, (small, large)  # quadratic code: ~256 x


def test_lane_selection_is_one_pass():
    def threads(n):
        return pd.DataFrame({"name": ["req-%d" % i for i in range(n)], "first_ns": np.arange(n)}, index=pd.Index(range(n), name="tid"))

    th = threads(3200)
    few, many = calls(select_threads, th, ["req-%d" % i for i in range(5)]), calls(select_threads, th, ["req-%d" % i for i in range(80)])
    assert select_threads(threads(50), ["req-3", "7"]) == [3, 7]
    assert many < 2 * few, (few, many)  # per wanted name, a scan of every thread: 16 x


def test_blame_pairs_are_blame_without_the_dense_matrix():
    sp = spans(45, alive=7)
    dense, pairs = analysis.blame(sp), analysis.blame_pairs(sp)
    rebuilt = pairs.pivot_table(index="waiter", columns="holder", values="seconds", aggfunc="sum", fill_value=0.0)
    for (waiter, holder), value in dense.stack().items():
        assert np.isclose(rebuilt.loc[waiter, holder] if holder in rebuilt.columns else 0.0, value), (waiter, holder)
    assert pairs.attrs["holders"] == [int(t) for t in dense.columns if t != "nobody"]


def test_blame_pairs_memory_follows_the_overlaps_not_threads_squared():
    """3,200 threads: a dense matrix is 3,200 x 3,200 floats (82 MB); the
    pairs of waves of 20 are 3,200 x 19 rows.  What the HTML report sums."""
    import tracemalloc

    sp = spans(3200)
    tracemalloc.start()
    try:
        pairs = analysis.blame_pairs(sp)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(pairs) <= 3200 * 20 and peak < 20e6, (len(pairs), peak)
