"""Which workers a workload has: a role name, a kind, and an amount of work.

Roles name the threads ("cpu-0", "io-1"), so traces can be read per role.
Every worker gets 1/N of its kind's total, the study's "LOAD / N":

- ``cpu``      N counters of LOAD/N iterations
- ``io``       N page-cache I/O loops of IO_OPS/N operations (no fsync)
- ``io-sync``  N disk-bound I/O loops of SYNC_OPS/N operations (fsync each)
- ``mix``      N - N//2 counters and N//2 page-cache I/O loops, each 1/N of
               its kind's total; with N=1 that is a single counter
- ``mix-sync`` the same with fsync I/O
"""
from __future__ import absolute_import, division, print_function

WORKLOADS = ("cpu", "io", "io-sync", "mix", "mix-sync")
LATENCY_WORKLOADS = ("latency", "latency-sync")

# Sized so that one serial run takes about 2 s on the reference machine
# (2-core AMD EPYC VM, Python 3.11: ~20 ns per count, ~2 us per page-cache
# operation, ~100 us per fsync operation).
DEFAULT_LOAD = 100 * 1000 * 1000
DEFAULT_IO_OPS = 1000 * 1000
DEFAULT_SYNC_OPS = 20 * 1000
DEFAULT_BLOCK = 4096


def is_sync(workload):
    return workload.endswith("-sync")


def worker_specs(workload, n, load, io_ops, sync_ops):
    """The workers of one cell: a list of dicts with role, kind, amount."""
    if workload not in WORKLOADS:
        raise ValueError("unknown workload %r" % workload)
    ops = sync_ops if is_sync(workload) else io_ops
    if workload == "cpu":
        kinds = ["cpu"] * n
    elif workload in ("io", "io-sync"):
        kinds = ["io"] * n
    else:
        n_io = n // 2
        kinds = ["cpu"] * (n - n_io) + ["io"] * n_io
    specs = []
    seen = {"cpu": 0, "io": 0}
    for kind in kinds:
        specs.append({
            "role": "%s-%d" % (kind, seen[kind]),
            "kind": kind,
            "amount": (load if kind == "cpu" else ops) // n,
            "sync": kind == "io" and is_sync(workload),
        })
        seen[kind] += 1
    return specs


def notes_for(workload, n):
    if workload.startswith("mix") and n == 1:
        return ["mix with N=1 runs a single cpu worker (no io)"]
    return []
