"""Run inside gdb (``gdb -nx -iex 'set auto-load off' -batch -x gdb_inject.py``),
not by giltrace: the fallback chosen with ``GILTRACE_INJECTOR=gdb``
(giltrace's own injector, ptrace_inject.py, is the default).

gdb's embedded Python runs this file; it imports nothing of giltrace (gdb's
Python may be another version than the target's).  Its parameters come in
the environment variable ``GILTRACE_INJECT`` (JSON: pid, code, timeout_s,
extra_breakpoints); it prints one line ``GILTRACE-INJECT {json}`` with the
outcome and the measured stop times.

What it does (docs/how-it-works.md, "Attaching"):

1. attach (every thread stops), load only the Python runtime's symbols,
   put breakpoints on *safe points*: functions entered by a thread that holds
   the GIL at a point where CPython itself may run arbitrary Python code, and
   resume.  The target runs on while gdb waits for the first hit.
2. at the first hit that passes the checks (main interpreter, no exception
   set), remove the breakpoints and, in that thread, run the
   giltrace bootstrap with ``PyRun_SimpleStringFlags``: it only starts a new
   thread (``_thread.start_new_thread``) and returns.  Everything else (the
   import of giltrace, the trace) happens in that new thread, after gdb has
   detached.
3. detach: the target runs as before.
"""

import json
import os
import signal
import threading
import time

import gdb  # type: ignore[import-not-found]  # provided by gdb

P = json.loads(os.environ["GILTRACE_INJECT"])
PID = int(P["pid"])
OUT = {"ok": False, "stops_ms": [], "strategy": "gdb"}


def say(**kw):
    OUT.update(kw)
    gdb.write("GILTRACE-INJECT %s\n" % json.dumps(OUT))
    gdb.flush()


def run(cmd, to_string=True):
    return gdb.execute(cmd, to_string=to_string)


def value(expr):
    return gdb.parse_and_eval(expr)


def has_symbol(name):
    try:
        return gdb.lookup_global_symbol(name) is not None or bool(value("(long)&" + name))
    except gdb.error:
        return False


def now():
    return time.monotonic()


for setting in (
    "pagination off",
    "confirm off",
    "auto-solib-add off",
    "print thread-events off",
    "print inferior-events off",
    "unwindonsignal on",
    "scheduler-locking off",
    "debuginfod enabled off",
    "width 0",
):
    try:
        run("set " + setting)
    except gdb.error:
        pass  # an older gdb without the setting
run("handle all nostop noprint pass")  # the target's own signals go to the target, unseen
run("handle SIGINT stop print nopass")  # our own wake-up (below); never delivered to the target


# Symbols before the attach, while the target still runs: the executable's,
# libpython's and libc's (errno, below) at the addresses they are loaded at
# (/proc/PID/maps).  Reading libpython's after the attach (``sharedlibrary``)
# kept the target stopped ~70 ms more.
def load_address(name):
    """(path, base) of the first mapping at file offset 0 of a library whose file name starts with ``name``."""
    with open("/proc/%d/maps" % PID) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 6 and os.path.basename(parts[5]).startswith(name) and int(parts[2], 16) == 0:
                return parts[5], int(parts[0].split("-")[0], 16)
    return None, 0


try:
    run("file /proc/%d/exe" % PID)
except gdb.error:
    pass
preloaded = set()
for name in ("libpython", "libc.so", "libc-"):
    try:
        lib, base = load_address(name)
        if lib:
            run("add-symbol-file %s -o 0x%x" % (lib, base))
            preloaded.add(name[:4])
    except (gdb.error, OSError, ValueError):
        pass

for attempt in range(3):
    t_stop = now()
    try:
        run("attach %d" % PID)
        break
    except gdb.error as exc:
        # EPERM also comes from a brief race (another tracer detaching): try again before giving up.
        if attempt == 2 or "not permitted" not in str(exc).lower():
            say(error="attach", detail=str(exc).strip())
            raise SystemExit(0) from None
        time.sleep(0.2)
OUT["attach_ms"] = (now() - t_stop) * 1e3
# Only the Python runtime's symbols (libpython, or the executable itself).
if "libp" not in preloaded:
    try:
        run("sharedlibrary libpython")
    except gdb.error:
        pass
OUT["symbols_ms"] = (now() - t_stop) * 1e3

required = [
    "PyEval_SaveThread",
    "PyRun_SimpleStringFlags",
    "PyErr_Occurred",
    "PyMem_RawMalloc",
    "PyMem_RawFree",
    "PyThreadState_Get",
    "PyThreadState_GetInterpreter",
    "PyInterpreterState_Main",
]
missing = [s for s in required if not has_symbol(s)]
if missing:
    run("detach")
    OUT["stops_ms"].append((now() - t_stop) * 1e3)
    say(error="not-python", detail="no %s in the process" % ", ".join(missing))
    raise SystemExit(0)


# The second integer argument of a call, at a function's entry.
ARG2 = {"aarch64": "$x1"}.get(gdb.selected_inferior().architecture().name(), "$rsi")


class SafePoint(gdb.Breakpoint):
    """A breakpoint that only records that it was hit (no inferior calls here)."""

    def __init__(self, spec, finish, need_rsi):
        super().__init__(spec, internal=True)
        self.silent = True
        self.finish_first = finish
        self.need_rsi = need_rsi

    def stop(self):
        if self.need_rsi:  # _PyThreadState_Swap(gilstate, newts): only when a tstate is being attached
            try:
                if int(value(ARG2)) == 0:
                    return False
            except gdb.error:
                return False
        return True


points = []
for spec, finish, need_rsi in [("PyEval_SaveThread", False, False)] + [tuple(x) for x in P.get("extra_breakpoints", [])]:
    if has_symbol(spec):
        points.append(SafePoint(spec, finish, need_rsi))

# Wake gdb up if no thread reaches a safe point in time: SIGINT stops the
# target in gdb and is not passed on (handle ... nopass).
deadline = now() + float(P.get("timeout_s", 5.0))
waiting = threading.Event()  # set while the target runs and gdb waits for a safe point
finished = threading.Event()
wake_lock = threading.Lock()
fired = []


def wake():
    while not finished.wait(0.05):
        if now() > deadline:
            with wake_lock:
                if waiting.is_set() and not fired:
                    fired.append(True)
                    try:
                        os.kill(PID, signal.SIGINT)
                    except OSError:
                        pass


def set_waiting(flag):
    with wake_lock:
        (waiting.set if flag else waiting.clear)()


def checks_ok():
    """In the stopped thread (which holds the GIL: it is at a safe point):
    it runs the main interpreter and has no exception set.  These calls only
    read memory, so the other threads stay stopped while they run."""
    run("set scheduler-locking on")
    try:
        if int(value("(long)PyErr_Occurred()")) != 0:
            return False
        tstate = int(value("(long)PyThreadState_Get()"))
        return tstate != 0 and int(value("(long)PyThreadState_GetInterpreter((void*)%d)" % tstate)) == int(
            value("(long)PyInterpreterState_Main()")
        )
    finally:
        run("set scheduler-locking off")


def stopped_at_safe_point():
    bp = None
    for p in points:
        if p.hit_count and p.is_valid():
            bp = p
    return bp


OUT["stops_ms"].append((now() - t_stop) * 1e3)
waker = threading.Thread(target=wake, daemon=True)
waker.start()
hit = None
tries = 0
while hit is None and now() <= deadline + 1 and tries < 50:
    tries += 1
    for p in points:
        p.hit_count = 0
    set_waiting(True)
    try:
        run("continue")
    except gdb.error as exc:
        finished.set()
        say(error="exited", detail=str(exc).strip())
        raise SystemExit(0) from None
    finally:
        set_waiting(False)
    t_stop = now()
    if not gdb.selected_inferior().pid:
        say(error="exited", detail="the process exited")
        raise SystemExit(0)
    bp = stopped_at_safe_point()
    if bp is None:  # our SIGINT: nobody reached a safe point in time
        fired.clear()  # consumed
        break
    for p in points:
        p.enabled = False
    if bp.finish_first:
        run("finish")
    OUT["t_finish"] = (now() - t_stop) * 1e3
    if checks_ok():
        OUT["t_checks"] = (now() - t_stop) * 1e3
        hit = bp
        break
    for p in points:
        p.enabled = True
    OUT["stops_ms"].append((now() - t_stop) * 1e3)
finished.set()

if hit is None:
    for p in points:
        p.delete()
    run("detach")
    OUT["stops_ms"].append((now() - t_stop) * 1e3)
    say(error="no-safe-point", detail="no thread took the GIL in %.0f s" % float(P.get("timeout_s", 5.0)))
    raise SystemExit(0)

where = hit.location
for p in points:
    p.delete()
# errno: a thread stopped on its way back from a system call (the return of
# _PyThreadState_Swap in PyEval_RestoreThread) reads it next; keep it.
errno_at = 0
try:
    if "libc" not in preloaded:
        run("sharedlibrary libc")
    run("set scheduler-locking on")
    errno_at = int(value("(long)__errno_location()"))
    errno_was = int(value("*(int *)%d" % errno_at))
except gdb.error:
    pass
finally:
    run("set scheduler-locking off")
code = P["code"].encode() + b"\0"
buf = int(value("(long)PyMem_RawMalloc(%d)" % len(code)))
rc = None
if buf:
    gdb.selected_inferior().write_memory(buf, code)
    OUT["t_malloc"] = (now() - t_stop) * 1e3
    rc = int(value("(int)PyRun_SimpleStringFlags((const char *)%d, (void *)0)" % buf))
    OUT["t_run"] = (now() - t_stop) * 1e3
    value("(void)PyMem_RawFree((void *)%d)" % buf)
if errno_at:
    run("set var *(int *)%d = %d" % (errno_at, errno_was))
if fired:
    # Our SIGINT left at the very moment a safe point was hit: take it here
    # (not passed on), or the detach would deliver it to the program.
    try:
        run("continue")
    except gdb.error:
        pass
run("detach")
OUT["stops_ms"].append((now() - t_stop) * 1e3)
if rc != 0:
    say(error="run", detail="the bootstrap did not run (PyRun_SimpleString returned %s)" % rc)
else:
    say(ok=True, safe_point=where)
