"""giltrace: who is waiting for the GIL, for how long, and because of whom.

    import giltrace
    with giltrace.trace("run.gtr") as tr:
        ...                      # threads do work
    trace = tr.result            # or giltrace.load("run.gtr")
    trace.threads()              # per-thread wait / hold table

Importing works on any Python 3.8+; starting a trace on an interpreter that
cannot be traced raises UnsupportedInterpreter with the reason.
"""
from __future__ import annotations

__version__ = "0.1.0"

from ._binding import unsupported_reason
from .errors import GiltraceError, TraceFormatError, TraceRunning, UnsupportedInterpreter, UsageError
from .trace import IncompleteTraceWarning, Trace, load
from .tracer import Tracer, active, start, stop, trace

__all__ = [
    "GiltraceError",
    "IncompleteTraceWarning",
    "Trace",
    "TraceFormatError",
    "TraceRunning",
    "Tracer",
    "UnsupportedInterpreter",
    "UsageError",
    "active",
    "load",
    "start",
    "stop",
    "trace",
    "unsupported_reason",
]
