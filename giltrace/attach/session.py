"""One attach, seen from the CLI: check the target, make a private directory
with a control socket, inject the bootstrap, wait for the agent's ``started``,
later send ``stop`` and collect the file.

    with Session(pid) as s:        # start(): the trace runs in the target
        s.wait(duration)           # returns early if the target exits
        stats = s.stop()           # the trace is stopped in the target
        s.save(output)             # copied out of the private directory

The private directory (``giltrace-attach-*`` in the temp dir, mode 0700,
given to the target's user when we are root) holds the socket and the trace
the target writes; it is removed on close, and by the agent itself if the CLI
dies first (giltrace/attach/agent.py).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from typing import Dict, Optional

from .. import errors
from .bootstrap import bootstrap_code
from .inject import Injection, choose
from .target import AttachError, Target, check_same_python, inspect

CONNECT_TIMEOUT_S = 20.0  # from injection to the agent's first word (it imports giltrace meanwhile)


class TargetExited(AttachError):
    """The target ended while it was traced (the file is readable to its last flush)."""


class Session:
    def __init__(
        self,
        pid: int,
        *,
        attach_timeout_s: float = 5.0,
        sample_period_ms: float = 5.0,
        buffer_events: int = 1 << 19,
        locations: bool = True,
    ) -> None:
        self.pid = pid
        self.attach_timeout_s = attach_timeout_s
        self.options = {"sample_period_ms": sample_period_ms, "buffer_events": buffer_events, "locations": locations}
        self.target: Optional[Target] = None
        self.injection: Optional[Injection] = None
        self.dir: Optional[str] = None
        self.trace_path = ""
        self.stats: Dict[str, int] = {}
        self.detach_stops_ms: float = 0.0
        self._listener: Optional[socket.socket] = None
        self._conn: Optional[socket.socket] = None
        self._buffer = b""
        self.exited = False
        self.interrupted = False  # Ctrl-C came while the trace was starting

    # -- start -------------------------------------------------------------

    def start(self) -> "Session":
        self.target = target = inspect(self.pid)
        injector = choose(target, self.attach_timeout_s)
        check_same_python(target)
        self._make_dir(target)
        import giltrace

        params = {
            "socket": os.path.join(self.dir, "ctl"),
            "trace": self.trace_path,
            "package": os.path.dirname(os.path.abspath(giltrace.__file__)),
            "cffi_backend": _cffi_backend_path(),
        }
        params.update(self.options)
        self.injection = injector.inject(target, bootstrap_code(params))
        try:
            self._accept()
            while True:
                try:
                    kind, body = self._read_message(CONNECT_TIMEOUT_S)
                    break
                except KeyboardInterrupt:  # Ctrl-C while the tracer starts: let it start, then stop at once
                    self.interrupted = True
        finally:
            injector.cleanup()
        if kind == "started":
            return self
        if kind == "error":
            msg = str(body.get("message", body))
            if body.get("kind") == "TraceRunning":
                raise errors.TraceRunning("a trace is already running in process %d: %s" % (self.pid, msg))
            raise AttachError("giltrace could not start in process %d: %s" % (self.pid, msg))
        if kind == "eof":
            raise TargetExited("process %d exited before the trace started" % self.pid)
        raise AttachError("process %d did not answer after the injection (%s)" % (self.pid, kind))

    def _make_dir(self, target: Target) -> None:
        self.dir = tempfile.mkdtemp(prefix="giltrace-attach-%d-" % target.pid)
        if os.geteuid() == 0 and target.uid != 0:  # the target writes here as its own user
            os.chown(self.dir, target.uid, target.gid)
        self.trace_path = os.path.join(self.dir, "trace.gtr")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(os.path.join(self.dir, "ctl"))
        os.chmod(os.path.join(self.dir, "ctl"), 0o666)  # inside a 0700 directory of the target's user
        listener.listen(1)
        self._listener = listener

    def _accept(self) -> None:
        assert self._listener is not None
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        self._listener.settimeout(0.2)
        while True:
            try:
                self._conn, _ = self._listener.accept()
                break
            except socket.timeout:
                if not _alive(self.pid):
                    raise TargetExited("process %d exited right after the injection" % self.pid) from None
                if time.monotonic() > deadline:
                    raise AttachError(
                        "process %d ran the injected code but giltrace's thread did not report in %.0f s" % (self.pid, CONNECT_TIMEOUT_S)
                    ) from None
        self._listener.close()
        self._listener = None
        os.unlink(os.path.join(self.dir, "ctl"))  # nothing else may connect

    def _read_message(self, timeout: Optional[float]):
        """(kind, body) of the agent's next line; ("eof", {}) if it closed, ("timeout", {}) if none came."""
        assert self._conn is not None
        self._conn.settimeout(timeout)
        while b"\n" not in self._buffer:
            try:
                chunk = self._conn.recv(65536)
            except socket.timeout:
                return "timeout", {}
            except OSError:
                chunk = b""
            if not chunk:
                return "eof", {}
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        kind, _, rest = line.decode("utf-8", "replace").partition(" ")
        try:
            body = json.loads(rest) if rest else {}
        except ValueError:
            body = {"message": rest}
        return kind, body

    # -- while it runs ---------------------------------------------------------

    def wait(self, duration: Optional[float] = None, poll_s: float = 0.2) -> bool:
        """Wait ``duration`` seconds (None: until KeyboardInterrupt); False if the target exited meanwhile."""
        end = None if duration is None else time.monotonic() + duration
        while end is None or time.monotonic() < end:
            step = poll_s if end is None else max(0.0, min(poll_s, end - time.monotonic()))
            kind, _ = self._read_message(step or 0.001)
            if kind == "eof":
                self.exited = True
                return False
        return True

    def running(self) -> bool:
        """Non-blocking: is the agent still there?"""
        if self.exited or self._conn is None:
            return False
        kind, _ = self._read_message(0.0001)
        if kind == "eof":
            self.exited = True
        return not self.exited

    # -- stop ----------------------------------------------------------------

    def stop(self) -> Dict[str, int]:
        """Stop the trace in the target; TargetExited if it is gone (the file is complete to its last flush)."""
        if self._conn is None:
            return self.stats
        if not self.exited:
            t0 = time.monotonic()
            try:
                self._conn.sendall(b"stop\n")
            except OSError:
                self.exited = True
            if not self.exited:
                kind, body = self._read_message(30.0)
                self.detach_stops_ms = (time.monotonic() - t0) * 1e3
                if kind == "stopped":
                    self.stats = {k: int(v) for k, v in body.items() if isinstance(v, (int, float))}
                elif kind == "error":
                    self.stats = {k: int(v) for k, v in dict(body.get("stats") or {}).items() if isinstance(v, (int, float))}
                    self._close_conn()
                    raise AttachError("the trace in process %d ended with an error: %s" % (self.pid, body.get("message")))
                else:
                    self.exited = True
        self._close_conn()
        if self.exited:
            raise TargetExited("process %d exited during the trace; the file holds everything up to its last flush" % self.pid)
        return self.stats

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- files -----------------------------------------------------------------

    def save(self, output: str) -> str:
        """Copy the trace out of the private directory to ``output`` (created safely, ours to read)."""
        from ..tracer import create_trace_file

        if not os.path.exists(self.trace_path):
            raise AttachError("process %d wrote no trace file" % self.pid)
        fd, _ = create_trace_file(output, overwrite=True)
        with open(self.trace_path, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        return output

    def close(self) -> None:
        """Stop if still running, and remove the private directory."""
        if self._conn is not None:
            try:
                self.stop()
            except errors.GiltraceError:
                pass
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self) -> "Session":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


class stop_signals_interrupt:
    """While a trace runs, SIGTERM and SIGHUP (a closed terminal, a killed
    tmux) end the CLI like Ctrl-C, so that it still stops the trace and
    removes its directory."""

    def __enter__(self) -> "stop_signals_interrupt":
        import signal

        def interrupt(signum, frame):
            raise KeyboardInterrupt

        self._saved = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
        return self

    def __exit__(self, *exc) -> None:
        import signal

        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def _alive(pid: int) -> bool:
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _cffi_backend_path() -> str:
    """Where this interpreter's cffi backend is: a target in another environment may not have cffi."""
    try:
        import _cffi_backend

        return str(getattr(_cffi_backend, "__file__", "") or "")
    except ImportError:
        return ""


def describe(session: Session) -> str:
    """One line: how long the target was stopped (for --verbose and the benchmarks)."""
    inj = session.injection
    if inj is None:
        return ""
    stops = " + ".join("%.1f" % s for s in inj.stops_ms)
    return "attached with %s at %s; target stopped %s ms" % (inj.strategy, inj.safe_point or "?", stops or "0")


__all__ = ["Session", "TargetExited", "AttachError", "describe", "stop_signals_interrupt"]
