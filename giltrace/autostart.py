"""Trace a program started by someone else's launcher (gunicorn, pytest, a
service manager) without changing it:

    GILTRACE=/tmp/app.gtr gunicorn app:wsgi        # one file per process: /tmp/app.<pid>.gtr

Installing giltrace puts ``giltrace-autostart.pth`` in site-packages; at
start-up every interpreter of that environment runs its one line, which
costs a dictionary lookup when GILTRACE is unset and otherwise calls
:func:`start_from_environment`.  ``%p`` in the path is replaced by the pid;
without it, ``.<pid>`` is inserted before the extension, so processes never
share a file.  Traces started this way follow the process's children:
forked children start their own trace, spawned ones inherit GILTRACE, and
each trace is finalised at exit, ``os._exit`` included (multiprocessing
workers end with it).
"""

from __future__ import annotations

import os
import sys

ENV = "GILTRACE"
METRICS_ENV = "GILTRACE_METRICS"  # [HOST]:PORT of a Prometheus endpoint (giltrace/monitoring.py)
METRICS_LOG_ENV = "GILTRACE_METRICS_LOG"  # a JSON-lines log instead of, or beside, it
_attempted = False  # site may process the .pth twice (lib and lib64 are one directory)


def start_from_environment():
    """Start a trace if GILTRACE is set; never raise (this runs at start-up).

    Only in the main interpreter, once: a sub-interpreter's start-up runs
    the .pth too, and must neither touch the running trace nor say anything."""
    global _attempted
    template = os.environ.get(ENV)
    metrics = os.environ.get(METRICS_ENV) or os.environ.get(METRICS_LOG_ENV)
    if _attempted or not (template or metrics):
        return None
    _attempted = True
    try:
        from ._binding import in_main_interpreter

        if not in_main_interpreter():
            return None
    except Exception:
        return None
    if metrics:  # imports the exporters' libraries: only when asked for (docs/metrics.md)
        from .monitoring import start_from_environment as start_metrics

        start_metrics()
    if not template:
        return None
    try:
        from .errors import TraceRunning
        from .tracer import Tracer, active, path_for

        if active() is not None:
            return None
        return Tracer(path_for(template, os.getpid()), follow_children=template, overwrite=False).start()
    except TraceRunning:  # already traced (by another copy of giltrace in this process)
        return None
    except Exception as exc:  # a broken trace must not break the program
        sys.stderr.write("giltrace: GILTRACE=%s is set but this process is not traced: %s\n" % (template, exc))
        return None
