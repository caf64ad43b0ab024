"""Start and stop the native tracer; write the Python-side parts of the file.

C records the events (csrc/); this module decides policy: where the file
goes, what metadata it carries, thread names, and what happens at fork,
interpreter exit and Ctrl-C.
"""
from __future__ import annotations

import atexit
import os
import platform
import socket
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

from . import __version__, fileformat
from ._binding import native
from .errors import GiltraceError, TraceRunning, UnsupportedInterpreter

DEFAULT_BUFFER_EVENTS = 1 << 19
DEFAULT_SAMPLE_PERIOD_MS = 1.0
DEFAULT_FLUSH_PERIOD_MS = 100.0

_lock = threading.Lock()
_active: Optional["Tracer"] = None
_process_hooks_installed = False


class Tracer:
    """One GIL trace of this process, written to ``path``.

    ``start()`` / ``stop()`` for code that can't use ``with``; ``stop()``
    returns the loaded :class:`~giltrace.Trace` (also in ``result``).  With
    ``path=None`` the file is a temporary one, deleted once loaded.
    """

    def __init__(
        self,
        path: Optional[str] = None,
        *,
        sample_period_ms: float = DEFAULT_SAMPLE_PERIOD_MS,
        buffer_events: int = DEFAULT_BUFFER_EVENTS,
        flush_period_ms: float = DEFAULT_FLUSH_PERIOD_MS,
        locations: bool = True,
        follow_children: Optional[str] = None,
    ):
        if sample_period_ms < 0 or flush_period_ms <= 0 or buffer_events <= 0:
            raise ValueError("sample_period_ms must be >= 0, flush_period_ms and buffer_events > 0")
        self.path = os.fspath(path) if path is not None else None
        self.sample_period_ms = float(sample_period_ms)
        self.buffer_events = int(buffer_events)
        self.flush_period_ms = float(flush_period_ms)
        self.locations = bool(locations)
        # A path template (see autostart.path_for): forked children trace into
        # their own file, and the trace is finalised even by os._exit.
        self.follow_children = follow_children
        self.result = None  # the Trace, once stopped
        self.stats: Dict[str, Any] = {}
        self._fd = -1
        self._temporary = False
        self._running = False
        self._names: Dict[int, str] = {}
        self._fd_lock = threading.Lock()

    # -- control ---------------------------------------------------------

    def start(self) -> "Tracer":
        global _active
        ffi, lib = native()  # UnsupportedInterpreter with the reason
        with _lock:
            if _active is not None:
                raise TraceRunning("a trace is already running in this process (writing %s)" % _active.path)
            self._open_file()
            try:
                try:
                    fileformat.write_all(self._fd, fileformat.header_bytes(self._header()))
                except OSError as exc:
                    raise GiltraceError("cannot write the trace file %s: %s" % (self.path, exc.strerror or exc)) from None
                self._names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
                prefixes = ffi.new("char[]", "\n".join(library_prefixes()).encode())  # C copies it
                cfg = ffi.new(
                    "gt_config *",
                    {
                        "library_prefixes": prefixes,
                        "fd": self._fd,
                        "buffer_events": self.buffer_events,
                        "sample_period_ns": int(self.sample_period_ms * 1e6),
                        "flush_period_ns": int(self.flush_period_ms * 1e6),
                        "locations": int(self.locations),
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
            except BaseException:
                self._close_file(remove=True)
                raise
            self._running = True
            _active = self
            _install_process_hooks()
            _thread_hook.install(self._on_thread_start)
            if self.follow_children:
                _exit_hook.install()
            self._write_json(fileformat.CHUNK_START, self._start_record(ffi, lib))
            self._write_json(fileformat.CHUNK_THREADS, self._name_records())
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
            _thread_hook.uninstall()
            _exit_hook.uninstall()
            for t in threading.enumerate():  # final names: renames after start
                if t.native_id is not None:
                    self._names[t.native_id] = t.name
            self.stats = {f: getattr(stats, f) for f, _ in ffi.typeof("gt_stats").fields}
            try:
                self._write_json(fileformat.CHUNK_THREADS, self._name_records())
                self._write_json(fileformat.CHUNK_FOOTER, self._footer())
            except OSError as exc:
                self.stats["write_errno"] = self.stats.get("write_errno") or exc.errno or 1
            self._close_file(remove=False)
        if self.stats.get("write_errno"):
            raise GiltraceError("the trace file %s is incomplete (readable up to where writing stopped): %s"
                                % (self.path, os.strerror(self.stats["write_errno"])))
        if load:
            from .model import load as load_trace

            self.result = load_trace(self.path)
            self.result.names.update(self._names)
        if self._temporary:
            os.unlink(self.path)
        return self.result

    def sample(self) -> Dict[str, Any]:
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

    # -- file ------------------------------------------------------------

    def _open_file(self) -> None:
        if self.path is None:
            fd, self.path = tempfile.mkstemp(prefix="giltrace-", suffix=".gtr")
            os.close(fd)
            self._temporary = True
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._created = self._temporary or not os.path.lexists(self.path)
        try:
            self._fd = os.open(self.path, flags, 0o644)
        except OSError as exc:
            raise GiltraceError("cannot write the trace file %s: %s" % (self.path, exc.strerror or exc)) from None

    def _close_file(self, remove: bool) -> None:
        with self._fd_lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
        # Only a regular file this tracer created: never /dev/full or a user's file.
        if remove and self.path and getattr(self, "_created", False) and os.path.isfile(self.path):
            try:
                os.unlink(self.path)
            except OSError:
                pass

    def _write_json(self, kind: int, obj: Any) -> None:
        data = fileformat.json_chunk(kind, obj)
        with self._fd_lock:
            if self._fd >= 0:
                fileformat.write_all(self._fd, data)

    def _on_thread_start(self, tid: int, name: str) -> None:
        self._names[tid] = name
        self._write_json(fileformat.CHUNK_THREADS, [{"tid": tid, "name": name}])

    def _name_records(self) -> List[Dict[str, Any]]:
        return [{"tid": tid, "name": name} for tid, name in self._names.items()]

    # -- metadata --------------------------------------------------------

    def _header(self) -> Dict[str, Any]:
        try:
            affinity = sorted(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            affinity = []
        return {
            "giltrace_version": __version__,
            "format_version": fileformat.FORMAT_VERSION,
            "clock": "CLOCK_MONOTONIC",
            "pid": os.getpid(),
            "argv": list(sys.argv),
            "executable": sys.executable,
            "python_version": platform.python_version(),
            "python_implementation": platform.python_implementation(),
            "platform": platform.platform(),
            "machine": platform.machine(),
            "hostname": socket.gethostname(),
            "cpu_count": os.cpu_count(),
            "affinity": affinity,
            "switch_interval_s": sys.getswitchinterval(),
            "sample_period_ns": int(self.sample_period_ms * 1e6),
            "flush_period_ns": int(self.flush_period_ms * 1e6),
            "buffer_events": self.buffer_events,
            "locations": self.locations,
            "library_prefixes": library_prefixes(),
            "children_template": self.follow_children,
            "start_time_unix": time.time(),
        }

    @staticmethod
    def _start_record(ffi, lib) -> Dict[str, Any]:
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
        }

    def _footer(self) -> Dict[str, Any]:
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
        }


def library_prefixes() -> List[str]:
    """Where library code lives (the standard library, site-packages, giltrace
    itself): a wait is attributed to the innermost frame outside these, the
    program's own line that called into the library's I/O."""
    import sysconfig

    paths = sysconfig.get_paths()
    out = []
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        path = paths.get(key)
        if path:
            out.append(os.path.join(os.path.realpath(path), ""))
            out.append(os.path.join(path, ""))
    out.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), ""))
    return list(dict.fromkeys(out))  # in order, without repeats


def trace(path: Optional[str] = None, **options: Any) -> Tracer:
    """``with giltrace.trace("run.gtr") as tr: ...``; then ``tr.result``."""
    return Tracer(path, **options)


def start(path: Optional[str] = None, **options: Any) -> Tracer:
    """Start tracing this process now; ``giltrace.stop()`` ends it."""
    return Tracer(path, **options).start()


def stop(load: bool = True):
    """Stop the running trace (started anywhere in this process) and return it."""
    tracer = _active
    if tracer is None:
        raise GiltraceError("no trace is running")
    return tracer.stop(load=load)


def active() -> Optional[Tracer]:
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


def _after_fork_in_child() -> None:
    # C has already unhooked and forgotten the trace (pthread_atfork); the
    # child must not touch the parent's file.  It runs untraced, unless the
    # parent's trace follows children: then it starts its own trace.
    global _active, _lock
    _lock = threading.Lock()
    tracer = _active
    follow = tracer.follow_children if tracer is not None else None
    if tracer is not None:
        tracer._running = False
        tracer._fd_lock = threading.Lock()
        if tracer._fd >= 0:
            os.close(tracer._fd)
            tracer._fd = -1
        tracer._temporary = False
        tracer.path = None
        _active = None
    _thread_hook.uninstall()
    _exit_hook.uninstall()
    if follow:
        from .autostart import path_for

        try:
            Tracer(path_for(follow, os.getpid()), follow_children=follow).start()
        except Exception as exc:  # never break the child
            sys.stderr.write("giltrace: the forked child %d is not traced: %s\n" % (os.getpid(), exc))


def _install_process_hooks() -> None:
    global _process_hooks_installed
    if not _process_hooks_installed:
        atexit.register(_at_exit)
        os.register_at_fork(after_in_child=_after_fork_in_child)
        _process_hooks_installed = True


class _ThreadStartHook:
    """Learns the name of each thread as it starts, even if it ends before
    the trace stops, by wrapping ``threading.Thread._bootstrap_inner`` for
    the duration of a trace."""

    def __init__(self) -> None:
        self._original = None
        self._callback = None

    def install(self, callback) -> None:
        self._callback = callback
        if self._original is not None:
            return
        original = threading.Thread._bootstrap_inner
        hook = self

        def _bootstrap_inner(thread: threading.Thread) -> None:
            cb = hook._callback
            if cb is not None:
                try:
                    cb(threading.get_native_id(), thread.name)
                except Exception:  # never break the traced program's thread
                    pass
            return original(thread)

        self._original = original
        threading.Thread._bootstrap_inner = _bootstrap_inner  # type: ignore[method-assign]

    def uninstall(self) -> None:
        self._callback = None
        if self._original is not None:
            threading.Thread._bootstrap_inner = self._original  # type: ignore[method-assign]
            self._original = None


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
