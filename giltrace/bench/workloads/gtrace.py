"""Optional GIL tracing of a piece of work, through giltrace where it can run.

Tracing needs a CPython that giltrace/interpreters.py marks traceable: for
the new GIL, with giltrace importable; for the old one (2.7), the recorder
library the runner built and named in GILTRACE_OLDGIL_LIB, loaded by the
2/3 starter giltrace/oldgil.py.  Anywhere else the work runs untraced and the returned
record says why, so a cell is never lost because its interpreter cannot be
traced.
"""

from __future__ import absolute_import, division, print_function

import sys

if __package__:
    from .shared import interpreters, load
else:
    from shared import interpreters, load


_starter = []  # the old-GIL starter, loaded once and kept: 2.7 empties a freed module's globals


def _old_gil_starter():
    if not _starter:
        _starter.append(load("oldgil"))
    return _starter[0]


def _open_tracer(path):
    """An unstarted giltrace Tracer writing to ``path``, or (None, why not)."""
    refused = interpreters.untraced_note(sys.version_info)  # "tracing needs CPython 3.9-3.13; this is 2.7"
    if refused:
        return None, refused
    try:
        if interpreters.gil_kind(sys.version_info) == "old":
            return _old_gil_starter().Tracer(path), None
        import giltrace

        return giltrace.trace(path=path), None
    except Exception as exc:  # ImportError, UnsupportedInterpreter, a broken install
        return None, "giltrace unavailable here: %s: %s" % (type(exc).__name__, exc)


def run_traced(path, body):
    """Run ``body()`` inside a GIL trace written to ``path`` (None: untraced).

    Returns (body's result, {"requested", "enabled", "reason", "files"}).
    """
    info = {"requested": path is not None, "enabled": False, "reason": None, "files": []}
    if path is None:
        return body(), info
    tracer, reason = _open_tracer(path)
    if tracer is not None:
        try:
            tracer.start()
        except Exception as exc:  # e.g. a free-threaded build, or no permission
            tracer, reason = None, "trace did not start: %s: %s" % (type(exc).__name__, exc)
    if tracer is None:
        info["reason"] = reason
        return body(), info
    try:
        result = body()
    finally:
        # Only finalise the file: loading it needs pandas, which this
        # interpreter may lack, and analysis is the runner's job anyway.
        tracer.stop(load=False)
    info["enabled"] = True
    info["files"] = [path]
    return result, info


def worker_trace_path(path, index):
    """The trace file of worker process ``index`` of a cell traced to ``path``."""
    if path is None:
        return None
    stem, dot, ext = path.rpartition(".")
    if not dot or "/" in ext:
        return "%s.p%d" % (path, index)
    return "%s.p%d.%s" % (stem, index, ext)
