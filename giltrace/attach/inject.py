"""Ways into a running CPython: each runs a short piece of Python source
(giltrace/attach/bootstrap.py) in the target at a safe point.

* :class:`GdbInjector` (CPython 3.9-3.13): gdb attaches, waits at a safe
  point, runs the source with ``PyRun_SimpleStringFlags`` in the thread that
  stopped there, and detaches (giltrace/attach/gdb_inject.py).
* :class:`RemoteExecInjector` (CPython 3.14+): ``sys.remote_exec(pid, file)``
  (PEP 768); the interpreter itself runs the file at its next safe point.

``choose(target)`` picks the first one that can reach the target.  Adding a
strategy (lldb, own ptrace code) is one more class with ``available()`` and
``inject()``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import List, Optional

from .target import AttachError, Target

GDB_ENV = "GILTRACE_GDB"  # a gdb to use instead of the one on PATH (tests point it at a missing file)

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
        cmd = [str(self.gdb), "-nx", "-batch", "-readnever", "-x", script]
        env = dict(os.environ, GILTRACE_INJECT=json.dumps(params), PYTHONSAFEPATH="1")
        for var in ("PYTHONPATH", "PYTHONHOME"):  # gdb's own Python must not see ours
            env.pop(var, None)
        stdout, stderr = _run_gdb(cmd, env, self.timeout_s + 60, target.pid)
        result = None
        for line in stdout.splitlines():
            if line.startswith("GILTRACE-INJECT "):
                result = json.loads(line[len("GILTRACE-INJECT ") :])
        if result is None:
            tail = (stderr.strip().splitlines() or stdout.strip().splitlines() or ["no output"])[-1]
            raise AttachError("gdb failed to attach to process %d: %s" % (target.pid, tail))
        if not result.get("ok"):
            if result.get("error") == "attach":  # say precisely why, where /proc can tell (stopped, traced...)
                from .target import check_state, status

                check_state(target.pid, status(target.pid))
            raise AttachError(_gdb_error(target.pid, result.get("error", ""), result.get("detail", ""), self.timeout_s))
        return Injection("gdb", [float(x) for x in result.get("stops_ms", [])], str(result.get("safe_point", "")))

    def cleanup(self) -> None:
        """Nothing is left behind: gdb has detached."""


def _run_gdb(cmd: List[str], env: dict, timeout_s: float, pid: int) -> "tuple[str, str]":
    """Run gdb to the end.  It is never killed while attached: a killed tracer
    leaves its breakpoints (int3) in the target, which would then die of
    SIGTRAP.  Ctrl-C waits for it (its own session: the terminal's SIGINT does
    not reach it); a hung gdb gets SIGTERM, on which it detaches and quits."""
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
            interrupted = True
        except subprocess.TimeoutExpired:
            proc.terminate()
            stdout, stderr = proc.communicate()
            raise AttachError("gdb did not finish attaching to process %d in %.0f s" % (pid, timeout_s)) from None
    if interrupted:
        raise KeyboardInterrupt
    return stdout, stderr


def _gdb_error(pid: int, kind: str, detail: str, timeout_s: float) -> str:
    if kind == "attach":
        if "not permitted" in detail.lower():
            return (
                "not permitted to attach to process %d (ptrace: Operation not permitted): run as the process's "
                "user or root; in a container, grant CAP_SYS_PTRACE; check kernel.yama.ptrace_scope" % pid
            )
        if "no such process" in detail.lower():
            return "no such process: %d" % pid
        return "gdb could not attach to process %d: %s" % (pid, detail)
    if kind == "not-python":
        return "process %d is not a CPython process giltrace can enter (%s)" % (pid, detail)
    if kind == "exited":
        return "process %d exited before giltrace could attach" % pid
    if kind == "no-safe-point":
        return (
            "no thread of process %d took the GIL within %.0f s (every thread is blocked outside Python); "
            "attach again while it is busy, or give it more time with --attach-timeout" % (pid, timeout_s)
        )
    return "gdb could not inject into process %d: %s %s" % (pid, kind, detail)


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


STRATEGIES = (RemoteExecInjector, GdbInjector)


def choose(target: Target, timeout_s: float):
    """The first strategy that can reach ``target``; AttachError with every reason otherwise."""
    reasons = []
    for cls in STRATEGIES:
        inj = cls(timeout_s) if cls is GdbInjector else cls()
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
