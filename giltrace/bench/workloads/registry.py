"""Every workload of the bench, and what it is, in one place.

Adding a workload is one entry below: the child's --workload choices, the
bench's --workloads, the grid or latency layout of its table, its heading,
which workers keep a CPU busy (``bench/spread.py``) and the trace-size
warnings all read it.  A new kind of worker (neither counting nor I/O) needs
its loop in ``kernels.py`` and its kind in ``plan.py`` as well.

Plain Python 2.7 too, like the rest of this folder: the child reads it.
"""

from __future__ import absolute_import, division, print_function

# What a workload's N workers are (see plan.worker_specs):
CPU = "cpu"  # N counters
IO = "io"  # N I/O loops
MIX = "mix"  # N - N//2 counters and N//2 I/O loops; with N=1 a single counter
CONVOY = "convoy"  # one I/O thread beside K counting competitors (the latency experiment)


class Workload(object):
    """One workload's properties."""

    def __init__(self, name, workers, sync, title):
        self.name = name
        self.workers = workers  # CPU, IO, MIX or CONVOY
        self.sync = sync  # its I/O fsyncs each write (disk-bound), rather than page-cache only
        # The heading of its table; %(load)d, %(io_ops)d, %(sync_ops)d, %(block)d and
        # %(duration)g are the sizes of the run (BenchConfig's fields).
        self.title = title

    @property
    def latency(self):
        """A convoy workload: its rows are K competitors (alone, threads, processes), not N workers."""
        return self.workers == CONVOY

    @property
    def page_cache_io(self):
        """Has I/O workers that keep a CPU busy (page cache, no fsync): many GIL events per second."""
        return self.workers != CPU and not self.sync

    def heading(self, sizes):
        """The title with the run's sizes filled in (``sizes``: a dict or a BenchConfig)."""
        if not isinstance(sizes, dict):
            sizes = dict((k, getattr(sizes, k)) for k in ("load", "io_ops", "sync_ops", "block", "duration"))
        return self.title % sizes


WORKLOADS = (
    Workload("cpu", CPU, False, "cpu bound: counter, LOAD %(load)d split into N parts"),
    Workload("io", IO, False, "io bound, page cache: %(io_ops)d write+read-back operations of %(block)d bytes, split into N parts"),
    Workload("io-sync", IO, True, "io bound, disk: %(sync_ops)d write+fsync+read-back operations of %(block)d bytes, split into N parts"),
    Workload("mix", MIX, False, "io / cpu mix: N - N//2 counters (LOAD/N each) + N//2 page-cache io workers (1/N of %(io_ops)d ops each)"),
    Workload(
        "mix-sync", MIX, True, "io / cpu mix, disk: N - N//2 counters (LOAD/N each) + N//2 fsync io workers (1/N of %(sync_ops)d ops each)"
    ),
    Workload(
        "latency",
        CONVOY,
        False,
        "latency (convoy): one I/O thread, %(block)d-byte page-cache operations for %(duration)gs, beside K CPU competitors",
    ),
    Workload(
        "latency-sync",
        CONVOY,
        True,
        "latency (convoy): one I/O thread, %(block)d-byte fsync operations for %(duration)gs, beside K CPU competitors",
    ),
)

BY_NAME = dict((w.name, w) for w in WORKLOADS)
GRID = tuple(w.name for w in WORKLOADS if not w.latency)  # N workers x serial / thread / procs
LATENCY = tuple(w.name for w in WORKLOADS if w.latency)


def get(name):
    """The Workload called ``name``; ValueError if there is none."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError("unknown workload %r" % name)
