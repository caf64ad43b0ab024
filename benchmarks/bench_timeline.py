"""Timeline rendering speed on a trace with ~1 million intervals.

    python benchmarks/bench_timeline.py [--events 1500000]

Target (issue 4): a trace with 1 million intervals renders in under 5 s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import giltrace  # noqa: E402
from bench_load import synthesize  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_500_000, help="3 events give 2 intervals (wait + hold)")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "big.gtr")
    synthesize(path, args.events)
    t0 = time.perf_counter()
    trace = giltrace.load(path)
    n = len(trace.intervals())
    t1 = time.perf_counter()
    fig, _ = trace.plot_timeline(start_s=0, end_s=trace.meta["duration_s"])  # the whole trace, every interval
    fig.savefig(os.path.join(tmp, "big.png"))
    t2 = time.perf_counter()
    print("intervals        %d" % n)
    print("load+intervals   %.2f s" % (t1 - t0))
    print("render whole     %.2f s (target < 5 s)" % (t2 - t1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
