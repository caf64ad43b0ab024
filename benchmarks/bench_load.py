"""Loading speed: a synthetic 10-million-event trace (4 threads taking turns).

    python benchmarks/bench_load.py [--events 10000000]

Target (issue 2): loading 10M events takes a few seconds at most.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import giltrace  # noqa: E402
from giltrace import fileformat as ff  # noqa: E402


def synthesize(path: str, n: int, threads: int = 4, chunk: int = 16384) -> None:
    """Threads take turns: wait, acquire, release; realistic sizes and order."""
    per = 3
    rounds = n // per
    ev = np.zeros(rounds * per, ff.EVENT_FIELDS)
    t = np.arange(rounds, dtype=np.uint64) * 5000 + 10_000
    tid = (np.arange(rounds) % threads + 100).astype(np.uint32)
    ev["time_ns"][0::3], ev["kind"][0::3], ev["tid"][0::3] = t - 3000, ff.EV_WAIT, tid
    ev["time_ns"][1::3], ev["kind"][1::3], ev["tid"][1::3], ev["arg"][1::3], ev["flags"][1::3] = t, ff.EV_ACQUIRE, tid, 3000, 3
    ev["time_ns"][2::3], ev["kind"][2::3], ev["tid"][2::3] = t + 4000, ff.EV_RELEASE, tid
    with open(path, "wb") as f:
        f.write(ff.header_bytes({"switch_interval_s": 0.005}))
        f.write(ff.json_chunk(ff.CHUNK_START, {"start_ns": 0}))
        for i in range(0, len(ev), chunk):
            payload = ev[i : i + chunk].tobytes()
            f.write(ff.CHUNK.pack(ff.CHUNK_MAGIC, ff.CHUNK_EVENTS, 0, len(payload) // 24, len(payload), zlib.crc32(payload)))
            f.write(payload)
        f.write(ff.json_chunk(ff.CHUNK_THREADS, [{"tid": 100 + k, "name": "t%d" % k} for k in range(threads)]))
        f.write(ff.json_chunk(ff.CHUNK_FOOTER, {"start_ns": 0, "stop_ns": int(t[-1]) + 10_000, "events_lost": 0}))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=10_000_000)
    args = ap.parse_args()
    path = os.path.join(tempfile.mkdtemp(), "big.gtr")
    synthesize(path, args.events)
    size = os.path.getsize(path)
    t0 = time.perf_counter()
    tr = giltrace.load(path)
    t1 = time.perf_counter()
    ev = tr.events
    t2 = time.perf_counter()
    iv = tr.intervals()
    t3 = time.perf_counter()
    th = tr.threads()
    t4 = time.perf_counter()
    print("events            %d (%.0f MB file)" % (len(ev), size / 1e6))
    print("load (parse+crc)  %.2f s" % (t1 - t0))
    print("events frame      %.2f s" % (t2 - t1))
    print("intervals()       %.2f s (%d rows)" % (t3 - t2, len(iv)))
    print("threads()         %.2f s" % (t4 - t3))
    print("total             %.2f s" % (t4 - t0))
    assert th["acquires"].sum() == args.events // 3
    os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
