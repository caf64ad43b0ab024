"""Attribution: the line that called the GIL-releasing operation is reported
as the waiting site, and the forced-switch loop as the releasing site."""

import os
import tempfile
import threading
import time

import giltrace

from ..conftest import trace_threads

HERE = os.path.abspath(__file__)


def spin(stop):
    while not stop.is_set():
        n = 10000
        while n:  # LINE_SPIN
            n -= 1


def writer(stop, fd):
    while not stop.is_set():
        os.pwrite(fd, b"x" * 64, 0)  # LINE_WRITE


def line_of(marker):
    with open(HERE) as f:
        for i, text in enumerate(f, 1):
            if text.rstrip().endswith("# " + marker):
                return i
    raise AssertionError(marker)


def traced_beside_a_spinner(path, target, args, name, seconds=0.4):
    """Run `target(stop, *args)` as thread `name` beside a CPU-bound thread, traced."""
    return trace_threads(path, [(spin, (), "spin"), (target, args, name)], seconds)


def test_waits_and_releases_point_at_the_right_lines(native, tmp_path):
    # The writer waits for the spinner 8-100+ times in 0.4 s; on a busy
    # machine as few as 2 (both threads off their CPUs): then trace 2 s.
    for seconds in (0.4, 2.0):
        with tempfile.TemporaryFile() as f:
            t = traced_beside_a_spinner(str(tmp_path / ("a-%s.gtr" % seconds)), writer, (f.fileno(),), "writer", seconds)
        ev = t.events
        names = t.threads()["name"]
        writer_tid = names[names == "writer"].index[0]
        spin_tid = names[names == "spin"].index[0]
        waits = ev[(ev["kind"] == "acquire") & ev["contended"] & (ev["tid"] == writer_tid)]
        if len(waits) >= 5:
            break
    assert len(waits) >= 3
    site = waits.groupby("location")["wait_ns"].sum().idxmax()
    file, func, line = t.locations.loc[site, ["file", "function", "line"]]
    assert (file, func, line) == (HERE, "writer", line_of("LINE_WRITE"))
    assert t.location_label(site) == "%s:%d (writer)" % (HERE, line_of("LINE_WRITE"))

    # the spinning thread drops the GIL where the eval loop checks for a drop request: its loop
    rel = ev[(ev["kind"] == "release") & (ev["tid"] == spin_tid)]
    top = rel["location"].value_counts().idxmax()
    assert t.locations.loc[top, "function"] == "spin"
    assert t.locations.loc[top, "line"] in (line_of("LINE_SPIN"), line_of("LINE_SPIN") + 1)
    assert t.meta["locations_lost"] == 0


def test_locations_can_be_turned_off(native, tmp_path):
    with giltrace.trace(str(tmp_path / "b.gtr"), locations=False) as tr:
        threading.Thread(target=time.sleep, args=(0.01,)).start()
    assert len(tr.result.locations) == 0
    assert (tr.result.events["location"] == 0).all()


def copy_through_the_stdlib(stop, src, dst):
    import shutil

    while not stop.is_set():
        src.seek(0)
        dst.seek(0)
        shutil.copyfileobj(src, dst, 4096)  # LINE_COPY


def test_wait_site_is_the_programs_own_line_behind_library_calls(native, tmp_path):
    with tempfile.TemporaryFile() as src, tempfile.TemporaryFile() as dst:
        src.write(b"y" * 64 * 1024)
        t = traced_beside_a_spinner(str(tmp_path / "c.gtr"), copy_through_the_stdlib, (src, dst), "copier")
    d = t.diagnose()
    sites = d.waiting_sites[d.waiting_sites["waiter"] == "copier"]
    assert len(sites), d.threads
    assert sites.iloc[0]["location"] == "%s:%d (copy_through_the_stdlib)" % (HERE, line_of("LINE_COPY"))
    # releases keep the innermost frame: inside shutil
    names = t.threads()["name"]
    copier = names[names == "copier"].index[0]
    rel = t.events[(t.events["kind"] == "release") & (t.events["tid"] == copier)]
    top = rel["location"].value_counts().idxmax()
    assert t.locations.loc[top, "file"].endswith("shutil.py")
