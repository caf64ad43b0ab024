"""The part of ``giltrace attach`` that runs inside the target process.

It runs in the thread the bootstrap started (giltrace/attach/bootstrap.py),
named ``giltrace-attach``, and talks to the CLI over a UNIX socket, one line
per message (``KIND {json}``):

    agent -> CLI   started {"path", "pid", "python"} + the trace's fd  |  error {"kind", "message"}
    CLI -> agent   stop
    agent -> CLI   stopped {tracer stats}  |  error {...}

The thread blocks in ``recv`` (without the GIL) for the whole trace.  On
``stop`` -- or when the CLI goes away (end of file: it was killed) -- it stops
the trace, which puts the GOT slots back and joins the writer thread, and
returns: the thread ends.  If the CLI is gone, the private directory it made
for this attach is removed too, so nothing is left behind.

The ``started`` line carries a read-only descriptor of the trace file
(SCM_RIGHTS): the CLI reads the trace through it and never opens a path in a
directory the target's user controls (docs/how-it-works.md, "Attaching:
safety").

Imports only what ``giltrace.tracer`` does (start-up rules,
docs/architecture.md): the target may be a program that cares what is
imported into it.
"""

from __future__ import annotations

import os
import sys

from .. import layout
from ..errors import GiltraceError
from ..tracer import Tracer


def _send(sock, kind: str, obj: object, fd: int = -1) -> None:
    data = ("%s %s\n" % (kind, layout.dumps(obj))).encode()
    try:
        if fd >= 0:  # the descriptor rides on the line's first byte
            import _socket
            import struct

            sent = sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("i", fd))])
            data = data[sent:]
        sock.sendall(data)
    except OSError:
        pass  # the CLI is gone: nothing to tell


def _wait_for_stop(sock) -> bool:
    """Block until the CLI says ``stop`` (True) or disappears (False)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(256)
        except InterruptedError:
            continue
        except OSError:
            return False
        if not chunk:
            return False
        data += chunk
        if b"\n" in data:
            return data.split(b"\n", 1)[0].strip() == b"stop"


def serve(sock, params: "dict[str, object]") -> None:
    """Start the trace into ``params["trace"]``, wait, stop; report each step on ``sock``."""
    path = str(params["trace"])
    tracer = Tracer(
        path,
        sample_period_ms=float(params.get("sample_period_ms", 5.0)),  # type: ignore[arg-type]
        buffer_events=int(params.get("buffer_events", 1 << 19)),  # type: ignore[call-overload]
        locations=bool(params.get("locations", True)),
        overwrite=False,
    )
    try:
        try:
            tracer.start()
        except GiltraceError as exc:
            _send(sock, "error", {"kind": type(exc).__name__, "message": str(exc)})
            return
        reader = _reader(tracer, path)
        try:
            _send(sock, "started", {"path": path, "pid": os.getpid(), "python": sys.version.split()[0]}, reader)
        finally:
            if reader >= 0:
                os.close(reader)
        told = _wait_for_stop(sock)
        try:
            tracer.stop(load=False)
        except GiltraceError as exc:  # e.g. the disk filled up; the stats still say how much was written
            _send(sock, "error", {"kind": "write", "message": str(exc), "stats": tracer.stats})
            return
        if told:
            _send(sock, "stopped", tracer.stats)
        else:
            _forget(path)
    finally:
        try:
            sock.close()
        except OSError:
            pass


def _reader(tracer: Tracer, path: str) -> int:
    """A read-only descriptor of the very file the tracer writes: reopened from the
    tracer's own descriptor, so that a link planted at ``path`` meanwhile does not
    matter; -1 if there is none (the CLI then says that no trace came)."""
    for where, flags in (("/proc/self/fd/%d" % tracer._fd, 0), (path, os.O_NOFOLLOW)):
        try:
            return os.open(where, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | flags)
        except OSError:
            continue
    return -1


def _forget(path: str) -> None:
    """The CLI died mid-trace: remove its private directory (the trace, the socket, a copy of giltrace)."""
    _remove(os.path.dirname(path))


def _remove(folder: str) -> None:
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        entry = os.path.join(folder, name)
        if os.path.isdir(entry) and not os.path.islink(entry):
            _remove(entry)
        else:
            try:
                os.unlink(entry)
            except OSError:
                pass
    try:
        os.rmdir(folder)
    except OSError:
        pass
