"""Per-cell GIL figures from synthetic traces."""

import math

import pandas as pd

from giltrace.bench.contention import cell_figures, worker_roles


class FakeTrace:
    """The parts of giltrace.Trace that the figures use."""

    def __init__(self, threads, events, switches=0, lost=0):
        self._threads = pd.DataFrame(threads).set_index("tid")
        self.events = pd.DataFrame(events, columns=["time_ns", "tid", "kind", "wait_ns"])
        self.meta = {"switch_number_start": 10, "switch_number_stop": 10 + switches, "events_lost": lost}

    def threads(self):
        return self._threads.copy()


def acquire(tid, wait_ns):
    return {"time_ns": 0, "tid": tid, "kind": "acquire", "wait_ns": wait_ns}


def test_a_threaded_cell():
    trace = FakeTrace(
        threads=[
            {"tid": 1, "name": "MainThread", "wait_s": 0.5, "active_s": 2.0},  # not a worker
            {"tid": 2, "name": "cpu-0", "wait_s": 0.2, "active_s": 2.0},
            {"tid": 3, "name": "io-0", "wait_s": 1.8, "active_s": 2.0},
        ],
        events=[acquire(3, w) for w in [100] * 98 + [5_000_000, 6_000_000]]
        + [
            acquire(2, 9_000_000),
            {"time_ns": 1, "tid": 3, "kind": "drop_request", "wait_ns": -1},
            {"time_ns": 2, "tid": 3, "kind": "release", "wait_ns": -1},
        ],
        switches=400,
    )
    f = cell_figures([trace], {}, wall_s=2.0)
    assert math.isclose(f["gil_wait_share"], 2.0 / 4.0)
    assert math.isclose(f["io_wait_share"], 0.9)
    assert f["switches_per_s"] == 200.0
    assert f["drop_requests"] == 1
    assert f["io_reacq_n"] == 100  # the cpu thread's acquire is not an I/O reacquisition
    assert f["io_reacq_p50_us"] == 0.1
    assert f["io_reacq_p99_us"] == 5000.0
    assert f["io_reacq_max_us"] == 6000.0
    assert f["events_lost"] == 0


def test_procs_cells_add_up_their_traces():
    a = FakeTrace([{"tid": 10, "name": "io-0", "wait_s": 0.0, "active_s": 1.0}], [acquire(10, 50)], lost=3)
    b = FakeTrace([{"tid": 20, "name": "io-1", "wait_s": 0.1, "active_s": 1.0}], [acquire(20, 70), acquire(20, -1)])
    f = cell_figures([a, b], {}, wall_s=1.0)
    assert math.isclose(f["gil_wait_share"], 0.05)
    assert f["io_reacq_n"] == 2  # the -1 (unknown) wait is left out
    assert f["events_lost"] == 3


def test_roles_fall_back_to_what_the_child_reported():
    threads = pd.DataFrame({"name": ["thread-7", "io-serial", "Dummy-1"]}, index=pd.Index([7, 8, 9], name="tid"))
    assert worker_roles(threads, {7: "cpu-0"}) == {7: "cpu-0", 8: "io-serial"}


def test_no_io_workers_no_reacquisition_figures():
    trace = FakeTrace([{"tid": 1, "name": "cpu-serial", "wait_s": 0.0, "active_s": 1.0}], [acquire(1, 40)])
    f = cell_figures([trace], {}, wall_s=1.0)
    assert f["io_reacq_n"] == 0 and f["io_reacq_p50_us"] is None and f["io_wait_share"] is None


def test_takes_that_began_before_the_trace_are_left_out():
    trace = FakeTrace([{"tid": 1, "name": "io-0", "wait_s": 0.0, "active_s": 1.0}], [acquire(1, 9_000_000), acquire(1, 100)])
    trace.events["wait_clipped"] = [True, False]
    f = cell_figures([trace], {}, wall_s=1.0)
    assert (f["io_reacq_n"], f["io_reacq_max_us"]) == (1, 0.1)
