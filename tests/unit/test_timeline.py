"""The timeline's geometry on a synthetic trace with known intervals."""

import numpy as np
import pytest

from giltrace import fileformat as ff
from giltrace.render import timeline

from .test_fileformat import events_chunk, write_trace
import giltrace

A, R, W, D = ff.EV_ACQUIRE, ff.EV_RELEASE, ff.EV_WAIT, ff.EV_DROP_REQUEST


@pytest.fixture
def trace(tmp_path):
    # thread 7 holds 1000..4000; thread 8 waits 2000..4000, holds 4000..6000, then runs without the GIL
    rows = [
        (1000, 7, A, 0, 1),
        (2000, 8, W, 0, 0),
        (3000, 8, D, 7, 0),
        (4000, 7, R, 0, 0),
        (4000, 8, A, 2000, 3),
        (6000, 8, R, 0, 0),
        (9000, 7, A, 10, 1),
        (9500, 7, R, 0, 0),
    ]
    write_trace(tmp_path / "t.gtr", [events_chunk(rows)], start=0, stop=10_000)
    return giltrace.load(str(tmp_path / "t.gtr"))


def rects(df, tid, state):
    d = df[(df["tid"] == tid) & (df["state"] == state)]
    return sorted(zip(d["start_ns"], d["end_ns"]))


def test_lanes_have_the_known_rectangles(trace):
    w = timeline.Window(0, 10_000, "test")
    df = timeline.lanes(trace, w, width_px=10_000)  # 1 ns per pixel: nothing merges
    assert rects(df, 7, "hold") == [(1000, 4000), (9000, 9500)]
    assert rects(df, 8, "wait") == [(2000, 4000)]
    assert rects(df, 8, "hold") == [(4000, 6000)]
    assert rects(df, 7, "released") == [(4000, 8990)]  # between its hold and its next take
    assert rects(df, 8, "released") == []  # alive 2000..6000, always waiting or holding


def test_window_clips_and_pixels_merge(trace):
    w = timeline.Window(3000, 10_000, "test")
    df = timeline.lanes(trace, w, width_px=10)  # 700 ns per pixel
    assert rects(df, 8, "wait") == [(3000, 4000)]
    # thread 7's holds at 3000..4000 and 8990..9500 are far apart: not merged
    assert len(rects(df, 7, "hold")) == 2


def test_sub_pixel_alternation_shows_the_dominant_state():
    # 1 pixel = 100 ns; the thread holds 70 ns and waits 30 ns of every pixel
    starts = np.arange(0, 1000, 100)
    c = timeline.coverage(starts, starts + 70, np.array([0, 50, 100, 1000]))
    assert list(c) == [0, 50, 70, 700]
    best = np.argmax(np.vstack([np.full(10, 70), np.full(10, 30)]), axis=0)
    assert timeline._runs(best, np.arange(0, 1100, 100), skip=9) == [(0, 0, 1000)]


def test_holder_strip(trace):
    strip = timeline.holder_strip(trace, timeline.Window(0, 10_000, "t"), width_px=10_000)
    assert list(zip(strip["tid"], strip["start_ns"], strip["end_ns"])) == [(7, 1000, 4000), (8, 4000, 6000), (7, 8990, 9500)] or list(
        zip(strip["tid"], strip["start_ns"], strip["end_ns"])
    ) == [(7, 1000, 4000), (8, 4000, 6000), (7, 9000, 9500)]


def test_window_choice(trace):
    assert timeline.choose_window(trace, None, None).reason == "whole trace"
    w = timeline.choose_window(trace, 0.000002, 0.000005)
    assert (w.start_ns, w.end_ns) == (2000, 5000)
    with pytest.raises(ValueError, match="empty time window"):
        timeline.choose_window(trace, 0.000005, 0.000002)


def test_thread_selection(trace):
    th = trace.threads()
    assert timeline.select_threads(th, ["8"]) == [8]
    with pytest.raises(ValueError, match="no thread named"):
        timeline.select_threads(th, ["nope"])


def test_plot_returns_figure_with_one_collection_per_state(trace):
    import matplotlib

    matplotlib.use("Agg")
    fig, ax = trace.plot_timeline()
    from matplotlib.collections import PolyCollection

    polys = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(polys) == 4  # released, wait, hold, holder strip
    # 3 holds, 2 waits (thread 7's zero-length take is not drawn), 1 released
    assert sum(len(p.get_paths()) for p in polys[:3]) == 6
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "GIL held by"


def test_default_window_lands_on_the_worst_episode(tmp_path):
    from .test_diagnosis import HANDLERS, IO, storm_rows, write

    rows, t = storm_rows()  # calm, a storm from 2 s to 5 s, calm until 8 s
    threads = [{"tid": IO, "name": "io"}] + [{"tid": h, "name": "Thread-%d (handle)" % h} for h in HANDLERS]
    tr = write(tmp_path / "storm.gtr", rows, t + 1_000_000, threads, {1: ("io.py", "reader", 7), 2: ("app.py", "render", 12)})
    w = timeline.choose_window(tr, None, None)
    assert "episode 1 of 1" in w.reason
    assert (w.start_ns - tr.start_ns) / 1e9 == pytest.approx(2.0, abs=0.06)
    assert (w.end_ns - tr.start_ns) / 1e9 == pytest.approx(5.0, abs=0.06)
    import matplotlib

    matplotlib.use("Agg")
    fig, ax = timeline.plot_timeline(tr, width_px=400)
    assert "episode" in ax.get_title()
    # a window of the trace keeps the whole recording's clock on its axis
    fig, ax = timeline.plot_timeline(tr.window(3.0, 3.5), width_px=400)
    lo, hi = ax.get_xlim()
    assert lo == pytest.approx(3000, abs=1) and hi == pytest.approx(3500, abs=1)  # ms since the recording's start


def test_a_window_past_the_trace_is_a_one_line_error_and_writes_nothing(trace, tmp_path):
    import os
    import subprocess
    import sys

    from ..conftest import REPO

    out = tmp_path / "x.png"
    res = subprocess.run(
        [sys.executable, "-m", "giltrace", "timeline", trace.path, "--start", "100", "--end", "200", "-o", str(out)],
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2 and res.stderr.startswith("giltrace: error: empty time window") and not out.exists()
    assert res.stderr.count("\n") == 1


def test_no_holder_colour_reads_as_a_gap():
    from giltrace.render.timeline import HOLDER_PALETTE, IDLE_COLOR

    assert "#000000" not in HOLDER_PALETTE and IDLE_COLOR not in HOLDER_PALETTE
