"""giltrace's own injector (x86-64 Linux): runs as a helper process, not in giltrace.

    python -I -S ptrace_inject.py        (parameters: JSON in GILTRACE_INJECT)

It imports only the standard library (it is run by file path, isolated).
The CLI resolves every address beforehand (giltrace/attach/symbols.py) and
passes them in; this process only uses ``ptrace``.  It prints one line
``GILTRACE-INJECT {json}`` with the outcome and the stop times, as the gdb
script does.  docs/how-it-works.md, "Attaching", describes the steps:

1. ``PTRACE_SEIZE`` every thread (nothing stops), with clone/fork/exec events;
2. an ``int3`` on each safe point; the first thread that hits one (and passes
   the checks: main interpreter, no exception set) is the only one stopped;
3. in that thread, with its general registers saved: calls built on its
   stack (16-byte aligned, below the red zone) that return to an ``int3`` on
   the program's entry point (``_start``, never run again);
4. registers, errno and every patched byte restored; every thread detached
   (an interrupted system call restarts as after any debugger's detach).

Why a separate process: it is the only child it waits for, all its ptrace
calls come from one thread, and a Ctrl-C in the CLI's terminal cannot reach
it in the middle (inject.py waits for it, as for gdb).
"""

import ctypes
import json
import os
import signal
import struct
import sys
import time

PTRACE_CONT, PTRACE_SINGLESTEP, PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_DETACH = 7, 9, 12, 13, 17
PTRACE_SETOPTIONS, PTRACE_GETEVENTMSG, PTRACE_GETSIGINFO = 0x4200, 0x4201, 0x4202
PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_LISTEN = 0x4206, 0x4207, 0x4208
O_TRACEFORK, O_TRACEVFORK, O_TRACECLONE, O_TRACEEXEC = 0x2, 0x4, 0x8, 0x10
EV_FORK, EV_VFORK, EV_CLONE, EV_EXEC, EV_STOP = 1, 2, 3, 4, 128
WALL = 0x40000000
SI_KERNEL = 0x80  # si_code of the SIGTRAP an int3 raises
INT3 = b"\xcc"
RED_ZONE = 128
FAULTS = (signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE)
STOP_SIGNALS = (signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
REG_NAMES = ("r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs").split()
ARG_REGS = ("rdi", "rsi", "rdx", "rcx", "r8", "r9")


class Regs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_ulonglong) for n in REG_NAMES]

    def copy(self) -> "Regs":
        other = Regs()
        ctypes.memmove(ctypes.byref(other), ctypes.byref(self), ctypes.sizeof(Regs))
        return other


class Failure(Exception):
    """Ends the injection with (kind, detail); everything is restored first."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind, detail)
        self.kind, self.detail = kind, detail


class Timeout(Exception):
    pass


_libc = ctypes.CDLL(None, use_errno=True)
_libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
_libc.ptrace.restype = ctypes.c_long


def ptrace(req: int, tid: int, addr: int = 0, data=0) -> int:
    ctypes.set_errno(0)
    rc = _libc.ptrace(req, tid, ctypes.c_void_p(addr), data if isinstance(data, ctypes.c_void_p) else ctypes.c_void_p(data))
    if rc == -1:
        err = ctypes.get_errno()
        if err:
            raise OSError(err, os.strerror(err))
    return rc


def now() -> float:
    return time.monotonic()


def _child_of_event(tid: int) -> int:
    msg = ctypes.c_ulong()
    ptrace(PTRACE_GETEVENTMSG, tid, 0, ctypes.cast(ctypes.byref(msg), ctypes.c_void_p))
    return int(msg.value)


class Injector:
    """One injection into process ``pid``; ``run()`` returns the result dict."""

    def __init__(self, params: dict) -> None:
        self.pid = int(params["pid"])
        self.timeout_s = float(params.get("timeout_s", 5.0))
        self.call_timeout_s = float(params.get("call_timeout_s", 30.0))
        self.addr = {k: int(v) for k, v in params["addresses"].items()}
        self.code = params["code"].encode() + b"\0"
        # (address, symbol, run to its return first, only when its 2nd argument is non-NULL)
        self.points = [(self.addr[s], s, bool(f), bool(r)) for s, f, r in params["safe_points"] if s in self.addr]
        self.entry = int(params["entry"])  # the program's entry point: calls return to an int3 there
        self.threads: dict = {}  # tid -> "running" | "stopped" | "listening"
        self.parked: set = set()  # stopped on an int3 of ours while another thread is in use
        self.stepping: set = set()
        self.patched: dict = {}  # address -> original byte
        self.ever_patched: set = set()
        self.originals: dict = {}  # address -> original byte, kept after unpatch: for children forked before it
        self.forks: dict = {}  # forked child -> it shares our memory (vfork), until its first stop
        self.early_children: set = set()  # stopped before its parent's fork event said what it is
        self.held_signals: list = []  # signals the used thread got during our calls
        self.mem = -1
        self.exec_seen = False
        self.cancelled = False  # SIGUSR1 from the CLI (Ctrl-C there): stop waiting for a safe point
        self.out: dict = {"ok": False, "stops_ms": [], "strategy": "ptrace"}
        self._wake_r, self._wake_w = os.pipe()

    # -- memory and registers ------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        data = os.pread(self.mem, n, addr)
        if len(data) != n:
            raise Failure("memory", "short read at 0x%x" % addr)
        return data

    def write(self, addr: int, data: bytes) -> None:
        if os.pwrite(self.mem, data, addr) != len(data):
            raise Failure("memory", "short write at 0x%x" % addr)

    def patch(self, addr: int) -> None:
        if addr not in self.patched:
            self.patched[addr] = self.read(addr, 1)
            self.originals.setdefault(addr, self.patched[addr])
            self.ever_patched.add(addr)
            self.write(addr, INT3)

    def unpatch(self, addr: int) -> None:
        orig = self.patched.pop(addr, None)
        if orig is not None and not self.exec_seen:
            self.write(addr, orig)

    def getregs(self, tid: int) -> Regs:
        r = Regs()
        ptrace(PTRACE_GETREGS, tid, 0, ctypes.cast(ctypes.byref(r), ctypes.c_void_p))
        return r

    def setregs(self, tid: int, r: Regs) -> None:
        ptrace(PTRACE_SETREGS, tid, 0, ctypes.cast(ctypes.byref(r), ctypes.c_void_p))

    def si_code(self, tid: int) -> int:
        buf = ctypes.create_string_buffer(128)
        try:
            ptrace(PTRACE_GETSIGINFO, tid, 0, ctypes.cast(buf, ctypes.c_void_p))
        except OSError:
            return -1
        return int(struct.unpack_from("iii", buf.raw)[2])

    def resume(self, tid: int, sig: int = 0, step: bool = False) -> None:
        if step:
            self.stepping.add(tid)
        try:
            ptrace(PTRACE_SINGLESTEP if step else PTRACE_CONT, tid, 0, sig)
        except OSError:
            pass  # killed meanwhile: its exit comes through waitpid
        self.threads[tid] = "running"

    # -- attaching -----------------------------------------------------------------------

    def seize_all(self) -> None:
        """Every thread, listed again until no new one appears; a thread created
        after its creator was seized is traced by the kernel (TRACECLONE)."""
        opts = O_TRACECLONE | O_TRACEFORK | O_TRACEVFORK | O_TRACEEXEC
        while True:
            try:
                tids = [int(t) for t in os.listdir("/proc/%d/task" % self.pid)]
            except OSError:
                raise Failure("exited", "the process exited") from None
            new = [t for t in tids if t not in self.threads]
            if not new:
                break
            for tid in new:
                try:
                    ptrace(PTRACE_SEIZE, tid, 0, opts)
                    self.threads[tid] = "running"
                except OSError as exc:
                    if tid != self.pid and exc.errno == 3:  # ESRCH: the thread ended before we came
                        continue
                    if tid != self.pid and exc.errno == 1 and self._seize_refused_harmlessly(tid):
                        continue
                    raise Failure("attach", exc.strerror or str(exc)) from None
        if self.pid not in self.threads:
            raise Failure("exited", "the process exited")

    def check_sigtrap(self) -> None:
        """Refuse before any int3 when a breakpoint would change the program's
        SIGTRAP handling for good: the kernel delivers an int3's SIGTRAP by
        force, and when the thread blocks it, unblocks it there and resets the
        action to SIG_DFL for the whole process (docs/how-it-works.md,
        "Attaching"; measured: a handler installed by a program that blocks
        every signal was gone after an attach)."""
        bit = 1 << (signal.SIGTRAP - 1)
        caught_or_ignored = (_status_mask(self.pid, None, "SigCgt") | _status_mask(self.pid, None, "SigIgn")) & bit
        if not caught_or_ignored:
            return  # SIG_DFL stays SIG_DFL; only a blocking thread that hits an int3 loses the bit (a documented limit)
        for tid in self.threads:
            if _status_mask(self.pid, tid, "SigBlk") & bit:
                raise Failure("sigtrap", "thread %d blocks SIGTRAP, which the process handles or ignores" % tid)

    def _seize_refused_harmlessly(self, tid: int) -> bool:
        """EPERM for a thread: already ours (created by a seized thread: TRACECLONE
        attached it) or on its way out (the kernel refuses an exiting thread)."""
        for _ in range(50):
            try:
                with open("/proc/%d/task/%d/status" % (self.pid, tid)) as f:
                    st = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
            except OSError:
                return True  # gone
            if int(st.get("TracerPid", "0") or 0) == os.getpid():
                self.threads.setdefault(tid, "running")
                return True
            if st.get("State", "")[:1] in ("Z", "X"):
                return True
            time.sleep(0.001)
        return False

    # -- events --------------------------------------------------------------------------

    def wait_any(self, deadline: float, cancellable: bool = False):
        """The next (tid, status) of a tracee; Timeout at ``deadline``.  SIGCHLD
        wakes the select (set_wakeup_fd): no event is lost to a timer.
        ``cancellable``: Failure("interrupted") once the CLI asked to cancel."""
        while True:
            if cancellable and self.cancelled:
                raise Failure("interrupted", "interrupted before any thread reached a safe point")
            try:
                tid, status = os.waitpid(-1, WALL | os.WNOHANG)
            except ChildProcessError:
                raise Failure("exited", "the process exited") from None
            if tid:
                return tid, status
            left = deadline - now()
            if left <= 0:
                raise Timeout()
            import select

            select.select([self._wake_r], [], [], left)
            try:
                os.read(self._wake_r, 4096)
            except BlockingIOError:
                pass

    def handle(self, tid: int, status: int):
        """One event, dealt with as the program would want it; returns
        ("trap", regs) for a hit on an int3 of ours that is still there
        (its rip moved back onto it), ("step",) for a finished single step,
        ("gone",) if ``tid`` ended, else None (the thread runs on)."""
        if os.WIFEXITED(status) or os.WIFSIGNALED(status):
            self.threads.pop(tid, None)
            self.parked.discard(tid)
            self.stepping.discard(tid)
            if tid in self.forks or tid in self.early_children:
                self.forks.pop(tid, None)
                self.early_children.discard(tid)
                return None
            if tid == self.pid or not self.threads:
                self.threads.clear()
                raise Failure("exited", "the process exited")
            return ("gone",)
        if not os.WIFSTOPPED(status):
            return None
        sig, event = os.WSTOPSIG(status), status >> 16
        if tid not in self.threads and not self._new_tracee(tid):
            return None
        self.threads[tid] = "stopped"
        if event in (EV_CLONE, EV_FORK, EV_VFORK):
            child = self._child_event(tid, event)
            if child:
                self.threads.setdefault(child, "running")
            self.resume(tid)
            return None
        if event == EV_EXEC:
            # another program: our bytes went with the old one, nothing to restore
            self.exec_seen = True
            self.patched.clear()
            raise Failure("exec", "the process ran another program (execve)")
        if event == EV_STOP:
            if sig in STOP_SIGNALS:  # group-stop (kill -STOP): it stays stopped, as without us
                try:
                    ptrace(PTRACE_LISTEN, tid)
                    self.threads[tid] = "listening"
                except OSError:
                    pass
                return None
            self.resume(tid)  # a new thread's first stop, or an interrupt of ours that came late
            return None
        if sig == signal.SIGTRAP and event == 0:
            if tid in self.stepping:
                self.stepping.discard(tid)
                return ("step",)
            if self.si_code(tid) == SI_KERNEL:
                regs = self.getregs(tid)
                at = regs.rip - 1
                if at in self.ever_patched:
                    regs.rip = at  # as if the int3 had not run: the original instruction is next
                    self.setregs(tid, regs)
                    if at in self.patched:
                        return ("trap", regs)
                    self.resume(tid)  # an int3 already taken out
                    return None
        self.resume(tid, sig)  # the program's own signal, delivered as without us
        return None

    def _new_tracee(self, tid: int) -> bool:
        """The first stop of a tracee we did not know: True for a new thread of
        the target (its first stop can come before its creator's clone event);
        a forked child is let go (now, or once its parent's event says it is one)."""
        if tid in self.forks:
            self.release_child(tid)
            return False
        if not self._is_thread(tid):
            self.early_children.add(tid)
            return False
        return True

    def _child_event(self, tid: int, event: int) -> int:
        """A clone/fork/vfork stop of ``tid``: the new thread's id for a clone, else 0."""
        try:
            child = _child_of_event(tid)
        except OSError:
            return 0
        if event == EV_CLONE:
            return child
        self.forks[child] = event == EV_VFORK
        if child in self.early_children:
            self.early_children.discard(child)
            self.release_child(child)
        return 0

    def _is_thread(self, tid: int) -> bool:
        try:
            with open("/proc/%d/task/%d/status" % (self.pid, tid)) as f:
                return ("Tgid:\t%d\n" % self.pid) in f.read()
        except OSError:
            return False

    def release_child(self, child: int) -> None:
        """A child forked while our int3s were in place: its copy of the bytes
        back (not for vfork: it shares our memory), then let it go.  Every byte
        ever patched: its fork event can come after we took them out of the
        parent (seen: a child released by the detach died of SIGTRAP)."""
        vfork = self.forks.pop(child, False)
        try:
            if self.originals and not vfork and not self.exec_seen:
                fd = os.open("/proc/%d/mem" % child, os.O_RDWR)
                try:
                    for addr, orig in self.originals.items():
                        os.pwrite(fd, orig, addr)
                finally:
                    os.close(fd)
            ptrace(PTRACE_DETACH, child, 0, 0)
        except OSError:
            pass

    def wait_for(self, tid: int, deadline: float):
        """Serve every event until ``tid`` stops on an int3 of ours or ends a single
        step; another thread that hits one meanwhile stays there (parked)."""
        while True:
            t, status = self.wait_any(deadline)
            got = self.handle(t, status)
            if t != tid:
                if got and got[0] == "trap":
                    self.parked.add(t)
                continue
            if got and got[0] == "gone":
                raise Failure("exited", "the thread ended")
            if got is not None:
                return got

    def step_over(self, tid: int, addr: int, deadline: float) -> None:
        """Run the original instruction under an int3 at ``addr`` (rip there); ``tid`` stays stopped."""
        orig = self.patched.get(addr)
        if orig is not None:
            self.write(addr, orig)
        try:
            self.resume(tid, step=True)
            self.wait_for(tid, deadline)
        finally:
            if orig is not None and addr in self.patched:
                self.write(addr, INT3)

    def release_parked(self) -> None:
        for t in list(self.parked):
            self.parked.discard(t)
            if self.threads.get(t) == "stopped":
                self.resume(t)

    # -- calls ---------------------------------------------------------------------------

    def call(self, tid: int, saved: Regs, func: int, *args: int, deadline: float) -> int:
        """``func(*args)`` in the stopped thread ``tid``, on its own stack; returns rax."""
        regs = saved.copy()
        for name, value in zip(ARG_REGS, args):
            setattr(regs, name, value & 0xFFFFFFFFFFFFFFFF)
        # below the red zone, 16-byte aligned at the call: rsp+8 is at the entry (SysV ABI)
        sp = ((saved.rsp - RED_ZONE - 256) & ~0xF) - 8
        self.write(sp, struct.pack("<Q", self.entry))
        regs.rsp, regs.rip, regs.rax = sp, func, 0  # rax: no vector arguments (varargs)
        regs.orig_rax = 0xFFFFFFFFFFFFFFFF  # not in a system call: nothing for the kernel to restart
        regs.eflags &= ~((1 << 10) | (1 << 8))  # DF clear (ABI), no trap flag
        self.setregs(tid, regs)
        self.resume(tid)
        try:
            return self._until_return(tid, func, deadline)
        except Timeout:
            self.halt(tid)  # abandoned: the caller puts its registers back
            raise Failure("call", "a call into the process did not return in time (abandoned, registers restored)") from None

    def halt(self, tid: int) -> None:
        """Stop ``tid``, running one of our calls, wherever it is."""
        try:
            ptrace(PTRACE_INTERRUPT, tid)
        except OSError:
            return
        deadline = now() + 5.0
        while True:
            t, status = self.wait_any(deadline)
            if t == tid and os.WIFSTOPPED(status):
                self.threads[tid] = "stopped"
                if status >> 16 == 0 and os.WSTOPSIG(status) != signal.SIGTRAP:
                    self.held_signals.append(os.WSTOPSIG(status))
                return
            got = self.handle(t, status)
            if t == tid and got and got[0] == "gone":
                raise Failure("exited", "the thread ended during a call")
            if got and got[0] == "trap":
                self.parked.add(t)

    def _until_return(self, tid: int, func: int, deadline: float) -> int:
        while True:
            t, status = self.wait_any(deadline)
            if t == tid and os.WIFSTOPPED(status) and status >> 16 == 0:
                sig = os.WSTOPSIG(status)
                if sig in FAULTS:
                    self.threads[tid] = "stopped"
                    raise Failure("crash", "a call into the process raised signal %d (undone)" % sig)
                if sig == signal.SIGTRAP and tid not in self.stepping and self.si_code(tid) == SI_KERNEL:
                    r = self.getregs(tid)
                    if r.rip - 1 == self.entry:
                        self.threads[tid] = "stopped"
                        return int(r.rax)
                if sig not in (signal.SIGTRAP,) + STOP_SIGNALS:
                    self.held_signals.append(sig)  # raised again once the thread is the program's again
                    self.resume(tid)
                    continue
            got = self.handle(t, status)
            if t == tid:
                if got and got[0] == "gone":
                    raise Failure("exited", "the thread ended during a call")
                if got and got[0] == "trap":  # our call ran into a safe point: step over it
                    self.step_over(tid, got[1].rip, deadline)
                    self.resume(tid)
            elif got and got[0] == "trap":
                self.parked.add(t)

    # -- the injection ---------------------------------------------------------------------

    def run(self) -> dict:
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        signal.signal(signal.SIGCHLD, lambda *a: None)
        signal.set_wakeup_fd(self._wake_w)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # never leave int3s behind (inject.py bounds our time)
        signal.signal(signal.SIGUSR1, self._cancel)  # the CLI's Ctrl-C: give up waiting, restore, detach
        try:
            self.mem = os.open("/proc/%d/mem" % self.pid, os.O_RDWR)
        except OSError as exc:
            return self.say(error="attach", detail=exc.strerror or str(exc))
        failure = None
        try:
            t0 = now()
            self.seize_all()
            self.out["seize_ms"] = (now() - t0) * 1e3
            self.check_sigtrap()
            self.inject()
        except Failure as exc:
            failure = exc
        except OSError as exc:
            failure = Failure("ptrace", exc.strerror or str(exc))
        except Timeout:
            failure = Failure("timeout", "the thread used did not come back in time")
        except Exception as exc:  # a bug of ours: the target still gets everything back
            failure = Failure("internal", "%s: %s" % (type(exc).__name__, exc))
        try:
            self.restore_and_detach()
        except Failure as exc:
            failure = failure or exc
        except Exception as exc:
            failure = failure or Failure("internal", "%s: %s" % (type(exc).__name__, exc))
        if failure is not None:
            return self.say(error=failure.kind, detail=failure.detail)
        return self.say(ok=True)

    def _cancel(self, signum, frame) -> None:
        self.cancelled = True  # the wakeup fd wakes wait_any's select

    def inject(self) -> None:
        if not self.points:
            raise Failure("not-python", "no safe point in the process")
        for addr, *_ in self.points:
            self.patch(addr)
        deadline = now() + self.timeout_s
        while True:
            try:
                tid, status = self.wait_any(deadline, cancellable=True)
            except Timeout:
                raise Failure("no-safe-point", "no thread took the GIL in %.0f s" % self.timeout_s) from None
            got = self.handle(tid, status)
            if not got or got[0] != "trap":
                continue
            t_hit = now()
            regs = got[1]
            point = next(p for p in self.points if p[0] == regs.rip)
            if point[3] and regs.rsi == 0:  # _PyThreadState_Swap(gilstate, NULL): a release, not a take
                self.step_over(tid, regs.rip, now() + 10)
                self.resume(tid)
                self.out["stops_ms"].append((now() - t_hit) * 1e3)
                continue
            for addr, *_ in self.points:
                self.unpatch(addr)
            ok = self.use(tid, regs, point)
            self.out["stops_ms"].append((now() - t_hit) * 1e3)
            if ok:
                self.out["safe_point"] = point[1]
                return
            for addr, *_ in self.points:
                self.patch(addr)
            self.release_parked()

    def use(self, tid: int, regs: Regs, point) -> bool:
        """In ``tid``, stopped at a safe point: the checks, then the bootstrap.
        True once it ran; the thread is running again either way."""
        deadline = now() + self.call_timeout_s
        at = [regs.copy()]  # where the thread goes on from (the return, after a finish)
        ok = None  # False: the checks said no (the int3s go back in for the next hit)
        try:
            if point[2]:  # run to the return first: the GIL is taken and the thread state set there
                ret = struct.unpack("<Q", self.read(regs.rsp, 8))[0]
                self.patch(ret)
                try:
                    self.resume(tid)
                    got = self.wait_for(tid, deadline)
                finally:
                    self.unpatch(ret)
                at[0] = got[1] if got[0] == "trap" else self.getregs(tid)
            ok = self._run_bootstrap(tid, at[0], deadline)
            return ok
        finally:
            if self.threads.get(tid) == "stopped":
                self.setregs(tid, at[0])
                if ok is False:  # past the safe point's first instruction before its int3 goes back in
                    self.resume(tid, step=True)
                    self.wait_for(tid, deadline)
                self.resume(tid)  # first: the program's thread runs on
            for sig in self.held_signals:
                _tgkill(self.pid, tid, sig)
            self.held_signals = []
            self.release_parked()

    def _run_bootstrap(self, tid: int, saved: Regs, deadline: float) -> bool:
        a = self.addr
        self.patch(self.entry)
        try:
            # errno: a thread on its way back from a system call may read it next
            errno_at = self.call(tid, saved, a["__errno_location"], deadline=deadline) if "__errno_location" in a else 0
            errno_was = self.read(errno_at, 4) if errno_at else b""
            try:
                get = a.get("PyThreadState_GetUnchecked") or a.get("_PyThreadState_UncheckedGet") or a["PyThreadState_Get"]
                tstate = self.call(tid, saved, get, deadline=deadline)
                if not tstate:
                    return False
                interp = self.call(tid, saved, a["PyThreadState_GetInterpreter"], tstate, deadline=deadline)
                if interp != self.call(tid, saved, a["PyInterpreterState_Main"], deadline=deadline):
                    return False
                if self.call(tid, saved, a["PyErr_Occurred"], deadline=deadline) != 0:
                    return False
                buf = self.call(tid, saved, a["PyMem_RawMalloc"], len(self.code), deadline=deadline)
                if not buf:
                    raise Failure("run", "PyMem_RawMalloc(%d) failed in the process" % len(self.code))
                self.write(buf, self.code)
                rc = ctypes.c_int(self.call(tid, saved, a["PyRun_SimpleStringFlags"], buf, 0, deadline=deadline) & 0xFFFFFFFF).value
                self.call(tid, saved, a["PyMem_RawFree"], buf, deadline=deadline)
                if rc != 0:
                    raise Failure("run", "the bootstrap did not run (PyRun_SimpleString returned %d)" % rc)
                return True
            finally:
                if errno_was:
                    self.write(errno_at, errno_was)
        finally:
            self.unpatch(self.entry)

    # -- leaving ----------------------------------------------------------------------------

    def restore_and_detach(self) -> None:
        """Every byte back, then every thread stopped (PTRACE_INTERRUPT) and detached.
        A thread interrupted in a system call restarts it on detach (the kernel
        rewinds it: -ERESTARTSYS / restart_syscall), as after any debugger."""
        t0 = now()
        failure = None
        for addr in list(self.patched):
            try:
                self.unpatch(addr)
            except (OSError, Failure) as exc:
                failure = failure or Failure("restore", "could not restore the byte at 0x%x: %s" % (addr, exc))
        for tid, state in list(self.threads.items()):
            if state != "stopped":
                try:
                    ptrace(PTRACE_INTERRUPT, tid)
                except OSError:
                    pass
        pass_on: dict = {}
        waiting = {t for t, s in self.threads.items() if s != "stopped"}
        deadline = now() + 10.0
        while waiting:
            try:
                tid, status = self.wait_any(deadline)
            except (Timeout, Failure):
                break
            if os.WIFEXITED(status) or os.WIFSIGNALED(status):
                self.threads.pop(tid, None)
                waiting.discard(tid)
                continue
            if not os.WIFSTOPPED(status):
                continue
            sig, event = os.WSTOPSIG(status), status >> 16
            if tid not in self.threads:
                if self._new_tracee(tid):
                    self.threads[tid] = "stopped"
                continue
            if event in (EV_CLONE, EV_FORK, EV_VFORK):
                child = self._child_event(tid, event)
                if child and child not in self.threads:
                    self.threads[child] = "running"
                    waiting.add(child)  # its first stop is on its way
            elif event == 0 and sig == signal.SIGTRAP and self.si_code(tid) == SI_KERNEL:
                try:
                    r = self.getregs(tid)
                    if r.rip - 1 in self.ever_patched:
                        r.rip -= 1  # it hit an int3 that is gone now: the original instruction is next
                        self.setregs(tid, r)
                    else:
                        pass_on[tid] = sig
                except OSError:
                    pass  # killed meanwhile
            elif event == 0:
                pass_on[tid] = sig  # the program's own signal: delivered by the detach
            self.threads[tid] = "stopped"
            waiting.discard(tid)
        for child in list(self.early_children):
            self.release_child(child)  # its parent's event never came: detach it as a fork
        for child in list(self.forks):
            self.release_child(child)  # its first stop has not come: its bytes now (the detach itself may fail)
        for tid in list(self.threads):
            try:
                ptrace(PTRACE_DETACH, tid, 0, pass_on.get(tid, 0))
            except OSError:
                pass
        self.threads.clear()
        os.close(self.mem)
        self.mem = -1
        self.out["detach_ms"] = (now() - t0) * 1e3
        self.out["stops_ms"].append(self.out["detach_ms"])
        if failure is not None and os.path.exists("/proc/%d" % self.pid):
            raise failure

    def say(self, **kw) -> dict:
        self.out.update(kw)
        return self.out


def _status_mask(pid: int, tid, field: str) -> int:
    """A signal mask from /proc/PID[/task/TID]/status (0 if unreadable: the thread is gone)."""
    path = "/proc/%d/status" % pid if tid is None else "/proc/%d/task/%d/status" % (pid, tid)
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split(":", 1)[1].strip(), 16)
    except (OSError, ValueError):
        pass
    return 0


def _tgkill(tgid: int, tid: int, sig: int) -> None:
    _libc.syscall(234, tgid, tid, sig)  # SYS_tgkill on x86-64


def main() -> int:
    params = json.loads(os.environ["GILTRACE_INJECT"])
    result = Injector(params).run()
    sys.stdout.write("GILTRACE-INJECT %s\n" % json.dumps(result))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
