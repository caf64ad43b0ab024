"""One attach, seen from the CLI: check the target, make a private directory
with a control socket, inject the bootstrap, wait for the agent's ``started``,
later send ``stop`` and collect the file.

    with Session(pid) as s:        # start(): the trace runs in the target
        s.wait(duration)           # returns early if the target exits
        stats = s.stop()           # the trace is stopped in the target
        s.save(output)             # copied out of the private directory

The private directory (``giltrace-attach-PID-*`` in the temp dir as the
target sees it, mode 0700, given to the target's user when we are root) holds
the socket and the trace the target writes; it is removed on close, and by the
agent itself if the CLI dies first (giltrace/attach/agent.py).

The target's user controls that directory, so nothing in it is opened by path
here: the directory is reached through descriptors, the agent's connection is
checked to come from the target (SO_PEERCRED), and the trace is read through
the descriptor the agent sends (docs/how-it-works.md, "Attaching: safety").
A target in another mount namespace (a container) gets the directory in its
own /tmp, through /proc/PID/root, and a copy of giltrace there when it cannot
see this one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import socket
import stat
import struct
import tempfile
import time
from typing import Dict, Iterator, List, Optional, Tuple

from .. import errors, layout
from ..textsafe import printable
from .bootstrap import bootstrap_code
from .inject import Injection, choose
from .target import AttachError, Target, check_same_python, inspect, thread_ids

MAX_LINE = 1 << 16  # the longest line taken from the agent
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
        self.dir: Optional[str] = None  # the private directory, as we would name it (for messages)
        self.agent_dir = ""  # the same, as the target names it
        self._parent_fd = -1  # the directory that holds it
        self._dir_fd = -1
        self._dir_name = ""
        self._trace_fd = -1  # the trace, sent by the agent
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
        params = self._make_dir(target)
        params.update(self.options)
        self.injection = injector.inject(target, bootstrap_code(params))
        self.interrupted = self.injection.interrupted  # Ctrl-C after the code ran: start, then stop at once
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
            if self._trace_fd < 0:
                raise AttachError("process %d started the trace but sent no trace file" % self.pid)
            return self
        if kind == "error":
            msg = _message(body)
            if body.get("kind") == "TraceRunning":
                raise errors.TraceRunning("a trace is already running in process %d: %s" % (self.pid, msg))
            raise AttachError("giltrace could not start in process %d: %s" % (self.pid, msg))
        if kind == "eof":
            raise TargetExited("process %d exited before the trace started" % self.pid)
        raise AttachError("process %d did not answer after the injection (%s)" % (self.pid, kind))

    @property
    def trace_path(self) -> str:
        """The trace as a path we can open (our descriptor of it), once the agent has sent it."""
        return "/proc/self/fd/%d" % self._trace_fd if self._trace_fd >= 0 else ""

    def _make_dir(self, target: Target) -> Dict[str, object]:
        """Make the private directory where the target can reach it; the agent's parameters."""
        same_view = _same_view(target.pid)
        why = "no temp directory"
        candidates = _temp_dirs(target.pid, same_view)
        for parent_fd, theirs in candidates:
            try:
                self._dir_name = _new_private_dir(parent_fd, target.pid)
                self._parent_fd = parent_fd
                break
            except OSError as exc:  # read-only, full: the next candidate
                os.close(parent_fd)
                why = "%s: %s" % (theirs, exc.strerror or exc)
        else:
            raise AttachError("cannot make giltrace's directory where process %d can reach it (%s)" % (target.pid, why))
        candidates.close()
        ours = theirs if same_view else "/proc/%d/root%s" % (target.pid, theirs)
        self.dir, self.agent_dir = os.path.join(ours, self._dir_name), os.path.join(theirs, self._dir_name)
        try:
            self._dir_fd = os.open(self._dir_name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._parent_fd)
            here = "/proc/self/fd/%d/" % self._dir_fd  # the directory itself, whatever its path becomes
            listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self._listener = listener
            listener.bind(here + "ctl")
            os.chmod(here + "ctl", 0o666)  # still ours alone: the directory is 0700 and root's until the chown below
            listener.listen(4)
            params: Dict[str, object] = {"socket": self.agent_dir + "/ctl", "trace": self.agent_dir + "/trace.gtr"}
            params.update(self._package(target, same_view))
            if os.geteuid() == 0 and target.uid != 0:  # the target writes its trace here as its own user
                os.fchown(self._dir_fd, target.uid, target.gid)
        except OSError as exc:
            raise AttachError(
                "cannot prepare giltrace's directory %s for process %d: %s" % (self.agent_dir, target.pid, exc.strerror or exc)
            ) from None
        return params

    def _package(self, target: Target, same_view: bool) -> Dict[str, str]:
        """Where the target imports giltrace from: ours if it sees the very same files, else a copy in the private directory."""
        import giltrace

        package = os.path.dirname(os.path.abspath(giltrace.__file__))
        backend = _cffi_backend_path()
        files = _package_files(package)
        ident = _package_id(files)
        if same_view or all(_visible(target.pid, p) for p in [package] + ([backend] if backend else [])):
            return {"package": package, "cffi_backend": backend, "package_id": ident}
        # The directory is still 0700 and ours alone (the chown to the target's user comes after).
        # The copy is the target's to run and, if the CLI dies, to remove (agent.py): its user owns it.
        owner = (target.uid, target.gid) if os.geteuid() == 0 and target.uid != 0 else None
        _copy_into(None, self._dir_fd, "giltrace", owner)
        package_fd = os.open("giltrace", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self._dir_fd)
        try:
            for rel in files:
                _copy_into(os.path.join(package, rel), package_fd, rel, owner)
        finally:
            os.close(package_fd)
        if backend:
            _copy_into(backend, self._dir_fd, os.path.basename(backend), owner)
        return {
            "package": self.agent_dir + "/giltrace",
            "cffi_backend": self.agent_dir + "/" + os.path.basename(backend) if backend else "",
            "package_id": ident,
        }

    def _accept(self) -> None:
        assert self._listener is not None
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        self._listener.settimeout(0.2)
        while True:
            try:
                conn, _ = self._listener.accept()
                if _peer_pid(conn) == self.pid:
                    self._conn = conn
                    break
                conn.close()  # another process of the target's user found the socket: not ours to serve
            except socket.timeout:
                if not _alive(self.pid):
                    raise TargetExited("process %d exited right after the injection" % self.pid) from None
                if time.monotonic() > deadline:
                    raise AttachError(
                        "process %d ran the injected code but giltrace's thread did not report in %.0f s" % (self.pid, CONNECT_TIMEOUT_S)
                    ) from None
        self._listener.close()
        self._listener = None
        try:
            os.unlink("ctl", dir_fd=self._dir_fd)  # nothing else may connect
        except OSError:
            pass

    def _read_message(self, timeout: Optional[float]):
        """(kind, body) of the agent's next line; ("eof", {}) if it closed, ("timeout", {}) if none came."""
        assert self._conn is not None
        self._conn.settimeout(timeout)
        while b"\n" not in self._buffer:
            try:
                chunk, ancillary, _, _ = self._conn.recvmsg(65536, socket.CMSG_SPACE(4 * struct.calcsize("i")), socket.MSG_CMSG_CLOEXEC)
            except socket.timeout:
                return "timeout", {}
            except OSError:
                chunk, ancillary = b"", []
            for fd in _received_fds(ancillary):
                self._take_trace(fd)
            if not chunk:
                return "eof", {}
            self._buffer += chunk
            if len(self._buffer) > MAX_LINE and b"\n" not in self._buffer:  # the target's bytes: bounded
                self._buffer = b""
                return "error", {"message": "the agent sent a line longer than %d bytes" % MAX_LINE}
        line, self._buffer = self._buffer.split(b"\n", 1)
        kind, _, rest = line.decode("utf-8", "replace").partition(" ")
        try:
            body = json.loads(rest) if rest else {}
        except (ValueError, RecursionError):
            body = {"message": rest}
        return kind, body if isinstance(body, dict) else {"message": rest}

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
                    self.stats = _counts(body)
                elif kind == "error":
                    self.stats = _counts(body.get("stats"))
                    self._close_conn()
                    raise AttachError("the trace in process %d ended with an error: %s" % (self.pid, _message(body)))
                else:
                    self.exited = True
        self._close_conn()
        if self.exited:
            raise TargetExited("process %d exited during the trace; the file holds everything up to its last flush" % self.pid)
        return self.stats

    def _take_trace(self, fd: int) -> None:
        """Keep the first regular file the agent sends (the trace); close anything else."""
        if self._trace_fd < 0 and stat.S_ISREG(os.fstat(fd).st_mode):
            self._trace_fd = fd
        else:
            os.close(fd)

    def _close_conn(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- files -----------------------------------------------------------------

    def save(self, output: str) -> str:
        """Copy the trace (the descriptor the agent sent) to ``output``: created by us,
        no link followed, mode 0600; its size when the trace stopped, no more."""
        from ..tracer import create_trace_file

        if self._trace_fd < 0:
            raise AttachError("process %d wrote no trace file" % self.pid)
        fd, _ = create_trace_file(output, overwrite=True)
        try:
            if os.fstat(fd).st_uid == os.geteuid():  # the target's data: ours alone to read (a file we own)
                os.fchmod(fd, 0o600)
            size, offset = os.fstat(self._trace_fd).st_size, 0
            while offset < size:
                data = os.pread(self._trace_fd, min(1 << 20, size - offset), offset)
                if not data:
                    break
                layout.write_all(fd, data)
                offset += len(data)
        finally:
            os.close(fd)
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
        if self._trace_fd >= 0:
            os.close(self._trace_fd)
            self._trace_fd = -1
        if self._dir_fd >= 0:
            os.close(self._dir_fd)
            self._dir_fd = -1
        if self._dir_name and self._parent_fd >= 0:
            _remove_tree(self._parent_fd, self._dir_name)
            self._dir_name = ""
        if self._parent_fd >= 0:
            os.close(self._parent_fd)
            self._parent_fd = -1
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


def _same_view(pid: int) -> bool:
    """Does the target see our files where we do (same mount namespace and root)?"""
    try:
        if os.readlink("/proc/%d/ns/mnt" % pid) != os.readlink("/proc/self/ns/mnt"):
            return False
        a, b = os.stat("/proc/%d/root" % pid), os.stat("/")
        return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
    except OSError:
        return False


def _temp_dirs(pid: int, same_view: bool) -> Iterator[Tuple[int, str]]:
    """(descriptor, path as the target names it) of each temp directory the target sees: ours
    when it sees our files, else its own, reached through /proc/PID/root one component at a
    time without following a link (the target's user may have made any of them a link,
    and one met under /proc/PID/root resolves in our filesystem)."""
    if same_view:
        ours = tempfile.gettempdir()
        yield os.open(ours, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), ours
        return
    try:
        root = os.open("/proc/%d/root" % pid, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise AttachError("cannot reach the filesystem of process %d (/proc/%d/root): %s" % (pid, pid, exc.strerror or exc)) from None
    try:
        for rel in ("tmp", "var/tmp", "dev/shm"):
            fd = os.dup(root)
            try:
                for part in rel.split("/"):
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                    os.close(fd)
                    fd = nxt
            except OSError:
                os.close(fd)
                continue
            yield fd, "/" + rel
    finally:
        os.close(root)


def _new_private_dir(parent_fd: int, pid: int) -> str:
    """A new directory, 0700, under ``parent_fd``: ``mkdir`` fails on anything already there, so no link is followed."""
    for _ in range(10):
        name = "giltrace-attach-%d-%s" % (pid, secrets.token_hex(6))
        try:
            os.mkdir(name, 0o700, dir_fd=parent_fd)
            return name
        except FileExistsError:
            continue
    raise FileExistsError("ten names taken")


def _visible(pid: int, path: str) -> bool:
    """Does the target see our ``path`` as the very same file (same device and inode)?"""
    try:
        a, b = os.stat("/proc/%d/root%s" % (pid, path)), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _package_files(package: str) -> List[str]:
    """What the agent imports: the package's top-level modules, attach/, and the native extension."""
    out = []
    for sub in ("", "attach"):
        for name in sorted(os.listdir(os.path.join(package, sub))):
            if name.endswith(".py") or (not sub and name.startswith("_native") and name.endswith(".so")):
                out.append(os.path.join(sub, name) if sub else name)
    return out


def _package_id(files: List[str]) -> str:
    """Names the package's contents: a copy made for an earlier attach is the same giltrace if it matches."""
    import giltrace

    package = os.path.dirname(os.path.abspath(giltrace.__file__))
    h = hashlib.sha256()
    for rel in files:
        st = os.stat(os.path.join(package, rel))
        h.update(("%s %d %d\n" % (rel, st.st_size, st.st_mtime_ns)).encode())
    return h.hexdigest()[:16]


def _copy_into(src: Optional[str], dir_fd: int, name: str, owner: Optional[Tuple[int, int]]) -> None:
    """Copy our file ``src`` to a new file ``name`` (``sub/name`` at most) under ``dir_fd``, never
    over anything; ``src`` None: make the directory ``name``.  ``owner``: (uid, gid) to give them."""
    sub = os.path.dirname(name) if src is not None else name
    if sub:
        try:
            os.mkdir(sub, 0o755, dir_fd=dir_fd)
        except FileExistsError:
            pass
        if owner:
            os.chown(sub, owner[0], owner[1], dir_fd=dir_fd, follow_symlinks=False)
    if src is None:
        return
    out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
    try:
        if owner:
            os.fchown(out, owner[0], owner[1])
        with open(src, "rb") as f:
            for data in iter(lambda: f.read(1 << 20), b""):
                layout.write_all(out, data)
    finally:
        os.close(out)


def _remove_tree(parent_fd: int, name: str) -> None:
    """Remove ``name`` under ``parent_fd`` and all it holds, through descriptors, following no link."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
    except OSError:
        try:
            os.unlink(name, dir_fd=parent_fd)  # not a directory (any more)
        except OSError:
            pass
        return
    try:
        for entry in os.listdir(fd):
            try:
                if stat.S_ISDIR(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                    _remove_tree(fd, entry)
                else:
                    os.unlink(entry, dir_fd=fd)
            except OSError:
                pass
    finally:
        os.close(fd)
    try:
        os.rmdir(name, dir_fd=parent_fd)
    except OSError:
        pass


def _message(body: Dict[str, object]) -> str:
    """The agent's error message for a terminal: escaped, and no longer than a line should be."""
    text = printable(body.get("message", ""))
    return text if len(text) <= 300 else text[:300] + "..."


def _counts(obj: object) -> Dict[str, int]:
    """The tracer's statistics from the agent's JSON: finite numbers only (the target wrote them)."""
    if not isinstance(obj, dict):
        return {}
    return {str(k): int(v) for k, v in obj.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def _peer_pid(conn: socket.socket) -> int:
    """The process at the other end of a UNIX socket, as this PID namespace numbers it."""
    try:
        pid, _, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
        return pid
    except OSError:
        return -1


def _received_fds(ancillary: list) -> List[int]:
    fds: List[int] = []
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            n = len(data) // struct.calcsize("i")
            fds.extend(struct.unpack("%di" % n, data[: n * struct.calcsize("i")]))
    return fds


def _cffi_backend_path() -> str:
    """Where this interpreter's cffi backend is: a target in another environment may not have cffi."""
    try:
        import _cffi_backend

        return str(getattr(_cffi_backend, "__file__", "") or "")
    except ImportError:
        return ""


def describe_namespace(session: Session) -> str:
    """One line for a target in its own PID namespace: its thread ids (the trace's) as we number them."""
    target = session.target
    if target is None or not target.own_pid_namespace:
        return ""
    ids = sorted(thread_ids(target.pid).items())
    shown = ", ".join("%d=%d" % pair for pair in ids[:8]) + (", ..." if len(ids) > 8 else "")
    return "process %d is pid %d in its own PID namespace; the trace's thread ids are its own (there=here: %s)" % (
        target.pid,
        target.ns_pid,
        shown,
    )


def describe(session: Session) -> str:
    """One line: how long the target was stopped (for --verbose and the benchmarks)."""
    inj = session.injection
    if inj is None:
        return ""
    stops = " + ".join("%.1f" % s for s in inj.stops_ms)
    return "attached with %s at %s; target stopped %s ms" % (inj.strategy, inj.safe_point or "?", stops or "0")


__all__ = ["Session", "TargetExited", "AttachError", "describe", "describe_namespace", "stop_signals_interrupt"]
