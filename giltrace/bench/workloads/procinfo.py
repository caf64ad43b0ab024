"""Facts about this process: allowed CPUs, CPU times, a clock, the interpreter;
and the two small helpers the runner shares with the child (``parse_stat``,
``percentile``), kept here because the child must run them on 2.7.

Works on CPython 2.7 to 3.13 on Linux.  Python 2.7 has neither
``os.sched_getaffinity`` nor ``threading.get_native_id``, so affinity is read
from ``/proc`` there, which reports the calling *thread's* mask on any version.
"""

from __future__ import absolute_import, division, print_function

import os
import platform
import resource
import sys
import threading
import time

if __package__:
    from .shared import cpus
else:
    from shared import cpus

parse_cpu_list = cpus.parse_cpu_list  # the kernel's cpulist format, as giltrace/cpus.py reads it

# Monotonic, high resolution where the interpreter has it (3.3+).
clock = getattr(time, "perf_counter", time.time)


def allowed_cpus():
    """The CPUs the calling thread may run on, sorted."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    if getaffinity is not None:
        return sorted(getaffinity(0))
    with open("/proc/thread-self/status") as f:
        for line in f:
            if line.startswith("Cpus_allowed_list:"):
                return parse_cpu_list(line.split(":", 1)[1])
    return []


def parse_stat(text):
    """State, CPU ticks used (user + system) and last CPU (field 39) from one
    ``/proc/PID[/task/TID]/stat`` line.  The runner's sampler reads it too."""
    fields = text.rsplit(")", 1)[1].split()  # the command name (field 2) may hold spaces
    return {"state": fields[0], "ticks": int(fields[11]) + int(fields[12]), "processor": int(fields[36])}


def last_cpu():
    """The CPU the calling thread last ran on, or None."""
    try:
        with open("/proc/thread-self/stat") as f:
            stat = f.read()
    except (IOError, OSError):
        return None
    return parse_stat(stat)["processor"]


def native_id():
    """The OS thread id of the calling thread where Python exposes it (3.8+)."""
    getter = getattr(threading, "get_native_id", None)
    return getter() if getter is not None else None


def cpu_times():
    """(user_s, sys_s) of this process and of its waited-for children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def own_cpu_times():
    """(user_s, sys_s) of this process alone (a worker process reports these)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime, me.ru_stime


def gil_enabled():
    """False only on a free-threaded build running without the GIL (3.13t)."""
    check = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


def python_info():
    return {
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "gil_enabled": gil_enabled(),
    }


def percentile(sorted_values, q):
    """Nearest-rank percentile (0 < q <= 100) of an already sorted sequence
    (a list, or a numpy array: the runner's contention figures use it too)."""
    if len(sorted_values) == 0:
        return None
    rank = int(-(-q * len(sorted_values) // 100))  # ceil without floats
    return sorted_values[max(rank, 1) - 1]
