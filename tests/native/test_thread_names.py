"""Thread names reach the trace without any file I/O or GIL release on the
program's threads (docs/how-it-works.md, "Start-up"): a new thread stores its
name in C's ring with plain stores; the writer thread writes it."""

import os
import textwrap

import giltrace

from ..conftest import run_python

PROG = textwrap.dedent(
    """
    import os, signal, sys, threading
    def work():
        n = 20000
        while n: n -= 1
    def burn(stop):
        while not stop.is_set():
            pass
    stop = threading.Event()
    b = threading.Thread(target=burn, args=(stop,), name="burner")
    b.start()
    for i in range(100):
        t = threading.Thread(target=work, name="req-%d" % i)
        t.start()
        t.join()
    stop.set()
    b.join()
    if "--kill" in sys.argv:   # no Python at the end: the names must already be in the file
        import time; time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _run(tmp_path, *extra):
    (tmp_path / "p.py").write_text(PROG)
    run_python(["-m", "giltrace", "run", "-q", "-o", "t.gtr", "p.py"] + list(extra), cwd=str(tmp_path), timeout=60)
    return giltrace.load(str(tmp_path / "t.gtr"), warn=False)


def test_new_threads_never_wait_inside_giltrace(native, tmp_path):
    t = _run(tmp_path)
    assert t.complete
    req = {tid for tid, n in t.names.items() if n.startswith("req-")}
    assert len(req) == 100
    spans = t.intervals()
    waits = spans[(spans["state"] == "wait") & spans["tid"].isin(list(req))]
    pkg = os.path.dirname(giltrace.__file__)
    inside = {t.location_label(loc) for loc in waits["location"].unique() if t.location_label(loc).startswith(pkg)}
    assert inside == set(), inside


def test_names_survive_a_kill(native, tmp_path):
    t = _run(tmp_path, "--kill")
    assert not t.complete
    assert sum(n.startswith("req-") for n in t.names.values()) == 100


def test_a_thread_without_python_frames_has_a_location(native, tmp_path):
    """A new thread's first take (before its first frame) and its last
    release (after its last) are "<thread>:0", not unknown: a server that
    starts a thread per request had 7-17 % of its waits at "?"."""
    t = _run(tmp_path)
    req = [tid for tid, n in t.names.items() if n.startswith("req-")]
    spans = t.intervals()
    mine = spans[spans["tid"].isin(req)]
    located = mine[(mine["state"] == "hold") | mine["contended"]]  # an uncontended take records no location (no WAIT event)
    assert (located["location"] != 0).all(), located[located["location"] == 0].head()
    first = mine.sort_values("start_ns").groupby("tid").head(1)
    assert set(first["state"]) == {"wait"}
    blocked = first[first["contended"]]
    assert len(blocked) and {t.location_label(loc) for loc in blocked["location"]} == {"<thread>:0 (start: no Python frame yet)"}
    holds = mine[mine["state"] == "hold"].sort_values("end_ns").groupby("tid").tail(1)
    assert {t.location_label(loc) for loc in holds["location"]} == {"<thread>:0 (end: no Python frame left)"}
