"""Start and stop the native tracer; write the Python-side parts of the file.

C records the events (csrc/); this module decides policy: where the file
goes, what metadata it carries, thread names, and what happens at fork,
interpreter exit and Ctrl-C.

It is imported at interpreter start-up when ``GILTRACE`` is set, so it
imports only what it strictly needs (no ``threading``, ``socket``,
``platform``, ``typing``...): a program that must import a module first
(gevent, eventlet monkey-patching ``threading``) still can
(docs/how-it-works.md, "Start-up").
"""

from __future__ import annotations

import _thread
import atexit
import os
import stat
import sys
import time

from . import __version__, layout
from .cpus import cgroup_cpu_stat_path
from ._binding import native
from .errors import GiltraceError, TraceRunning, UnsupportedInterpreter
from .safefiles import check_unshared, existing_regular, file_mode

DEFAULT_BUFFER_EVENTS = 1 << 19
DEFAULT_SAMPLE_PERIOD_MS = 5.0  # while a holder is stuck (csrc/recorder.c, "The sampler")
DEFAULT_FLUSH_PERIOD_MS = 100.0

_lock = _thread.allocate_lock()
_active: "Tracer | None" = None
_process_hooks_installed = False


class Tracer:
    """One GIL trace of this process, written to ``path``.

    ``start()`` / ``stop()`` for code that can't use ``with``; ``stop()``
    returns the loaded :class:`~giltrace.Trace` (also in ``result``).  With
    ``path=None`` the file is a temporary one, deleted once loaded.
    """

    def __init__(
        self,
        path: "str | None" = None,
        *,
        sample_period_ms: float = DEFAULT_SAMPLE_PERIOD_MS,
        buffer_events: int = DEFAULT_BUFFER_EVENTS,
        flush_period_ms: float = DEFAULT_FLUSH_PERIOD_MS,
        locations: bool = True,
        follow_children: "str | None" = None,
        overwrite: bool = True,
        cpu_state: bool = False,
    ):
        if sample_period_ms < 0 or flush_period_ms <= 0 or buffer_events <= 0:
            raise ValueError("sample_period_ms must be >= 0, flush_period_ms and buffer_events > 0")
        self.path = os.fspath(path) if path is not None else None
        self.sample_period_ms = float(sample_period_ms)
        self.buffer_events = int(buffer_events)
        self.flush_period_ms = float(flush_period_ms)
        self.locations = bool(locations)
        # A path template (see path_for): forked children trace into
        # their own file, and the trace is finalised even by os._exit.
        self.follow_children = follow_children
        # False for paths giltrace derived itself (GILTRACE, forked children):
        # an existing file is replaced only if it is an earlier trace of ours.
        self.overwrite = overwrite
        # Each thread's scheduler counters (and the cgroup's throttling) every
        # sample period: whether a holder was running (how-it-works.md, "CPU state").
        self.cpu_state = bool(cpu_state)
        self.result = None  # the Trace, once stopped
        self.stats: "dict[str, int]" = {}
        self._fd = -1
        self._temporary = False
        self._running = False
        self._names: "dict[int, str]" = {}
        self._ring: "_NamesRing | None" = None
        self._fd_lock = _thread.allocate_lock()
        self._created = False
        self._c_owns_file = False  # after gt_start: C's own descriptor, checked before each write

    # -- control ---------------------------------------------------------

    def start(self) -> "Tracer":
        global _active
        ffi, lib = native()  # UnsupportedInterpreter with the reason
        with _lock:
            if _active is not None:
                raise TraceRunning("a trace is already running in this process (writing %s)" % _active.path)
            if lib.gt_running():  # e.g. started by another interpreter of this process: never touch files then
                raise TraceRunning("a trace is already running in this process")
            self._open_file()
            try:
                try:
                    layout.write_all(self._fd, layout.header_bytes(self._header()))
                except OSError as exc:
                    raise GiltraceError("cannot write the trace file %s: %s" % (self.path, exc.strerror or exc)) from None
                self._names = _python_thread_names()
                prefixes = ffi.new("char[]", "\n".join(library_prefixes()).encode())  # C copies it
                path = ffi.new("char[]", os.fsencode(os.path.abspath(self.path)))  # C copies it
                stat_path = cgroup_cpu_stat_path() if self.cpu_state else None
                cgroup = ffi.new("char[]", stat_path.encode()) if stat_path else None  # C copies it
                cfg = ffi.new(
                    "gt_config *",
                    {
                        "library_prefixes": prefixes,
                        "fd": self._fd,
                        "buffer_events": self.buffer_events,
                        "sample_period_ns": int(self.sample_period_ms * 1e6),
                        "flush_period_ns": int(self.flush_period_ms * 1e6),
                        "locations": int(self.locations),
                        "finalize_on_signals": 1,
                        "cpu_state": int(self.cpu_state),
                        "cgroup_cpu_stat": cgroup if cgroup else ffi.NULL,
                        "path": path,
                    },
                )
                err = ffi.new("char[512]")
                rc = lib.gt_start(cfg, err, len(err))
                if rc != 0:
                    msg = ffi.string(err).decode(errors="replace")
                    if rc == lib.GT_ERR_UNSUPPORTED:
                        raise UnsupportedInterpreter(msg)
                    if rc == lib.GT_ERR_RUNNING:
                        raise TraceRunning(msg)
                    raise GiltraceError("cannot start the trace: " + msg)
                # C writes through its own descriptor from now on, checked
                # before each write (how-it-works.md, "The program's own
                # descriptors"): ours goes, so that no write uses a number the
                # program may close and reuse.
                self._c_owns_file = True
                with self._fd_lock:
                    os.close(self._fd)
                    # C's own descriptor, only to be read (attach's agent reopens it
                    # through /proc/self/fd): never written or closed from here.
                    self._fd = lib.gt_trace_fd()
            except BaseException:
                self._close_file(remove=True)
                raise
            self._running = True
            _active = self
            self._ring = _NamesRing(ffi, lib)
            _install_process_hooks()
            _thread_hook.add(self._on_thread_start)
            if self.follow_children:
                _exit_hook.install()
            self._write_json(layout.CHUNK_START, self._start_record(ffi, lib))
            self._write_json(layout.CHUNK_THREADS, self._name_records())
        return self

    def stop(self, *, load: bool = True):
        """Stop, finalise the file, and return the Trace (None if ``load=False``)."""
        global _active
        with _lock:
            if not self._running:
                return self.result
            ffi, lib = native()
            stats = ffi.new("gt_stats *")
            lib.gt_stop(stats)
            self._running = False
            _active = None
            _thread_hook.discard(self._on_thread_start)
            _exit_hook.uninstall()
            self._names.update(_python_thread_names())  # final names: renames after start
            self.stats = {f: getattr(stats, f) for f, _ in ffi.typeof("gt_stats").fields}
            try:
                self._write_json(layout.CHUNK_THREADS, self._name_records())
                self._write_json(layout.CHUNK_FOOTER, self._footer())
            except OSError as exc:
                self.stats["write_errno"] = self.stats.get("write_errno") or exc.errno or 1
            self._close_file(remove=False)
        if self.stats.get("fd_lost"):
            raise GiltraceError(
                "the trace file %s is incomplete (readable up to where writing stopped): the program closed or "
                "replaced giltrace's descriptor and the file could not be reopened" % self.path
            )
        if self.stats.get("write_errno"):
            raise GiltraceError(
                "the trace file %s is incomplete (readable up to where writing stopped): %s"
                % (self.path, os.strerror(self.stats["write_errno"]))
            )
        if load:
            from .model import load as load_trace

            self.result = load_trace(self.path)
            self.result.names.update(self._names)
        if self._temporary:
            os.unlink(self.path)
        return self.result

    def sample(self) -> "dict[str, object]":
        """Who holds the GIL right now (the sampler's view, read directly)."""
        ffi, lib = native()
        s = ffi.new("gt_sample *")
        lib.gt_sample_now(s)
        holder = int(s.holder_tid)
        return {
            "time_ns": int(s.time_ns),
            "locked": bool(s.locked),
            "holder_tid": holder or None,
            "holder_name": self._names.get(holder) if holder else None,
            "switch_number": int(s.switch_number),
            "drop_request": bool(s.drop_request),
            "waiters": int(s.waiters),
        }

    @property
    def running(self) -> bool:
        return self._running

    def __enter__(self) -> "Tracer":
        return self.start()

    def __exit__(self, *exc) -> None:
        # Stop even on KeyboardInterrupt; the exception then propagates as usual.
        self.stop(load=True)

    def _forget_after_fork(self) -> None:
        """In a forked child: this trace belongs to the parent; drop it
        without touching its file (C has already unhooked)."""
        self._running = False
        self._fd_lock = _thread.allocate_lock()
        if self._fd >= 0 and not self._c_owns_file:
            os.close(self._fd)
        self._fd = -1
        self._c_owns_file = False  # C closed its copy in the child (pthread_atfork)
        self._temporary = self._created = False
        self.path = None

    # -- file ------------------------------------------------------------

    def _open_file(self) -> None:
        if self.path is None:
            import tempfile  # only here: it is a heavy import for start-up

            self._fd, self.path = tempfile.mkstemp(prefix="giltrace-", suffix=".gtr")  # O_EXCL, 0600
            self._temporary = self._created = True
            import fcntl

            fcntl.fcntl(self._fd, fcntl.F_SETFL, fcntl.fcntl(self._fd, fcntl.F_GETFL) | os.O_APPEND)
            return
        self._fd, self._created = create_trace_file(self.path, self.overwrite)

    def _close_file(self, remove: bool) -> None:
        with self._fd_lock:
            if self._c_owns_file:
                self._c_owns_file = False
                native()[1].gt_trace_close()  # only if it is still the file's
            elif self._fd >= 0:
                os.close(self._fd)
            self._fd = -1
        # Only a file this tracer created: never a user's file.
        if remove and self.path and self._created and os.path.isfile(self.path):
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _write_json(self, kind: int, obj: object) -> None:
        data = layout.json_chunk(kind, obj)
        with self._fd_lock:
            if self._c_owns_file:
                err = native()[1].gt_trace_write(data, len(data))
                if err:
                    raise OSError(err, os.strerror(err))
            elif self._fd >= 0:
                layout.write_all(self._fd, data)

    def _on_thread_start(self, tid: int, name: str) -> None:
        # On the program's new thread: no file I/O and no call into C (a cffi
        # call, like a write, releases the GIL, and the thread would then
        # wait to take it back inside giltrace).  The name goes to C's ring
        # with plain stores; the writer thread writes it (PY_NAMES chunk).
        self._names[tid] = name
        if self._ring is not None:
            self._ring.put(tid, name)

    def _name_records(self) -> "list[dict[str, object]]":
        return [{"tid": tid, "name": name} for tid, name in self._names.items()]

    # -- metadata --------------------------------------------------------

    def _header(self) -> "dict[str, object]":
        try:
            affinity = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = []
        uname = os.uname()
        impl = sys.implementation.name
        return {
            "giltrace_version": __version__,
            "format_version": layout.FORMAT_VERSION,
            "clock": "CLOCK_MONOTONIC",
            "pid": os.getpid(),
            "argv": list(sys.argv),
            "executable": sys.executable,
            "python_version": sys.version.split()[0],
            "python_implementation": "CPython" if impl == "cpython" else impl,
            "platform": "%s-%s-%s" % (uname.sysname, uname.release, uname.machine),
            "machine": uname.machine,
            "hostname": uname.nodename,
            "cpu_count": os.cpu_count(),
            "affinity": affinity,
            "switch_interval_s": sys.getswitchinterval(),
            "sample_period_ns": int(self.sample_period_ms * 1e6),
            "flush_period_ns": int(self.flush_period_ms * 1e6),
            "buffer_events": self.buffer_events,
            "locations": self.locations,
            "library_prefixes": library_prefixes(),
            "children_template": self.follow_children,
            "cpu_state": self.cpu_state,
            "start_time_unix": time.time(),
        }

    @staticmethod
    def _start_record(ffi, lib) -> "dict[str, object]":
        st = ffi.new("gt_stats *")
        lib.gt_stats_now(st)
        target = ffi.new("char[1024]")
        lib.gt_hook_target(target, len(target))
        return {
            "start_ns": int(st.start_ns),
            # one (monotonic, wall) reading, to place events on the Unix-epoch clock
            "clock_pair": [time.monotonic_ns(), time.time_ns()],
            "switch_number_start": int(st.switch_number_start),
            "buffer_events": int(st.buffer_events),
            "hooked_object": ffi.string(target).decode(errors="replace"),
            "timestamps": "tsc" if lib.gt_clock_is_tsc() else "clock_gettime",
        }

    def _footer(self) -> "dict[str, object]":
        s = self.stats
        return {
            "start_ns": int(s["start_ns"]),
            "stop_ns": int(s["stop_ns"]),
            "stop_time_unix": time.time(),
            "switch_number_start": int(s["switch_number_start"]),
            "switch_number_stop": int(s["switch_number_stop"]),
            "events_written": int(s["events_written"]),
            "events_lost": int(s["events_lost"]),
            "samples_written": int(s["samples_written"]),
            "switch_interval_s": int(s["interval_us"]) / 1e6,
            "write_errno": int(s["write_errno"]),
            "locations_lost": int(s["locations_lost"]),
            "fd_reopened": int(s["fd_reopened"]),
        }


class _NamesRing:
    """C's ring of Python's thread names (and the before-fork flag) (csrc/giltrace_api.h, gt_py_names),
    reached through pointers taken once at start: reading ``lib.X`` calls a
    cffi accessor that releases the GIL, a pointer's ``[0]`` does not.  A name
    is stored with plain stores under the GIL; the next GIL release publishes
    it to the writer.  When the writer lags a whole ring behind, the name
    waits for the stop's THREADS record."""

    def __init__(self, ffi, lib) -> None:
        self.ffi = ffi
        self.stored = ffi.addressof(lib, "gt_py_names_stored")
        self.written = ffi.addressof(lib, "gt_py_names_written")
        self.slots = ffi.addressof(lib, "gt_py_names")[0]
        self.size = int(lib.GT_PY_NAMES_MAX)
        self.bytes = int(lib.GT_PY_NAME_BYTES)
        self.fork_flag = ffi.addressof(lib, "gt_fork_from_python")  # for _before_fork, as plain a store

    def put(self, tid: int, name: str) -> None:
        n = self.stored[0]
        if (n - self.written[0]) & 0xFFFFFFFF >= self.size:
            return
        rec = self.slots[n % self.size]
        rec.tid = tid
        self.ffi.memmove(rec.name, name.encode("utf-8", "replace")[: self.bytes - 1].ljust(self.bytes, b"\0"), self.bytes)
        self.stored[0] = (n + 1) & 0xFFFFFFFF


def path_for(template: str, pid: int) -> str:
    """The trace file of process ``pid`` for a GILTRACE / --subprocesses
    template: ``%p`` replaced by the pid, else ``.<pid>`` before the extension."""
    if "%p" in template:
        return template.replace("%p", str(pid))
    stem, ext = os.path.splitext(template)
    return "%s.%d%s" % (stem, pid, ext or ".gtr")


def create_trace_file(path: str, overwrite: bool) -> "tuple[int, bool]":
    """Open ``path`` for a new trace: (fd, whether giltrace created it).

    Never follows a symbolic link, never writes to anything but a regular
    file, and never blocks (a FIFO is refused, not opened for writing).  An
    existing file is truncated only when the user named it (``overwrite``);
    for paths giltrace derived itself (GILTRACE's ``<name>.<pid>.gtr``) only
    an earlier giltrace trace of this user is replaced: a planted link or
    someone's file is refused (docs/how-it-works.md, "Trace files").
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
    for attempt in (1, 2):
        try:
            return os.open(path, flags | os.O_CREAT | os.O_EXCL, file_mode()), True  # 0600 unless GILTRACE_FILE_MODE
        except FileExistsError:
            pass
        except OSError as exc:
            raise GiltraceError("cannot write the trace file %s: %s" % (path, exc.strerror or exc)) from None
        st = existing_regular(path, "the trace file ")
        if st is None:
            continue  # removed meanwhile: create it
        if overwrite:
            try:
                fd = os.open(path, flags)
            except OSError as exc:
                raise GiltraceError("cannot write the trace file %s: %s" % (path, exc.strerror or exc)) from None
            st = os.fstat(fd)
            try:
                if not stat.S_ISREG(st.st_mode):  # swapped since the lstat
                    raise GiltraceError("refusing to write the trace file %s: it is not a regular file" % path)
                check_unshared(st, path, "the trace file ")
            except GiltraceError:
                os.close(fd)
                raise
            os.ftruncate(fd, 0)
            return fd, False
        if not _is_own_trace(path, st) or attempt == 2:
            raise GiltraceError("refusing to overwrite %s: it exists and is not an earlier giltrace trace of this user" % path)
        try:
            os.unlink(path)  # a stale trace of an earlier process with the same pid
        except OSError as exc:
            raise GiltraceError("cannot replace the trace file %s: %s" % (path, exc.strerror or exc)) from None
    raise GiltraceError("cannot create the trace file %s" % path)  # not reached


def _is_own_trace(path: str, st: os.stat_result) -> bool:
    if st.st_uid != os.geteuid():
        return False
    if st.st_size == 0:
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return os.read(fd, len(layout.MAGIC)) == layout.MAGIC
    finally:
        os.close(fd)


def library_prefixes() -> "list[str]":
    """Where library code lives (the standard library, site-packages, giltrace
    itself): a wait is attributed to the innermost frame outside these, the
    program's own line that called into the library's I/O.  Read from the
    ``site`` module (already loaded at start-up), not ``sysconfig``, which
    imports ``threading`` on 3.12+."""
    import site

    stdlib = getattr(sys, "_stdlib_dir", None) or os.path.dirname(os.__file__)
    paths = [stdlib]
    try:
        paths += site.getsitepackages()
    except AttributeError:  # some embedded / frozen builds
        pass
    user = getattr(site, "USER_SITE", None)
    if user:
        paths.append(user)
    out = []
    for path in paths:
        out.append(os.path.join(os.path.realpath(path), ""))
        out.append(os.path.join(path, ""))
    out.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ""))
    return list(dict.fromkeys(out))  # in order, without repeats


def trace(path: "str | None" = None, **options: object) -> Tracer:
    """``with giltrace.trace("run.gtr") as tr: ...``; then ``tr.result``."""
    return Tracer(path, **options)  # type: ignore[arg-type]


def start(path: "str | None" = None, **options: object) -> Tracer:
    """Start tracing this process now; ``giltrace.stop()`` ends it."""
    return Tracer(path, **options).start()  # type: ignore[arg-type]


def stop(load: bool = True):
    """Stop the running trace (started anywhere in this process) and return it."""
    tracer = _active
    if tracer is None:
        raise GiltraceError("no trace is running")
    return tracer.stop(load=load)


def active() -> "Tracer | None":
    return _active


# -- process-wide hooks: exit, fork, thread names --------------------------


def _at_exit() -> None:
    # Non-daemon threads are joined before atexit runs, so the file gets them all.
    tracer = _active
    if tracer is not None:
        try:
            tracer.stop(load=False)
        except GiltraceError as exc:  # e.g. the disk filled up: say so in one line
            sys.stderr.write("giltrace: %s\n" % exc)


def _before_fork() -> None:
    # The writer thread steps aside while os.fork() runs (C pauses it inside
    # fork()), so that a program with one thread of its own is still
    # single-threaded there: 3.12+ warns about forking multi-threaded
    # processes after fork() returns (3.13: after the after-fork hooks too).
    # This plain store (no call, so the GIL is not released in the middle of
    # os.fork()) tells C to bring it back at the next GIL transition.
    if _active is not None and _active._ring is not None:
        _active._ring.fork_flag[0] = 1  # through a pointer: `lib.gt_fork_from_python = 1` is a cffi call that releases the GIL


def _after_fork_in_child() -> None:
    # C has already unhooked and forgotten the trace (pthread_atfork); the
    # child must not touch the parent's file.  It runs untraced, unless the
    # parent's trace follows children: then it starts its own trace.
    global _active, _lock
    _lock = _thread.allocate_lock()
    tracer = _active
    follow = tracer.follow_children if tracer is not None else None
    if tracer is not None:
        tracer._forget_after_fork()
        _active = None
    _thread_hook.uninstall()
    _exit_hook.uninstall()
    if follow:
        try:
            Tracer(path_for(follow, os.getpid()), follow_children=follow, overwrite=False).start()
        except Exception as exc:  # never break the child
            sys.stderr.write("giltrace: the forked child %d is not traced: %s\n" % (os.getpid(), exc))


def _install_process_hooks() -> None:
    global _process_hooks_installed
    if not _process_hooks_installed:
        atexit.register(_at_exit)
        os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
        _process_hooks_installed = True


def _python_thread_names() -> "dict[int, str]":
    """Names of the threads the ``threading`` module knows, if it is loaded.
    A C thread that ran Python code shows up as a ``_DummyThread``
    ("Dummy-1"): its OS name, which C records, says more."""
    threading = sys.modules.get("threading")
    if threading is None:  # no thread was started through it: the main thread is the process's first
        return {os.getpid(): "MainThread"}
    dummy = getattr(threading, "_DummyThread", ())
    # Not threading.enumerate(): its lock may have been held by another thread
    # at a fork, and a forked child gets here (_after_fork_in_child) possibly
    # before threading's own after-fork hook renews that lock.  Copying the
    # dict needs no lock under the GIL.
    active = getattr(threading, "_active", {})
    threads = list(active.values())
    names = {t.native_id: t.name for t in threads if getattr(t, "native_id", None) is not None and not isinstance(t, dummy)}
    # The calling thread under its OS id now: in a forked child, before
    # threading's own after-fork hook runs, its Thread still carries the
    # parent's native id (a gunicorn worker's MainThread would be "thread-PID").
    me = active.get(_thread.get_ident())
    if me is not None and not isinstance(me, dummy):
        names.pop(getattr(me, "native_id", None), None)  # the parent's thread, not in this process
        names[_thread.get_native_id()] = me.name
    return names


class _ThreadStartHook:
    """Learns the name of each thread as it starts, even if it ends before
    the trace stops, by wrapping ``threading.Thread._bootstrap_inner`` while
    someone listens (a trace, the metrics: giltrace/monitoring.py).  If
    ``threading`` is not imported yet, it is not imported for this: the
    wrapper goes in as soon as the program imports it
    (_ThreadingImportWatcher)."""

    def __init__(self) -> None:
        self._original = None
        self._callbacks: "tuple" = ()
        self._module = None

    def add(self, callback) -> None:
        if callback not in self._callbacks:
            self._callbacks = self._callbacks + (callback,)
        threading = sys.modules.get("threading")
        if threading is None:
            _ThreadingImportWatcher.arm(self)
        else:
            self.wrap(threading)

    def discard(self, callback) -> None:
        self._callbacks = tuple(c for c in self._callbacks if c != callback)
        if not self._callbacks:
            self.uninstall()

    def wrap(self, threading) -> None:
        if self._original is not None or not self._callbacks:
            return
        original = threading.Thread._bootstrap_inner
        hook = self
        get_native_id = threading.get_native_id

        def _bootstrap_inner(thread) -> None:
            for cb in hook._callbacks:
                try:
                    cb(get_native_id(), thread.name)
                except Exception:  # never break the traced program's thread
                    pass
            return original(thread)

        self._module = threading
        self._original = original
        threading.Thread._bootstrap_inner = _bootstrap_inner  # type: ignore[method-assign]

    def uninstall(self) -> None:
        self._callbacks = ()
        _ThreadingImportWatcher.disarm()
        if self._original is not None:
            self._module.Thread._bootstrap_inner = self._original  # type: ignore[union-attr]
            self._original = None
            self._module = None


class _ThreadingImportWatcher:
    """A meta-path finder that only waits for ``import threading`` (it finds
    nothing itself): it lets the normal finder find the module, wraps that
    loader's ``exec_module`` for this one import, then takes itself and the
    wrapper away.  The module is imported exactly when the program imports
    it, by the same loader."""

    _armed: "_ThreadingImportWatcher | None" = None

    def __init__(self, hook: _ThreadStartHook) -> None:
        self.hook = hook

    @classmethod
    def arm(cls, hook: _ThreadStartHook) -> None:
        if cls._armed is None:
            cls._armed = cls(hook)
            sys.meta_path.insert(0, cls._armed)

    @classmethod
    def disarm(cls) -> None:
        watcher, cls._armed = cls._armed, None
        if watcher is not None and watcher in sys.meta_path:
            sys.meta_path.remove(watcher)

    def find_spec(self, name, path=None, target=None):
        if name != "threading":
            return None
        _ThreadingImportWatcher.disarm()
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find is not None else None
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        if loader is None or not hasattr(loader, "exec_module"):
            return spec
        hook = self.hook
        original = loader.exec_module

        def exec_module(module) -> None:
            try:
                original(module)
            finally:
                try:
                    del loader.exec_module  # back to the class's method
                except AttributeError:
                    pass
            hook.wrap(module)

        try:
            loader.exec_module = exec_module
        except AttributeError:  # a loader that takes no attributes: names come at stop
            pass
        return spec


_thread_hook = _ThreadStartHook()


class _ExitHook:
    """While a trace follows children, ``os._exit`` (how multiprocessing
    workers end, skipping atexit) first finalises the trace file."""

    def __init__(self) -> None:
        self._original = None

    def install(self) -> None:
        if self._original is not None:
            return
        original = os._exit

        def _exit(status: int) -> None:
            tracer = _active
            if tracer is not None:
                try:
                    tracer.stop(load=False)
                except Exception:
                    pass
            original(status)

        self._original = original
        os._exit = _exit

    def uninstall(self) -> None:
        if self._original is not None:
            os._exit = self._original
            self._original = None


_exit_hook = _ExitHook()
