"""What a target process is, read from ``/proc`` before any debugger touches it:
does it exist, is it stopped or traced, may we ptrace it, which CPython it runs.

Each problem is a ``GiltraceError`` whose message is one line with the fix.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from dataclasses import dataclass
from typing import Dict, Optional, Tuple

from ..errors import GiltraceError, UnsupportedInterpreter
from ..textsafe import printable
from . import elf

CAP_SYS_PTRACE = 19
OLDEST, NEWEST_GDB = (3, 9), (3, 13)  # the gdb strategy; 3.14+ has sys.remote_exec (inject.py)
_LIBPYTHON = re.compile(r"/libpython(\d+)\.(\d+)([a-z]*)\.so")


class AttachError(GiltraceError):
    """The target cannot be attached to (the message says why and what to do)."""


class AttachInterrupted(AttachError):
    """Ctrl-C while attaching, before anything ran in the target (left as it was)."""

    exit_code = 130  # as a shell reports a program ended by SIGINT


@dataclass
class Target:
    pid: int
    uid: int
    gid: int
    exe: str
    version: Tuple[int, int]
    abiflags: str  # "t": free-threaded, "d": debug
    ns_pid: int = 0  # its pid as it sees itself (its own PID namespace); 0: unknown

    @property
    def own_pid_namespace(self) -> bool:
        return bool(self.ns_pid) and self.ns_pid != self.pid

    @property
    def version_text(self) -> str:
        return "%d.%d%s" % (self.version[0], self.version[1], self.abiflags)


def status(pid: int) -> Dict[str, str]:
    """``/proc/PID/status`` as a dict; AttachError if there is no such process."""
    return status_of(str(pid))


def status_of(which: str) -> Dict[str, str]:
    """``/proc/WHICH/status`` (``PID``, ``self``, ``PID/task/TID``) as a dict."""
    try:
        with open("/proc/%s/status" % which) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except FileNotFoundError:
        raise AttachError("no such process: %s" % which) from None
    except OSError as exc:
        raise AttachError("cannot read /proc/%s/status: %s" % (which, exc.strerror or exc)) from None


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
    if uid != euid and not has_cap and euid == 0:
        raise AttachError(
            "not permitted to attach to process %d of user %s: giltrace runs as root but without CAP_SYS_PTRACE "
            "(a container drops it): grant it (docker run --cap-add SYS_PTRACE, securityContext.capabilities.add: "
            "SYS_PTRACE) or run giltrace as that user" % (pid, _user(uid))
        )
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
    """(version, abiflags, exe) of the CPython the process runs; AttachError if it runs none.

    Read from the runtime's ELF file (libpython, or the executable of a static
    build), never by running anything of the target's: its owner chose those
    files (docs/how-it-works.md, "Attaching: safety").
    """
    exe = ""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
    except OSError:
        pass
    maps = mappings(pid)
    lib = next((m for m in maps if _LIBPYTHON.search(m.path)), None)
    if lib is not None:
        fd = open_mapped(pid, lib)
        flags = _LIBPYTHON.search(lib.path).group(3)  # type: ignore[union-attr]
    else:
        fd = _open_proc(pid, "exe")
        flags = ""
    try:
        try:
            image = elf.open_elf(fd)
            if image.machine != _own_machine():
                raise AttachError(
                    "process %d runs %s code and this giltrace runs on %s: run a giltrace built for %s (on that host or "
                    "inside the container)" % (pid, image.machine_name, elf.EM_NAMES.get(_own_machine(), "?"), image.machine_name)
                )
            found = image.symbols(_MARKERS)
            version = _version(image, found)
        except elf.ElfError as exc:
            if lib is not None:
                raise AttachError("cannot read the Python runtime of process %d (%s): %s" % (pid, lib.path, exc)) from None
            version, found = None, {}
    finally:
        os.close(fd)
    if version is None:
        _check_emulated(pid, maps)
        if "Py_Initialize" in found:
            raise UnsupportedInterpreter("process %d runs a CPython older than 3.8: giltrace traces 3.9 to 3.13" % pid)
        raise AttachError(
            "process %d (%s) is not a CPython process: no libpython in its memory map and no Python runtime in its "
            "executable" % (pid, printable(exe or _comm(pid)))
        )
    if "t" not in flags and ("_Py_DecRefShared" in found or "_Py_MergeZeroLocalRefcount" in found):
        flags += "t"  # free-threaded: these exist only with Py_GIL_DISABLED
    if "d" not in flags and any(n in found for n in ("_Py_RefTotal", "_Py_GetRefTotal", "_Py_GetGlobalRefTotal")):
        flags += "d"  # Py_REF_DEBUG, which every debug build has
    return version, flags, exe


# Symbols that tell a CPython's version without running it: Py_Version holds
# PY_VERSION_HEX from 3.11 on; before, the newest public function present.
_MARKERS = (
    "Py_Version",
    "PyAIter_Check",  # 3.10
    "PyFrame_GetCode",  # 3.9
    "PyConfig_Read",  # 3.8
    "PyString_FromString",  # 2.x
    "Py_Initialize",
    "_Py_DecRefShared",
    "_Py_MergeZeroLocalRefcount",
    "_Py_RefTotal",
    "_Py_GetRefTotal",
    "_Py_GetGlobalRefTotal",
)


def _version(image: "elf.Elf", found: "Dict[str, elf.Symbol]") -> Optional[Tuple[int, int]]:
    if "Py_Version" in found:
        sym = found["Py_Version"]
        hexversion = image.integer(sym, sym.size if sym.size in (4, 8) else 4)
        return (hexversion >> 24 & 0xFF, hexversion >> 16 & 0xFF)
    for name, version in (
        ("PyAIter_Check", (3, 10)),
        ("PyFrame_GetCode", (3, 9)),
        ("PyConfig_Read", (3, 8)),
        ("PyString_FromString", (2, 7)),
    ):
        if name in found:
            return version
    return None


@dataclass
class Mapping:
    start: int
    end: int
    offset: int
    inode: int
    path: str  # as the target sees it


def mappings(pid: int) -> "list[Mapping]":
    """The file mappings of /proc/PID/maps."""
    try:
        with open("/proc/%d/maps" % pid) as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise AttachError("cannot read /proc/%d/maps: %s" % (pid, exc.strerror or exc)) from None
    out = []
    for line in lines:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            start, _, end = parts[0].partition("-")
            out.append(Mapping(int(start, 16), int(end, 16), int(parts[2], 16), int(parts[4]), parts[5]))
    return out


def _open_proc(pid: int, name: str) -> int:
    """Open /proc/PID/NAME read-only: the file the kernel holds (exe, map_files/...), not a path the target can swap."""
    try:
        fd = os.open("/proc/%d/%s" % (pid, name), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise AttachError("cannot open /proc/%d/%s: %s" % (pid, name, exc.strerror or exc)) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise AttachError("/proc/%d/%s is not a regular file" % (pid, name))
    return fd


def open_mapped(pid: int, m: Mapping) -> int:
    """A read-only descriptor of the file behind a mapping: through map_files (needs
    CAP_SYS_ADMIN), else through the target's root, checked to be a regular file
    (opening never blocks on a planted FIFO) and the very file mapped (same inode)."""
    try:
        return _open_proc(pid, "map_files/%x-%x" % (m.start, m.end))
    except AttachError:
        pass
    fd = _open_proc(pid, "root" + m.path.replace(" (deleted)", ""))
    if m.inode and os.fstat(fd).st_ino != m.inode:
        os.close(fd)
        raise AttachError("the file mapped by process %d changed while giltrace read it (%s)" % (pid, printable(m.path)))
    return fd


_OWN_MACHINE: "list[int]" = []


def _own_machine() -> int:
    if not _OWN_MACHINE:
        fd = os.open("/proc/self/exe", os.O_RDONLY | os.O_CLOEXEC)
        try:
            _OWN_MACHINE.append(elf.open_elf(fd).machine)
        finally:
            os.close(fd)
    return _OWN_MACHINE[0]


def _check_emulated(pid: int, maps: "list[Mapping]") -> None:
    """A foreign program run by an emulator (qemu-user): its interpreter is a mapped file of another machine."""
    for m in maps:
        if re.match(r"(lib)?python[\d.]*", os.path.basename(m.path)):
            try:
                fd = open_mapped(pid, m)
            except AttachError:
                continue
            try:
                machine = elf.open_elf(fd).machine
            except elf.ElfError:
                continue
            finally:
                os.close(fd)
            if machine != _own_machine():
                raise AttachError(
                    "process %d runs %s code under an emulator and this giltrace runs on %s: it cannot be attached to"
                    % (pid, elf.EM_NAMES.get(machine, "machine %d" % machine), elf.EM_NAMES.get(_own_machine(), "?"))
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
    check_seccomp()
    version, abiflags, exe = python_of(pid)
    if "t" in abiflags:
        raise UnsupportedInterpreter("process %d runs a free-threaded CPython %d.%d: it has no GIL to trace" % ((pid,) + version))
    if version < OLDEST:
        raise UnsupportedInterpreter("process %d runs CPython %d.%d: giltrace traces 3.9 to 3.13" % ((pid,) + version))
    ns_pid = int((st.get("NSpid") or str(pid)).split()[-1])
    return Target(pid, int(st["Uid"].split()[0]), int(st["Gid"].split()[0]), exe, version, abiflags, ns_pid)


def thread_ids(pid: int) -> Dict[int, int]:
    """{thread id as the target numbers it: as we do} for each of its threads.
    They differ when it runs in its own PID namespace (a container): the trace
    holds the target's own numbers (docs/how-it-works.md, "Attaching: containers")."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            nspid = status_of("%d/task/%s" % (pid, tid)).get("NSpid", tid).split()
        except AttachError:
            continue  # ended meanwhile
        out[int(nspid[-1])] = int(tid)
    return out


def check_seccomp() -> None:
    """A seccomp filter on giltrace's own process (Docker's default profile without
    CAP_SYS_PTRACE) refuses ptrace: say so before any attempt."""
    if status_of("self").get("Seccomp", "0").strip() != "2" or _ptrace_allowed():
        return
    raise AttachError(
        "giltrace cannot use ptrace: a seccomp filter on its own process refuses it (Seccomp: 2 in /proc/self/status); "
        "in a container, run giltrace with --cap-add SYS_PTRACE (Docker's default profile then allows ptrace) or "
        "--security-opt seccomp=unconfined"
    )


def _ptrace_allowed() -> bool:
    """Does ptrace reach the kernel?  Asked in a child (a filter may kill instead of failing):
    PEEKUSER of a process it does not trace is ESRCH when ptrace is allowed."""
    import ctypes
    import errno

    child = os.fork()
    if child == 0:  # pragma: no cover - the child's exit status is the answer
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.ptrace(ctypes.c_long(3), ctypes.c_long(os.getppid()), ctypes.c_void_p(0), ctypes.c_void_p(0))
            os._exit(0 if ctypes.get_errno() == errno.ESRCH else 1)
        except BaseException:
            os._exit(2)
    _, code = os.waitpid(child, 0)
    return os.WIFEXITED(code) and os.WEXITSTATUS(code) == 0


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
