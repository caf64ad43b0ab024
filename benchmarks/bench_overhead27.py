"""What tracing costs CPython 2.7's CPU-bound threads (the old-GIL recorder).

    python benchmarks/bench_overhead27.py [--python27 PATH] [--pairs 9] [--load 10000000]

The study's CPU cell: N counting threads sharing LOAD iterations, pinned to
1 and to 2 CPUs.  Each round runs the cell untraced, traced (through
giltrace/oldgil.py at the default buffer) and traced without code locations,
in rotating order so drift and other tenants' load fall on all three; the
figures are the medians of the per-round ratios traced/untraced ("ratio",
its minimum, and "no-loc" without locations), with the events per second of
the traced runs and the events lost by both traced runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from giltrace import _build_oldgil  # noqa: E402

MODES = ["plain", "traced", "noloc"]

CELL = textwrap.dedent(
    """
    import json, os, sys, threading, time
    n_threads, load, trace, lib, locations = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5] == "1"
    def count(n):
        while n > 0:
            n -= 1
    tracer = None
    if trace != "-":
        sys.path.insert(0, os.path.join(%(repo)r, "giltrace"))
        import oldgil
        tracer = oldgil.Tracer(trace, lib=lib, locations=locations).start()
    threads = [threading.Thread(target=count, args=(load // n_threads,)) for _ in range(n_threads)]
    t0 = time.time()
    for t in threads: t.start()
    for t in threads: t.join()
    wall = time.time() - t0
    out = {"wall_s": wall}
    if tracer:
        tracer.stop()
        out.update(events=tracer.stats["events_written"], lost=tracer.stats["events_lost"])
    print(json.dumps(out))
    """
)


def default_python27() -> "str | None":
    root = os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv"))
    path = os.path.join(root, "versions", "2.7.18", "bin", "python")
    return path if os.path.exists(path) else shutil.which("python2.7")


def run(py27: str, script: str, cpus: str, n: int, load: int, mode: str, trace: str, lib: str) -> dict:
    """One run of the cell: mode "plain", "traced" or "noloc" (traced without code locations)."""
    argv = [py27, script, str(n), str(load), "-" if mode == "plain" else trace, lib, "0" if mode == "noloc" else "1"]
    out = subprocess.run(["taskset", "-c", cpus] + argv, capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--python27", default=default_python27())
    ap.add_argument("--pairs", type=int, default=9)
    ap.add_argument("--load", type=int, default=10_000_000)
    ap.add_argument("--n", type=int, default=2)
    ap.add_argument("--cores", default="1,2")
    args = ap.parse_args()
    if not args.python27:
        print("no CPython 2.7 here", file=sys.stderr)
        return 2
    lib = _build_oldgil.library_path()
    tmp = tempfile.mkdtemp()
    script = os.path.join(tmp, "cell27.py")
    with open(script, "w") as f:
        f.write(CELL % {"repo": REPO})
    ncpu = len(os.sched_getaffinity(0))
    print("CPython 2.7 CPU cell, N=%d, LOAD %d, %d pairs; this host: %d CPUs" % (args.n, args.load, args.pairs, ncpu))
    print("%-6s %10s %10s %8s %8s %10s %12s %6s" % ("cores", "plain s", "traced s", "ratio", "min", "no-loc", "events/s", "lost"))
    try:
        for cores in (int(c) for c in args.cores.split(",")):
            if cores > ncpu:
                continue
            cpus = "0" if cores == 1 else "0-%d" % (cores - 1)
            walls: dict[str, list[float]] = {mode: [] for mode in MODES}
            ratios: dict[str, list[float]] = {"traced": [], "noloc": []}
            rates, lost = [], 0
            for k in range(args.pairs):
                order = MODES[k % 3 :] + MODES[: k % 3]  # each mode runs first, second and third in turn
                res = {mode: run(args.python27, script, cpus, args.n, args.load, mode, os.path.join(tmp, "t.gtr"), lib) for mode in order}
                for mode in MODES:
                    walls[mode].append(res[mode]["wall_s"])
                for mode in ratios:
                    ratios[mode].append(res[mode]["wall_s"] / res["plain"]["wall_s"])
                rates.append(res["traced"]["events"] / res["traced"]["wall_s"])
                lost += res["traced"]["lost"] + res["noloc"]["lost"]
            print(
                "%-6d %10.3f %10.3f %8.3f %8.3f %10.3f %12.0f %6d"
                % (
                    cores,
                    statistics.median(walls["plain"]),
                    statistics.median(walls["traced"]),
                    statistics.median(ratios["traced"]),
                    min(ratios["traced"]),
                    statistics.median(ratios["noloc"]),
                    statistics.median(rates),
                    lost,
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
