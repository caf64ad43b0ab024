"""Facts about this process: allowed CPUs, CPU times, a clock, the interpreter.

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

# Monotonic, high resolution where the interpreter has it (3.3+).
clock = getattr(time, "perf_counter", time.time)


def parse_cpu_list(text):
    """'0-2,5' -> [0, 1, 2, 5] (the kernel's cpulist format)."""
    cpus = []
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            first, last = part.split("-")
            cpus.extend(range(int(first), int(last) + 1))
        else:
            cpus.append(int(part))
    return sorted(set(cpus))


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


def last_cpu():
    """The CPU the calling thread last ran on (field 39 of its stat), or None."""
    try:
        with open("/proc/thread-self/stat") as f:
            stat = f.read()
    except (IOError, OSError):
        return None
    # The command name (field 2) may contain spaces; count fields after it.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[36])


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
    """Nearest-rank percentile (0 < q <= 100) of an already sorted sequence."""
    if not sorted_values:
        return None
    rank = int(-(-q * len(sorted_values) // 100))  # ceil without floats
    return sorted_values[max(rank, 1) - 1]
