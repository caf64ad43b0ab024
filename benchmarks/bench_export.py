"""Export speed and memory: a synthetic ~1-million-event trace exported as
Chrome JSON and as CSV, against loading the same file.

    python benchmarks/bench_export.py [--events 1000000] [--rounds 3]

Target (issue 9): exporting 1 M events takes at most 2x the time of loading
the file (load + intervals + threads, what the export needs), in bounded
memory.  Every measurement runs in a fresh child process (a clean peak RSS:
VmHWM from /proc/self/status); the rounds alternate load / chrome / csv /
summary so that the machine's drift hits all of them alike, and each ratio is
the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import zlib
from typing import Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from giltrace import fileformat as ff  # noqa: E402


def synthesize(path: str, n: int, threads: int = 4, chunk: int = 16384) -> int:
    """Threads take turns (wait, acquire, release; a drop request every 8th
    turn), with code locations on the waits and releases; returns the event count."""
    rounds = n // 3
    t = np.arange(rounds, dtype=np.uint64) * 5000 + 10_000
    tid = (np.arange(rounds) % threads + 100).astype(np.uint32)
    drop = np.arange(rounds) % 8 == 0
    per = 3 + drop.astype(np.int64)
    ev = np.zeros(int(per.sum()), ff.EVENT_FIELDS)
    base = np.concatenate([[0], np.cumsum(per)[:-1]])
    ev["time_ns"][base], ev["kind"][base], ev["tid"][base], ev["arg"][base] = t - 3000, ff.EV_WAIT, tid, np.arange(rounds) % 50 + 1
    i = base + 1
    ev["time_ns"][i], ev["kind"][i], ev["tid"][i], ev["arg"][i], ev["flags"][i] = t, ff.EV_ACQUIRE, tid, 3000, 3
    i = base + 2
    ev["time_ns"][i], ev["kind"][i], ev["tid"][i], ev["arg"][i] = t + 4000, ff.EV_RELEASE, tid, np.arange(rounds) % 50 + 51
    i = (base + 3)[drop]
    ev["time_ns"][i], ev["kind"][i], ev["tid"][i], ev["arg"][i] = t[drop] + 4500, ff.EV_DROP_REQUEST, tid[drop] + 1, tid[drop]
    ev = ev[np.argsort(ev["time_ns"], kind="stable")]
    locs = b"".join(
        ff.LOCATION_HEAD.pack(k, 10 * k, len(b"/app/work.py"), len(b"Worker.run_%d" % k)) + b"/app/work.py" + b"Worker.run_%d" % k
        for k in range(1, 101)
    )
    with open(path, "wb") as f:
        f.write(ff.header_bytes({"switch_interval_s": 0.005, "pid": 4242, "python_version": "3.11.7", "start_time_unix": 1.7e9}))
        f.write(ff.json_chunk(ff.CHUNK_START, {"start_ns": 0, "clock_pair": [0, 1_700_000_000_000_000_000]}))
        f.write(ff.CHUNK.pack(ff.CHUNK_MAGIC, ff.CHUNK_LOCATIONS, 0, 100, len(locs), zlib.crc32(locs)) + locs)
        for k in range(0, len(ev), chunk):
            payload = ev[k : k + chunk].tobytes()
            f.write(ff.CHUNK.pack(ff.CHUNK_MAGIC, ff.CHUNK_EVENTS, 0, len(payload) // 24, len(payload), zlib.crc32(payload)))
            f.write(payload)
        f.write(ff.json_chunk(ff.CHUNK_THREADS, [{"tid": 100 + k, "name": "worker-%d" % k} for k in range(threads + 1)]))
        f.write(ff.json_chunk(ff.CHUNK_FOOTER, {"start_ns": 0, "stop_ns": int(t[-1]) + 10_000, "events_lost": 0}))
    return len(ev)


# Run in a child: imports first (not timed), then the work, then time and peak RSS as JSON.
CHILD = r"""
import json, os, sys, time, warnings
import giltrace, giltrace.model, pandas
from giltrace.cli import main
what, path, out = sys.argv[1:4]
t0 = time.perf_counter()
if what == "load":
    t = giltrace.load(path)
    t.events, t.intervals(), t.threads()
elif what == "imports":
    pass
elif what == "summary":
    sys.stdout = open(os.devnull, "w")
    main(["summary", path])
else:
    sys.stdout = open(os.devnull, "w")
    main(["export", path, "--format", what, "-o", out])
dt = time.perf_counter() - t0
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
sys.__stdout__.write(json.dumps({"s": dt, "rss_mb": hwm / 1024}))
"""


def measure(what: str, path: str, out: str) -> Dict[str, float]:
    res = subprocess.run(
        [sys.executable, "-c", CHILD, what, path, out], capture_output=True, text=True, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO)
    )
    if res.returncode:
        raise SystemExit("%s failed: %s" % (what, res.stderr.strip().splitlines()[-1:]))
    return json.loads(res.stdout.strip().splitlines()[-1])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "big.gtr")
    n = synthesize(path, args.events)
    kinds = ["load", "chrome", "csv", "summary"]
    runs: Dict[str, List[Dict[str, float]]] = {k: [] for k in kinds}
    for _ in range(args.rounds):
        for k in list(kinds):
            try:
                runs[k].append(measure(k, path, os.path.join(tmp, "out." + k)))
            except SystemExit as exc:
                if k != "summary":  # the summary is for comparison only
                    raise
                print("(summary left out: %s)" % exc, file=sys.stderr)
                kinds.remove(k)
    idle = measure("imports", path, "")  # the interpreter with numpy and pandas, before any work
    print("host              %s, %d CPUs, Python %s" % (cpu_model(), os.cpu_count() or 0, sys.version.split()[0]))
    print("events            %d (%.0f MB file)" % (n, os.path.getsize(path) / 1e6))
    print("imports only                        %6.0f MB peak RSS" % idle["rss_mb"])
    for k in kinds:
        s = statistics.median(r["s"] for r in runs[k])
        rss = max(r["rss_mb"] for r in runs[k])
        ratio = statistics.median(r["s"] / l["s"] for r, l in zip(runs[k], runs["load"]))
        size = os.path.getsize(os.path.join(tmp, "out." + k)) / 1e6 if k in ("chrome", "csv") else 0
        extra = rss - max(r["rss_mb"] for r in runs["load"])
        print(
            "%-8s %7.2f s  %5.2fx load  %6.0f MB peak RSS (%+4.0f MB over load)%s"
            % (k, s, ratio, rss, extra, "  %.0f MB written" % size if size else "")
        )
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
