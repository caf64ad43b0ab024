"""A traced program behaves as untraced: sub-interpreters, fork from threads,
trace files that are links or FIFOs, start-up imports, warnings, SIGTERM,
thread names.  Each scenario runs in a child process, traced the way a user
traces (GILTRACE, giltrace run), and is compared with the same run untraced."""

import glob
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import pytest

import giltrace

from ..conftest import REPO, run_python


def traces_in(directory):
    out = {}
    for path in sorted(glob.glob(os.path.join(str(directory), "*.gtr"))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", giltrace.IncompleteTraceWarning)
            out[path] = giltrace.load(path)
    return out


def run_traced_and_untraced(code, tmp_path, **kw):
    """(untraced result, traced result, {path: Trace}) of `python -c code`."""
    plain = run_python(code, **kw)
    traced = run_python(code, env={"GILTRACE": str(tmp_path / "app.gtr")}, **kw)
    return plain, traced, traces_in(tmp_path)


CONTENDED = """
import threading, time
def spin(stop):
    while not stop.is_set():
        pass
stop = threading.Event()
ts = [threading.Thread(target=spin, args=(stop,), name="spin-%d" % i) for i in range(2)]
[t.start() for t in ts]; time.sleep(0.2); stop.set(); [t.join() for t in ts]
"""


@pytest.mark.skipif(not hasattr(__import__("importlib").util.find_spec("_testcapi"), "name"), reason="no _testcapi")
def test_a_sub_interpreter_leaves_the_running_trace_and_its_file_alone(native, tmp_path):
    code = CONTENDED + textwrap.dedent("""
        import _testcapi
        assert _testcapi.run_in_subinterp("import threading; x = 1") == 0
        print("done")
        """)
    plain, traced, traces = run_traced_and_untraced(code, tmp_path)
    assert (traced.returncode, traced.stdout, traced.stderr) == (plain.returncode, plain.stdout, plain.stderr) == (0, "done\n", "")
    (trace,) = traces.values()  # one file: the sub-interpreter created none and truncated none
    assert trace.complete and {"spin-0", "spin-1"} <= set(trace.threads()["name"])


@pytest.mark.skipif(sys.version_info < (3, 12), reason="own-GIL sub-interpreters are 3.12+")
def test_an_own_gil_sub_interpreter_says_nothing(native, tmp_path):
    code = CONTENDED + textwrap.dedent("""
        try:
            import _interpreters as subs
        except ImportError:
            import _xxsubinterpreters as subs
        sid = subs.create()
        subs.run_string(sid, "import sys; x = 1")
        subs.destroy(sid)
        print("done")
        """)
    plain, traced, traces = run_traced_and_untraced(code, tmp_path)
    assert (traced.returncode, traced.stdout, traced.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    (trace,) = traces.values()
    assert trace.complete and {"spin-0", "spin-1"} <= set(trace.threads()["name"])


def test_giltrace_start_in_a_sub_interpreter_is_refused_in_one_line(native):
    pytest.importorskip("_testcapi")
    code = textwrap.dedent("""
        import _testcapi
        _testcapi.run_in_subinterp('''
        import giltrace
        try:
            giltrace.start()
        except giltrace.UnsupportedInterpreter as exc:
            print("refused:", exc)
        ''')
        """)
    res = run_python(code)
    assert res.returncode == 0 and res.stdout == "refused: giltrace traces the main interpreter only; this is a sub-interpreter\n"


FORK_FROM_THREAD = """
import os, sys, threading, time
how = sys.argv[1]
def body():
    pid = os.fork()
    if pid == 0:
        time.sleep(0.05)
        if how == "exit":
            sys.exit(3)          # in a thread: ends the thread only
        if how == "raise":
            raise RuntimeError("boom")
        if how == "_exit":
            os._exit(7)
        return
    t0 = time.monotonic()
    _, status = os.waitpid(pid, 0)
    print("child", os.waitstatus_to_exitcode(status), "in %.2f s" % (time.monotonic() - t0))
t = threading.Thread(target=body)
t.start(); t.join()
"""


@pytest.mark.parametrize("how", ["return", "exit", "raise", "_exit"])
def test_a_child_forked_from_a_thread_exits_as_untraced(native, tmp_path, how):
    script = tmp_path / "fork.py"
    script.write_text(FORK_FROM_THREAD)
    plain = run_python([str(script), how], timeout=60)
    traced = run_python([str(script), how], env={"GILTRACE": str(tmp_path / "app.gtr")}, timeout=60)
    assert traced.returncode == plain.returncode == 0, traced.stderr
    code_plain, code_traced = plain.stdout.split()[1], traced.stdout.split()[1]
    assert code_traced == code_plain  # the child's exit status
    assert float(traced.stdout.split()[3]) < 1.0  # exits when its thread ends, not at some later poll
    traces = traces_in(tmp_path)
    assert len(traces) == 2 and all(t.complete for t in traces.values())
    if how in ("return", "exit", "raise"):  # no exit(): C finished the child's file as its last thread ended
        assert sorted(str(t.meta.get("ended_by")) for t in traces.values()) == ["None", "last-thread"]


def test_sigterm_with_the_default_action_finishes_the_trace_and_kills_as_usual(native, tmp_path):
    code = textwrap.dedent("""
        import signal, sys, threading, time
        print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL, flush=True)   # not a handler it could notice
        def spin():
            while True:
                pass
        for _ in range(2):
            threading.Thread(target=spin, daemon=True).start()
        time.sleep(30)
        """)
    results = []
    for env in ({}, {"GILTRACE": str(tmp_path / "app.gtr")}):
        full_env = dict(os.environ, PYTHONPATH=REPO, **env)
        p = subprocess.Popen([sys.executable, "-c", code], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = p.stdout.readline()
        time.sleep(0.3)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
        results.append((p.returncode, first, err))
    assert results[0] == results[1] == (-signal.SIGTERM, "True\n", "")
    (trace,) = traces_in(tmp_path).values()
    assert trace.complete and trace.meta["ended_by"] == "signal" and trace.meta["events_lost"] == 0
    assert trace.meta["duration_s"] > 0.25 and trace.switches() > 10


def test_a_programs_own_sigterm_handler_is_left_alone(native, tmp_path):
    code = textwrap.dedent("""
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, lambda *a: sys.exit(5))
        print("ready", flush=True)
        time.sleep(30)
        """)
    full_env = dict(os.environ, PYTHONPATH=REPO, GILTRACE=str(tmp_path / "app.gtr"))
    p = subprocess.Popen([sys.executable, "-c", code], env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout.readline() == "ready\n"
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 5 and err == ""
    (trace,) = traces_in(tmp_path).values()
    assert trace.complete and "ended_by" not in trace.meta  # finished by Python's atexit, as usual


def test_start_up_imports_only_what_tracing_needs(native, tmp_path):
    code = "import sys; print(' '.join(sorted(sys.modules)))"
    plain, traced, traces = run_traced_and_untraced(code, tmp_path)
    added = set(traced.stdout.split()) - set(plain.stdout.split())
    assert traced.returncode == 0 and traced.stderr == "" and len(traces) == 1
    # a monkey-patching library (gevent, eventlet) must still be the first to import these
    assert not added & {"threading", "socket", "select", "selectors", "subprocess", "signal", "ssl", "queue", "asyncio"}
    assert {a for a in added if not a.startswith("giltrace")} <= {
        "_cffi_backend",
        "_json",
        "_struct",
        "struct",
        "zlib",
        "math",
        "atexit",
        "__future__",
        "_xxsubinterpreters",
    }, added


def test_threads_started_after_a_late_import_of_threading_are_named(native, tmp_path):
    code = textwrap.dedent("""
        import sys
        assert "threading" not in sys.modules and any(type(f).__name__ == "_ThreadingImportWatcher" for f in sys.meta_path)
        import threading
        assert not any(type(f).__name__ == "_ThreadingImportWatcher" for f in sys.meta_path)
        t = threading.Thread(target=lambda: sum(range(10000)), name="short-lived")
        t.start(); t.join()
        """)
    res = run_python(code, env={"GILTRACE": str(tmp_path / "app.gtr")})
    assert res.returncode == 0, res.stderr
    (trace,) = traces_in(tmp_path).values()
    assert {"MainThread", "short-lived"} <= set(trace.threads()["name"])


def test_fork_sees_a_single_threaded_process(native, tmp_path):
    """3.12+ warns at os.fork() in a multi-threaded process; giltrace's writer
    thread steps aside, so a program with one thread stays single-threaded.
    Checked on every version: an after-fork hook, where 3.13 counts (3.12 a
    little earlier), counts the threads without releasing the GIL; the
    writer is back after the parent's next GIL transition (waitpid)."""
    code = textwrap.dedent("""
        import ctypes, os, warnings
        warnings.simplefilter("error", DeprecationWarning)
        libc = ctypes.PyDLL(None)  # PyDLL: calls keep the GIL, like CPython's own count
        counts = []
        def count():
            buf = ctypes.create_string_buffer(4096)
            fd = libc.open(b"/proc/self/stat", 0)
            n = libc.read(fd, buf, 4095)
            libc.close(fd)
            counts.append(int(buf.raw[:n].rsplit(b")", 1)[1].split()[17]))
        os.register_at_fork(after_in_parent=count)
        import giltrace
        giltrace.start(os.environ["OUT"])
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        count()
        giltrace.stop(load=False)
        print(counts)
        """)
    res = run_python(code, env={"OUT": str(tmp_path / "t.gtr")})
    assert res.returncode == 0 and res.stderr == "", res.stderr
    assert res.stdout.strip() == "[1, 2]"  # at fork: only the program's thread; after: the writer is back
    assert giltrace.load(str(tmp_path / "t.gtr")).complete


@pytest.mark.parametrize("kind", ["symlink", "fifo", "script"])
def test_run_refuses_unsafe_outputs_in_one_line(native, tmp_path, kind):
    script = tmp_path / "app.py"
    script.write_text("print('ran')\n")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out.gtr"
    if kind == "symlink":
        os.symlink(str(victim), str(out))
    elif kind == "fifo":
        os.mkfifo(str(out))
    else:
        out = script
    res = run_python(["-m", "giltrace", "run", "-o", str(out), str(script)], timeout=30)
    assert res.returncode == 2 and res.stdout == "" and len(res.stderr.splitlines()) == 1, res.stderr
    assert res.stderr.startswith("giltrace: error: refusing to write the trace")
    assert victim.read_text() == "precious\n" and script.read_text() == "print('ran')\n"


def test_giltrace_never_follows_a_planted_link_to_its_per_process_file(native, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    code = textwrap.dedent("""
        import os, giltrace
        path = os.path.join(os.environ["DIR"], "app.%d.gtr" % os.getpid())
        os.symlink(os.environ["VICTIM"], path)             # what an attacker plants in a shared directory
        try:
            giltrace.Tracer(path, overwrite=False).start()
        except giltrace.GiltraceError as exc:
            print(exc)
        """)
    res = run_python(code, env={"DIR": str(tmp_path), "VICTIM": str(victim)})
    assert res.returncode == 0 and "refusing to write the trace file" in res.stdout and "symbolic link" in res.stdout
    assert victim.read_text() == "precious\n"


def test_a_stale_trace_of_a_reused_pid_is_replaced_but_a_foreign_file_is_not(native, tmp_path):
    from giltrace.tracer import create_trace_file

    stale = tmp_path / "stale.gtr"
    stale.write_bytes(b"GILTRACE" + b"\0" * 100)
    fd, created = create_trace_file(str(stale), overwrite=False)
    os.close(fd)
    assert created and stale.stat().st_size == 0
    foreign = tmp_path / "notes.gtr"
    foreign.write_text("not a trace\n")
    with pytest.raises(giltrace.GiltraceError, match="refusing to overwrite"):
        create_trace_file(str(foreign), overwrite=False)
    assert foreign.read_text() == "not a trace\n"
    fd, created = create_trace_file(str(foreign), overwrite=True)  # named by the user: replaced
    os.close(fd)
    assert not created and foreign.stat().st_size == 0


def test_file_is_absolute_under_giltrace_run_as_under_python(native, tmp_path):
    script = tmp_path / "where.py"
    script.write_text("import os, sys\nprint(__file__ == os.path.abspath(__file__), sys.argv[0])\n")
    plain = run_python(["where.py"], cwd=str(tmp_path))
    traced = run_python(["-m", "giltrace", "run", "-q", "-o", "w.gtr", "where.py"], cwd=str(tmp_path))
    assert plain.stdout == traced.stdout == "True where.py\n"


def test_a_c_thread_keeps_its_os_name_after_running_python(native, tmp_path):
    ffi, lib = native
    import threading

    seen = []

    @ffi.callback("void(void)")
    def body():
        seen.append(threading.current_thread().name)  # makes a _DummyThread ("Dummy-1")
        sum(range(100000))

    with giltrace.trace(str(tmp_path / "c.gtr")) as tr:
        tid = lib.gt_test_c_thread_call(body)
    assert seen and seen[0].startswith("Dummy")
    assert tr.result.names.get(tid) == "gt-cthread"
