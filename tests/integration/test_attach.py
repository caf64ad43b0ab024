"""Targets for the attach / top tests: real programs started as separate
processes, and what we check in them from outside (/proc, gdb where present).

Every attach here goes through giltrace's own injector with gdb made
useless: the CLI's ``GILTRACE_GDB`` is a fake gdb that fails as Debian's gdb
13 does on a CPU with AMX.  Whether this machine can inject at all is
decided by the product's own probe (``giltrace.attach.inject.probe``)."""

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from ..conftest import REPO

GDB = shutil.which("gdb")

needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed (.ci/run installs it)")

# A gdb that fails every inferior call, as gdb 13.1 does on an AMX CPU (issue 21).
FAKE_GDB = os.path.join(tempfile.mkdtemp(prefix="giltrace-fake-gdb-"), "gdb")
with open(FAKE_GDB, "w") as _f:
    _f.write("#!/bin/sh\necho \"Couldn't write extended state status: Bad address.\" >&2\nexit 1\n")
os.chmod(FAKE_GDB, stat.S_IRWXU)


def _injector_problem():
    from giltrace.attach.inject import probe

    return probe()


INJECTOR_PROBLEM = _injector_problem()
needs_injector = pytest.mark.skipif(INJECTOR_PROBLEM is not None, reason="giltrace cannot inject here: %s" % INJECTOR_PROBLEM)


def ptrace_allowed() -> bool:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = int(f.read())
    except (OSError, ValueError):
        return True
    return scope == 0 or os.geteuid() == 0


needs_ptrace = pytest.mark.skipif(not ptrace_allowed(), reason="kernel.yama.ptrace_scope forbids attaching to a sibling process")


def traceable() -> bool:
    import giltrace

    return giltrace.unsupported_reason() is None


needs_tracer = pytest.mark.skipif(not traceable(), reason="this interpreter cannot be traced")

# A threaded HTTP server beside a CPU-bound thread; the main thread only joins.
HTTP_SERVER = r'''
import http.server, sys, threading

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok %d\n" % sum(range(2000))
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/quit":  # after the answer is out: the process ends soon after
            threading.Thread(target=server.shutdown, name="quitter").start()
    def log_message(self, *a):
        pass

stop = threading.Event()
def burn():
    x = 0
    while not stop.is_set():
        x += 1  # BURN
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
cpu = threading.Thread(target=burn, name="cpu-burner", daemon=True)
cpu.start()
serving = threading.Thread(target=server.serve_forever, name="http-server")
serving.start()
print("ready %d" % server.server_address[1], flush=True)
serving.join()
stop.set()
print("bye", flush=True)
sys.exit(3)
'''

# The main thread only joins three CPU-bound threads (no thread ever waits in I/O).
JOIN_MAIN = r'''
import sys, threading, time
def crunch(until):
    total = 0
    while time.monotonic() < until:
        for i in range(2000):
            total += i * i % 7  # CRUNCH
until = time.monotonic() + float(sys.argv[1])
threads = [threading.Thread(target=crunch, args=(until,), name="crunch-%d" % i) for i in range(3)]
for t in threads:
    t.start()
print("ready 0", flush=True)
for t in threads:
    t.join()
print("path %r" % (sys.path,), flush=True)
print("giltrace imported: %s" % ("giltrace" in sys.modules), flush=True)
print("bye", flush=True)
'''

# Every thread blocked outside Python: nothing ever reaches a safe point.
IDLE = r'''
import signal, sys, threading
got = []
signal.signal(signal.SIGINT, lambda *a: got.append("SIGINT"))
print("ready 0", flush=True)
threading.Event().wait(float(sys.argv[1]))
print("signals %s" % got, flush=True)
'''


class Target:
    """A program running in its own process, its first line ``ready PORT`` read."""

    def __init__(self, tmp_path, source: str, *args: str, python: str = sys.executable, env=None) -> None:
        script = tmp_path / ("target_%d.py" % (len(list(tmp_path.glob("target_*.py")))))
        script.write_text(source)
        full_env = dict(os.environ)
        full_env.pop("GILTRACE", None)
        full_env.pop("PYTHONPATH", None)  # the target must not see giltrace through the tests' path
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            [python, str(script)] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path), env=full_env
        )
        line = self.proc.stdout.readline()
        assert line.startswith("ready"), (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.port = int(line.split()[1])
        self.pid = self.proc.pid

    def finish(self, timeout: float = 60):
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def cli_env(env=None) -> dict:
    """The CLI's environment: this giltrace, no GILTRACE, and a gdb that cannot call anything."""
    full_env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""), GILTRACE_GDB=FAKE_GDB)
    full_env.pop("GILTRACE", None)
    full_env.pop("GILTRACE_INJECTOR", None)
    full_env.update(env or {})
    return full_env


def giltrace_cli(*args: str, timeout: float = 120, env=None) -> subprocess.CompletedProcess:
    full_env = cli_env(env)
    return subprocess.run(
        [sys.executable, "-m", "giltrace"] + list(args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def thread_names(pid: int) -> list:
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return names


def signal_masks(pid: int) -> dict:
    with open("/proc/%d/status" % pid) as f:
        return {k: v.strip() for k, v in (line.split(":", 1) for line in f) if k in ("SigCgt", "SigIgn", "SigBlk")}


HOOKED = ("pthread_mutex_lock", "pthread_mutex_unlock", "pthread_cond_timedwait", "pthread_cond_signal")


def got_slots(pid: int) -> dict:
    """What each GOT slot giltrace patches points at (gdb's ``info symbol``), read from outside."""
    cmd = [GDB, "-nx", "-batch", "-readnever", "-iex", "set auto-solib-add off", "-p", str(pid), "-ex", "sharedlibrary libpython"]
    for name in HOOKED:
        cmd += ["-ex", "echo SLOT %s \n" % name, "-ex", "info symbol *(void **)&'%s@got.plt'" % name]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    slots, current = {}, None
    for line in out.splitlines():
        if line.startswith("SLOT "):
            current = line.split()[1]
        elif current and current not in slots and (" in section " in line or "No symbol" in line):
            slots[current] = line.strip()
    return slots


def wait_until(predicate, timeout: float, step: float = 0.05) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


# -- the tests ---------------------------------------------------------------


class Client:
    """GET requests in a loop from a thread of the test, counting answers."""

    def __init__(self, port: int) -> None:
        import threading

        self.url = "http://127.0.0.1:%d/" % port
        self.ok, self.failed, self.times = 0, [], []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import urllib.request

        while not self._stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=20) as r:
                    assert r.status == 200 and r.read().startswith(b"ok")
                self.ok += 1
                self.times.append(time.monotonic())
            except Exception as exc:  # noqa: BLE001 - any failure is a test failure
                self.failed.append(repr(exc))
            time.sleep(0.002)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _quit_server(port: int) -> None:
    import urllib.request

    with urllib.request.urlopen("http://127.0.0.1:%d/quit" % port, timeout=20) as r:
        r.read()


pytestmark_attach = [needs_injector, needs_ptrace, needs_tracer]


@needs_injector
@needs_ptrace
@needs_tracer
def test_attach_to_a_threaded_http_server(tmp_path):
    import giltrace

    target = Target(tmp_path, HTTP_SERVER)
    client = Client(target.port)
    try:
        assert wait_until(lambda: client.ok >= 20, 30)
        slots_before = got_slots(target.pid) if GDB else {}
        masks_before = signal_masks(target.pid)
        assert not GDB or set(slots_before) == set(HOOKED), slots_before
        out = str(tmp_path / "server.gtr")
        t0 = time.monotonic()
        env = cli_env()
        cli = subprocess.Popen(
            [sys.executable, "-m", "giltrace", "attach", str(target.pid), "--duration", "3", "-o", out, "-v"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        try:
            import glob
            import tempfile

            private = os.path.join(tempfile.gettempdir(), "giltrace-attach-%d-*" % target.pid, "trace.gtr")
            # the trace has started (its file has data) and the injector has let go
            assert wait_until(lambda: any(os.path.getsize(f) > 0 for f in glob.glob(private)), 30)
            assert wait_until(lambda: "TracerPid:\t0\n" in open("/proc/%d/status" % target.pid).read(), 30)
            if GDB:
                slots_during = got_slots(target.pid)  # the hooks are in: the check below can see a difference
                assert slots_during["pthread_mutex_lock"] != slots_before["pthread_mutex_lock"], slots_during
            stdout, stderr = cli.communicate(timeout=60)
        finally:
            if cli.poll() is None:
                cli.kill()
                cli.communicate()
        res = subprocess.CompletedProcess(cli.args, cli.returncode, stdout, stderr)
        t1 = time.monotonic()
        assert res.returncode == 0, res.stderr
        assert "GIL events written to %s" % out in res.stderr
        assert "attached with ptrace at " in res.stderr  # giltrace's injector; the CLI's gdb cannot call anything
        during = [t for t in client.times if t0 + 1.0 < t < t1 - 0.2]
        assert during, "no request was answered while the trace ran"
        ok_after = client.ok
        assert wait_until(lambda: client.ok >= ok_after + 20, 30)
        assert client.failed == []
        # Left as it was: no giltrace thread, GOT slots and signal handlers as before.
        assert wait_until(lambda: not [n for n in thread_names(target.pid) if "giltrace" in n], 10), thread_names(target.pid)
        assert signal_masks(target.pid) == masks_before
        slots_after = got_slots(target.pid) if GDB else {}
        for name in slots_after:
            same = slots_after[name] == slots_before[name]
            assert same or slots_after[name].startswith(name + " in section .text of") and "libc" in slots_after[name], (
                name,
                slots_before[name],
                slots_after[name],
            )
        trace = giltrace.load(out)
        threads = trace.threads()
        names = set(threads["name"])
        assert {"cpu-burner", "http-server"} <= names, names
        handlers = threads[threads["name"].str.contains("process_request_thread")]
        assert len(handlers) >= 1, names
        burner = threads[threads["name"] == "cpu-burner"].iloc[0]
        assert burner["hold_s"] > 0.5 * trace.meta["duration_s"]  # the CPU thread holds the GIL most of the time
        assert (handlers["waits"].sum() + threads[threads["name"] == "http-server"]["waits"].sum()) > 5
    finally:
        client.stop()
        try:
            _quit_server(target.port)
            status, stdout, stderr = target.finish()
        finally:
            target.kill()
    assert (status, stdout.split()) == (3, ["bye"]), stderr
    assert stderr == ""


@needs_injector
@needs_ptrace
@needs_tracer
def test_attach_when_the_main_thread_only_joins_and_again_later(tmp_path):
    import giltrace

    target = Target(tmp_path, JOIN_MAIN, "30")  # two CLI runs take up to 8 s each on a loaded 2-CPU machine
    try:
        for i in range(2):  # attaching again after a detach works
            out = str(tmp_path / ("join%d.gtr" % i))
            res = giltrace_cli("attach", str(target.pid), "--duration", "1.5", "-o", out, "-v")
            assert res.returncode == 0, res.stderr
            # compute-only: caught in the eval breaker, right after a thread took the GIL
            assert "attached with ptrace at _PyThreadState_Swap" in res.stderr or "at _Py_HandlePending" in res.stderr, res.stderr
            threads = giltrace.load(out).threads()
            crunch = threads[threads["name"].str.startswith("crunch-")]
            assert len(crunch) == 3, set(threads["name"])
            assert (crunch["waits"] > 10).all() and (crunch["hold_s"] > 0.1).all()
            assert wait_until(lambda: not [n for n in thread_names(target.pid) if "giltrace" in n], 10)
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert status == 0 and stdout.rstrip().endswith("bye"), stderr
    assert "giltrace imported: True" in stdout  # documented: importing giltrace adds modules
    assert stderr == ""


def _venv_without_giltrace(tmp_path) -> str:
    base = getattr(sys, "_base_executable", sys.executable)
    env_dir = tmp_path / "other-env"
    subprocess.run([base, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    python = str(env_dir / "bin" / "python")
    probe = subprocess.run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('giltrace'), u.find_spec('_cffi_backend'))"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
        env={"PATH": os.environ.get("PATH", "")},
    )
    assert probe.stdout.split() == ["None", "None"], probe.stdout + probe.stderr
    return python


@needs_injector
@needs_ptrace
@needs_tracer
def test_attach_to_a_target_in_another_environment(tmp_path):
    """The target's environment has neither giltrace nor cffi: the attach
    brings this giltrace's own (by file location) and leaves sys.path alone."""
    import giltrace

    python = _venv_without_giltrace(tmp_path)
    target = Target(tmp_path, JOIN_MAIN, "15", python=python)  # the CLI takes up to 8 s on a loaded 2-CPU machine
    try:
        out = str(tmp_path / "other.gtr")
        res = giltrace_cli("attach", str(target.pid), "--duration", "1.5", "-o", out)
        assert res.returncode == 0, res.stderr
        names = set(giltrace.load(out).threads()["name"])
        assert {"crunch-0", "crunch-1", "crunch-2"} <= names
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert status == 0 and stderr == ""
    path_line = [line for line in stdout.splitlines() if line.startswith("path ")][0]
    assert str(tmp_path) in path_line and REPO not in path_line  # sys.path untouched


@needs_injector
@needs_ptrace
@needs_tracer
def test_attach_while_a_trace_runs_there_says_so(tmp_path):
    script = tmp_path / "traced.py"
    script.write_text(JOIN_MAIN)
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.Popen(
        [sys.executable, "-m", "giltrace", "run", "-q", "-o", str(tmp_path / "own.gtr"), str(script), "8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=str(tmp_path),
    )
    try:
        assert proc.stdout.readline().startswith("ready")
        res = giltrace_cli("attach", str(proc.pid), "--duration", "1", "-o", str(tmp_path / "second.gtr"))
        assert res.returncode != 0
        assert "a trace is already running in process %d" % proc.pid in res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0 and err == ""
    import giltrace

    assert giltrace.load(str(tmp_path / "own.gtr")).complete  # the program's own trace is untouched


@needs_injector
@needs_ptrace
@needs_tracer
def test_the_target_exits_during_the_trace(tmp_path):
    import giltrace

    target = Target(tmp_path, JOIN_MAIN, "6")
    try:
        out = str(tmp_path / "short.gtr")
        res = giltrace_cli("attach", str(target.pid), "--duration", "30", "-o", out)
        assert res.returncode == 1
        assert "process %d exited during the trace; the file holds everything up to its last flush: %s" % (target.pid, out) in res.stderr
        trace = giltrace.load(out, warn=False)
        assert len(trace.events) > 0 and {"crunch-0", "crunch-1"} <= set(trace.threads()["name"])
        status, _, _ = target.finish()
    finally:
        target.kill()
    assert status == 0


@needs_injector
@needs_ptrace
@needs_tracer
def test_no_safe_point_in_an_idle_target_leaves_it_alone(tmp_path):
    target = Target(tmp_path, IDLE, "6")
    try:
        res = giltrace_cli("attach", str(target.pid), "--attach-timeout", "1", "-o", str(tmp_path / "idle.gtr"))
        assert res.returncode == 1
        assert "no thread of process %d took the GIL within 1 s" % target.pid in res.stderr
        assert not os.path.exists(tmp_path / "idle.gtr")
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    # gdb's wake-up signal was never delivered to the program
    assert (status, stdout.splitlines()[-1], stderr) == (0, "signals []", "")


# A SIGTRAP handler, and SIGTRAP blocked in every thread (as a program that
# takes its signals with sigwait does): an int3's SIGTRAP, delivered by
# force, would unblock it and reset the handler to SIG_DFL process-wide.
SIGTRAP_BLOCKED = r'''
import signal, sys, threading, time
signal.signal(signal.SIGTRAP, lambda *a: print("handler ran", flush=True))
signal.pthread_sigmask(signal.SIG_BLOCK, set(signal.valid_signals()))
def work(until):
    while time.monotonic() < until:
        sum(range(5000)); time.sleep(0.005)
until = time.monotonic() + float(sys.argv[1])
threading.Thread(target=work, args=(until,)).start()
print("ready 0", flush=True)
work(until)
print("bye", flush=True)
'''


def _signal_state(pid: int) -> list:
    return [signal_masks(pid)] + [
        open("/proc/%d/task/%s/status" % (pid, t)).read().split("SigBlk:")[1].split()[0] for t in os.listdir("/proc/%d/task" % pid)
    ]


@needs_injector
@needs_ptrace
@needs_tracer
def test_a_blocked_and_handled_sigtrap_is_refused_and_left_alone(tmp_path):
    target = Target(tmp_path, SIGTRAP_BLOCKED, "8")
    try:
        before = _signal_state(target.pid)
        res = giltrace_cli("attach", str(target.pid), "--duration", "1", "-o", str(tmp_path / "trap.gtr"))
        _one_line_error(res, "cannot attach to process %d without changing its signal handling" % target.pid)
        assert _signal_state(target.pid) == before  # the handler (SigCgt) and every thread's mask as they were
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert (status, stdout, stderr) == (0, "bye\n", "")  # no "handler ran"


def _text_bytes(pid: int, names) -> dict:
    """The first bytes of functions in the target's memory (an int3 of ours shows as 0xcc)."""
    from giltrace.attach import symbols

    where = symbols.lookup(pid, set(names))
    where["entry"] = symbols.entry_point(pid)
    with open("/proc/%d/mem" % pid, "rb", buffering=0) as f:
        return {name: os.pread(f.fileno(), 16, addr) for name, addr in where.items()}


@needs_injector
@needs_ptrace
@needs_tracer
def test_ctrl_c_while_waiting_for_a_safe_point_leaves_the_target_as_it_was(tmp_path):
    import signal

    target = Target(tmp_path, IDLE, "12")
    names = ("PyEval_SaveThread", "PyRun_SimpleStringFlags")
    try:
        before = _text_bytes(target.pid, names)
        cli = _attach_in_background(target.pid, "--attach-timeout", "60", "-o", str(tmp_path / "c.gtr"))
        try:  # the int3s are in: the helper waits for a thread that never comes
            assert wait_until(lambda: _text_bytes(target.pid, names)["PyEval_SaveThread"][:1] == b"\xcc", 60, 0.01)
            cli.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            _, stderr = cli.communicate(timeout=60)
        finally:
            if cli.poll() is None:
                cli.kill()
        assert time.monotonic() - t0 < 20  # not the 60 s of --attach-timeout (seen: 0.8 s)
        assert cli.returncode == 130 and stderr.strip().splitlines() == [
            "giltrace: error: interrupted while attaching: nothing ran in process %d, which runs on as before" % target.pid
        ], stderr
        assert _text_bytes(target.pid, names) == before
        assert "TracerPid:\t0\n" in open("/proc/%d/status" % target.pid).read()
        assert not os.path.exists(tmp_path / "c.gtr")
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert (status, stdout.splitlines()[-1], stderr) == (0, "signals []", "")  # the CLI's SIGINT never reached it


# -- errors --------------------------------------------------------------------


def _one_line_error(res, expected: str) -> None:
    assert res.returncode != 0
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], res.stderr


def test_no_such_process(tmp_path):
    pid = 4194000
    while os.path.exists("/proc/%d" % pid):
        pid += 1
    _one_line_error(giltrace_cli("attach", str(pid)), "no such process: %d" % pid)


def test_not_a_cpython_process(tmp_path):
    proc = subprocess.Popen(["sleep", "30"])
    try:
        _one_line_error(giltrace_cli("attach", str(proc.pid)), "is not a CPython process")
    finally:
        proc.kill()
        proc.wait()


def test_a_stopped_process(tmp_path):
    import signal

    target = Target(tmp_path, IDLE, "30")
    try:
        os.kill(target.pid, signal.SIGSTOP)
        assert wait_until(lambda: open("/proc/%d/status" % target.pid).read().count("State:\tT"), 10)
        _one_line_error(
            giltrace_cli("attach", str(target.pid)), "is stopped (T (stopped)): resume it first with kill -CONT %d" % target.pid
        )
        os.kill(target.pid, signal.SIGCONT)
    finally:
        target.kill()


@needs_gdb
@needs_ptrace
def test_a_process_in_a_debugger(tmp_path):
    target = Target(tmp_path, IDLE, "30")
    debugger = subprocess.Popen(
        [GDB, "-nx", "-batch", "-p", str(target.pid), "-ex", "shell sleep 20"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: "TracerPid:\t0\n" not in open("/proc/%d/status" % target.pid).read(), 30)
        _one_line_error(giltrace_cli("attach", str(target.pid)), "is already being traced by process")
    finally:
        debugger.kill()
        debugger.wait()
        target.kill()


def test_the_gdb_fallback_without_gdb(tmp_path):
    target = Target(tmp_path, IDLE, "30")
    try:
        res = giltrace_cli("attach", str(target.pid), env={"GILTRACE_INJECTOR": "gdb", "GILTRACE_GDB": str(tmp_path / "no-gdb")})
        _one_line_error(res, "no debugger found: giltrace attach needs gdb (apt-get install gdb")
    finally:
        target.kill()


def test_the_gdb_fallback_on_a_cpu_where_gdb_cannot_call(tmp_path):
    """gdb 13 on an AMX CPU: the error says why, and that the default needs no gdb."""
    target = Target(tmp_path, IDLE, "30")
    try:
        res = giltrace_cli("attach", str(target.pid), env={"GILTRACE_INJECTOR": "gdb"})
        _one_line_error(res, "gdb cannot call functions in process %d on this CPU" % target.pid)
        assert "giltrace's own injector does not need gdb: unset GILTRACE_INJECTOR" in res.stderr
        assert target.proc.poll() is None
    finally:
        target.kill()


def test_an_unknown_injector_is_refused(tmp_path):
    target = Target(tmp_path, IDLE, "30")
    try:
        _one_line_error(
            giltrace_cli("attach", str(target.pid), env={"GILTRACE_INJECTOR": "lldb"}), "GILTRACE_INJECTOR=lldb: expected ptrace or gdb"
        )
    finally:
        target.kill()


def _other_python():
    import glob

    ours = "%d.%d" % sys.version_info[:2]
    for path in sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.*/bin/python3.*"))) + sorted(glob.glob("/usr/bin/python3.*")):
        name = os.path.basename(path)
        if name.startswith("python3.") and name[len("python") :] != ours and name[len("python") :].replace(".", "").isdigit():
            return path
    return None


@pytest.mark.skipif(_other_python() is None, reason="no CPython of another version on this machine")
def test_a_target_of_another_python_version(tmp_path):
    python = _other_python()
    target = Target(tmp_path, IDLE, "30", python=python)
    try:
        res = giltrace_cli("attach", str(target.pid))
        version = os.path.basename(python)[len("python") :]
        _one_line_error(
            res, "process %d runs CPython %s but this giltrace is built for %d.%d" % ((target.pid, version) + sys.version_info[:2])
        )
    finally:
        target.kill()


def test_permission_rules_name_the_setting(monkeypatch):
    """Checked on /proc values (the tests run as root, who may attach anywhere)."""
    from giltrace.attach import target as t

    monkeypatch.setattr(t, "_has_cap", lambda bit: False)
    monkeypatch.setattr(t.os, "geteuid", lambda: 1000)
    with pytest.raises(t.AttachError, match="belongs to user .*run giltrace as that user or as root"):
        t.check_permission(1, {"Uid": "0\t0\t0\t0"})
    monkeypatch.setattr(t, "ptrace_scope", lambda: 1)
    monkeypatch.setattr(t, "_is_descendant", lambda pid: False)
    with pytest.raises(t.AttachError, match=r"kernel.yama.ptrace_scope is 1 .*sysctl kernel.yama.ptrace_scope=0"):
        t.check_permission(1, {"Uid": "1000\t1000\t1000\t1000"})
    monkeypatch.setattr(t, "ptrace_scope", lambda: 2)
    with pytest.raises(t.AttachError, match="ptrace_scope is 2"):
        t.check_permission(1, {"Uid": "1000\t1000\t1000\t1000"})


def test_free_threaded_and_old_interpreters_are_refused(monkeypatch):
    from giltrace.attach import target as t
    from giltrace.errors import UnsupportedInterpreter

    monkeypatch.setattr(t, "status", lambda pid: {"State": "S (sleeping)", "TracerPid": "0", "Uid": "0\t0\t0\t0", "Gid": "0\t0\t0\t0"})
    monkeypatch.setattr(t, "check_permission", lambda pid, st: None)
    monkeypatch.setattr(t, "python_of", lambda pid: ((3, 13), "t", "/usr/bin/python3.13t"))
    with pytest.raises(UnsupportedInterpreter, match="free-threaded CPython 3.13: it has no GIL"):
        t.inspect(12345)
    monkeypatch.setattr(t, "python_of", lambda pid: ((3, 8), "", "/usr/bin/python3.8"))
    with pytest.raises(UnsupportedInterpreter, match="giltrace traces 3.9 to 3.13"):
        t.inspect(12345)


def test_a_314_target_needs_remote_exec(monkeypatch):
    from giltrace.attach import inject
    from giltrace.attach.target import AttachError, Target as T

    monkeypatch.delattr(sys, "remote_exec", raising=False)
    with pytest.raises(AttachError, match=r"CPython 3.14: attach to it with a giltrace running on CPython 3.14\+"):
        inject.choose(T(1, 0, 0, "/usr/bin/python3.14", (3, 14), ""), 5.0)
    monkeypatch.delenv("GILTRACE_INJECTOR", raising=False)
    assert isinstance(inject.choose(T(1, 0, 0, "/usr/bin/python3.11", (3, 11), ""), 5.0), inject.PtraceInjector)
    monkeypatch.setenv("GILTRACE_INJECTOR", "gdb")
    assert isinstance(inject.choose(T(1, 0, 0, "/usr/bin/python3.11", (3, 11), ""), 5.0), inject.GdbInjector)


def test_other_machines_are_refused_in_one_line(monkeypatch):
    from giltrace.attach import inject
    from giltrace.attach.target import AttachError, Target as T

    monkeypatch.setattr(inject.platform, "machine", lambda: "aarch64")
    monkeypatch.delenv("GILTRACE_INJECTOR", raising=False)
    assert inject.unsupported_machine() == "giltrace attach runs on x86-64 Linux only (this is linux aarch64)"
    assert inject.probe() == inject.unsupported_machine()
    with pytest.raises(AttachError, match=r"^giltrace attach runs on x86-64 Linux only \(this is linux aarch64\)$"):
        inject.choose(T(1, 0, 0, "/usr/bin/python3.11", (3, 11), ""), 5.0)


def test_the_probe_says_why_it_cannot_inject(monkeypatch):
    from giltrace.attach import inject
    from giltrace.attach.target import AttachError

    def refuse(self, target, code):
        raise AttachError("not permitted to attach to process %d (ptrace: Operation not permitted)" % target.pid)

    monkeypatch.setattr(inject.PtraceInjector, "inject", refuse)
    assert "not permitted to attach to process" in (inject.probe() or "")


def _gdb_can_call() -> bool:
    """Can this machine's gdb call a function in a process (not on an AMX CPU with gdb 13)?"""
    if GDB is None:
        return False
    child = subprocess.Popen(["sleep", "30"])
    try:
        out = subprocess.run(
            [GDB, "-nx", "-iex", "set auto-load off", "-batch", "-p", str(child.pid), "-ex", "print (int)getpid()"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return ("= %d" % child.pid) in out.stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    finally:
        child.kill()
        child.wait()


@needs_ptrace
@needs_tracer
def test_the_gdb_fallback_still_attaches_where_gdb_can_call(tmp_path):
    if not _gdb_can_call():
        pytest.skip("gdb cannot make calls in a process here (not installed, or gdb 13 on an AMX CPU)")
    import giltrace

    target = Target(tmp_path, JOIN_MAIN, "15")
    try:
        out = str(tmp_path / "gdb.gtr")
        res = giltrace_cli(
            "attach", str(target.pid), "--duration", "1", "-o", out, "-v", env={"GILTRACE_INJECTOR": "gdb", "GILTRACE_GDB": GDB}
        )
        assert res.returncode == 0, res.stderr
        assert "attached with gdb at " in res.stderr
        assert {"crunch-0", "crunch-1"} <= set(giltrace.load(out).threads()["name"])
        status, _, stderr = target.finish()
    finally:
        target.kill()
    assert (status, stderr) == (0, "")


def test_the_bootstrap_binds_nothing_and_starts_one_thread():
    """What runs at the safe point: one statement, no name bound in __main__."""
    import ast

    from giltrace.attach.bootstrap import bootstrap_code, loader_source

    code = bootstrap_code({"socket": "/nonexistent/ctl", "trace": "/nonexistent/t.gtr", "package": "/x"})
    tree = ast.parse(code)
    assert len(tree.body) == 1 and isinstance(tree.body[0], ast.Try)
    stores = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)]
    assert stores == [] and all(h.name is None for h in tree.body[0].handlers)
    ast.parse(loader_source({"socket": "s", "trace": "t", "package": "p"}))
    ns = {}
    exec(
        compile(loader_source({"socket": "/nonexistent/ctl", "trace": "t", "package": "p"}), "<loader>", "exec"), ns
    )  # no CLI: returns quietly


def _attach_in_background(pid: int, *args: str) -> subprocess.Popen:
    env = cli_env()
    return subprocess.Popen(
        [sys.executable, "-m", "giltrace", "attach", str(pid)] + list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
    )


@needs_injector
@needs_ptrace
@needs_tracer
def test_ctrl_c_stops_the_trace(tmp_path):
    import signal

    import giltrace

    target = Target(tmp_path, JOIN_MAIN, "30")
    out = str(tmp_path / "ctrlc.gtr")
    cli = _attach_in_background(target.pid, "-o", out)
    try:
        assert wait_until(lambda: "giltrace-attach" in thread_names(target.pid), 30)
        time.sleep(1.0)
        cli.send_signal(signal.SIGINT)
        _, stderr = cli.communicate(timeout=60)
        assert cli.returncode == 0, stderr
        assert "GIL events written to %s" % out in stderr
        assert giltrace.load(out).complete
        assert wait_until(lambda: not [n for n in thread_names(target.pid) if "giltrace" in n], 10)
    finally:
        if cli.poll() is None:
            cli.kill()
        target.kill()


@needs_injector
@needs_ptrace
@needs_tracer
def test_a_killed_cli_leaves_nothing_behind(tmp_path):
    """The agent sees its socket close: it stops the trace, its thread ends
    and it removes the private directory."""
    import glob
    import signal
    import tempfile

    target = Target(tmp_path, JOIN_MAIN, "30")
    pattern = os.path.join(tempfile.gettempdir(), "giltrace-attach-%d-*" % target.pid)
    cli = _attach_in_background(target.pid, "-o", str(tmp_path / "killed.gtr"))
    try:
        assert wait_until(lambda: "giltrace-attach" in thread_names(target.pid), 30)
        assert glob.glob(pattern)
        cli.send_signal(signal.SIGKILL)
        cli.communicate(timeout=30)
        assert wait_until(lambda: not [n for n in thread_names(target.pid) if "giltrace" in n], 10), thread_names(target.pid)
        assert wait_until(lambda: not glob.glob(pattern), 10), glob.glob(pattern)
        assert target.proc.poll() is None
    finally:
        if cli.poll() is None:
            cli.kill()
        target.kill()


@needs_injector
@needs_ptrace
@needs_tracer
def test_sigterm_to_the_cli_stops_the_trace_cleanly(tmp_path):
    """A closed terminal or a `kill` ends giltrace attach like Ctrl-C: file written, nothing left behind."""
    import glob
    import signal
    import tempfile

    import giltrace

    target = Target(tmp_path, JOIN_MAIN, "30")
    out = str(tmp_path / "term.gtr")
    cli = _attach_in_background(target.pid, "-o", out)
    try:
        assert wait_until(lambda: "giltrace-attach" in thread_names(target.pid), 30)
        time.sleep(0.5)
        cli.send_signal(signal.SIGTERM)
        _, stderr = cli.communicate(timeout=60)
        assert cli.returncode == 0, stderr
        assert giltrace.load(out).complete
        assert glob.glob(os.path.join(tempfile.gettempdir(), "giltrace-attach-%d-*" % target.pid)) == []
        assert wait_until(lambda: not [n for n in thread_names(target.pid) if "giltrace" in n], 10)
    finally:
        if cli.poll() is None:
            cli.kill()
        target.kill()


# -- giltrace's injector: what the target was doing goes on unchanged ---------

# The main thread blocks in one system call, called through ctypes so that an
# EINTR would show (Python's own wrappers retry, PEP 475); a ticker thread
# gives the injector its safe point.
BLOCKED_MAIN = r'''
import ctypes, socket, sys, threading, time
libc = ctypes.CDLL(None, use_errno=True)
def tick():
    while True:
        time.sleep(0.005)
threading.Thread(target=tick, name="ticker", daemon=True).start()
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print("ready %d" % srv.getsockname()[1], flush=True)
mode, t0 = sys.argv[1], time.monotonic()
if mode == "nanosleep":
    class timespec(ctypes.Structure):
        _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]
    rc = libc.clock_nanosleep(1, 0, ctypes.byref(timespec(int(sys.argv[2]), 0)), None)  # CLOCK_MONOTONIC
    print("nanosleep rc %d slept %.3f" % (rc, time.monotonic() - t0), flush=True)
elif mode == "sleep":
    time.sleep(float(sys.argv[2]))
    print("sleep slept %.3f" % (time.monotonic() - t0), flush=True)
elif mode == "accept":
    fd = libc.accept(srv.fileno(), None, None)
    err = ctypes.get_errno() if fd < 0 else 0
    data = socket.socket(fileno=fd).recv(16) if fd >= 0 else b""
    print("accept errno %d data %r" % (err, data), flush=True)
elif mode == "select":
    class fdset(ctypes.Structure):
        _fields_ = [("bits", ctypes.c_ulong * 16)]
    s = fdset()
    s.bits[srv.fileno() // 64] |= 1 << (srv.fileno() % 64)
    n = libc.select(srv.fileno() + 1, ctypes.byref(s), None, None, None)
    err = ctypes.get_errno() if n < 0 else 0
    conn, _ = srv.accept()
    print("select n %d errno %d data %r" % (n, err, conn.recv(16)), flush=True)
'''


@needs_injector
@needs_ptrace
@needs_tracer
@pytest.mark.parametrize("mode", ["nanosleep", "sleep", "accept", "select"])
def test_a_main_thread_blocked_in_a_system_call_goes_on_unchanged(tmp_path, mode):
    """The detach interrupts every thread; the main thread's call restarts
    (the kernel's restart rules): no EINTR, a sleep sleeps its full time, an
    accept still returns the connection."""
    import socket

    target = Target(tmp_path, BLOCKED_MAIN, mode, "5")
    try:
        t0 = time.monotonic()
        res = giltrace_cli("attach", str(target.pid), "--duration", "1", "-o", str(tmp_path / "blocked.gtr"), "-v")
        assert res.returncode == 0, res.stderr
        assert "attached with ptrace at " in res.stderr
        if mode in ("accept", "select"):
            with socket.create_connection(("127.0.0.1", target.port), timeout=20) as c:
                c.sendall(b"hello")
                status, stdout, stderr = target.finish()
        else:
            assert time.monotonic() - t0 < 5, "the attach took the whole sleep: nothing was checked"
            status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert status == 0 and stderr == "", stderr
    words = stdout.split()
    if mode == "nanosleep":
        assert words[:3] == ["nanosleep", "rc", "0"] and float(words[4]) >= 4.99, stdout
    elif mode == "sleep":
        assert float(words[2]) >= 4.99, stdout
    elif mode == "accept":
        assert words == ["accept", "errno", "0", "data", "b'hello'"], stdout
    else:
        assert words == ["select", "n", "1", "errno", "0", "data", "b'hello'"], stdout


# 50 short-lived threads at a time, created and ending all through the attach.
CHURN = r'''
import sys, threading, time
until = time.monotonic() + float(sys.argv[1])
made = 0
def short():
    sum(range(3000))
    time.sleep(0.001)
print("ready 0", flush=True)
while time.monotonic() < until:
    ts = [threading.Thread(target=short) for _ in range(50)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    made += 50
print("made %d" % made, flush=True)
print("bye", flush=True)
'''


@needs_injector
@needs_ptrace
@needs_tracer
def test_threads_created_and_ending_during_the_attach(tmp_path):
    import giltrace

    stdout, traces = _attach_twice_then_let_it_end(tmp_path, CHURN)
    assert all(len(giltrace.load(out).threads()) > 10 for out in traces)
    assert stdout.split()[-1] == "bye" and int(stdout.split()[1]) > 100


def _attach_twice_then_let_it_end(tmp_path, source: str) -> "tuple[str, list]":
    """Two CLI attaches (1 s each) to ``source`` (run for 10 s), then its end:
    exit status 0 and nothing on stderr.  Its stdout, and the two traces."""
    target = Target(tmp_path, source, "10")
    traces = [str(tmp_path / ("twice%d.gtr" % i)) for i in range(2)]
    try:
        for out in traces:
            res = giltrace_cli("attach", str(target.pid), "--duration", "1", "-o", out)
            assert res.returncode == 0, res.stderr
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert (status, stderr) == (0, ""), stderr
    return stdout, traces


@needs_injector
@needs_ptrace
def test_the_target_exits_while_being_attached(tmp_path):
    """It is killed (SIGTERM, default action) while the injector waits for a
    safe point: the signal is passed on, and the CLI says it exited."""
    import signal

    target = Target(tmp_path, IDLE, "60")
    cli = subprocess.Popen(
        [sys.executable, "-m", "giltrace", "attach", str(target.pid), "--attach-timeout", "60", "-o", str(tmp_path / "gone.gtr")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        stdin=subprocess.DEVNULL,
    )
    try:
        assert wait_until(lambda: "TracerPid:\t0\n" not in open("/proc/%d/status" % target.pid).read(), 60)
        os.kill(target.pid, signal.SIGTERM)
        stdout, stderr = cli.communicate(timeout=60)
        status, _, _ = target.finish()
    finally:
        if cli.poll() is None:
            cli.kill()
        target.kill()
    _one_line_error(
        subprocess.CompletedProcess(cli.args, cli.returncode, stdout, stderr), "process %d exited before giltrace could attach" % target.pid
    )
    assert status == -signal.SIGTERM  # passed on to it as without us


def _pythons():
    found = []
    for version in ("3.9.18", "3.10.13", "3.12.1", "3.13.0"):
        short = version.rsplit(".", 1)[0]
        found.append(pytest.param(os.path.expanduser("~/.pyenv/versions/%s/bin/python%s" % (version, short)), id=short))
    found.append(pytest.param("/usr/bin/python3.11", id="debian-3.11"))
    return found


@needs_injector
@needs_ptrace
@pytest.mark.parametrize("python", _pythons())
@pytest.mark.parametrize("kind", ["compute", "io"])
def test_the_injector_on_other_interpreters(tmp_path, python, kind):
    """The injection alone (the trace needs giltrace built for that version):
    the code runs once in the target, which then ends as it would have."""
    if not os.access(python, os.X_OK):
        pytest.skip("%s is not installed" % python)
    from giltrace.attach.inject import PtraceInjector
    from giltrace.attach.target import inspect

    source = JOIN_MAIN if kind == "compute" else BLOCKED_MAIN
    args = ("4",) if kind == "compute" else ("sleep", "4")
    target = Target(tmp_path, source, *args, python=python)
    try:
        marker = tmp_path / "marker"
        injection = PtraceInjector(10.0).inject(inspect(target.pid), "open(%r, 'a').write('ran\\n')" % str(marker))
        expected = {"compute": ("_PyThreadState_Swap", "_Py_HandlePending"), "io": ("PyEval_SaveThread", "_PyThreadState_Swap")}
        assert injection.safe_point in expected[kind]
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert marker.read_text() == "ran\n"
    assert (status, stderr) == (0, ""), stderr
    assert stdout.split()[-1] == "bye" if kind == "compute" else float(stdout.split()[2]) >= 3.99


@pytest.mark.skipif(
    not os.access("/usr/bin/python3.11", os.X_OK) or sys.version_info[:2] != (3, 11),
    reason="needs Debian's python3.11 and giltrace on 3.11",
)
@needs_injector
@needs_ptrace
@needs_tracer
def test_attach_to_debians_static_python(tmp_path):
    """No libpython in its map: the symbols come from the executable itself."""
    import giltrace

    target = Target(tmp_path, JOIN_MAIN, "12", python="/usr/bin/python3.11")
    try:
        out = str(tmp_path / "debian.gtr")
        res = giltrace_cli("attach", str(target.pid), "--duration", "1.5", "-o", out)
        assert res.returncode == 0, res.stderr
        assert {"crunch-0", "crunch-1", "crunch-2"} <= set(giltrace.load(out).threads()["name"])
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert status == 0 and stderr == "" and stdout.rstrip().endswith("bye")


@needs_injector
@needs_ptrace
@pytest.mark.parametrize("bad", ["faults", "never-returns"])
def test_a_call_that_goes_wrong_is_undone(tmp_path, bad):
    """A call in the target that faults (SIGSEGV, not delivered) or blocks
    (pause(), abandoned after the call timeout): the thread gets its registers
    back (orig_rax included: the pause is not "restarted") and the program
    goes on as if nothing happened; the bootstrap never runs."""
    from giltrace.attach import inject, symbols
    from giltrace.attach.target import inspect

    marker = tmp_path / "marker"
    target = Target(tmp_path, BLOCKED_MAIN, "sleep", "4")
    try:
        params = inject.PtraceInjector(10.0).params(inspect(target.pid), "open(%r, 'w').write('ran')" % str(marker))
        if bad == "faults":
            params["addresses"]["PyErr_Occurred"] = 8  # nothing mapped there
        else:
            params["addresses"]["PyErr_Occurred"] = symbols.lookup(target.pid, ["pause"], [r"/libc[.-][^/]*$"])["pause"]
            params["call_timeout_s"] = 2.0
        result = inject.run_helper(params, 120)
        assert result is not None and not result["ok"], result
        assert result["error"] == ("crash" if bad == "faults" else "call"), result
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert not marker.exists()
    assert (status, stderr) == (0, "") and float(stdout.split()[2]) >= 3.99, stdout + stderr


# Forks all the time; each child goes through PyEval_SaveThread (an int3
# copied into it there would kill it with SIGTRAP) and exits 7.
FORKER = r'''
import os, sys, threading, time
def tick():
    while True:
        time.sleep(0.002)
threading.Thread(target=tick, name="ticker", daemon=True).start()
print("ready 0", flush=True)
until, n, bad = time.monotonic() + float(sys.argv[1]), 0, 0
while time.monotonic() < until:
    pid = os.fork()
    if pid == 0:
        time.sleep(0.01)
        os._exit(7)
    _, st = os.waitpid(pid, 0)
    n += 1
    bad += not (os.WIFEXITED(st) and os.WEXITSTATUS(st) == 7)
print("forks %d bad %d" % (n, bad), flush=True)
'''


@needs_injector
@needs_ptrace
@needs_tracer
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ warns about fork() in a threaded process")
def test_children_forked_during_the_attach_get_the_original_bytes(tmp_path):
    stdout, _ = _attach_twice_then_let_it_end(tmp_path, FORKER)
    words = stdout.split()
    assert words[0] == "forks" and int(words[1]) > 10 and words[2:] == ["bad", "0"], stdout


@needs_injector
@needs_ptrace
@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.12+ warns about fork() in a threaded process")
def test_a_child_forked_while_the_int3s_are_in_gets_the_original_bytes(tmp_path):
    """Deterministic: the only safe point is one that only forked children
    run (PyOS_AfterFork_Child), so every child is forked with the int3 in
    its copy of the memory; each must still exit 7."""
    from giltrace.attach import inject, symbols
    from giltrace.attach.target import inspect

    target = Target(tmp_path, FORKER, "4")
    try:
        params = inject.PtraceInjector(2.0).params(inspect(target.pid), "pass")
        params["addresses"].update(symbols.lookup(target.pid, ["PyOS_AfterFork_Child"]))
        params["safe_points"] = [("PyOS_AfterFork_Child", False, False)]
        result = inject.run_helper(params, 120)
        assert result is not None and result.get("error") == "no-safe-point", result
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert (status, stderr) == (0, ""), stderr
    words = stdout.split()
    assert words[0] == "forks" and int(words[1]) > 10 and words[2:] == ["bad", "0"], stdout


# A thread in a sub-interpreter reaches PyEval_SaveThread every millisecond;
# the main interpreter's ticker only every 200 ms.
SUBINTERPRETER = r'''
import sys, threading, time
import _xxsubinterpreters as subs
def sub():
    i = subs.create()
    subs.run_string(i, "import time\nt, n = time.monotonic(), 0\nwhile time.monotonic() - t < %s:\n    time.sleep(0.001)\n    n += 1\nprint('sub', n, flush=True)\n" % sys.argv[1])
th = threading.Thread(target=sub, name="sub")
th.start()
def tick():
    while True:
        time.sleep(0.2)
threading.Thread(target=tick, name="ticker", daemon=True).start()
print("ready 0", flush=True)
th.join()
print("bye", flush=True)
'''


@needs_injector
@needs_ptrace
@pytest.mark.skipif(sys.version_info[:2] != (3, 11), reason="the _xxsubinterpreters API of 3.11")
def test_a_hit_in_a_sub_interpreter_is_passed_over(tmp_path):
    """Hits in another interpreter fail the checks: that thread is stepped past
    the safe point and goes on; the main interpreter's thread is used."""
    from giltrace.attach.inject import PtraceInjector
    from giltrace.attach.target import inspect

    marker = tmp_path / "marker"
    target = Target(tmp_path, SUBINTERPRETER, "3")
    try:
        injection = PtraceInjector(10.0).inject(
            inspect(target.pid), "import threading; open(%r, 'w').write(threading.current_thread().name)" % str(marker)
        )
        status, stdout, stderr = target.finish()
    finally:
        target.kill()
    assert marker.read_text() in ("ticker", "MainThread", "sub")
    assert marker.read_text() != "sub"  # the sub-interpreter's thread was never used
    assert (status, stderr) == (0, ""), stderr
    words = stdout.split()
    assert words[:1] == ["sub"] and int(words[1]) > 100 and words[-1] == "bye", stdout
    assert len(injection.stops_ms) >= 3, injection  # rejected hits, the hit used, the detach
