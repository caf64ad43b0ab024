"""What tracing costs CPython 2.7's CPU-bound threads (the old-GIL recorder).

    python benchmarks/bench_overhead27.py [--python27 PATH] [--pairs 7] [--load 10000000]

The study's CPU cell: N counting threads sharing LOAD iterations, pinned to
1 and to 2 CPUs.  Each pair runs the cell untraced and traced (through
giltrace/oldgil.py at the default buffer), in alternating order so drift
and other tenants' load fall on both; the figure is the median of the
per-pair ratios traced/untraced, with the events per second and the events
lost of the traced runs.
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

CELL = textwrap.dedent(
    """
    import json, os, sys, threading, time
    n_threads, load, trace, lib = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    def count(n):
        while n > 0:
            n -= 1
    tracer = None
    if trace != "-":
        sys.path.insert(0, os.path.join(%(repo)r, "giltrace"))
        import oldgil
        tracer = oldgil.Tracer(trace, lib=lib).start()
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


def run(py27: str, script: str, cpus: str, n: int, load: int, trace: str, lib: str) -> dict:
    out = subprocess.run(
        ["taskset", "-c", cpus, py27, script, str(n), str(load), trace, lib], capture_output=True, text=True, check=True, timeout=600
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--python27", default=default_python27())
    ap.add_argument("--pairs", type=int, default=7)
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
    print("%-6s %10s %10s %8s %8s %12s %6s" % ("cores", "plain s", "traced s", "ratio", "min", "events/s", "lost"))
    try:
        for cores in (int(c) for c in args.cores.split(",")):
            if cores > ncpu:
                continue
            cpus = "0" if cores == 1 else "0-%d" % (cores - 1)
            ratios, plain, traced, rates, lost = [], [], [], [], 0
            for k in range(args.pairs):
                gtr = os.path.join(tmp, "t.gtr")
                order = ("-", gtr) if k % 2 == 0 else (gtr, "-")
                res = {mode: run(args.python27, script, cpus, args.n, args.load, mode, lib) for mode in order}
                a, b = res["-"], res[gtr]
                plain.append(a["wall_s"])
                traced.append(b["wall_s"])
                ratios.append(b["wall_s"] / a["wall_s"])
                rates.append(b["events"] / b["wall_s"])
                lost += b["lost"]
            print(
                "%-6d %10.3f %10.3f %8.3f %8.3f %12.0f %6d"
                % (
                    cores,
                    statistics.median(plain),
                    statistics.median(traced),
                    statistics.median(ratios),
                    min(ratios),
                    statistics.median(rates),
                    lost,
                )
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
