"""Which CPUs a cell gets, and how its child interpreter is pinned to them.

A cell's child runs with its whole process's CPU affinity limited to the
chosen CPUs, as the study did with cpuset.  Threads and child processes
inherit the mask.  Python 2.7 has no ``os.sched_setaffinity``, so the child
is started through a tiny wrapper that pins itself and then ``exec``s the
target interpreter (affinity survives ``execve``).  The runner has threads
(progress bar, sampler), which rules out ``preexec_fn``.
"""

from __future__ import annotations

import os
import sys
from typing import Dict, List, Optional, Sequence

from ..cpus import format_cpus, parse_cpu_list

PIN_AND_EXEC = "import os, sys; os.sched_setaffinity(0, [int(c) for c in sys.argv[1].split(',')]); os.execv(sys.argv[2], sys.argv[2:])"


def usable_cpus() -> List[int]:
    """The CPUs this process may run on: cells choose among these only."""
    return sorted(os.sched_getaffinity(0))


def read_siblings(cpus: Sequence[int], sysfs: str = "/sys/devices/system/cpu") -> Dict[int, List[int]]:
    """Each CPU's hyperthread siblings (itself included), where sysfs says."""
    siblings = {}
    for cpu in cpus:
        try:
            with open("%s/cpu%d/topology/thread_siblings_list" % (sysfs, cpu)) as f:
                siblings[cpu] = parse_cpu_list(f.read())
        except OSError:
            siblings[cpu] = [cpu]
    return siblings


def choose_cpus(usable: Sequence[int], count: int, siblings: Optional[Dict[int, List[int]]] = None) -> List[int]:
    """``count`` CPUs from ``usable``, one per physical core before any
    hyperthread sibling, so "2 cores" means two real cores where possible."""
    if count > len(usable):
        raise ValueError("asked for %d CPUs, only %d usable" % (count, len(usable)))
    siblings = siblings or {}

    def rank(cpu: int) -> tuple:
        group = sorted(c for c in siblings.get(cpu, [cpu]) if c in usable) or [cpu]
        return (group.index(cpu) if cpu in group else 0, cpu)

    return sorted(sorted(usable, key=rank)[:count])


def unavailable_reason(cores: int, usable: Sequence[int]) -> Optional[str]:
    """Why a cell asking for ``cores`` CPUs cannot run here, or None if it can."""
    if cores <= len(usable):
        return None
    # Short enough for the spanning line of a one-interpreter table.
    return "unavailable: only %d CPU%s (%s)" % (len(usable), "" if len(usable) == 1 else "s", format_cpus(usable))


def pinned_argv(cpus: Sequence[int], argv: Sequence[str]) -> List[str]:
    """``argv`` started with its CPU affinity set to ``cpus``."""
    return [sys.executable, "-S", "-c", PIN_AND_EXEC, ",".join(str(c) for c in cpus)] + list(argv)
