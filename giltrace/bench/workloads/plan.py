"""Which workers a workload has: a role name, a kind, and an amount of work.

Roles name the threads ("cpu-0", "io-1"), so traces can be read per role.
Every worker gets 1/N of its kind's total, the study's "LOAD / N"; what
each workload's workers are is declared in ``registry``:

- ``cpu``      N counters of LOAD/N iterations
- ``io``       N I/O loops of IO_OPS/N (page cache) or SYNC_OPS/N (fsync) operations
- ``mix``      N - N//2 counters and N//2 I/O loops, each 1/N of its kind's
               total; with N=1 that is a single counter
"""

from __future__ import absolute_import, division, print_function

if __package__:
    from . import registry
else:
    import registry

WORKLOADS = registry.GRID
LATENCY_WORKLOADS = registry.LATENCY

# Worker kinds, the first part of a worker's role ("cpu-0", "io-1").  A serial
# cell's main thread is named after the kind it runs ("io-serial"), or MIXED.
KINDS = ("cpu", "io")
MIXED = "mix"

# Sized so that one serial run takes about 2 s on the reference machine
# (2-core AMD EPYC VM, Python 3.11: ~20 ns per count, ~2 us per page-cache
# operation, ~100 us per fsync operation).
DEFAULT_LOAD = 100 * 1000 * 1000
DEFAULT_IO_OPS = 1000 * 1000
DEFAULT_SYNC_OPS = 20 * 1000
DEFAULT_BLOCK = 4096


def is_sync(workload):
    return registry.get(workload).sync


def role(kind, index):
    """A worker's role: its thread's (or process's) name."""
    return "%s-%s" % (kind, index)


def role_kind(role_name):
    """'cpu', 'io' or MIXED for a worker's role ('io-1', 'mix-serial'), else None."""
    kind, dash, _ = str(role_name or "").partition("-")
    return kind if dash and kind in KINDS + (MIXED,) else None


def worker_kinds(workload, n):
    """The kinds of a grid workload's N workers, in role order."""
    workers = registry.get(workload).workers
    if workers == registry.CPU:
        return ["cpu"] * n
    if workers == registry.IO:
        return ["io"] * n
    if workers == registry.MIX:
        n_io = n // 2
        return ["cpu"] * (n - n_io) + ["io"] * n_io
    raise ValueError("%r is not a grid workload" % workload)


def worker_specs(workload, n, load, io_ops, sync_ops):
    """The workers of one cell: a list of dicts with role, kind, amount."""
    if workload not in WORKLOADS:
        raise ValueError("unknown workload %r" % workload)
    sync = is_sync(workload)
    ops = sync_ops if sync else io_ops
    specs = []
    seen = {"cpu": 0, "io": 0}
    for kind in worker_kinds(workload, n):
        specs.append(
            {
                "role": role(kind, seen[kind]),
                "kind": kind,
                "amount": (load if kind == "cpu" else ops) // n,
                "sync": kind == "io" and sync,
            }
        )
        seen[kind] += 1
    return specs


def notes_for(workload, n):
    if registry.get(workload).workers == registry.MIX and n == 1:
        return ["mix with N=1 runs a single cpu worker (no io)"]
    return []
