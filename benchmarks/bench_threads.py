"""How `summary`, `report`, `timeline` and `blame` scale with the number of
threads: a synthetic thread-per-request trace (N threads, each living for a
few GIL holds among ~50 alive at once), written with the file layout and
loaded as any trace (issue 25: 5,000 threads must report in a few seconds).

    .venv/bin/python benchmarks/bench_threads.py [--threads 5000] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from giltrace import layout  # noqa: E402


def synthetic_trace(path: str, threads: int, alive: int = 50, holds_per_thread: int = 4, hold_ns: int = 100_000) -> int:
    """Write a trace of ``threads`` threads; return its event count.  Threads
    start in waves of ``alive``; inside a wave they take the GIL in turn, so
    each waits while the others of its wave hold it."""
    start = 1_000_000
    rows = []
    t = start + 1000
    for wave in range(0, threads, alive):
        tids = list(range(10_000 + wave, 10_000 + min(wave + alive, threads)))
        waiting_since = {tid: t for tid in tids}
        for tid in tids:
            rows.append((t, 0, tid, layout.EV_WAIT, 0))
        for _ in range(holds_per_thread):
            for tid in tids:
                rows.append((t, t - waiting_since[tid], tid, layout.EV_ACQUIRE, layout.FLAG_SWITCHED | layout.FLAG_CONTENDED))
                t += hold_ns
                rows.append((t, 0, tid, layout.EV_RELEASE, 0))
                rows.append((t + 1, 0, tid, layout.EV_WAIT, 0))
                waiting_since[tid] = t + 1
        for tid in tids:  # the last wait ends with a take, then the thread ends
            rows.append((t, t - waiting_since[tid], tid, layout.EV_ACQUIRE, layout.FLAG_SWITCHED | layout.FLAG_CONTENDED))
            t += 1000
            rows.append((t, 0, tid, layout.EV_RELEASE, 0))
    arr = np.zeros(len(rows), layout.EVENT_FIELDS)
    rows.sort(key=lambda r: r[0])
    for i, (ts, arg, tid, kind, flags) in enumerate(rows):
        arr[i] = (ts, arg, tid, kind, flags, 0)
    data = layout.header_bytes({"switch_interval_s": 0.005, "python_version": "3.11.7", "pid": 10_000})
    data += layout.json_chunk(
        layout.CHUNK_START, {"start_ns": start, "switch_number_start": 0, "clock_pair": [start, 1_700_000_000_000_000_000]}
    )
    data += layout.json_chunk(layout.CHUNK_THREADS, [{"tid": 10_000 + i, "name": "request-%d" % i} for i in range(threads)])
    for k in range(0, len(arr), 16384):
        payload = arr[k : k + 16384].tobytes()
        data += (
            layout.CHUNK.pack(layout.CHUNK_MAGIC, layout.CHUNK_EVENTS, 0, len(arr[k : k + 16384]), len(payload), zlib.crc32(payload))
            + payload
        )
    data += layout.json_chunk(layout.CHUNK_FOOTER, {"start_ns": start, "stop_ns": t + 1000, "events_lost": 0, "switch_interval_s": 0.005})
    with open(path, "wb") as f:
        f.write(data)
    return len(arr)


def timed(argv: "list[str]") -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "giltrace"] + argv, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=REPO))
    if r.returncode != 0:
        raise SystemExit("giltrace %s failed: %s" % (" ".join(argv), r.stderr.strip()))
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, nargs="+", default=[250, 1000, 5000])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    out = args.out or tempfile.mkdtemp(prefix="giltrace-bench-threads-")
    os.makedirs(out, exist_ok=True)
    print("threads  events  summary_s  report_s  timeline_s  blame_s")
    for n in args.threads:
        path = os.path.join(out, "threads-%d.gtr" % n)
        events = synthetic_trace(path, n)
        import giltrace

        trace = giltrace.load(path)
        t0 = time.perf_counter()
        trace.blame()
        blame_s = time.perf_counter() - t0
        s = timed(["summary", path])
        r = timed(["report", path, "-o", os.path.join(out, "r-%d.html" % n)])
        tl = timed(["timeline", path, "-o", os.path.join(out, "t-%d.png" % n)])
        print("%7d %7d %10.2f %9.2f %11.2f %8.2f" % (n, events, s, r, tl, blame_s), flush=True)


if __name__ == "__main__":
    main()
