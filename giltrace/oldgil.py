"""The 2.7 starter: trace CPython 2.7's old GIL from inside a 2.7 process.

2.7 cannot import the giltrace package (3.8+ code, a cffi extension), so a
2.7 process loads the old-GIL recorder, the C core built as a plain shared
library by the 3.x host (giltrace/_build_oldgil.py), with ``ctypes``, and
this module writes the Python-side records of the file the way
giltrace/tracer.py does: header, START, THREADS and FOOTER (layout:
giltrace/layout.py, docs/file-format.md).  The 3.x host reads, analyses and
draws the file as any other trace.

Plain Python 2.7/3.x code using only the standard library, loaded by path
(giltrace/bench/workloads/gtrace.py) or run as a script::

    python2.7 giltrace/oldgil.py --lib LIB.so --output trace.gtr -- script.py args...

What differs from a 3.x trace (docs/how-it-works.md, "The old GIL (2.7)"):
code locations only on releases somebody waited for (and on waits), read
from 2.7's structs by csrc/frames27.c once this starter has checked their
layout against the running interpreter; no drop requests (2.7 has none);
ACQUIRE carries FLAG_SAME_HOLDER when the releasing thread took the GIL
straight back.
"""

from __future__ import absolute_import, division, print_function

import atexit
import ctypes
import json
import os
import platform
import stat
import struct
import sys
import threading
import time
import types
import zlib

try:
    import thread as _thread  # 2.7
except ImportError:  # 3.x (tests run the starter there too)
    import _thread

MAGIC = b"GILTRACE"
FORMAT_VERSION = 1
HEADER = struct.Struct("<8sHHI")
CHUNK = struct.Struct("<4sHHIII")
CHUNK_START, CHUNK_THREADS, CHUNK_FOOTER = 3, 4, 5  # as giltrace/layout.py
DEFAULT_BUFFER_EVENTS = 1 << 19  # as giltrace/tracer.py
GT_ERR_UNSUPPORTED, GT_ERR_RUNNING = -2, -3
SYS_GETTID = {"x86_64": 186, "aarch64": 178}.get(platform.machine(), 186)
LIB_ENV = "GILTRACE_OLDGIL_LIB"  # set by the 3.x host: the library it built


class OldGilError(RuntimeError):
    """The trace could not start (no library, not CPython 2.7's GIL...)."""


# The leading fields of gt_config / gt_stats (csrc/giltrace_api.h) the
# starter uses, then zeroed room: fields the contract adds at the end read 0
# (their defaults) and never run past the buffer; the library's own sizes are
# checked at start (tests/native/test_oldgil.py compares the layouts).
SPARE = 512


class _Config(ctypes.Structure):
    _fields_ = [
        ("fd", ctypes.c_int),
        ("buffer_events", ctypes.c_uint32),
        ("sample_period_ns", ctypes.c_uint64),
        ("flush_period_ns", ctypes.c_uint64),
        ("locations", ctypes.c_int),
        ("library_prefixes", ctypes.c_char_p),
        ("finalize_on_signals", ctypes.c_int),
        ("cpu_state", ctypes.c_int),
        ("cgroup_cpu_stat", ctypes.c_char_p),
        ("path", ctypes.c_char_p),
        ("_spare", ctypes.c_char * SPARE),
    ]


STATS_FIELDS = [
    (name, ctypes.c_uint64)
    for name in (
        "start_ns",
        "stop_ns",
        "switch_number_start",
        "switch_number_stop",
        "events_written",
        "events_lost",
        "samples_written",
        "chunks_written",
        "interval_us",
    )
] + [
    ("buffer_events", ctypes.c_uint32),
    ("write_errno", ctypes.c_int),
    ("locations_lost", ctypes.c_uint64),
    ("fd_reopened", ctypes.c_uint32),
    ("fd_lost", ctypes.c_int),
]


class _Stats(ctypes.Structure):
    _fields_ = STATS_FIELDS + [("_spare", ctypes.c_char * SPARE)]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def gettid():
    """The calling thread's OS id (what the C core records)."""
    return int(_libc.syscall(SYS_GETTID))


def monotonic_ns():
    ts = _Timespec()
    _libc.clock_gettime(1, ctypes.byref(ts))  # CLOCK_MONOTONIC
    return ts.tv_sec * 1000000000 + ts.tv_nsec


def _dumps(obj):
    """As layout.dumps: json.dumps(obj, sort_keys=True), ASCII."""
    text = json.dumps(obj, sort_keys=True)
    return text.encode("ascii") if not isinstance(text, bytes) else text


def _chunk(kind, obj):
    payload = _dumps(obj)
    return CHUNK.pack(b"CHNK", kind, 0, 1, len(payload), zlib.crc32(payload) & 0xFFFFFFFF) + payload


def _affinity():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Cpus_allowed_list:"):
                    out = []
                    for part in line.split(":", 1)[1].strip().split(","):
                        lo, _, hi = part.partition("-")
                        out.extend(range(int(lo), int(hi or lo) + 1))
                    return out
    except (IOError, OSError, ValueError):
        pass
    return []


def load_library(path=None):
    """The recorder library (ctypes.PyDLL: calls keep the GIL, which the
    old GIL's start and stop rely on, csrc/oldgil.c)."""
    path = path or os.environ.get(LIB_ENV)
    if not path:
        raise OldGilError(
            os.environ.get("GILTRACE_OLDGIL_ERROR")
            or "no old-GIL recorder library: the 3.x host builds it (giltrace/_build_oldgil.py) and passes it in %s" % LIB_ENV
        )
    try:
        lib = ctypes.PyDLL(path)
    except OSError as exc:
        raise OldGilError("cannot load the old-GIL recorder %s: %s" % (path, exc))
    lib.gt_oldgil_found_by.restype = ctypes.c_char_p
    lib.gt_oldgil_semaphore.restype = ctypes.c_void_p
    lib.gt_oldgil_sizeof.restype = ctypes.c_size_t
    lib.gt_trace_write.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    for which, ours in ((0, _Config), (1, _Stats)):
        if lib.gt_oldgil_sizeof(which) > ctypes.sizeof(ours):
            raise OldGilError(
                "the old-GIL recorder %s is newer than this starter (its %s is larger): "
                "rebuild from one source tree" % (path, ours.__name__)
            )
    return lib


def check_layout(lib):
    """Whether the 2.7 struct offsets csrc/frames27.c reads (gt_old_layout)
    are this interpreter's: compared on live objects.  (ok, why not)."""
    if sys.version_info[0] != 2 or platform.python_implementation() != "CPython" or ctypes.sizeof(ctypes.c_void_p) != 8:
        return False, "code locations need 64-bit CPython 2.7"
    n = ctypes.c_int(0)
    lib.gt_old_layout.restype = ctypes.POINTER(ctypes.c_int)
    offsets = lib.gt_old_layout(ctypes.byref(n))
    if not offsets:
        return False, "the interpreter lacks a function the location reader calls"
    ts_frame, ts_thread_id, f_back, f_code, f_lasti, co_filename, co_name, co_firstlineno, str_size, str_sval = offsets[: n.value]

    def ptr(addr):
        return ctypes.c_void_p.from_address(addr).value

    ctypes.pythonapi.PyThreadState_Get.restype = ctypes.c_void_p
    ts = ctypes.pythonapi.PyThreadState_Get()
    frame = sys._getframe()
    caller = frame.f_back  # its f_lasti does not move while this runs
    code = caller.f_code
    name = code.co_filename
    checks = [
        ctypes.c_void_p.from_address(ts + ts_frame).value == id(frame),  # inline: inside ptr() its own frame is current
        ctypes.c_long.from_address(ts + ts_thread_id).value == _thread.get_ident(),
        ptr(id(frame) + f_back) == id(caller),
        ptr(id(caller) + f_code) == id(code),
        ctypes.c_int.from_address(id(caller) + f_lasti).value == caller.f_lasti,
        ptr(id(code) + co_filename) == id(code.co_filename),
        ptr(id(code) + co_name) == id(code.co_name),
        ctypes.c_int.from_address(id(code) + co_firstlineno).value == code.co_firstlineno,
        ctypes.c_ssize_t.from_address(id(name) + str_size).value == len(name),
        ctypes.string_at(id(name) + str_sval, len(name)) == name,
    ]
    if not all(checks):
        return False, "this interpreter's structs differ from the layout csrc/frames27.c reads"
    return True, ""


def _sibling(name):
    """giltrace/<name>.py, read from its file: this starter runs on 2.7 as a
    script, where the giltrace package (3.8+ code) cannot be imported."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py")
    module = types.ModuleType("giltrace_" + name)
    module.__file__ = path
    with open(path) as f:
        exec(compile(f.read(), path, "exec"), module.__dict__)
    return module


def library_prefixes():
    """Where library code lives (the standard library with its site-packages,
    giltrace's own starter): a wait is put on the innermost frame outside."""
    out = [os.path.dirname(os.path.abspath(os.__file__)), os.path.dirname(os.path.abspath(__file__))]
    return [p.rstrip(os.sep) + os.sep for p in out]


class Tracer(object):
    """One trace of this 2.7 process's GIL, written to ``path``; the same
    start()/stop() as giltrace.Tracer, without loading the result."""

    def __init__(
        self,
        path,
        lib=None,
        buffer_events=DEFAULT_BUFFER_EVENTS,
        sample_period_ms=5.0,
        flush_period_ms=100.0,
        locations=True,
        cpu_state=False,
    ):
        self.path = path
        self.want_locations = bool(locations)
        self.cpu_state = bool(cpu_state)
        self.lib_path = lib
        self.buffer_events = int(buffer_events)
        self.sample_period_ms = float(sample_period_ms)
        self.flush_period_ms = float(flush_period_ms)
        self.stats = {}
        self.found_by = None
        self.locations, self.locations_note, self.prefixes = False, "", []
        self._lib = None
        self._fd = -1
        self._pid = None
        self._names = {}
        self._fd_lock = _thread.allocate_lock()
        self._c_owns_file = False
        self._old_bootstrap = None

    # -- control ---------------------------------------------------------

    def start(self):
        lib = self._lib = load_library(self.lib_path)
        err = ctypes.create_string_buffer(512)
        if lib.gt_oldgil_prepare(err, len(err)) != 0:
            raise OldGilError(err.value.decode("ascii", "replace"))
        self.found_by = lib.gt_oldgil_found_by().decode("ascii", "replace")
        if self.want_locations:
            self.locations, self.locations_note = check_layout(lib)
        else:
            self.locations_note = "turned off"
        self.prefixes = library_prefixes() if self.locations else []
        # as giltrace/safefiles.py (not importable on 2.7): no link, no FIFO, 0600
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
        try:
            self._fd = os.open(self.path, flags, int(os.environ.get("GILTRACE_FILE_MODE") or "600", 8))
        except OSError as exc:
            raise OldGilError("cannot write the trace file %s: %s" % (self.path, exc.strerror or exc))
        if not stat.S_ISREG(os.fstat(self._fd).st_mode):
            os.close(self._fd)
            self._fd = -1
            raise OldGilError("refusing to write the trace file %s: it is not a regular file" % self.path)
        os.ftruncate(self._fd, 0)
        self._pid = os.getpid()
        try:
            self._write(self._header_bytes())
            self._names = {gettid(): threading.current_thread().name}
            cfg = _Config(
                fd=self._fd,
                buffer_events=self.buffer_events,
                sample_period_ns=int(self.sample_period_ms * 1e6),
                flush_period_ns=int(self.flush_period_ms * 1e6),
                locations=1 if self.locations else 0,
                library_prefixes="\n".join(self.prefixes).encode("utf-8"),
                finalize_on_signals=1,
                cpu_state=1 if self.cpu_state else 0,
                cgroup_cpu_stat=self._cgroup_cpu_stat(),
                path=os.path.abspath(self.path).encode("utf-8") if not isinstance(self.path, bytes) else os.path.abspath(self.path),
            )
            rc = lib.gt_start(ctypes.byref(cfg), err, len(err))
            if rc != 0:
                raise OldGilError(
                    ("cannot start the trace: " if rc not in (GT_ERR_UNSUPPORTED, GT_ERR_RUNNING) else "")
                    + err.value.decode("ascii", "replace")
                )
            # C writes through its own, checked descriptor from now on
            # (how-it-works.md, "The program's own descriptors")
            with self._fd_lock:
                os.close(self._fd)
                self._fd = -1
                self._c_owns_file = True
        except BaseException:
            if self._fd >= 0:
                os.close(self._fd)
            self._fd = -1
            os.unlink(self.path)
            raise
        self._hook_threads()
        self._write(_chunk(CHUNK_START, self._start_record()))
        self._write(_chunk(CHUNK_THREADS, self._name_records()))
        return self

    def stop(self, load=False):
        """Stop and finalise the file (``load`` is accepted for giltrace.Tracer's signature)."""
        if not self._c_owns_file:
            return None
        if os.getpid() != self._pid:  # a forked child: the trace is the parent's (C closed its copy)
            self._c_owns_file = False
            return None
        st = _Stats()
        self._lib.gt_stop(ctypes.byref(st))
        self._unhook_threads()
        self.stats = dict((name, int(getattr(st, name))) for name, _ in STATS_FIELDS)
        self._write(_chunk(CHUNK_THREADS, self._name_records()))
        self._write(_chunk(CHUNK_FOOTER, self._footer()))
        with self._fd_lock:
            self._c_owns_file = False
            self._lib.gt_trace_close()  # only if the descriptor is still the file's
        return None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # -- thread names ----------------------------------------------------

    def _hook_threads(self):
        """Name each thread started from now on by its OS id (2.7 has no native_id)."""
        attr = "_Thread__bootstrap_inner" if hasattr(threading.Thread, "_Thread__bootstrap_inner") else "_bootstrap_inner"
        original = getattr(threading.Thread, attr)
        tracer = self

        def bootstrap_inner(thread_self):
            tracer._on_thread_start(gettid(), thread_self.name)
            return original(thread_self)

        self._old_bootstrap = (attr, original)
        setattr(threading.Thread, attr, bootstrap_inner)

    def _unhook_threads(self):
        if self._old_bootstrap:
            setattr(threading.Thread, *self._old_bootstrap)
            self._old_bootstrap = None

    def _on_thread_start(self, tid, name):
        self._names[tid] = name
        self._write(_chunk(CHUNK_THREADS, [{"tid": tid, "name": name}]))

    def _name_records(self):
        return [{"tid": tid, "name": name} for tid, name in sorted(self._names.items())]

    # -- file --------------------------------------------------------------

    def _write(self, data):
        with self._fd_lock:
            if self._c_owns_file:
                self._lib.gt_trace_write(data, len(data))  # an error is the footer's write_errno / fd_lost
                return
            view = memoryview(data)
            while len(view) and self._fd >= 0:
                view = view[os.write(self._fd, view) :]

    def _header_bytes(self):
        uname = os.uname()
        meta = {
            "giltrace_version": "oldgil",
            "format_version": FORMAT_VERSION,
            "clock": "CLOCK_MONOTONIC",
            "pid": os.getpid(),
            "argv": list(sys.argv),
            "executable": sys.executable,
            "python_version": sys.version.split()[0],
            "python_implementation": platform.python_implementation(),
            "platform": "%s-%s-%s" % (uname[0], uname[2], uname[4]),
            "machine": uname[4],
            "hostname": uname[1],
            "cpu_count": os.sysconf("SC_NPROCESSORS_ONLN"),
            "affinity": _affinity(),
            # 2.7 has no switch interval: it drops the GIL every check interval
            # of ticks.  This is the sampler's "holder stuck" bound (csrc/oldgil.c).
            "switch_interval_s": 0.005,
            "gil_kind": "old",
            "check_interval": sys.getcheckinterval() if hasattr(sys, "getcheckinterval") else None,
            "sample_period_ns": int(self.sample_period_ms * 1e6),
            "flush_period_ns": int(self.flush_period_ms * 1e6),
            "buffer_events": self.buffer_events,
            "locations": self.locations,
            "locations_note": self.locations_note,
            "release_location_period_ns": int(self._release_location_period()) if self.locations else 0,
            "cpu_state": self.cpu_state,
            "library_prefixes": self.prefixes,
            "children_template": None,
            "start_time_unix": time.time(),
            "gil_found_by": self.found_by,
            "gil_semaphore": self._lib.gt_oldgil_semaphore() or 0,  # the GIL's lock, for uprobe filters
        }
        body = _dumps(meta)
        return HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(body)) + body

    def _cgroup_cpu_stat(self):
        """Where the C sampler reads this process's throttling (cpu_state only)."""
        if not self.cpu_state:
            return None
        path = _sibling("cpus").cgroup_cpu_stat_path()
        return path.encode("utf-8") if path else None

    def _release_location_period(self):
        """A thread's releases get a location at most this often (csrc/oldgil.c)."""
        self._lib.gt_old_locate_every_ns.restype = ctypes.c_uint64
        return self._lib.gt_old_locate_every_ns()

    def _start_record(self):
        st = _Stats()
        self._lib.gt_stats_now(ctypes.byref(st))
        target = ctypes.create_string_buffer(1024)
        self._lib.gt_hook_target(target, len(target))
        return {
            "start_ns": int(st.start_ns),
            "clock_pair": [monotonic_ns(), int(time.time() * 1e9)],
            "switch_number_start": int(st.switch_number_start),
            "buffer_events": int(st.buffer_events),
            "hooked_object": target.value.decode("utf-8", "replace"),
            "timestamps": "tsc" if self._lib.gt_clock_is_tsc() else "clock_gettime",
        }

    def _footer(self):
        s = self.stats
        return {
            "start_ns": s["start_ns"],
            "stop_ns": s["stop_ns"],
            "stop_time_unix": time.time(),
            "switch_number_start": s["switch_number_start"],
            "switch_number_stop": s["switch_number_stop"],
            "events_written": s["events_written"],
            "events_lost": s["events_lost"],
            "samples_written": s["samples_written"],
            "switch_interval_s": s["interval_us"] / 1e6,
            "write_errno": s["write_errno"],
            "locations_lost": s["locations_lost"],
            "fd_reopened": s["fd_reopened"],
        }


def trace(path, **options):
    """A Tracer for ``path`` (as giltrace.trace)."""
    return Tracer(path, **options)


USAGE = (
    "usage: oldgil.py --lib LIB --output FILE [--buffer-events N] [--sample-period-ms MS] "
    "[--no-locations] [--cpu-state] -- script.py [args]\n"
)


def main(argv=None):
    """Run a script under a trace: ``--lib LIB --output FILE [options] -- script args``
    (the options of ``giltrace run`` that 2.7 supports; giltrace/oldgil_run.py)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    opts = {"--lib": None, "--output": None, "--buffer-events": str(DEFAULT_BUFFER_EVENTS), "--sample-period-ms": "5"}
    switches = {"--no-locations": False, "--cpu-state": False}
    while argv and argv[0] != "--":
        key = argv.pop(0)
        if key in switches:
            switches[key] = True
            continue
        if key not in opts or not argv:
            sys.stderr.write(USAGE)
            return 2
        opts[key] = argv.pop(0)
    if argv[:1] == ["--"]:
        argv.pop(0)
    if not argv or not opts["--output"]:
        sys.stderr.write(USAGE)
        return 2
    import runpy

    tracer = Tracer(
        opts["--output"],
        lib=opts["--lib"],
        buffer_events=int(opts["--buffer-events"]),
        sample_period_ms=float(opts["--sample-period-ms"]),
        locations=not switches["--no-locations"],
        cpu_state=switches["--cpu-state"],
    )
    try:
        tracer.start()
    except (OldGilError, OSError) as exc:
        sys.stderr.write("giltrace: %s\n" % exc)
        return 1
    atexit.register(tracer.stop)  # also when the script calls sys.exit()
    sys.argv = argv
    sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
    runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
