"""Fault safety: fork, signals, exit, kill, start/stop loops, thread churn."""

import os
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import giltrace
from giltrace.tracer import Tracer

from ..conftest import REPO, run_python


def got_state(ffi, lib):
    entries = ffi.new("gt_got_entry[8]")
    n = lib.gt_got_entries(entries, 8)
    return [(ffi.string(e.name).decode(), e.current, e.hook, e.real) for e in entries[0:n]]


def test_got_patched_while_tracing_and_restored_after(native, tmp_path):
    ffi, lib = native
    with giltrace.trace(str(tmp_path / "g.gtr")):
        during = got_state(ffi, lib)
    after = got_state(ffi, lib)
    assert {name for name, *_ in during} == {"pthread_mutex_lock", "pthread_mutex_unlock", "pthread_cond_timedwait", "pthread_cond_signal"}
    assert all(cur == hook for _, cur, hook, _ in during)
    assert all(cur == real and cur != hook for _, cur, hook, real in after), "calls go straight to libc again"


def test_start_stop_1000_times_while_threads_contend(native, tmp_path):
    ffi, lib = native
    stop = threading.Event()

    def cpu():
        while not stop.is_set():
            n = 1000
            while n:
                n -= 1

    def io():
        while not stop.is_set():
            lib.gt_test_noop()

    old = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)  # keep the main thread's own GIL waits short
    threads = [threading.Thread(target=cpu), threading.Thread(target=io)]
    for t in threads:
        t.start()
    path = str(tmp_path / "loop.gtr")
    try:
        rss = []
        for i in range(1000):
            tr = Tracer(path, sample_period_ms=1.0)
            tr.start()
            tr.stop(load=False)
            assert tr.stats["events_lost"] == 0
            if i in (100, 999):
                rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    finally:
        stop.set()
        for t in threads:
            t.join()
        sys.setswitchinterval(old)
    assert all(cur == real for _, cur, hook, real in got_state(ffi, lib))
    assert rss[1] - rss[0] < 10_000, "max RSS grew by %d kB over 900 start/stop cycles" % (rss[1] - rss[0])
    t = giltrace.load(path)  # the last file is whole
    assert t.complete and t.switches() == t.meta["switch_number_stop"] - t.meta["switch_number_start"]


def test_10000_short_lived_threads_all_named(native, tmp_path):
    def work():
        pass

    with giltrace.trace(str(tmp_path / "churn.gtr")) as tr:
        for i in range(10_000):
            t = threading.Thread(target=work, name="short-%d" % i)
            t.start()
            t.join()
    trace = tr.result
    th = trace.threads()
    short = th[th["name"].str.startswith("short-")]
    assert len(short) >= 9_990  # tids are reused only after pid_max wraps
    assert trace.meta["events_lost"] == 0
    assert (short["acquires"] >= 1).all()


def test_second_trace_is_refused(native, tmp_path):
    with giltrace.trace(str(tmp_path / "a.gtr")):
        with pytest.raises(giltrace.TraceRunning, match="already running"):
            giltrace.trace(str(tmp_path / "b.gtr")).start()
    assert not (tmp_path / "b.gtr").exists()


def test_unwritable_path_is_a_clear_error(native, tmp_path):
    with pytest.raises(giltrace.GiltraceError, match="cannot write the trace file"):
        giltrace.trace(str(tmp_path / "no" / "dir" / "x.gtr")).start()
    assert giltrace.active() is None


def test_temporary_file_when_no_path(native):
    with giltrace.trace() as tr:
        time.sleep(0.01)
    assert tr.result.complete and not os.path.exists(tr.path)


FORK_SCRIPT = textwrap.dedent(
    """
    import os, sys, threading, time, giltrace
    def cpu():
        n = 300000
        while n: n -= 1
    path = sys.argv[1]
    with giltrace.trace(path) as tr:
        t = threading.Thread(target=cpu); t.start()
        pid = os.fork()
        if pid == 0:
            # the child: untraced, can use threads, must not touch the parent's file
            assert giltrace.active() is None
            c = threading.Thread(target=cpu); c.start(); c.join()
            with giltrace.trace(path + ".child") as ctr:  # and may trace into its own file
                c = threading.Thread(target=cpu); c.start(); c.join()
            print("child ok", ctr.result.meta["pid"] == os.getpid(), flush=True)
        else:
            _, status = os.waitpid(pid, 0)
            print("child status", status, flush=True)
        t.join()
    if pid:
        r = tr.result
        print("parent ok", r.complete, set(r.meta["argv"][1:]) == {path}, r.meta["pid"] == os.getpid(), flush=True)
    """
)


def test_fork_during_a_trace(native, tmp_path):
    script = tmp_path / "fork.py"
    script.write_text(FORK_SCRIPT)
    res = run_python([str(script), str(tmp_path / "f.gtr")], timeout=60)
    assert res.returncode == 0, res.stderr
    assert "child ok True" in res.stdout
    assert "child status 0" in res.stdout
    assert "parent ok True True True" in res.stdout
    parent = giltrace.load(str(tmp_path / "f.gtr"))
    child = giltrace.load(str(tmp_path / "f.gtr.child"))
    assert parent.complete and child.complete
    assert child.meta["pid"] != parent.meta["pid"]


SLEEPER = textwrap.dedent(
    """
    import sys, threading, time
    def cpu():
        while True:
            n = 10000
            while n: n -= 1
    threading.Thread(target=cpu, daemon=True, name="spinner").start()
    print("ready", flush=True)
    try:
        while True:
            time.sleep(0.01)
    finally:
        print("finally ran", flush=True)
    """
)


def _start_and_signal(args, sig, tmp_path):
    proc = subprocess.Popen(
        args, cwd=str(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONPATH=REPO)
    )
    assert proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


def test_ctrl_c_behaves_as_untraced_and_finalises_the_trace(native, tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    plain = _start_and_signal([sys.executable, str(script)], signal.SIGINT, tmp_path)
    traced = _start_and_signal([sys.executable, "-m", "giltrace", "run", "-q", "-o", "s.gtr", str(script)], signal.SIGINT, tmp_path)
    assert traced[0] == plain[0] == -signal.SIGINT
    assert traced[1] == plain[1] == "finally ran\n"  # (after the "ready" line read above)
    assert "KeyboardInterrupt" in traced[2] and "giltrace" not in traced[2].replace("s.gtr", "")
    t = giltrace.load(str(tmp_path / "s.gtr"))
    assert t.complete and "spinner" in set(t.threads()["name"])


def test_sigkill_leaves_a_readable_trace(native, tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    code, out, err = _start_and_signal(
        [sys.executable, "-m", "giltrace", "run", "-q", "-o", "k.gtr", str(script)], signal.SIGKILL, tmp_path
    )
    assert code == -signal.SIGKILL
    with pytest.warns(giltrace.IncompleteTraceWarning, match="not finalised"):
        t = giltrace.load(str(tmp_path / "k.gtr"))
    assert not t.complete and len(t.events) > 10
    assert "spinner" in set(t.threads()["name"])  # names are written as threads start


def test_exit_with_a_trace_running_finalises_it(native, tmp_path):
    code = "import giltrace, threading; giltrace.start(%r); threading.Thread(target=sum, args=([1]*1000,)).start()" % str(
        tmp_path / "e.gtr"
    )
    res = run_python(code)
    assert res.returncode == 0, res.stderr
    t = giltrace.load(str(tmp_path / "e.gtr"))
    assert t.complete and t.meta["events_lost"] == 0 and len(t.events) > 0


def test_old_interpreter_imports_and_refuses_clearly(python_of):
    old = python_of("3.8")
    code = "import giltrace, platform\ntry:\n    giltrace.start()\nexcept giltrace.UnsupportedInterpreter as e:\n    print('refused:', e)\n"
    code += "print(platform.python_version())"
    res = subprocess.run([old, "-c", code], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    assert res.returncode == 0, res.stderr
    version = res.stdout.split()[-1]
    assert "refused: CPython %s is too old: giltrace needs 3.9 to 3.13" % version in res.stdout


def test_free_threaded_build_is_refused(monkeypatch):
    from giltrace import _binding

    monkeypatch.setattr(sys, "abiflags", "t")  # what Py_GIL_DISABLED builds (python3.13t) have
    monkeypatch.setattr(_binding, "_cached", None)
    with pytest.raises(giltrace.UnsupportedInterpreter, match="free-threaded"):
        giltrace.start()


def test_start_stop_functions_and_live_sample(native, tmp_path):
    tracer = giltrace.start(str(tmp_path / "s.gtr"))
    assert giltrace.active() is tracer
    first = tracer.sample()
    assert set(first) == {"time_ns", "locked", "holder_tid", "holder_name", "switch_number", "drop_request", "waiters"}
    t = threading.Thread(target=sum, args=([1] * 200000,), name="summer")
    t.start()
    t.join()
    second = tracer.sample()
    assert second["time_ns"] > first["time_ns"] and second["switch_number"] >= first["switch_number"]
    trace = giltrace.stop()
    assert giltrace.active() is None and trace.complete and "summer" in set(trace.threads()["name"])
    with pytest.raises(giltrace.GiltraceError, match="no trace is running"):
        giltrace.stop()


def test_a_full_disk_gives_one_clear_error_and_a_readable_file(native, tmp_path):
    code = textwrap.dedent(
        """
        import resource, signal, sys, threading, giltrace
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # get EFBIG instead of being killed
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000000, 1000000))
        from giltrace._binding import native
        ffi, lib = native()
        tr = giltrace.trace(sys.argv[1], flush_period_ms=5)
        tr.start()
        threads = [threading.Thread(target=lambda: [lib.gt_test_noop() for _ in range(40000)]) for _ in range(2)]
        for t in threads: t.start()
        for t in threads: t.join()
        try:
            tr.stop(load=False)
        except giltrace.GiltraceError as exc:
            print("error:", exc)
        """
    )
    path = tmp_path / "full.gtr"
    res = run_python(["-c", code, str(path)])
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("error: the trace file") and "File too large" in res.stdout
    assert res.stdout.count("\n") == 1
    with pytest.warns(giltrace.IncompleteTraceWarning):
        t = giltrace.load(str(path))
    assert len(t.events) > 0 and not t.complete
