"""Watching a running cell from outside: where its tasks ran, what else ran
on its CPUs, and how much time the hypervisor stole from them.

The sampler lives in the runner, not in the child, so it adds no thread to
the child's GIL.  It reads ``/proc/PID/task/*/stat`` of the child and its
descendants a few times a second: field 39 is the CPU each task last ran on.
"""

from __future__ import annotations

import os
import threading
from typing import Dict, List, Optional, Sequence, Set

from .workloads.procinfo import parse_stat

PROC = "/proc"


def task_ids(pid: int) -> List[int]:
    try:
        return [int(t) for t in os.listdir("%s/%d/task" % (PROC, pid))]
    except OSError:  # it exited
        return []


def children_of(pid: int) -> List[int]:
    kids: List[int] = []
    for tid in task_ids(pid):
        try:
            with open("%s/%d/task/%d/children" % (PROC, pid, tid)) as f:
                kids.extend(int(k) for k in f.read().split())
        except OSError:
            pass
    return kids


def tree(pid: int) -> List[int]:
    """``pid`` and all its descendants that exist right now."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        todo.extend(children_of(p))
    return found


class CpuSampler(threading.Thread):
    """Collects the CPUs the tasks of a process tree were seen on, and the
    CPU time they were seen to use (which includes processes the child
    never waits for, like a multiprocessing forkserver and its workers)."""

    def __init__(self, pid: int, cpus: Sequence[int], period_s: float = 0.05):
        super().__init__(name="giltrace-bench-sampler", daemon=True)
        self.pid = pid
        self.cpus = set(cpus)
        self.period_s = period_s
        self.cpus_seen: Set[int] = set()
        self.ticks: Dict[tuple, int] = {}  # (pid, tid) -> CPU ticks last seen
        self.samples = 0
        self._stop_event = threading.Event()

    def sample(self) -> None:
        for pid in tree(self.pid):
            for tid in task_ids(pid):
                try:
                    with open("%s/%d/task/%d/stat" % (PROC, pid, tid)) as f:
                        stat = parse_stat(f.read())
                except (OSError, IndexError, ValueError):
                    continue  # the task ended between listing and reading
                self.cpus_seen.add(int(stat["processor"]))
                self.ticks[(pid, tid)] = int(stat["ticks"])
        self.samples += 1

    @property
    def cpu_seen_s(self) -> float:
        return ticks_to_seconds(sum(self.ticks.values()))

    def _pinned(self) -> bool:
        """Whether the child has pinned itself yet (the wrapper's first act)."""
        try:
            return os.sched_getaffinity(self.pid) == self.cpus
        except OSError:  # already gone
            return False

    def run(self) -> None:
        # Where it ran before pinning itself is not the cell's business.
        while not self._pinned():
            if self._stop_event.wait(0.002):
                return
        while not self._stop_event.wait(self.period_s):
            self.sample()

    def stop(self) -> Set[int]:
        self._stop_event.set()
        self.join()
        return self.cpus_seen


def cpu_ticks(cpus: Sequence[int], stat_text: Optional[str] = None) -> Dict[str, int]:
    """Busy and stolen clock ticks so far of ``cpus``, from /proc/stat.

    busy = user + nice + system + irq + softirq: time anything ran there.
    steal = time the hypervisor ran another guest on these virtual CPUs.
    """
    if stat_text is None:
        try:
            with open("%s/stat" % PROC) as f:
                stat_text = f.read()
        except OSError:
            return {"busy": 0, "steal": 0}
    wanted = {"cpu%d" % c for c in cpus}
    busy = steal = 0
    for line in stat_text.splitlines():
        parts = line.split()
        if parts and parts[0] in wanted and len(parts) > 8:
            user, nice, system, _idle, _iowait, irq, softirq, stolen = (int(x) for x in parts[1:9])
            busy += user + nice + system + irq + softirq
            steal += stolen
    return {"busy": busy, "steal": steal}


def ticks_to_seconds(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")
