"""Every file giltrace creates or appends to (reports, exports, timelines,
metrics logs, bench results, copies of traces) is opened here: never
through a symbolic link (``O_NOFOLLOW``), never blocking on a FIFO
(``O_NONBLOCK``, then only a regular file is kept), and created with mode
0600 unless ``GILTRACE_FILE_MODE`` says otherwise (octal, e.g. ``644``).
A refusal is one line (a UsageError: exit status 2, as for other unwritable
outputs).  Trace files themselves go
through giltrace.tracer.create_trace_file, which adds the rules for paths
giltrace derives itself (docs/how-it-works.md, "Trace files").

Only light standard modules (no ``typing``): the tracer imports it at
interpreter start-up.
"""

from __future__ import annotations

import io
import os
import stat

from .errors import GiltraceError, UsageError

MODE_ENV = "GILTRACE_FILE_MODE"
DEFAULT_MODE = 0o600


def file_mode() -> int:
    """The mode new files are created with: GILTRACE_FILE_MODE (octal) or 0600."""
    value = os.environ.get(MODE_ENV, "").strip()
    if not value:
        return DEFAULT_MODE
    try:
        mode = int(value, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777:
        raise UsageError("%s=%s: expected an octal file mode such as 600 or 644" % (MODE_ENV, value))
    return mode


def _refusal(path: str, exc: OSError) -> GiltraceError:
    """Why ``path`` could not be opened, in one line: a link, a FIFO without
    a reader (ENXIO), or the system's reason."""
    try:
        existing_regular(path)
    except GiltraceError as refused:
        return refused
    return UsageError("cannot write %s: %s" % (path, exc.strerror or exc))


def open_fd(path: str, *, append: bool = False, exclusive: bool = False, mode: "int | None" = None) -> int:
    """A descriptor for writing ``path``: created (``mode``, default
    file_mode()) or, if it exists and is a regular file, truncated
    (``append``: written at its end; ``exclusive``: it must not exist)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    flags |= os.O_APPEND if append else 0
    flags |= os.O_EXCL if exclusive else 0
    try:
        fd = os.open(path, flags, file_mode() if mode is None else mode)
    except OSError as exc:
        raise _refusal(path, exc) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # e.g. a FIFO with a reader: opened, but not ours to fill
            raise UsageError("refusing to write %s: it is not a regular file" % path)
        check_unshared(st, path)
        if not append:
            os.ftruncate(fd, 0)  # only now: O_TRUNC would act before the check
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_unshared(st: os.stat_result, path: str, what: str = "") -> None:
    """Refuse an existing file that another name or another user shares: a
    hard link (our data would land under the other name too) or another
    user's file in a world-writable sticky directory such as /tmp (planted
    there for us to fill; the kernel's protected_regular, often off, would
    refuse it too).  ``st``: the open descriptor's fstat, so that the check
    is of the file written, not of a path swapped since."""
    if st.st_nlink > 1:
        raise UsageError("refusing to write %s%s: it has %d hard links (other names for the same file)" % (what, path, st.st_nlink))
    if st.st_uid != os.geteuid():
        try:
            parent = os.stat(os.path.dirname(os.path.abspath(path)))
        except OSError:
            return
        if parent.st_mode & stat.S_ISVTX and parent.st_mode & stat.S_IWOTH:
            raise UsageError("refusing to write %s%s: it belongs to another user (uid %d) in a shared directory" % (what, path, st.st_uid))


def open_new(path: str, *, append: bool = False, binary: bool = True, exclusive: bool = False, mode: "int | None" = None) -> io.IOBase:
    """open_fd as a file object (``binary`` or UTF-8 text)."""
    fd = open_fd(path, append=append, exclusive=exclusive, mode=mode)
    return os.fdopen(fd, "ab" if append else "wb") if binary else os.fdopen(fd, "a" if append else "w", encoding="utf-8")


def existing_regular(path: str, what: str = "") -> "os.stat_result | None":
    """``path``'s lstat if it is a regular file, None if it does not exist;
    a link, FIFO or device is refused in one line (``what``: "the trace
    file " and the like, for the message).  Also for a path that will be
    replaced by a rename (os.replace): rename would replace a link, not what
    it names, but the user meant what it names."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError("cannot write %s%s: %s" % (what, path, exc.strerror or exc)) from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError("refusing to write %s%s: it is a symbolic link" % (what, path))
    if stat.S_ISDIR(st.st_mode):
        raise UsageError("cannot write %s%s: it is a directory" % (what, path))
    if not stat.S_ISREG(st.st_mode):
        raise UsageError("refusing to write %s%s: it is not a regular file" % (what, path))
    return st
