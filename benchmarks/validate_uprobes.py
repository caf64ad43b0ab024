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
import re
import tempfile
import textwrap
from typing import TYPE_CHECKING

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


if TYPE_CHECKING:
    import numpy as np

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


def probe_takes(
    perf_script: str, entry_event: str, start_ns: int, stop_ns: int, lock: "int | None" = None, pid: "int | None" = None
) -> "dict[int, list]":
    """Per thread, in order: (entry, return) of each probed take inside the window.

    `entry_event` is the probe's name (``take_gil``, ``gil_acq``); its return
    probe is ``<name>__return``.  With `lock`, only entries whose ``lock``
    argument is that address count (2.7's PyThread_acquire_lock serves every
    lock, the GIL's is one of them).  Lines start ``pid/tid``; with `pid`,
    other processes' takes (perf records system-wide) are left out."""
    entry: "dict[int, int]" = {}
    takes: "dict[int, list]" = collections.defaultdict(list)
    for line in perf_script.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        ev = parts[2]
        if pid is not None and parts[0].split("/")[0] != str(pid):
            continue
        if ev.endswith(entry_event + ":"):
            if lock is not None:
                args = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
                if int(args.get("lock", "0"), 16) != lock:
                    continue
            entry[int(parts[0].split("/")[-1])] = int(round(float(parts[1].rstrip(":")) * 1e9))
        elif ev.endswith(entry_event + "__return:"):
            tid = int(parts[0].split("/")[-1])
            if tid in entry:
                t0, t1 = entry.pop(tid), int(round(float(parts[1].rstrip(":")) * 1e9))
                if t0 >= start_ns and t1 <= stop_ns:
                    takes[tid].append((t0, t1))
    return takes


_SWITCH = re.compile(r"prev_pid=(\d+).*next_pid=(\d+)")


def offcpu_intervals(perf_script: str) -> "dict[int, np.ndarray]":
    """Per thread, the (out, in) times of every stretch it spent switched out.

    From system-wide ``sched:sched_switch`` (recorded with ``-a``: a thread is
    switched back in by whatever ran before it, often another process)."""
    import numpy as np

    out_at: "dict[int, int]" = {}
    spans: "dict[int, list]" = collections.defaultdict(list)
    for line in perf_script.splitlines():
        if "sched_switch:" not in line:
            continue
        m = _SWITCH.search(line)
        if not m:
            continue
        t = int(round(float(line.split()[1].rstrip(":")) * 1e9))
        prev, nxt = int(m.group(1)), int(m.group(2))
        if prev:
            out_at[prev] = t
        if nxt and nxt in out_at:
            spans[nxt].append((out_at.pop(nxt), t))
    return {tid: np.array(sorted(v), dtype=np.int64).reshape(-1, 2) for tid, v in spans.items()}


def offcpu_between(spans: "np.ndarray", lo: "np.ndarray", hi: "np.ndarray") -> "np.ndarray":
    """Switched-out time of one thread inside each window [lo, hi]."""
    import numpy as np

    if not len(spans):
        return np.zeros(len(lo), dtype=np.int64)
    outs, dur = spans[:, 0], spans[:, 1] - spans[:, 0]
    before = np.concatenate(([0], np.cumsum(dur)))  # switched-out time before stretch k

    def until(x: "np.ndarray") -> "np.ndarray":  # switched-out time before x
        k = np.searchsorted(outs, x, side="right") - 1
        kk = k.clip(0)
        return np.where(k >= 0, before[kk] + np.clip(x - outs[kk], 0, dur[kk]), 0)

    return until(hi) - until(lo)


def compare_takes(
    truth: "list", starts: "np.ndarray", ends: "np.ndarray", contended: "np.ndarray", spans: "np.ndarray"
) -> "dict[str, float]":
    """One thread's takes, giltrace's (start, end) against the probes' (entry, return), matched in order.

    The probes' window holds giltrace's and more (docs/how-it-works.md, "What
    a probe on take_gil measures"); per take the difference is split into
    - time the thread was switched out before giltrace's start: on a busy
      machine, a thread preempted on its way back from the entry probe's
      breakpoint trap (the return to user mode is where a pending reschedule
      happens), before take_gil asked for anything;
    - time switched out after giltrace's end: preempted after it owned the GIL;
    - the rest: the traps' own CPU cost, estimated as its mean over the takes
      that did not block and taken off every take.
    `residual` is what is left between giltrace and the probes after that."""
    import numpy as np

    t0 = np.array([a for a, _ in truth], dtype=np.int64)
    t1 = np.array([b for _, b in truth], dtype=np.int64)
    out = {"acq": len(starts), "truth_acq": len(t0), "ours_ms": float((ends - starts).sum()) / 1e6}
    out["truth_ms"] = float((t1 - t0).sum()) / 1e6
    if len(t0) != len(starts) or not len(t0):
        return dict(
            out,
            ok=False,
            trap_off_ms=np.nan,
            held_off_ms=np.nan,
            cost_us=np.nan,
            corrected_ms=np.nan,
            residual_ms=np.nan,
            inside_pct=np.nan,
        )
    pre = offcpu_between(spans, t0, np.maximum(starts, t0))
    post = offcpu_between(spans, np.minimum(ends, t1), t1)
    on_cpu_excess = (t1 - t0) - (ends - starts) - pre - post
    free = ~contended
    cost = float(on_cpu_excess[free].mean()) if free.any() else float(np.median(on_cpu_excess))
    corrected = out["truth_ms"] - (pre.sum() + post.sum() + cost * len(t0)) / 1e6
    residual = out["ours_ms"] - corrected
    out.update(
        trap_off_ms=float(pre.sum()) / 1e6,
        held_off_ms=float(post.sum()) / 1e6,
        cost_us=cost / 1e3,
        corrected_ms=corrected,
        residual_ms=residual,
        inside_pct=100.0 * float(((t0 <= starts) & (ends <= t1)).mean()),
        ok=abs(residual) <= max(0.02 * corrected, 0.5),
    )
    return out


COLUMNS = "%-12s %8s %8s %10s %10s %8s %9s %9s %8s %10s %9s %8s %8s %7s"
HEADER = COLUMNS % (
    "thread",
    "acq",
    "probe acq",
    "probe ms",
    "ours ms",
    "raw %",
    "trap off",
    "held off",
    "cost us",
    "corr ms",
    "resid ms",
    "resid %",
    "ns/take",
    "inside",
)


def print_row(name: str, c: "dict[str, float]") -> None:
    raw = 100 * (c["ours_ms"] - c["truth_ms"]) / c["truth_ms"] if c["truth_ms"] else 0.0
    rel = 100 * c["residual_ms"] / c["corrected_ms"] if c["corrected_ms"] else 0.0
    print(
        "%-12s %8d %8d %10.3f %10.3f %8.2f %9.3f %9.3f %8.2f %10.3f %9.3f %8.2f %8.1f %7.2f %s"
        % (
            name,
            c["acq"],
            c["truth_acq"],
            c["truth_ms"],
            c["ours_ms"],
            raw,
            c["trap_off_ms"],
            c["held_off_ms"],
            c["cost_us"],
            c["corrected_ms"],
            c["residual_ms"],
            rel,
            1e6 * c["residual_ms"] / c["acq"] if c["acq"] else 0.0,
            c["inside_pct"],
            "" if c["ok"] else "  <-- off",
        )
    )


def print_legend() -> None:
    print(
        "\nacq / probe acq: takes seen by giltrace and by the probes (matched one to one, in order); "
        "raw %: giltrace against the probes' total; trap off: the thread switched out between the entry "
        "probe and giltrace's start (preempted on the way back from the probe's trap); held off: switched "
        "out after giltrace's end (after it owned the GIL); cost us: the traps' mean CPU cost per take, "
        "over takes that did not block; corr ms: probes less those three; resid: giltrace - corr "
        "(pass: within 2 % or 0.5 ms); ns/take: the residual per take, against the traps' ~1,900 ns; inside: % of takes whose giltrace window lies inside the probes'."
    )


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


def workload_script(source: str, name: str) -> "tuple[str, str]":
    """A temporary directory holding the workload script: (directory, script)."""
    tmp = tempfile.mkdtemp()
    script = os.path.join(tmp, name)
    with open(script, "w") as f:
        f.write(source)
    return tmp, script


def perf_record(data: str, events: "list[str]", command: "list[str]", env=None) -> int:
    """perf record of `events`, system-wide (the scheduler's switches back in
    come from other processes too), around `command`, on CLOCK_MONOTONIC
    (giltrace's clock).  Big buffers: 2.7 makes ~10^5 probed takes per second
    per thread.  Returns the number of records perf lost (check it first)."""
    probes = [arg for event in events for arg in ("-e", event)]
    subprocess.run(
        ["perf", "record", "-q", "-a", "-m", "16384", "-k", "CLOCK_MONOTONIC", "-o", data] + probes + command, check=True, env=env
    )
    stats = subprocess.run(["perf", "report", "-i", data, "--stats"], capture_output=True, text=True).stdout
    return sum(
        int(line.split()[-1])
        for line in stats.splitlines()
        if line.strip().startswith(("LOST events", "LOST_SAMPLES events")) and line.split()[-1].isdigit()
    )


def check_run(data: str, gtr: str, entry_event: str, title: str, perf_lost: int, lock_from_header: "str | None" = None) -> int:
    """Compare one recorded run, thread by thread; returns the number of threads off."""
    import numpy as np

    from giltrace import fileformat, layout

    script = subprocess.run(
        ["perf", "script", "-i", data, "--ns", "-F", "pid,tid,time,event,trace"], capture_output=True, text=True, check=True
    ).stdout
    raw = fileformat.read(gtr)
    start, stop = int(raw.footer["start_ns"]), int(raw.footer["stop_ns"])
    lock = int(raw.header[lock_from_header]) if lock_from_header else None
    truth = probe_takes(script, entry_event, start, stop, lock, pid=int(raw.header["pid"]))
    spans = offcpu_intervals(script)
    ev = raw.events
    acq = ev[(ev["kind"] == layout.EV_ACQUIRE) & ((ev["flags"] & layout.FLAG_WAIT_UNKNOWN) == 0)]
    acq = acq[(acq["time_ns"] - acq["arg"] >= start) & (acq["time_ns"] <= stop)]
    names = {r["tid"]: r["name"] for r in raw.threads}
    print(
        "\n== %s: %.2f s, %d events, %d lost; perf lost %d records; load average %s"
        % (title, (stop - start) / 1e9, len(ev), raw.footer["events_lost"], perf_lost, " ".join(open("/proc/loadavg").read().split()[:3]))
    )
    print(HEADER)
    off = 0
    for tid in sorted(set(truth) | set(int(t) for t in np.unique(acq["tid"]))):
        mine = acq[acq["tid"] == tid]
        ends = mine["time_ns"].astype(np.int64)
        c = compare_takes(
            truth.get(tid, []),
            ends - mine["arg"].astype(np.int64),
            ends,
            (mine["flags"] & layout.FLAG_CONTENDED) != 0,
            spans.get(tid, np.zeros((0, 2), dtype=np.int64)),
        )
        off += not c["ok"]
        print_row(str(names.get(tid, tid)), c)
    return off


def function_offset(lib: str, name: str) -> int:
    out = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise SystemExit("%s not found in %s" % (name, lib))


def main27(py27: str, scenarios: "list[str]", seconds: float) -> int:
    """The old GIL's check: perf uprobes on PyThread_acquire_lock against giltrace's events."""
    from giltrace import _build_oldgil

    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    lib = _build_oldgil.library_path()
    code = "import sysconfig, os; print(os.path.join(sysconfig.get_config_var('LIBDIR'), sysconfig.get_config_var('INSTSONAME')))"
    libpy = subprocess.run([py27, "-c", code], capture_output=True, text=True).stdout.strip()
    if not os.path.exists(libpy):
        libpy = os.path.realpath(py27)  # a static libpython: the probes go on the executable
    # By address: the name alone would also put a return probe on the PLT stub.
    addr = function_offset(libpy, "PyThread_acquire_lock")
    subprocess.run(["perf", "probe", "-q", "--del", "probe_gt27:*"], capture_output=True)
    add = ["--add", "probe_gt27:gil_acq=0x%x lock=%%di:x64" % addr, "--add", "probe_gt27:gil_acq=0x%x%%return" % addr]
    subprocess.run(["perf", "probe", "-q", "-x", libpy] + add, check=True)
    tmp, script = workload_script(WORKLOAD27 % {"repo": repo}, "w27.py")
    off = 0
    try:
        for sc in scenarios:
            gtr, data = os.path.join(tmp, sc + ".gtr"), os.path.join(tmp, sc + ".data")
            lost = perf_record(
                data, ["probe_gt27:gil_acq", "probe_gt27:gil_acq__return", "sched:sched_switch"], [py27, script, sc, str(seconds), gtr, lib]
            )
            off += check_run(data, gtr, "gil_acq", "2.7 " + sc, lost, lock_from_header="gil_semaphore")
    finally:
        subprocess.run(["perf", "probe", "-q", "--del", "probe_gt27:*"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print_legend()
    return 1 if off else 0


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
        "(docs/how-it-works.md, 'What a probe on take_gil measures')",
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
    off = 0
    print("CPython %s (%s), %d CPU burner(s) beside" % (sys.version.split()[0], lib, args.load))
    try:
        for sc in scenarios:
            gtr, data = os.path.join(tmp, sc + ".gtr"), os.path.join(tmp, sc + ".data")
            lost = perf_record(
                data,
                [group + ":take_gil", group + ":take_gil__return", "sched:sched_switch"],
                [sys.executable, script, sc, str(args.seconds), gtr],
                env=dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
            )
            off += check_run(data, gtr, "take_gil", sc, lost)
    finally:
        subprocess.run(["perf", "probe", "-q", "--del", group + ":*"], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print_legend()
    return 1 if off else 0


if __name__ == "__main__":
    sys.exit(main())
