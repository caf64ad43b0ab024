"""Intervals and per-thread figures from synthetic events with known answers."""

import numpy as np
import pytest

from giltrace import analysis
from giltrace import fileformat as ff

W, A, R, D = ff.EV_WAIT, ff.EV_ACQUIRE, ff.EV_RELEASE, ff.EV_DROP_REQUEST


def frame(rows):
    arr = np.zeros(len(rows), ff.EVENT_FIELDS)
    for i, (t, tid, kind, arg, flags) in enumerate(rows):
        arr[i] = (t, arg, tid, kind, flags, 0)
    return analysis.events_frame(arr)


# Thread 1 holds 0..100 (held since before the trace), thread 2 waits 10..100 and
# holds 100..250; thread 1 takes it back uncontended at 300 and holds to the stop.
ROWS = [
    (10, 2, W, 0, 0),
    (15, 2, D, 1, 0),
    (100, 1, R, 0, 0),
    (100, 2, A, 90, ff.FLAG_SWITCHED | ff.FLAG_CONTENDED),
    (250, 2, R, 0, 0),
    (300, 1, A, 2, ff.FLAG_SWITCHED),
]


def test_intervals():
    iv = analysis.intervals(frame(ROWS), start_ns=0, stop_ns=400)
    got = {(r.tid, r.state, r.start_ns, r.end_ns) for r in iv.itertuples()}
    assert got == {
        (1, "hold", 0, 100),  # open at the start
        (2, "wait", 10, 100),
        (2, "hold", 100, 250),
        (1, "wait", 298, 300),  # uncontended take: 2 ns
        (1, "hold", 300, 400),  # open at the stop
    }
    assert (iv["duration_ns"] == iv["end_ns"] - iv["start_ns"]).all()
    assert iv["start_ns"].is_monotonic_increasing


def test_thread_table():
    ev = frame(ROWS)
    iv = analysis.intervals(ev, 0, 400)
    th = analysis.thread_table(ev, iv, {1: "main", 2: "io"}, 0, 400)
    assert th.loc[1, "name"] == "main" and th.loc[2, "name"] == "io"
    assert th.loc[2, "wait_s"] == pytest.approx(90e-9)
    assert th.loc[2, "hold_s"] == pytest.approx(150e-9)
    assert th.loc[1, "hold_s"] == pytest.approx(200e-9)
    assert th.loc[2, "waits"] == 1 and th.loc[1, "waits"] == 0
    assert th.loc[1, "acquires"] == 1 and th.loc[2, "acquires"] == 1
    assert th.loc[2, "drop_requests"] == 1
    assert th.loc[2, "max_wait_s"] == pytest.approx(90e-9)
    assert th.loc[1, "active_s"] == pytest.approx(400e-9)  # held from the start to the stop
    assert th.loc[2, "released_s"] == pytest.approx(0)
    assert int(ev["switched"].sum()) == 2


def test_events_sorted_without_reordering_a_thread():
    # A wait event is stamped when blocking began, but emitted later.
    ev = frame([(100, 1, R, 0, 0), (50, 2, W, 0, 0), (100, 2, A, 50, 3)])
    assert list(ev["time_ns"]) == [50, 100, 100]
    assert list(ev["kind"]) == ["wait", "release", "acquire"]


def test_long_holds_need_a_long_wait():
    ms = 1_000_000
    rows = [
        (0, 1, A, 0, 1),
        (20 * ms, 1, R, 0, 0),  # 1 holds 20 ms, nobody waits: fine
        (20 * ms, 2, A, 0, 1),  # 2 holds 20..50 ms ...
        (25 * ms, 1, W, 0, 0),
        (30 * ms, 1, D, 2, 0),  # ... while 1 waits 25 ms for it: stuck holder
        (50 * ms, 2, R, 0, 0),
        (50 * ms, 1, A, 25 * ms, 3),
        (60 * ms, 1, R, 0, 0),
        (60 * ms, 2, A, 0, 1),  # 2 holds 60..100 ms, 1 waits only 5 ms: fine
        (95 * ms, 1, W, 0, 0),
        (100 * ms, 1, D, 2, 0),
        (100 * ms, 2, R, 0, 0),
        (100 * ms, 1, A, 5 * ms, 3),
    ]
    ev = frame(rows)
    iv = analysis.intervals(ev, 0, 110 * ms)
    lh = analysis.long_holds(iv, ev, switch_interval_ns=5 * ms)
    assert list(lh["tid"]) == [2]
    assert list(lh["start_ns"]) == [20 * ms]
    assert list(lh["waited_ns"]) == [25 * ms] and list(lh["drop_requests"]) == [1]


def test_stuck_samples():
    s = np.zeros(30, ff.SAMPLE_FIELDS)
    s["time_ns"] = np.arange(30) * 1_000_000
    s["locked"] = 1
    s["switch_number"] = 5
    s["holder_tid"] = 42
    s["drop_request"][10:25] = 1  # pending for 15 ms (raised 5 ms after the holder took it)
    runs = analysis.stuck_samples(s, switch_interval_ns=5_000_000)
    assert len(runs) == 1
    assert runs.loc[0, "holder_tid"] == 42
    assert runs.loc[0, "duration_ns"] == 19_000_000
    assert len(analysis.stuck_samples(s, 5_000_000, factor=4)) == 0


def test_empty_trace():
    ev = frame([])
    iv = analysis.intervals(ev, 0, 10)
    assert len(iv) == 0
    assert len(analysis.thread_table(ev, iv, {}, 0, 10)) == 0


def test_blame_matrix():
    # 1 holds 0..100, 2 waits 10..100 then holds 100..250; 3 waits 50..260 (gap 250..260: nobody)
    rows = ROWS + [(50, 3, W, 0, 0), (260, 3, A, 210, 3), (270, 3, R, 0, 0)]
    ev = frame(rows)
    iv = analysis.intervals(ev, 0, 400)
    b = analysis.blame(iv)
    assert b.loc[2, 1] == pytest.approx(90e-9)
    assert b.loc[3, 1] == pytest.approx(50e-9)
    assert b.loc[3, 2] == pytest.approx(150e-9)
    assert b.loc[3, "nobody"] == pytest.approx(10e-9)
    assert b.loc[2, 2] == 0


def test_coverage():
    c = analysis.coverage(np.array([10, 30]), np.array([20, 40]), np.array([0, 15, 25, 35, 100]))
    assert list(c) == [0, 5, 10, 15, 20]


def test_occupancy_counts_overlapping_intervals_each():
    from giltrace.analysis import occupancy

    starts, ends = np.array([0, 5, 20]), np.array([10, 15, 30])
    at = np.array([-1, 5, 10, 15, 20, 30, 40])
    # two intervals open over 5-10: that span counts twice
    assert list(occupancy(starts, ends, at)) == [0, 5, 15, 20, 20, 30, 30]


def test_thread_groups_by_name():
    from giltrace.groups import group_key, thread_groups

    assert group_key("ThreadPoolExecutor-0_3") == "ThreadPoolExecutor-0_*"
    assert group_key("Thread-7 (process_request_thread)") == "Thread-* (process_request_thread)"
    assert group_key("ledger_2") == "ledger_*" and group_key("polars-1") == "polars-*"
    assert group_key("MainThread") is None
    g = thread_groups({1: "MainThread", 2: "ledger_0", 3: "ledger_1", 4: "polars-0", 5: "Thread-3 (serve)", 6: "Thread-9 (serve)"})
    assert g == {1: None, 2: "ledger_*", 3: "ledger_*", 4: None, 5: "Thread-* (serve)", 6: "Thread-* (serve)"}


def test_wakes_are_takes_after_blocking_work():
    """Expected: thread 2 blocks 1 ms (a recv) and waits 5 ms behind 1: a wake
    (waited 5 ms, blocked 1 ms, 0.1 ms of work after, holder 1 at loc 7); its
    release for 0.1 ms (a quick send) is none; thread 1, forced out by the
    drop request and back 10 us later, has none."""
    from giltrace import wakes

    ms = 1_000_000
    rows = [
        (0, 2, A, 0, 0),
        (ms, 2, R, 5, 0),  # recv: blocked 1 ms
        (ms + 10, 1, A, 10, ff.FLAG_SWITCHED),
        (2 * ms, 2, W, 5, 0),
        (7 * ms, 2, D, 1, 0),
        (7 * ms, 1, R, 7, 0),  # forced out
        (7 * ms, 2, A, 5 * ms, ff.FLAG_SWITCHED | ff.FLAG_CONTENDED),
        (7 * ms + 10_000, 1, W, 7, 0),
        (7 * ms + 100_000, 2, R, 6, 0),  # send: 0.1 ms
        (7 * ms + 100_000, 1, A, 90_000, ff.FLAG_SWITCHED | ff.FLAG_CONTENDED),
        (7 * ms + 200_000, 2, A, 100, 0),
    ]
    ev = frame(rows)
    w = wakes.wakes(analysis.intervals(ev, 0, 8 * ms), ev, np.array([6]))
    assert len(w) == 1
    r = w.iloc[0]
    assert (r.tid, r.wait_ns, r.blocked_ns, r.work_ns, r.holder_tid, r.holder_location) == (2, 5 * ms, ms, 100_000, 1, 7)
    assert r.released_at == 5 and not r.after_sync and not r.coordination
    # released in a sync location (5: say threading.py): after_sync; coordination
    # only when the thread it waited behind (1) is one of a pool (a thread group)
    alone = wakes.wakes(analysis.intervals(ev, 0, 8 * ms), ev, np.array([5]), {1: "crunch", 2: "heartbeat"}).iloc[0]
    assert alone.after_sync and not alone.coordination
    pool = wakes.wakes(analysis.intervals(ev, 0, 8 * ms), ev, np.array([5]), {1: "worker-0", 2: "MainThread", 3: "worker-1"}).iloc[0]
    assert pool.after_sync and pool.coordination
    s = wakes.stats(w, take_ns=100.0)
    assert s["wakes"] == 1 and s["wake_p50_s"] == pytest.approx(0.005) and s["wake_baseline_s"] == pytest.approx(1e-6)  # floored
    assert s["wake_inflation"] == pytest.approx(5000)
    assert wakes.is_late(dict(s, wakes=10), 0.005) and not wakes.is_late(s, 0.005)  # too few wakes


def test_hold_programs():
    """Expected: a hold let go in library code (loc 9) takes the program line
    recorded at its take when there is one (loc 3), else the thread's last
    program line before it (loc 4, its previous release)."""
    ms = 1_000_000
    rows = [
        (0, 1, A, 0, 0),
        (ms, 1, R, 4, 0),  # program line
        (ms + 100, 1, A, 100, 0),  # uncontended: inherits 4 as its location, a program line
        (2 * ms, 1, R, 9, 0),  # library
        (2 * ms + 100, 1, W, 3, 0),
        (3 * ms, 1, A, ms - 100, ff.FLAG_CONTENDED),
        (4 * ms, 1, R, 9, 0),
        (4 * ms + 100, 1, A, 100, 0),  # uncontended: inherits 9 (library)
        (5 * ms, 1, R, 9, 0),
    ]
    ev = frame(rows)
    iv = analysis.intervals(ev, 0, 6 * ms)
    prog = analysis.hold_programs(iv, np.array([9]))
    holds = iv[iv["state"] == "hold"].sort_values("start_ns")
    assert list(prog.reindex(holds.index)) == [0, 4, 3, 3]
