"""Accuracy against an independent kernel-level measurement (root only).

    sudo python benchmarks/validate_uprobes.py [--seconds 2] [--scenario all]

perf uprobes on the interpreter's ``take_gil`` entry and return give, per
thread, the ground-truth GIL wait (sum of take_gil durations) and the number
of acquisitions.  The same run is traced by giltrace from inside; the two are
compared per thread inside the trace's time window (perf records with
``-k CLOCK_MONOTONIC``, giltrace's clock).  Note that each uprobe hit costs
~1-3 us, part of which lands inside the measured take_gil: ground truth is
biased upwards by about that much per acquisition.

    sudo python benchmarks/validate_uprobes.py --python27 PATH [--scenario cpu,io]

The old GIL (CPython 2.7, traced by the ctypes starter giltrace/oldgil.py):
uprobes on ``PyThread_acquire_lock`` entry (with its lock argument) and
return, kept only for calls on the GIL's own lock (its address is in the
trace's header, ``gil_semaphore``).  Compared per thread: acquisitions, and
the summed time of every take (the ACQUIRE events' wait, blocking or not).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import textwrap
from typing import TYPE_CHECKING

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


if TYPE_CHECKING:
    import numpy as np
import giltrace  # noqa: E402

WORKLOAD = textwrap.dedent(
    """
    import os, sys, tempfile, threading, time, giltrace
    from giltrace._binding import native
    ffi, lib = native()
    scenario, seconds, path = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    stop = threading.Event()
    def cpu():
        while not stop.is_set():
            n = 10000
            while n: n -= 1
    def io():
        block = b"x" * 4096
        with tempfile.TemporaryFile() as f:
            while not stop.is_set():
                os.pwrite(f.fileno(), block, 0); os.pread(f.fileno(), 4096, 0)
    def c_holder():
        while not stop.is_set():
            lib.gt_test_hold_gil_ns(7_000_000)
            time.sleep(0.003)
    roles = {"cpu": [cpu, cpu], "io": [io, cpu], "mixed": [cpu, io, io, c_holder], "cext": [c_holder, io]}[scenario]
    threads = [threading.Thread(target=f, name="%s-%d" % (f.__name__, i)) for i, f in enumerate(roles)]
    with giltrace.trace(path):
        for t in threads: t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads: t.join()
    """
)


def libpython() -> str:
    libdir = sysconfig.get_config_var("LIBDIR")
    name = sysconfig.get_config_var("INSTSONAME") or sysconfig.get_config_var("LDLIBRARY")
    return os.path.join(libdir, name)


def ground_truth(perf_script: str, start_ns: int, stop_ns: int):
    entry = {}
    wait = collections.Counter()
    acquires = collections.Counter()
    floor = {}  # shortest take_gil seen per thread: the probes' own cost (a real uncontended take is ~0.1 us)
    for line in perf_script.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        tid = int(parts[0])
        t = int(round(float(parts[1].rstrip(":")) * 1e9))
        ev = parts[2]
        if ev.endswith("take_gil:"):
            entry[tid] = t
        elif ev.endswith("take_gil__return:") and tid in entry:
            t0 = entry.pop(tid)
            if t0 >= start_ns and t <= stop_ns:
                wait[tid] += t - t0
                acquires[tid] += 1
                floor[tid] = min(floor.get(tid, t - t0), t - t0)
    return wait, acquires, floor


WORKLOAD27 = textwrap.dedent(
    """
    import os, sys, tempfile, threading, time
    sys.path.insert(0, os.path.join(%(repo)r, "giltrace"))
    import oldgil
    scenario, seconds, path, lib = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
    stop = threading.Event()
    def cpu():
        while not stop.is_set():
            n = 10000
            while n: n -= 1
    def io():
        block = b"x" * 4096
        f = tempfile.TemporaryFile()
        while not stop.is_set():
            f.seek(0); f.write(block); f.flush(); os.fsync(f.fileno()) if scenario == "sync" else None
            f.seek(0); f.read(4096)
    roles = {"cpu": [cpu, cpu], "io": [io, cpu], "sync": [io, cpu]}[scenario]
    threads = [threading.Thread(target=f, name="%%s-%%d" %% (f.__name__, i)) for i, f in enumerate(roles)]
    with oldgil.Tracer(path, lib=lib):
        for t in threads: t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads: t.join()
    """
)


def switches_out(perf_script: str) -> "dict[int, list]":
    """Per thread, the times the scheduler switched it out (sched:sched_switch)."""
    out = collections.defaultdict(list)
    for line in perf_script.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2].endswith("sched_switch:"):
            out[int(parts[0])].append(int(round(float(parts[1].rstrip(":")) * 1e9)))
    return out


def ground_truth27(perf_script: str, lock: int, start_ns: int, stop_ns: int) -> "dict[int, list]":
    """Per thread, in order: (entry, return) of each PyThread_acquire_lock on the GIL inside the window."""
    entry = {}
    takes = collections.defaultdict(list)
    for line in perf_script.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        tid, t, ev = int(parts[0]), int(round(float(parts[1].rstrip(":")) * 1e9)), parts[2]
        if ev.endswith("gil_acq:"):
            args = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
            if int(args.get("lock", "0"), 16) == lock:
                entry[tid] = t
        elif ev.endswith("gil_acq__return:") and tid in entry:
            t0 = entry.pop(tid)
            if t0 >= start_ns and t <= stop_ns:
                takes[tid].append((t0, t))
    return takes


def compare_thread(truth: "list", mine: "np.ndarray", contended: "np.ndarray", switched_out: "list" = ()) -> "dict[str, float]":
    """Our takes against the probes' for one thread, matched one to one in order.

    Each uprobe hit costs microseconds, part of them inside the probed call:
    at 2.7's ~10^5 takes per second that bias dwarfs the waits themselves, so
    it is estimated per thread as the median (probe - ours) difference over
    the takes that did not block, and taken off every take of the probes."""
    import numpy as np

    span = np.array([b - a for a, b in truth], dtype=np.int64)
    out = {"truth_ms": span.sum() / 1e6, "ours_ms": mine["arg"].sum() / 1e6, "truth_acq": len(span), "acq": len(mine)}
    if len(span) != len(mine) or not len(span):
        out.update(
            cost_us=float("nan"),
            corrected_ms=float("nan"),
            block_truth_ms=float("nan"),
            block_ours_ms=float("nan"),
            block_n=0,
            block_excess_us=float("nan"),
            inside_pct=float("nan"),
            far_n=0,
            far_ms=float("nan"),
            rest_diff_ms=float("nan"),
            far_switched_pct=float("nan"),
        )
        return out
    diff = span - mine["arg"].astype(np.int64)
    free = ~contended
    cost = float(np.median(diff[free])) if free.any() else float(np.median(diff))
    out["cost_us"] = cost / 1e3
    out["corrected_ms"] = (span - cost).clip(min=0).sum() / 1e6
    out["block_truth_ms"] = (span[contended] - cost).clip(min=0).sum() / 1e6  # the blocking takes alone
    out["block_ours_ms"] = mine["arg"][contended].sum() / 1e6
    out["block_n"] = int(contended.sum())
    # takes whose probe window exceeds ours by over 20 us (10x a trap): the
    # thread lost its CPU inside the probes' part, outside any stamp of ours
    excess = diff - cost
    far = excess > 20_000
    out["far_n"] = int(far.sum())
    out["far_ms"] = float(excess[far].sum()) / 1e6
    out["rest_diff_ms"] = out["ours_ms"] - (out["corrected_ms"] - out["far_ms"])
    # Of those, how many had the thread switched out inside the probes' window but outside ours
    sw = np.array(sorted(switched_out), dtype=np.int64)
    ends = mine["time_ns"].astype(np.int64)
    t0s = np.array([a for a, _ in truth], dtype=np.int64)
    t1s = np.array([b for _, b in truth], dtype=np.int64)
    starts_ = ends - mine["arg"].astype(np.int64)

    def any_between(lo: "np.ndarray", hi: "np.ndarray") -> "np.ndarray":
        return np.searchsorted(sw, hi, side="left") > np.searchsorted(sw, lo, side="left")

    outside = any_between(t0s, starts_) | any_between(ends + 1, t1s)
    out["far_switched_pct"] = 100.0 * float(outside[far].mean()) if far.any() else float("nan")
    # what the probes see beyond ours on a blocking take, past their usual cost: their cost after a wake-up
    out["block_excess_us"] = float(np.median(diff[contended] - cost)) / 1e3 if contended.any() else 0.0
    starts = mine["time_ns"].astype(np.int64) - mine["arg"].astype(np.int64)
    t0 = np.array([a for a, _ in truth], dtype=np.int64)
    t1 = np.array([b for _, b in truth], dtype=np.int64)
    out["inside_pct"] = 100.0 * float(((t0 <= starts) & (mine["time_ns"].astype(np.int64) <= t1)).mean())  # ours within theirs
    out["start_offset_us"] = (
        float(np.median(mine["time_ns"].astype(np.int64) - mine["arg"].astype(np.int64) - np.array([a for a, _ in truth], dtype=np.int64)))
        / 1e3
    )
    return out


def workload_script(source: str, name: str) -> "tuple[str, str]":
    """A temporary directory holding the workload script: (directory, script)."""
    tmp = tempfile.mkdtemp()
    script = os.path.join(tmp, name)
    with open(script, "w") as f:
        f.write(source)
    return tmp, script


def perf_record(data: str, events: "list[str]", command: "list[str]", buffer_pages: "int | None" = None, env=None) -> None:
    """perf record of `events` around `command`, on CLOCK_MONOTONIC (giltrace's clock)."""
    pages = ["-m", str(buffer_pages)] if buffer_pages else []
    probes = [arg for event in events for arg in ("-e", event)]
    subprocess.run(["perf", "record", "-q"] + pages + ["-k", "CLOCK_MONOTONIC", "-o", data] + probes + command, check=True, env=env)


def function_offset(lib: str, name: str) -> int:
    out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise SystemExit("%s not found in %s" % (name, lib))


def main27(py27: str, scenarios: "list[str]", seconds: float) -> int:
    """The old GIL's check: perf uprobes on PyThread_acquire_lock against giltrace's events."""
    import numpy as np

    from giltrace import _build_oldgil, fileformat, layout

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lib = _build_oldgil.library_path()
    libpy = subprocess.run(
        [
            py27,
            "-c",
            "import sysconfig, os; print(os.path.join(sysconfig.get_config_var('LIBDIR'), sysconfig.get_config_var('INSTSONAME')))",
        ],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if not os.path.exists(libpy):
        libpy = os.path.realpath(py27)  # a static libpython: the probes go on the executable
    # By address: the name alone would also put a return probe on the PLT stub.
    addr = function_offset(libpy, "PyThread_acquire_lock")
    subprocess.run(["perf", "probe", "-q", "--del", "probe_gt27:*"], capture_output=True)
    subprocess.run(
        [
            "perf",
            "probe",
            "-q",
            "-x",
            libpy,
            "--add",
            "probe_gt27:gil_acq=0x%x lock=%%di:x64" % addr,
            "--add",
            "probe_gt27:gil_acq=0x%x%%return" % addr,
        ],
        check=True,
    )
    tmp, script = workload_script(WORKLOAD27 % {"repo": repo}, "w27.py")
    failed = 0
    try:
        for sc in scenarios:
            gtr, data = os.path.join(tmp, sc + ".gtr"), os.path.join(tmp, sc + ".data")
            # 2.7 makes ~10^5 probed takes per second per thread: big buffers, and say if perf lost any
            perf_record(
                data,
                ["probe_gt27:gil_acq", "probe_gt27:gil_acq__return", "sched:sched_switch"],
                [py27, script, sc, str(seconds), gtr, lib],
                buffer_pages=16384,
            )
            stats = subprocess.run(["perf", "report", "-i", data, "--stats"], capture_output=True, text=True).stdout
            perf_lost = sum(
                int(line.split()[-1])
                for line in stats.splitlines()
                if line.strip().startswith(("LOST events", "LOST_SAMPLES events")) and line.split()[-1].isdigit()
            )
            out = subprocess.run(
                ["perf", "script", "-i", data, "--ns", "-F", "tid,time,event,trace"], capture_output=True, text=True, check=True
            ).stdout
            raw = fileformat.read(gtr)
            start, stop = int(raw.footer["start_ns"]), int(raw.footer["stop_ns"])
            truth = ground_truth27(out, int(raw.header["gil_semaphore"]), start, stop)
            switched = switches_out(out)
            ev = raw.events
            acq = ev[(ev["kind"] == layout.EV_ACQUIRE) & ((ev["flags"] & layout.FLAG_WAIT_UNKNOWN) == 0)]
            acq = acq[(acq["time_ns"] - acq["arg"] >= start) & (acq["time_ns"] <= stop)]
            names = {r["tid"]: r["name"] for r in raw.threads}
            print(
                "\n== 2.7 %s: %.2f s, %d events, %d lost, GIL found by %s; perf lost %d records"
                % (sc, (stop - start) / 1e9, len(ev), raw.footer["events_lost"], raw.header.get("gil_found_by"), perf_lost)
            )
            print(
                "%-10s %9s %9s %9s %8s %9s %9s %8s %8s %9s %9s %9s %8s %6s %8s %8s %8s %12s"
                % (
                    "thread",
                    "acq",
                    "probe acq",
                    "probe ms",
                    "cost us",
                    "corr ms",
                    "ours ms",
                    "diff ms",
                    "blocking",
                    "block pr",
                    "block ms",
                    "excess us",
                    "inside %",
                    "far n",
                    "far ms",
                    "far sw %",
                    "rest ms",
                    "same/switch",
                )
            )
            for tid in sorted(set(truth) | set(int(t) for t in np.unique(acq["tid"]))):
                mine = acq[acq["tid"] == tid]
                contended = (mine["flags"] & layout.FLAG_CONTENDED) != 0
                c = compare_thread(truth.get(tid, []), mine, contended, switched.get(tid, []))
                same = int(((mine["flags"] & layout.FLAG_SAME_HOLDER) != 0).sum())
                ok = c["truth_acq"] == c["acq"] and abs(c["ours_ms"] - c["corrected_ms"]) <= max(0.02 * c["corrected_ms"], 0.5)
                failed += not ok
                print(
                    "%-10s %9d %9d %9.3f %8.2f %9.3f %9.3f %8.3f %8d %9.3f %9.3f %9.2f %8.2f %6d %8.3f %8.1f %8.3f %6d/%-5d %s"
                    % (
                        names.get(tid, tid),
                        c["acq"],
                        c["truth_acq"],
                        c["truth_ms"],
                        c["cost_us"],
                        c["corrected_ms"],
                        c["ours_ms"],
                        c["ours_ms"] - c["corrected_ms"],
                        c["block_n"],
                        c["block_truth_ms"],
                        c["block_ours_ms"],
                        c["block_excess_us"],
                        c["inside_pct"],
                        c["far_n"],
                        c["far_ms"],
                        c["far_switched_pct"],
                        c["rest_diff_ms"],
                        same,
                        len(mine) - same,
                        "" if ok else "  <-- off",
                    )
                )
    finally:
        subprocess.run(["perf", "probe", "-q", "--del", "probe_gt27:*"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--scenario", default="all", help="cpu, io, mixed, cext or all (2.7: cpu, io, sync)")
    ap.add_argument("--python27", metavar="PATH", help="check the old-GIL recorder in this CPython 2.7 instead")
    ap.add_argument(
        "--load",
        type=int,
        default=0,
        metavar="N",
        help="run N CPU-burning processes beside the workload: agreement on a busy machine "
        "(docs/how-it-works.md, 'CPU state': the probes then also count time a thread spent "
        "preempted after it already owned the GIL)",
    )
    args = ap.parse_args()
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(max(args.load, 0))]
    try:
        return _main(args)
    finally:
        for b in burners:
            b.kill()
            b.wait()


def _main(args: argparse.Namespace) -> int:
    if os.geteuid() != 0 or not shutil.which("perf"):
        print("needs root and perf", file=sys.stderr)
        return 2
    if args.python27:
        return main27(args.python27, ["cpu", "io", "sync"] if args.scenario == "all" else args.scenario.split(","), args.seconds)
    lib = libpython()
    subprocess.run(["perf", "probe", "-q", "-x", lib, "--del", "probe_libpython*"], capture_output=True)
    subprocess.run(["perf", "probe", "-q", "-x", lib, "--add", "take_gil", "--add", "take_gil%return"], check=True)
    group = "probe_" + os.path.basename(lib).split(".")[0].replace("-", "_")  # perf cuts at the first dot
    scenarios = ["cpu", "io", "mixed", "cext"] if args.scenario == "all" else args.scenario.split(",")
    tmp, script = workload_script(WORKLOAD, "w.py")
    worst = 0.0
    try:
        for sc in scenarios:
            gtr, data = os.path.join(tmp, sc + ".gtr"), os.path.join(tmp, sc + ".data")
            perf_record(
                data,
                [group + ":take_gil", group + ":take_gil__return"],
                [sys.executable, script, sc, str(args.seconds), gtr],
                env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            )
            out = subprocess.run(
                ["perf", "script", "-i", data, "--ns", "-F", "tid,time,event"], capture_output=True, text=True, check=True
            ).stdout
            t = giltrace.load(gtr)
            gt_wait, gt_acq, floor = ground_truth(out, t.start_ns, t.stop_ns)
            th = t.threads()
            print("\n== %s: %.1f s, %d events, %d lost" % (sc, t.meta["duration_s"], t.meta["events"], t.meta["events_lost"]))
            print(
                "%-12s %12s %12s %8s %10s %10s %9s %12s"
                % ("thread", "truth ms", "giltrace ms", "diff %", "truth acq", "acq", "floor us", "corr diff %")
            )
            for tid, row in th.iterrows():
                truth = gt_wait.get(tid, 0) / 1e6
                ours = row["wait_s"] * 1e3
                diff = 100 * (ours - truth) / truth if truth else 0.0
                ok = abs(ours - truth) <= max(0.02 * truth, 0.5)
                worst = max(worst, abs(diff) if not ok else 0)
                # truth less the probes' floor on every acquisition (an estimate of their cost inside take_gil)
                corrected = truth - gt_acq.get(tid, 0) * floor.get(tid, 0) / 1e6
                corr = 100 * (ours - corrected) / corrected if corrected > 0 else 0.0
                print(
                    "%-12s %12.3f %12.3f %8.2f %10d %10d %9.2f %12.2f %s"
                    % (
                        row["name"],
                        truth,
                        ours,
                        diff,
                        gt_acq.get(tid, 0),
                        row["acquires"],
                        floor.get(tid, 0) / 1e3,
                        corr,
                        "" if ok and gt_acq.get(tid, 0) == row["acquires"] else "  <-- off",
                    )
                )
    finally:
        subprocess.run(["perf", "probe", "-q", "--del", group + ":*"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
