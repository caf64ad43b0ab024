"""The study's CPU-bound battle, measured from GIL events: 2.7's old GIL next to 3.x.

    python benchmarks/gil_battle.py [--python27 PATH] [--python3 PATH] [--load 100000000] [--repeat 3] [-o DIR]

For each interpreter and for 1 and 2 CPUs: two counting threads (the
study's CPU cell, N=2) run untraced (wall time) and traced, and serially
(wall time).  From the traced run's events, per second of the run:
acquisitions that handed the GIL to the other thread versus takes by the
thread that had just released it, and how long the new holder waited per
hand-off; from /proc (each worker reads its own
/proc/thread-self/status as it ends), its voluntary and involuntary
context switches.  docs/results.md, "The old GIL's battle", shows and
explains the figures; the traces are kept in DIR for the timelines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import textwrap
from typing import Any, Dict, List

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from giltrace import _build_oldgil, fileformat, layout  # noqa: E402
from giltrace.bench import monitor  # noqa: E402

CELL = textwrap.dedent(
    """
    import json, os, sys, threading, time
    mode, load, trace, lib = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    switches = {}
    def ctxt():
        out = {}
        with open("/proc/thread-self/status") as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    k, v = line.split(":")
                    out[k.strip()] = int(v)
        return out
    def count(n, name):
        while n > 0:
            n -= 1
        switches[name] = ctxt()
    tracer = None
    if trace != "-":
        if sys.version_info[0] == 2:
            sys.path.insert(0, os.path.join(%(repo)r, "giltrace"))
            import oldgil
            tracer = oldgil.Tracer(trace, lib=lib).start()
        else:
            sys.path.insert(0, %(repo)r)
            import giltrace
            tracer = giltrace.trace(trace).start()
    t0 = time.time()
    if mode == "serial":
        count(load // 2, "w0"); count(load // 2, "w1")
    else:
        ts = [threading.Thread(target=count, args=(load // 2, "w%%d" %% i), name="worker-%%d" %% i) for i in range(2)]
        for t in ts: t.start()
        for t in ts: t.join()
    wall = time.time() - t0
    if tracer:
        tracer.stop(load=False)
    print(json.dumps({"wall_s": wall, "ctxt": switches}))
    """
)


def run_cell(python: str, cpus: str, mode: str, load: int, trace: str, lib: str) -> Dict[str, Any]:
    """One pinned run; with the share of its CPUs' busy time that other processes used meanwhile."""
    ids = [int(c) for c in cpus.split("-")]
    ids = list(range(ids[0], ids[-1] + 1))
    before, child_before = monitor.cpu_ticks(ids), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(
        ["taskset", "-c", cpus, python, CELL_PATH, mode, str(load), trace, lib], capture_output=True, text=True, timeout=600
    )
    after, child_after = monitor.cpu_ticks(ids), resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        raise SystemExit(out.stderr.strip().splitlines()[-1])
    res = json.loads(out.stdout.strip().splitlines()[-1])
    busy = monitor.ticks_to_seconds(after["busy"] - before["busy"])
    ours = (child_after.ru_utime + child_after.ru_stime) - (child_before.ru_utime + child_before.ru_stime)
    res["others_share"] = max(0.0, 1 - ours / busy) if busy > 0 else 0.0
    return res


def battle_figures(path: str) -> Dict[str, Any]:
    """Hand-offs and same-thread re-takes between the workers, and the waits per hand-off."""
    raw = fileformat.read(path)
    names = {r["tid"]: r["name"] for r in raw.threads}
    workers = [tid for tid, name in names.items() if name.startswith("worker-")]
    ev = raw.events
    acq = ev[(ev["kind"] == layout.EV_ACQUIRE) & np.isin(ev["tid"], workers)]
    span_s = (acq["time_ns"].max() - acq["time_ns"].min()) / 1e9 if len(acq) > 1 else 1.0
    switched = (acq["flags"] & layout.FLAG_SWITCHED) != 0
    contended = (acq["flags"] & layout.FLAG_CONTENDED) != 0
    handoff_wait = acq["arg"][switched & contended] / 1e3  # us: the new holder's wait for the GIL
    # The old GIL's check-interval cycle: a holder releases and takes the GIL
    # straight back; the gap between the two is what each cycle costs it.
    order = np.argsort(ev["time_ns"], kind="stable")
    t, kind, tid = ev["time_ns"][order].astype(np.int64), ev["kind"][order], ev["tid"][order]
    flags = ev["flags"][order]
    same_back = (
        (kind[1:] == layout.EV_ACQUIRE)
        & (kind[:-1] == layout.EV_RELEASE)
        & (tid[1:] == tid[:-1])
        & ((flags[1:] & layout.FLAG_SWITCHED) == 0)
        & np.isin(tid[1:], workers)
    )
    gaps = (t[1:] - t[:-1])[same_back] / 1e3
    holds = (t[1:] - t[:-1])[
        (kind[1:] == layout.EV_RELEASE) & (kind[:-1] == layout.EV_ACQUIRE) & (tid[1:] == tid[:-1]) & np.isin(tid[1:], workers)
    ] / 1e3
    return {
        "gil_kind": raw.header.get("gil_kind", "new"),
        "retake_gap_p50_us": float(np.median(gaps)) if len(gaps) else 0.0,
        "retake_gap_mean_us": float(gaps.mean()) if len(gaps) else 0.0,
        "hold_p50_us": float(np.median(holds)) if len(holds) else 0.0,
        "acquires_per_s": len(acq) / span_s,
        "handoffs_per_s": int(switched.sum()) / span_s,
        "retakes_per_s": int((~switched).sum()) / span_s,
        "retake_share": float((~switched).mean()) if len(acq) else 0.0,
        "handoff_wait_mean_us": float(handoff_wait.mean()) if len(handoff_wait) else 0.0,
        "handoff_wait_p50_us": float(np.median(handoff_wait)) if len(handoff_wait) else 0.0,
        "handoff_wait_p99_us": float(np.percentile(handoff_wait, 99)) if len(handoff_wait) else 0.0,
        "blocking_waits_per_s": int(contended.sum()) / span_s,
        "events_lost": int(raw.footer.get("events_lost") or 0),
        "drop_requests": int((ev["kind"] == layout.EV_DROP_REQUEST).sum()),
    }


CELL_PATH = ""


def main() -> int:
    global CELL_PATH
    root = os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--python27", default=os.path.join(root, "versions", "2.7.18", "bin", "python"))
    ap.add_argument("--python3", default=sys.executable)
    ap.add_argument("--load", type=int, default=100_000_000)  # the study table's LOAD (docs/results.md)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--traced-runs", type=int, default=3, help="traced runs per cell; the least disturbed is kept")
    ap.add_argument("-o", "--output", default="out/gil-battle")
    args = ap.parse_args()
    os.makedirs(args.output, exist_ok=True)
    CELL_PATH = os.path.join(args.output, "cell.py")
    with open(CELL_PATH, "w") as f:
        f.write(CELL % {"repo": REPO})
    lib = _build_oldgil.library_path()
    rows: List[Dict[str, Any]] = []
    for python in (args.python27, args.python3):
        version = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True
        ).stdout.strip()
        for cores, cpus in ((1, "0"), (2, "0-1")):
            walls = {"serial": [], "thread": []}
            for _ in range(args.repeat):  # untraced, alternating, for the wall-clock figures
                for mode in ("serial", "thread"):
                    r = run_cell(python, cpus, mode, args.load, "-", lib)
                    walls[mode].append((r["wall_s"], r["others_share"]))
            # Traced runs: keep the one other processes disturbed least (a shared host's noise).
            trace = os.path.join(args.output, "cpu-%s-c%d-n2-thread.gtr" % (version, cores))
            traced = None
            for _ in range(args.traced_runs):
                candidate = trace + ".try"
                res = run_cell(python, cpus, "thread", args.load, candidate, lib)
                if traced is None or res["others_share"] < traced["others_share"]:
                    traced = res
                    os.replace(candidate, trace)
                if traced["others_share"] < 0.02:
                    break
            row = {
                "python": version,
                "cores": cores,
                "serial_s": statistics.median(w for w, _ in walls["serial"]),
                "thread_s": statistics.median(w for w, _ in walls["thread"]),
                "traced_s": traced["wall_s"],
                "others_share_max": max(o for m in walls.values() for _, o in m),
                "traced_others_share": traced["others_share"],
                "loadavg": open("/proc/loadavg").read().split()[:3],
                "trace": trace,
            }
            row.update(battle_figures(trace))
            vol = sum(c["voluntary_ctxt_switches"] for c in traced["ctxt"].values())
            invol = sum(c["nonvoluntary_ctxt_switches"] for c in traced["ctxt"].values())
            row.update(ctxt_voluntary_per_s=vol / traced["wall_s"], ctxt_involuntary_per_s=invol / traced["wall_s"])
            rows.append(row)
            print(json.dumps(row), flush=True)
    with open(os.path.join(args.output, "battle.json"), "w") as f:
        json.dump(rows, f, indent=1)
    cols = [
        ("python", "%-6s"),
        ("cores", "%5d"),
        ("serial_s", "%8.2f"),
        ("thread_s", "%8.2f"),
        ("acquires_per_s", "%10.0f"),
        ("handoffs_per_s", "%9.0f"),
        ("retakes_per_s", "%9.0f"),
        ("retake_share", "%7.4f"),
        ("handoff_wait_p50_us", "%9.1f"),
        ("handoff_wait_mean_us", "%9.1f"),
        ("handoff_wait_p99_us", "%9.1f"),
        ("retake_gap_p50_us", "%7.2f"),
        ("hold_p50_us", "%8.1f"),
        ("others_share_max", "%5.2f"),
        ("traced_others_share", "%5.2f"),
        ("ctxt_voluntary_per_s", "%9.0f"),
        ("ctxt_involuntary_per_s", "%9.0f"),
        ("events_lost", "%5d"),
    ]
    print(" ".join(c for c, _ in cols))
    for r in rows:
        print(" ".join(fmt % r[c] for c, fmt in cols))
    shutil.copy(CELL_PATH, CELL_PATH + ".txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
