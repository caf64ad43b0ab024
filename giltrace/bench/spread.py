"""Did a cell's workers actually spread over the CPUs it was given?

Virtual machines sometimes run a "2-core" guest's busy tasks on one physical
CPU for minutes: processes then run at serial speed with CPU/wall = 1.00.
Such a cell must be flagged, not reported as a result about Python.

Three tests.  Steal time (/proc/stat): the hypervisor running something
else on the cell's virtual CPUs.  Other processes' CPU time on the cell's
CPUs (another benchmark, a build).  And CPU time / wall time against the
parallelism the cell should reach: the workers that burn CPU (counters,
page-cache I/O) capped by the cores, and 1 for threads that share a GIL
(their CPU time can't show packing; steal still can).  fsync I/O workers
mostly sleep in the kernel, so they add nothing to the expectation.
"""

from __future__ import annotations

from typing import Iterable, Optional, Sequence

from .workloads import plan, registry

# A cell that reaches less than this share of its expected CPU/wall is flagged.
# Healthy 2-process cells measure ~1.9-2.0; packed ones 1.0.
SPREAD_THRESHOLD = 0.75
# Below this wall time, process start-up dominates and the ratio says nothing.
MIN_WALL_S = 0.2
# Above this share of the cell's CPU time stolen by the hypervisor, the VM
# was not giving the cell the CPUs it asked for.
STEAL_THRESHOLD = 0.2
# Above this share of the cell's CPU time used by other processes on the
# same CPUs, its timings measure the machine's load as much as Python.
OTHERS_THRESHOLD = 0.1


def busy_workers(workload: str, n: int) -> int:
    """How many of a cell's workers keep a CPU busy when not held back by the GIL."""
    spec = registry.get(workload)
    io_busy = 0 if spec.sync else 1  # fsync I/O sleeps in the kernel; page-cache I/O keeps a CPU busy
    if spec.latency:
        return n + io_busy  # n = CPU competitors, plus the I/O thread
    kinds = plan.worker_kinds(workload, n)
    return kinds.count("cpu") + io_busy * kinds.count("io")


def expected_parallelism(workload: str, n: int, mode: str, cores: int, gil_enabled: bool = True) -> int:
    """CPUs the cell should keep busy at once if its workers spread."""
    if mode in ("serial", "alone"):
        return 1
    busy = busy_workers(workload, n)
    if mode == "thread" and gil_enabled:
        # One thread runs Python at a time.  (Kernel time of I/O threads
        # overlaps a little, not enough to count on.)
        return 1
    return max(1, min(busy, cores))


def spread_flag(
    expected: int,
    cpu_ratio: Optional[float],
    wall_s: Optional[float],
    cpus_allowed: Iterable[int],
    cpus_requested: Iterable[int],
    cpus_seen: Iterable[int],
    steal_s: float = 0.0,
    others_share: float = 0.0,
    workers_affinity: Sequence[Iterable[int]] = (),
) -> str:
    """Why this cell's numbers can't be trusted as measured ('' if fine)."""
    allowed, requested, seen = set(cpus_allowed), set(cpus_requested), set(cpus_seen)
    if allowed != requested:
        return "pinning failed: allowed CPUs %s, asked for %s" % (sorted(allowed), sorted(requested))
    unpinned = sorted({tuple(sorted(a)) for a in workers_affinity if set(a) != requested})
    if unpinned:
        return "pinning failed: a worker was allowed CPUs %s" % list(unpinned[0])
    if seen - requested:
        return "ran outside its CPUs: seen on %s" % sorted(seen)
    if cpu_ratio is None or wall_s is None or wall_s < MIN_WALL_S:
        return ""
    # The guest's CPU times exclude time the hypervisor gave to others, so
    # packing at the hypervisor shows up here, for threads and serial runs too.
    stolen = steal_s / (wall_s * len(requested)) if requested else 0.0
    if stolen > STEAL_THRESHOLD:
        return "VM steal: the hypervisor took %.0f%% of its CPUs' time" % (100 * stolen)
    if others_share > OTHERS_THRESHOLD:
        return "shared CPUs: other processes used %.0f%% of its CPUs' time" % (100 * others_share)
    if expected >= 2 and cpu_ratio < SPREAD_THRESHOLD * expected:
        where = " (seen only on CPU %s)" % sorted(seen)[0] if len(seen) == 1 else ""
        return "did not spread: CPU/wall %.2f where ~%d expected%s" % (cpu_ratio, expected, where)
    return ""
