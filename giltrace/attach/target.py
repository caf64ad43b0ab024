"""What a target process is, read from ``/proc`` before any debugger touches it:
does it exist, is it stopped or traced, may we ptrace it, which CPython it runs.

Each problem is a ``GiltraceError`` whose message is one line with the fix.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..errors import GiltraceError, UnsupportedInterpreter

CAP_SYS_PTRACE = 19
OLDEST, NEWEST_GDB = (3, 9), (3, 13)  # the gdb strategy; 3.14+ has sys.remote_exec (inject.py)
_LIBPYTHON = re.compile(r"/libpython(\d+)\.(\d+)([a-z]*)\.so")


class AttachError(GiltraceError):
    """The target cannot be attached to (the message says why and what to do)."""


@dataclass
class Target:
    pid: int
    uid: int
    gid: int
    exe: str
    version: Tuple[int, int]
    abiflags: str  # "t": free-threaded, "d": debug

    @property
    def version_text(self) -> str:
        return "%d.%d%s" % (self.version[0], self.version[1], self.abiflags)


def status(pid: int) -> Dict[str, str]:
    """``/proc/PID/status`` as a dict; AttachError if there is no such process."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except FileNotFoundError:
        raise AttachError("no such process: %d" % pid) from None
    except OSError as exc:
        raise AttachError("cannot read /proc/%d/status: %s" % (pid, exc.strerror or exc)) from None


def check_state(pid: int, st: Dict[str, str]) -> None:
    """Refuse a zombie, a stopped process, and one that a debugger already holds."""
    state = st.get("State", "")
    if state.startswith("Z"):
        raise AttachError("process %d has exited (it is a zombie waiting for its parent)" % pid)
    tracer = int(st.get("TracerPid", "0") or 0)
    if tracer:
        raise AttachError(
            "process %d is already being traced by process %d (%s): detach that debugger first" % (pid, tracer, _comm(tracer))
        )
    if state.startswith("T") or state.startswith("t"):
        raise AttachError("process %d is stopped (%s): resume it first with kill -CONT %d" % (pid, state, pid))


def check_permission(pid: int, st: Dict[str, str]) -> None:
    """ptrace's rules, checked up front so that the message can name the setting."""
    uid = int(st["Uid"].split()[0])
    euid = os.geteuid()
    has_cap = _has_cap(CAP_SYS_PTRACE)
    if uid != euid and not has_cap:
        raise AttachError(
            "not permitted to attach to process %d: it belongs to user %s; run giltrace as that user "
            "or as root (ptrace needs the same user or CAP_SYS_PTRACE)" % (pid, _user(uid))
        )
    scope = ptrace_scope()
    if scope == 3:
        raise AttachError("not permitted to attach to process %d: kernel.yama.ptrace_scope is 3 (no process may attach until reboot)" % pid)
    if scope == 2 and not has_cap:
        raise AttachError(
            "not permitted to attach to process %d: kernel.yama.ptrace_scope is 2 (only with "
            "CAP_SYS_PTRACE): run as root, or sudo sysctl kernel.yama.ptrace_scope=1" % pid
        )
    if scope == 1 and not has_cap and not _is_descendant(pid):
        raise AttachError(
            "not permitted to attach to process %d: kernel.yama.ptrace_scope is 1 (only a parent may "
            "attach): run as root, or sudo sysctl kernel.yama.ptrace_scope=0" % pid
        )


def ptrace_scope() -> Optional[int]:
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None  # no Yama: classic ptrace rules only


def python_of(pid: int) -> Tuple[Tuple[int, int], str, str]:
    """(version, abiflags, exe) of the CPython the process runs; AttachError if it runs none."""
    exe = ""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        pass
    try:
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
    except OSError as exc:
        raise AttachError("cannot read /proc/%d/maps: %s" % (pid, exc.strerror or exc)) from None
    m = _LIBPYTHON.search(maps)
    if m:
        return (int(m.group(1)), int(m.group(2))), m.group(3), exe
    # Statically linked interpreter: ask the same executable (same build) for its version.
    if re.match(r"python[\d.]*[a-z]*$", os.path.basename(exe.replace(" (deleted)", ""))):
        probe = (
            "import sys, sysconfig; print(sys.version_info[0], sys.version_info[1], "
            "getattr(sys, 'abiflags', '') + ('t' if sysconfig.get_config_var('Py_GIL_DISABLED') and 't' not in getattr(sys, 'abiflags', '') else ''))"
        )
        try:
            out = subprocess.run(["/proc/%d/exe" % pid, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=20).stdout.split()
            if len(out) >= 2:
                return (int(out[0]), int(out[1])), (out[2] if len(out) > 2 else ""), exe
        except (OSError, ValueError, subprocess.TimeoutExpired):
            pass
    raise AttachError(
        "process %d (%s) is not a CPython process: no libpython in its memory map and its executable "
        "is not python" % (pid, exe or _comm(pid))
    )


def inspect(pid: int) -> Target:
    """Everything checked before a debugger attaches (raises AttachError / UnsupportedInterpreter)."""
    if pid <= 0:
        raise AttachError("no such process: %d" % pid)
    if pid == os.getpid():
        raise AttachError("giltrace cannot attach to itself (use giltrace.start() in the program instead)")
    st = status(pid)
    check_state(pid, st)
    check_permission(pid, st)
    version, abiflags, exe = python_of(pid)
    if "t" in abiflags:
        raise UnsupportedInterpreter("process %d runs a free-threaded CPython %d.%d: it has no GIL to trace" % ((pid,) + version))
    if version < OLDEST:
        raise UnsupportedInterpreter("process %d runs CPython %d.%d: giltrace traces 3.9 to 3.13" % ((pid,) + version))
    return Target(pid, int(st["Uid"].split()[0]), int(st["Gid"].split()[0]), exe, version, abiflags)


def check_same_python(target: Target) -> None:
    """The target imports this giltrace's extension, built for this interpreter's version and ABI."""
    ours = (sys.version_info[0], sys.version_info[1])
    flags = getattr(sys, "abiflags", "")
    if (target.version, target.abiflags.replace("t", "")) != (ours, flags):
        raise AttachError(
            "process %d runs CPython %s but this giltrace is built for %d.%d%s: run the giltrace of a "
            "CPython %s environment (python%d.%d -m giltrace attach %d)"
            % (
                target.pid,
                target.version_text,
                ours[0],
                ours[1],
                flags,
                target.version_text,
                target.version[0],
                target.version[1],
                target.pid,
            )
        )


def _has_cap(bit: int) -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> bit & 1)
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


def _is_descendant(pid: int) -> bool:
    me = os.getpid()
    seen = 0
    while pid > 1 and seen < 4096:
        if pid == me:
            return True
        try:
            pid = int(status(pid).get("PPid", "0"))
        except (AttachError, ValueError):
            return False
        seen += 1
    return False


def _comm(pid: int) -> str:
    try:
        with open("/proc/%d/comm" % pid) as f:
            return f.read().strip()
    except OSError:
        return "?"


def _user(uid: int) -> str:
    try:
        import pwd

        return "%s (uid %d)" % (pwd.getpwuid(uid).pw_name, uid)
    except (ImportError, KeyError):
        return "uid %d" % uid
