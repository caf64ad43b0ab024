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
from .tracer import Tracer, active, start, stop, trace


def __getattr__(name: str) -> object:
    # numpy/pandas load on first use, so that `import giltrace` stays cheap
    # and works (to report UnsupportedInterpreter) where they are missing.
    if name in ("Trace", "load", "IncompleteTraceWarning"):
        from . import model as _trace

        return getattr(_trace, name)
    if name in ("monitor", "metrics", "Monitor", "Metrics"):  # docs/metrics.md
        from . import monitoring

        return getattr(monitoring, name)
    raise AttributeError("module 'giltrace' has no attribute %r" % name)


__all__ = [
    "GiltraceError",
    "IncompleteTraceWarning",
    "Metrics",
    "Monitor",
    "Trace",
    "TraceFormatError",
    "TraceRunning",
    "Tracer",
    "UnsupportedInterpreter",
    "UsageError",
    "active",
    "load",
    "metrics",
    "monitor",
    "start",
    "stop",
    "trace",
    "unsupported_reason",
]
