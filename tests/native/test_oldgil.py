"""The old GIL (CPython 2.7): the C core loaded by ctypes into a 2.7 process
(csrc/oldgil.c, giltrace/oldgil.py), its file read by the 3.x host.

Runs where pyenv has a 2.7 and a C compiler exists; skips with the reason
elsewhere.
"""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest

from giltrace import fileformat, layout

from giltrace.model import load

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STARTER = os.path.join(REPO, "giltrace", "oldgil.py")


@pytest.fixture(scope="module")
def py27(python27) -> str:
    return python27


@pytest.fixture(scope="module")
def oldgil_lib(tmp_path_factory, c_compiler) -> str:
    from giltrace import _build_oldgil

    os.environ.setdefault("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    return _build_oldgil.library_path()


# CPU-bound threads, and a main thread that keeps the GIL in one long
# bytecode (sum over an xrange runs in C without a tick): the known facts
# the trace must show.
PROGRAM = r"""
import json, sys, threading, time
sys.path.insert(0, %(dir)r)
import oldgil

def count(n):
    while n > 0:
        n -= 1

tracer = oldgil.Tracer(%(out)r, lib=%(lib)r).start()
sleeper = threading.Thread(target=time.sleep, args=(0.01,), name="sleeper")
sleeper.start()
t0 = time.time()
sum(xrange(%(hold)d))   # holds the GIL throughout: the sleeper waits for all of it
held = time.time() - t0
sleeper.join()
workers = [threading.Thread(target=count, args=(%(n)d,), name="worker-%%d" %% i) for i in range(2)]
for w in workers: w.start()
for w in workers: w.join()
tracer.stop()
print(json.dumps({"held_s": held, "found_by": tracer.found_by, "stats": tracer.stats}))
"""


def run27(py27: str, lib: str, out: str, env=None, hold=60000000, n=2000000) -> dict:
    code = PROGRAM % {"dir": os.path.dirname(STARTER), "out": out, "lib": lib, "hold": hold, "n": n}
    done = subprocess.run([py27, "-c", code], capture_output=True, text=True, timeout=120, env=dict(os.environ, **(env or {})))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def traced(py27, oldgil_lib, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("t") / "old.gtr")
    return run27(py27, oldgil_lib, out), out


def test_the_file_is_a_complete_trace_with_nothing_lost(traced):
    report, path = traced
    raw = fileformat.read(path)
    assert raw.complete and raw.footer["events_lost"] == 0
    assert raw.header["python_version"].startswith("2.7") and raw.header["gil_kind"] == "old"
    assert report["found_by"] == "symbol interpreter_lock"
    assert report["stats"]["events_written"] == len(raw.events) > 1000


def test_acquires_and_releases_pair_up_and_carry_the_old_gil_flags(traced):
    _, path = traced
    ev = fileformat.read(path).events
    acq, rel = ev[ev["kind"] == layout.EV_ACQUIRE], ev[ev["kind"] == layout.EV_RELEASE]
    assert abs(len(acq) - len(rel)) <= 1  # the starter's first hold began before the trace
    same = (acq["flags"] & layout.FLAG_SAME_HOLDER) != 0
    switched = (acq["flags"] & layout.FLAG_SWITCHED) != 0
    assert not (same & switched).any() and (same | switched).all()  # exactly one of the two
    assert same.sum() > switched.sum() > 10  # 2.7 mostly takes its own GIL straight back
    # A blocking take is preceded by its WAIT; only blocking takes are contended.
    contended = (acq["flags"] & layout.FLAG_CONTENDED) != 0
    assert contended.sum() == (ev["kind"] == layout.EV_WAIT).sum() > 0
    assert not (ev["kind"] == layout.EV_DROP_REQUEST).any()  # 2.7 has no drop request


def test_a_thread_waits_for_a_long_bytecode_as_long_as_it_runs(traced):
    """Known behaviour: sum(xrange(N)) is one bytecode, so the sleeper,
    awake after 10 ms, waits for the GIL until the sum ends."""
    report, path = traced
    trace = load(path)
    tid = {name: tid for tid, name in trace.names.items()}["sleeper"]
    ev = trace.events
    waits = ev[(ev["tid"] == tid) & (ev["kind"] == "acquire") & ev["contended"]]["wait_ns"] / 1e9
    assert report["held_s"] > 0.05
    assert abs(waits.max() - (report["held_s"] - 0.01)) < 0.01 + 0.05 * report["held_s"]


def test_the_two_workers_are_named_and_hold_the_gil_by_turns(traced):
    _, path = traced
    trace = load(path)
    threads = trace.threads().set_index("name")
    for name in ("worker-0", "worker-1"):
        assert threads.loc[name, "hold_s"] > 0.01
    ev = trace.events
    assert set(ev[ev["kind"] == "acquire"]["tid"]) >= {t for t, n in trace.names.items() if n.startswith("worker")}


def test_the_gil_is_found_by_probing_a_release_too(py27, oldgil_lib, tmp_path):
    report = run27(py27, oldgil_lib, str(tmp_path / "p.gtr"), env={"GILTRACE_OLDGIL_LOCATE": "probe"}, hold=1000000, n=200000)
    assert report["found_by"] == "probe of PyEval_SaveThread"
    raw = fileformat.read(str(tmp_path / "p.gtr"))
    assert raw.complete and (raw.events["kind"] == layout.EV_ACQUIRE).sum() > 10


def test_it_refuses_an_interpreter_without_the_old_gil(oldgil_lib, tmp_path):
    """Loaded into a 3.x process there is no interpreter_lock and no release
    posts a semaphore: a clear refusal, and no file left behind."""
    import sys

    code = (
        "import sys; sys.path.insert(0, %r); import oldgil\n"
        "try:\n    oldgil.Tracer(%r, lib=%r).start()\nexcept oldgil.OldGilError as e:\n    print(e)\n"
        % (os.path.dirname(STARTER), str(tmp_path / "x.gtr"), oldgil_lib)
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "cannot find the GIL's semaphore" in done.stdout, done.stdout + done.stderr
    assert not os.path.exists(tmp_path / "x.gtr")


def test_the_script_runner_traces_a_27_program(py27, oldgil_lib, tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(
        "import threading\nt = threading.Thread(target=lambda: sum(range(100000)), name='w')\n"
        "t.start(); t.join()\nimport sys; sys.exit(0)\n"
    )
    out = tmp_path / "run.gtr"
    done = subprocess.run(
        [py27, STARTER, "--lib", oldgil_lib, "--output", str(out), "--", str(script)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    trace = load(str(out))
    assert "w" in trace.names.values() and trace.meta["complete"]
    assert np.isin(["acquire", "release"], trace.events["kind"].unique()).all()


def test_giltrace_run_python_traces_a_27_program(py27, oldgil_lib, tmp_path):
    """``giltrace run --python 2.7 script.py``: the program's output and exit
    status are its own, and the trace is written for this host to read."""
    import sys

    script = tmp_path / "prog.py"
    script.write_text(
        "import sys, threading\nt = threading.Thread(target=lambda: sum(range(200000)), name='w')\n"
        "t.start(); t.join()\nprint('done %d' % sys.version_info[0])\nsys.exit(3)\n"
    )
    out = tmp_path / "cli.gtr"
    done = subprocess.run(
        [sys.executable, "-m", "giltrace", "run", "--python", py27, "-o", str(out), str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3 and done.stdout.strip() == "done 2", done.stderr
    assert "GIL events written to" in done.stderr
    assert load(str(out)).meta["python_version"].startswith("2.7")


def test_giltrace_run_python_passes_the_trace_options_to_27(py27, oldgil_lib, tmp_path):
    """The options of ``giltrace run`` reach the 2.7 starter: no locations,
    CPU state sampled every 2 ms (the workers' CPU time is in the trace);
    what 2.7 cannot do is refused in one line."""
    import sys

    script = tmp_path / "prog.py"
    script.write_text(
        "import threading\ndef count(n):\n    while n > 0:\n        n -= 1\n"
        "ts = [threading.Thread(target=count, args=(2000000,), name='w%d' % i) for i in range(2)]\n"
        "for t in ts: t.start()\nfor t in ts: t.join()\n"
    )
    out = tmp_path / "opts.gtr"
    cli = [sys.executable, "-m", "giltrace", "run", "--python", py27, "-q", "-o", str(out)]
    opts = ["--no-locations", "--cpu-state", "--sample-period-ms", "2"]
    done = subprocess.run(cli + opts + [str(script)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    trace = load(str(out))
    assert trace.meta["locations"] is False and trace.meta["locations_note"] == "turned off"
    assert trace.meta["cpu_state"] is True and trace.meta["sample_period_ns"] == 2_000_000
    assert trace.events["location"].eq(0).all()
    cpu = trace.cpu_state()
    workers = [tid for tid, name in trace.names.items() if name in ("w0", "w1")]
    assert len(workers) == 2 and (cpu.loc[workers, "cpu_s"] > 0.01).all()  # each counted ~0.1 s
    refused = subprocess.run(cli + ["--subprocesses", str(script)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--subprocesses is not supported under --python for 2.7" in refused.stderr


def test_giltrace_run_python_refuses_what_it_cannot_trace(tmp_path):
    import sys

    script = tmp_path / "p.py"
    script.write_text("pass\n")
    done = subprocess.run(
        [sys.executable, "-m", "giltrace", "run", "--python", str(tmp_path / "nope"), str(script)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "cannot run --python" in done.stderr


def test_the_starters_structs_match_the_contract(native):
    """giltrace/oldgil.py declares gt_config and gt_stats with ctypes: every
    field it names sits where csrc/giltrace_api.h puts it, and its padded
    structs are at least as large as the C ones (fields added later read 0)."""
    import ctypes

    from giltrace import oldgil

    ffi, _ = native
    for ours, c_name in ((oldgil._Config, "gt_config"), (oldgil._Stats, "gt_stats")):
        assert ctypes.sizeof(ours) >= ffi.sizeof(c_name)
        for name, _ in ours._fields_:
            if name != "_spare":
                assert getattr(ours, name).offset == ffi.offsetof(c_name, name), (c_name, name)
                assert getattr(ours, name).size == ffi.sizeof(
                    ffi.typeof(c_name).fields[[f for f, _ in ffi.typeof(c_name).fields].index(name)][1].type
                ), (c_name, name)


def test_a_fork_while_tracing_leaves_the_parents_trace_whole(py27, oldgil_lib, tmp_path):
    """2.7 makes a new GIL in a forked child; the child runs untraced (C
    unhooks it) and the parent's file stays complete."""
    code = r"""
import os, sys, threading
sys.path.insert(0, %r)
import oldgil
tracer = oldgil.Tracer(%r, lib=%r).start()
def count(n):
    while n > 0:
        n -= 1
workers = [threading.Thread(target=count, args=(300000,), name="w%%d" %% i) for i in range(2)]
for w in workers: w.start()
pid = os.fork()
if pid == 0:
    t = threading.Thread(target=count, args=(100000,)); t.start(); t.join()
    tracer.stop()   # the parent's trace: nothing to do here
    os._exit(7)
for w in workers: w.join()
_, status = os.waitpid(pid, 0)
tracer.stop()
print(os.WEXITSTATUS(status))
""" % (os.path.dirname(STARTER), str(tmp_path / "f.gtr"), oldgil_lib)
    done = subprocess.run([py27, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "7", done.stderr
    raw = fileformat.read(str(tmp_path / "f.gtr"))
    assert raw.complete and raw.footer["events_lost"] == 0
    names = {r["name"] for r in raw.threads}
    assert {"w0", "w1"} <= names


def test_27_waits_and_the_releases_they_waited_for_carry_the_programs_lines(py27, oldgil_lib, tmp_path):
    """csrc/frames27.c: where a 2.7 thread waited (the program's line, even
    when it waited inside the standard library) and where the holder let go
    when somebody waited: the line that blame points at."""
    script = tmp_path / "prog.py"
    script.write_text(
        "import threading, time\n"
        "stop = threading.Event()\n"
        "def spin():\n"
        "    while not stop.is_set():\n"
        "        n = 20000\n"
        "        while n: n -= 1\n"  # line 6: where the spinner lets go
        "def ticker():\n"
        "    for _ in range(150):\n"
        "        time.sleep(0.002)\n"  # line 9: where the ticker waits
        "a = threading.Thread(target=spin, name='spinner'); b = threading.Thread(target=ticker, name='ticker')\n"
        "a.start(); b.start(); b.join(); stop.set(); a.join()\n"  # line 11: main waits in join (threading.py)
    )
    out = tmp_path / "loc.gtr"
    done = subprocess.run(
        [py27, STARTER, "--lib", oldgil_lib, "--output", str(out), "--", str(script)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    trace = load(str(out))
    assert trace.meta["locations"] is True, trace.meta.get("locations_note")
    locs = trace.locations
    ev = trace.events
    tid = {name: t for t, name in trace.names.items()}

    def where(kind, thread):
        e = ev[(ev["kind"] == kind) & (ev["tid"] == tid[thread]) & (ev["location"] > 0)]
        rows = locs.loc[e["location"].to_numpy()]
        return rows["file"].str.endswith("prog.py"), rows

    in_prog, rows = where("wait", "ticker")
    assert len(rows) >= 50 and in_prog.mean() >= 0.9 and (rows["line"] == 9).mean() >= 0.9, rows["line"].value_counts()
    in_prog, rows = where("release", "spinner")
    assert len(rows) >= 50 and ((rows["function"] == "spin") & in_prog).mean() >= 0.9, rows["function"].value_counts()
    in_prog, rows = where("wait", "MainThread")
    assert len(rows) and (in_prog & (rows["line"] == 11)).any()  # join() is library code: the program's line instead
    # in the file, only some releases carry one: while somebody waits, at most every 50 us per thread
    raw = fileformat.read(str(out)).events
    released = raw[(raw["kind"] == layout.EV_RELEASE) & (raw["tid"] == tid["spinner"])]
    located = released[released["arg"] != 0]
    assert 0 < len(located) < 0.2 * len(released)
    assert trace.meta["release_location_period_ns"] == 50_000
    assert np.diff(located["time_ns"]).min() >= 50_000 * 0.99


def test_27_locations_stay_off_where_the_layout_is_not_27s(oldgil_lib):
    """The starter checks csrc/frames27.c's offsets on live objects: under
    this (3.x) interpreter they are not its layout, and locations stay off."""
    import ctypes
    import importlib.util

    spec = importlib.util.spec_from_file_location("oldgil_starter", STARTER)
    starter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(starter)
    ok, why = starter.check_layout(ctypes.CDLL(oldgil_lib))
    assert not ok and "2.7" in why
