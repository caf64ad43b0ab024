"""Typed errors.  The CLI prints ``str(error)`` as one line and exits with ``exit_code``."""

from __future__ import annotations


class GiltraceError(Exception):
    """Base class of every error giltrace raises on purpose."""

    exit_code = 1


class UsageError(GiltraceError):
    """Bad arguments or input given by the user."""

    exit_code = 2


class UnsupportedInterpreter(GiltraceError):
    """This interpreter or platform cannot be traced (free-threaded, too old, not Linux, no extension)."""


class TraceFormatError(GiltraceError):
    """A trace file is truncated, corrupt, or not a giltrace file."""


class TraceRunning(GiltraceError):
    """A trace is already running in this process (one at a time)."""
