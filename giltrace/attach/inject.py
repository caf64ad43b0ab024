"""Ways into a running CPython: each runs a short piece of Python source
(giltrace/attach/bootstrap.py) in the target at a safe point.

* :class:`PtraceInjector` (CPython 3.9-3.13, x86-64 Linux; the default):
  giltrace's own ptrace code (giltrace/attach/ptrace_inject.py, run as a
  helper process) stops one thread at a safe point and calls
  ``PyRun_SimpleStringFlags`` there.  No debugger needed.
* :class:`GdbInjector` (CPython 3.9-3.13, chosen with ``GILTRACE_INJECTOR=gdb``):
  the same through gdb's inferior calls (giltrace/attach/gdb_inject.py).
* :class:`RemoteExecInjector` (CPython 3.14+): ``sys.remote_exec(pid, file)``
  (PEP 768); the interpreter itself runs the file at its next safe point.

``choose(target)`` picks the first one that can reach the target.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import List, Optional

from .. import errors
from .target import AttachError, AttachInterrupted, Target

GDB_ENV = "GILTRACE_GDB"  # a gdb to use instead of the one on PATH (tests point it at a missing file)
INJECTOR_ENV = "GILTRACE_INJECTOR"  # "gdb": inject with gdb instead of giltrace's own ptrace code
AMX_ERROR = "Couldn't write extended state status"  # gdb 13 on CPUs with AMX: no inferior call works

# Safe points besides PyEval_SaveThread's entry, per version: where a thread
# that just took the GIL back in the eval breaker can be caught (a program
# whose threads only compute never calls PyEval_SaveThread).
#   (symbol, run to its return first, only when its 2nd argument is non-NULL)
_EXTRA_SAFE_POINTS = {
    (3, 9): [("_PyThreadState_Swap", True, True)],
    (3, 10): [("_PyThreadState_Swap", True, True)],
    (3, 11): [("_PyThreadState_Swap", True, True)],
    (3, 12): [("_Py_HandlePending", False, False)],  # a static function: only where the symbol table was kept
    (3, 13): [("_Py_HandlePending", False, False)],
}


@dataclass
class Injection:
    strategy: str
    stops_ms: List[float] = field(default_factory=list)  # each interval the target was stopped
    safe_point: str = ""
    interrupted: bool = False  # Ctrl-C came after the code ran: start, then stop at once


REQUIRED = (
    "PyEval_SaveThread",
    "PyRun_SimpleStringFlags",
    "PyErr_Occurred",
    "PyMem_RawMalloc",
    "PyMem_RawFree",
    "PyThreadState_GetInterpreter",
    "PyInterpreterState_Main",
)
CALL_TIMEOUT_S = 30.0  # one call in the target (the bootstrap only starts a thread): then it is abandoned
TSTATE_GETTERS = ("PyThreadState_GetUnchecked", "_PyThreadState_UncheckedGet", "PyThreadState_Get")  # 3.13, 3.9-3.12, any


class PtraceInjector:
    """giltrace's own injector (x86-64 Linux): ptrace only, no debugger."""

    name = "ptrace"

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s

    def available(self, target: Target) -> Optional[str]:
        if not (3, 9) <= target.version <= (3, 13):
            return "giltrace's injector covers CPython 3.9-3.13"
        return unsupported_machine()

    def inject(self, target: Target, code: str) -> Injection:
        result = run_helper(self.params(target, code), self.timeout_s + 60)
        if result.get("error") == "interrupted":  # the helper gave up waiting for a safe point: nothing ran
            raise _interrupted(target.pid)
        if not result.get("ok"):
            if result.get("error") == "attach":
                from .target import check_state, status

                check_state(target.pid, status(target.pid))
            raise AttachError(_inject_error(target.pid, result.get("error", ""), result.get("detail", ""), self.timeout_s, "giltrace"))
        return Injection(
            "ptrace", [float(x) for x in result.get("stops_ms", [])], str(result.get("safe_point", "")), bool(result.get("interrupted"))
        )

    def params(self, target: Target, code: str) -> dict:
        """What the helper needs: every address resolved here, before it touches the target."""
        from . import symbols

        spots = [("PyEval_SaveThread", False, False)] + _EXTRA_SAFE_POINTS.get(target.version, [])
        wanted = set(REQUIRED) | set(TSTATE_GETTERS) | {s for s, _, _ in spots}
        addresses = symbols.lookup(target.pid, wanted)
        missing = [n for n in REQUIRED if n not in addresses]
        if missing or not any(g in addresses for g in TSTATE_GETTERS):
            raise AttachError(
                "process %d is not a CPython process giltrace can enter (no %s in its Python runtime)"
                % (target.pid, ", ".join(missing or ["PyThreadState_Get"]))
            )
        addresses.update(symbols.lookup(target.pid, ["__errno_location"], [r"/libc[.-][^/]*$"]))
        return {
            "pid": target.pid,
            "code": code,
            "timeout_s": self.timeout_s,
            "call_timeout_s": CALL_TIMEOUT_S,
            "addresses": addresses,
            "safe_points": spots,
            "entry": symbols.entry_point(target.pid),
        }

    def cleanup(self) -> None:
        """Nothing is left behind: the helper has detached."""


def unsupported_machine() -> Optional[str]:
    """None on x86-64 Linux, else one line saying so."""
    machine = platform.machine()
    if sys.platform.startswith("linux") and machine in ("x86_64", "AMD64"):
        return None
    return "giltrace attach runs on x86-64 Linux only (this is %s %s)" % (sys.platform, machine or "?")


def run_helper(params: dict, timeout_s: float) -> dict:
    """Run ptrace_inject.py in its own process: its result line (AttachError if none),
    with ``interrupted`` set if Ctrl-C came meanwhile (the helper was told to give up waiting)."""
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ptrace_inject.py")
    env = dict(os.environ, GILTRACE_INJECT=json.dumps(params))
    cmd = [sys.executable, "-I", "-S", script]
    stdout, stderr, interrupted = _run_tool(cmd, env, timeout_s, int(params["pid"]), "giltrace's injector", signal.SIGUSR1)
    result = _result_line(stdout)
    if result is None and interrupted:
        raise _interrupted(int(params["pid"]))
    if result is not None and interrupted:
        result["interrupted"] = True
    if result is None:
        tail = (stderr.strip().splitlines() or ["no output"])[-1]
        raise AttachError("giltrace's injector failed on process %d: %s" % (int(params["pid"]), tail))
    return result


def probe(python: str = sys.executable, timeout_s: float = 30.0) -> Optional[str]:
    """Can this machine enter a CPython with giltrace's injector?  None if so,
    else why not (one line).  A tiny child (``python``) sleeps in a loop; the
    injection makes it write a line to its stdout."""
    why = unsupported_machine()
    if why:
        return why
    child = subprocess.Popen(
        [python, "-I", "-S", "-c", "import sys, time\nprint('ready', flush=True)\nwhile True: time.sleep(0.002)"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        if child.stdout is None or child.stdout.readline().strip() != b"ready":
            return "the probe's child did not start"
        from .target import inspect

        try:
            target = inspect(child.pid)
            PtraceInjector(timeout_s).inject(target, "import sys; sys.stdout.write('injected\\n'); sys.stdout.flush()")
        except errors.GiltraceError as exc:
            return str(exc)
        if child.stdout.readline().strip() != b"injected":
            return "the probe's child did not run the injected code"
        return None
    finally:
        child.kill()
        child.wait()


class GdbInjector:
    name = "gdb"

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self.gdb = os.environ.get(GDB_ENV) or shutil.which("gdb")

    def available(self, target: Target) -> Optional[str]:
        """None if usable, else why not (one line)."""
        if not (3, 9) <= target.version <= (3, 13):
            return "gdb injection covers CPython 3.9-3.13"
        if not self.gdb or not os.access(self.gdb, os.X_OK):
            return "no debugger found: giltrace attach needs gdb (apt-get install gdb, dnf install gdb)" + (
                " -- %s=%s is not executable" % (GDB_ENV, self.gdb) if os.environ.get(GDB_ENV) else ""
            )
        return None

    def inject(self, target: Target, code: str) -> Injection:
        params = {
            "pid": target.pid,
            "code": code,
            "timeout_s": self.timeout_s,
            "extra_breakpoints": _EXTRA_SAFE_POINTS.get(target.version, []),
        }
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gdb_inject.py")
        # -readnever: minimal (ELF) symbols only; reading libpython's debug
        # information would keep the target stopped for hundreds of ms.
        # auto-load off: nothing of the target's (.gdbinit, python scripts next to its libraries) runs in gdb
        cmd = [str(self.gdb), "-nx", "-iex", "set auto-load off", "-batch", "-readnever", "-x", script]
        env = dict(os.environ, GILTRACE_INJECT=json.dumps(params), PYTHONSAFEPATH="1")
        for var in ("PYTHONPATH", "PYTHONHOME"):  # gdb's own Python must not see ours
            env.pop(var, None)
        stdout, stderr, interrupted = _run_tool(cmd, env, self.timeout_s + 60, target.pid, "gdb")
        result = _result_line(stdout)
        if interrupted and not (result and result.get("ok")):
            raise _interrupted(target.pid)
        if AMX_ERROR in stdout + stderr:
            raise AttachError(
                "gdb cannot call functions in process %d on this CPU (%s: a gdb older than 14 on a CPU with AMX); "
                "giltrace's own injector does not need gdb: unset %s" % (target.pid, AMX_ERROR, INJECTOR_ENV)
            )
        if result is None:
            tail = (stderr.strip().splitlines() or stdout.strip().splitlines() or ["no output"])[-1]
            raise AttachError("gdb failed to attach to process %d: %s" % (target.pid, tail))
        if not result.get("ok"):
            if result.get("error") == "attach":  # say precisely why, where /proc can tell (stopped, traced...)
                from .target import check_state, status

                check_state(target.pid, status(target.pid))
            raise AttachError(_inject_error(target.pid, result.get("error", ""), result.get("detail", ""), self.timeout_s, "gdb"))
        return Injection("gdb", [float(x) for x in result.get("stops_ms", [])], str(result.get("safe_point", "")), interrupted)

    def cleanup(self) -> None:
        """Nothing is left behind: gdb has detached."""


def _result_line(stdout: str) -> Optional[dict]:
    result = None
    for line in stdout.splitlines():
        if line.startswith("GILTRACE-INJECT "):
            try:
                result = json.loads(line[len("GILTRACE-INJECT ") :])
            except ValueError:
                pass
    return result


def _run_tool(cmd: List[str], env: dict, timeout_s: float, pid: int, what: str, cancel: Optional[int] = None) -> "tuple[str, str, bool]":
    """Run the injecting process (gdb or our helper) to the end: (stdout, stderr,
    whether Ctrl-C came).  It is never killed while attached: a killed tracer
    leaves its int3s in the target, which would then die of SIGTRAP.  Ctrl-C
    waits for it (its own session: the terminal's SIGINT does not reach it),
    after sending it ``cancel`` (our helper: stop waiting for a safe point,
    restore and detach); a hung one gets SIGTERM (gdb detaches and quits on
    it; our helper ignores it and ends by its own timeouts)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env, start_new_session=True
    )
    interrupted = False
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            stdout, stderr = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            break
        except KeyboardInterrupt:
            if cancel is not None and not interrupted:
                try:
                    proc.send_signal(cancel)
                except OSError:
                    pass
            interrupted = True
        except subprocess.TimeoutExpired:
            proc.terminate()
            stdout, stderr = proc.communicate()
            raise AttachError("%s did not finish attaching to process %d in %.0f s" % (what, pid, timeout_s)) from None
    return stdout, stderr, interrupted


def _interrupted(pid: int) -> AttachInterrupted:
    return AttachInterrupted("interrupted while attaching: nothing ran in process %d, which runs on as before" % pid)


def _inject_error(pid: int, kind: str, detail: str, timeout_s: float, tool: str) -> str:
    if kind == "attach":
        if "not permitted" in detail.lower():
            return (
                "not permitted to attach to process %d (ptrace: Operation not permitted): run as the process's "
                "user or root; in a container, grant CAP_SYS_PTRACE; check kernel.yama.ptrace_scope" % pid
            )
        if "no such process" in detail.lower():
            return "no such process: %d" % pid
        return "%s could not attach to process %d: %s" % (tool, pid, detail)
    if kind == "not-python":
        return "process %d is not a CPython process giltrace can enter (%s)" % (pid, detail)
    if kind == "exited":
        return "process %d exited before giltrace could attach" % pid
    if kind == "no-safe-point":
        return (
            "no thread of process %d took the GIL within %.0f s (every thread is blocked outside Python); "
            "attach again while it is busy, or give it more time with --attach-timeout" % (pid, timeout_s)
        )
    if kind == "sigtrap":  # ptrace_inject.py check_sigtrap: an int3 would reset the program's SIGTRAP action
        return (
            "cannot attach to process %d without changing its signal handling: %s (a breakpoint's SIGTRAP would "
            "unblock it and reset its action); nothing was changed" % (pid, detail)
        )
    return "%s could not inject into process %d: %s %s" % (tool, pid, kind, detail)


class RemoteExecInjector:
    """PEP 768 (CPython 3.14+): the target runs a file at its next safe point.
    It needs this giltrace to run on 3.14+ too (``sys.remote_exec``)."""

    name = "remote_exec"

    def available(self, target: Target) -> Optional[str]:
        if target.version < (3, 14):
            return "sys.remote_exec needs a CPython 3.14+ target"
        if not hasattr(sys, "remote_exec"):
            return "sys.remote_exec needs giltrace to run on CPython 3.14+"
        return None

    def inject(self, target: Target, code: str) -> Injection:  # pragma: no cover - no 3.14 on these machines
        fd, path = tempfile.mkstemp(prefix="giltrace-attach-", suffix=".py")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(code)
            os.chmod(path, 0o644)
            if target.uid != os.geteuid() and os.geteuid() == 0:
                os.chown(path, target.uid, target.gid)
            try:
                sys.remote_exec(target.pid, path)  # type: ignore[attr-defined]
            except (OSError, RuntimeError) as exc:
                raise AttachError("sys.remote_exec into process %d failed: %s" % (target.pid, exc)) from None
        except BaseException:
            os.unlink(path)
            raise
        # The target reads the file at its next safe point; the agent's
        # connection (session.py) says it has, after which cleanup() removes it.
        self._pending = path
        return Injection("remote_exec", [], "sys.remote_exec")

    def cleanup(self) -> None:
        path, self._pending = getattr(self, "_pending", None), None
        if path:
            try:
                os.unlink(path)
            except OSError:
                pass


STRATEGIES = (RemoteExecInjector, PtraceInjector)


def choose(target: Target, timeout_s: float):
    """The first strategy that can reach ``target``; AttachError with every reason otherwise.
    ``GILTRACE_INJECTOR=gdb`` picks gdb for 3.9-3.13 (the fallback)."""
    wanted = os.environ.get(INJECTOR_ENV, "").strip().lower()
    if wanted not in ("", "ptrace", "gdb"):
        raise AttachError("%s=%s: expected ptrace or gdb" % (INJECTOR_ENV, wanted))
    strategies = (RemoteExecInjector, GdbInjector) if wanted == "gdb" else STRATEGIES
    reasons = []
    for cls in strategies:
        inj = cls() if cls is RemoteExecInjector else cls(timeout_s)
        why = inj.available(target)
        if why is None:
            return inj
        reasons.append(why)
    if target.version > (3, 13) and not hasattr(sys, "remote_exec"):
        raise AttachError(
            "process %d runs CPython %s: attach to it with a giltrace running on CPython 3.14+ "
            "(sys.remote_exec)" % (target.pid, target.version_text)
        )
    raise AttachError(reasons[-1])
