"""Plain-text rendering of a trace: the header lines and the per-thread table."""
from __future__ import annotations

import os
from typing import List, Sequence

import pandas as pd


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A simple aligned table; ``align`` is one char per column, 'l' or 'r'."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _ms(seconds: float) -> str:
    return "%.2f" % (seconds * 1e3)


def thread_table(lat: pd.DataFrame) -> str:
    """Per-thread time split and wait latency (a Diagnosis.threads frame)."""
    headers = ["thread", "tid", "hold ms", "wait ms", "released ms", "wait %", "acquires", "waits", "waits/s",
               "p50 ms", "p99 ms", "max ms"]
    rows: List[List[str]] = []
    for tid, r in lat.iterrows():
        rows.append([str(r["name"]), str(tid), _ms(r["hold_s"]), _ms(r["wait_s"]), _ms(r["released_s"]),
                     "%.1f" % (100 * r["wait_share"]), str(r["acquires"]), str(r["waits"]), "%.0f" % r["waits_per_s"],
                     "%.2f" % r["wait_p50_ms"], "%.2f" % r["wait_p99_ms"], "%.2f" % r["wait_max_ms"]])
    return table(headers, rows)


def diagnosis(d) -> str:
    """The starving threads, their culprits and code sites, long holds, suggestions."""
    out: List[str] = []
    if len(d.starving):
        out.append("Starving threads (most of their time with the GIL is spent waiting for it):")
        out.append(table(["thread", "wait % of GIL time", "waits", "p50 ms", "p99 ms", "p50 / switch interval"],
                         [[str(r["name"]), "%.1f" % (100 * r["wait_vs_gil_time"]), str(r["waits"]), "%.2f" % r["wait_p50_ms"],
                           "%.2f" % r["wait_p99_ms"], "%.1fx" % r["p50_vs_switch_interval"]] for _, r in d.starving.iterrows()]))
    if len(d.waiting_sites):
        out.append("")
        out.append("Where they were when they released the GIL before waiting (their I/O, sleep or C calls):")
        out.append(table(["waiter", "wait ms", "share", "waits", "location"],
                         [[r["waiter"], _ms(r["wait_s"]), "%.1f%%" % (100 * r["share"]), str(r["waits"]), r["location"]]
                          for _, r in d.waiting_sites.iterrows()], "lrrrl"))
    if len(d.culprits):
        out.append("")
        out.append("Who held the GIL while they waited:")
        out.append(table(["waiter", "holder", "blamed ms", "share"],
                         [[r["waiter"], r["holder"], _ms(r["blamed_s"]), "%.1f%%" % (100 * r["share"])] for _, r in d.culprits.iterrows()]))
    if len(d.culprit_sites):
        out.append("")
        out.append("Where the holders were running (the line at which they let go):")
        out.append(table(["waiter", "holder", "blamed ms", "share", "location"],
                         [[r["waiter"], r["holder"], _ms(r["blamed_s"]), "%.1f%%" % (100 * r["share"]), r["location"]]
                          for _, r in d.culprit_sites.iterrows()], "llrrl"))
    if len(d.long_holds):
        out.append("")
        out.append("Long holds (another thread waited over 4 switch intervals during them):")
        out.append(table(["holder", "at s", "held ms", "waited ms", "drop requests", "location"],
                         [[r["holder"], "%.3f" % r["start_s"], "%.1f" % r["duration_ms"], "%.1f" % r["waited_ms"], str(r["drop_requests"]),
                           r["location"]] for _, r in d.long_holds.head(10).iterrows()], "lrrrrl"))
    out.append("")
    out.append("Diagnosis:")
    out += ["  " + line for line in d.suggestions]
    return "\n".join(out)


def summary(trace) -> str:
    """What ``giltrace summary`` prints."""
    m = trace.meta
    lost = m.get("events_lost")
    lines = [
        "trace     %s" % (trace.path or "(memory)"),
        "python    %s %s, switch interval %.1f ms, %s CPUs (affinity %s)"
        % (m.get("python_implementation", "?"), m.get("python_version", "?"), 1e3 * float(m.get("switch_interval_s", 0)),
           m.get("cpu_count", "?"), _cpus(m.get("affinity", []))),
        "duration  %.3f s, %d events, %d GIL switches, %s events lost"
        % (m["duration_s"], m["events"], trace.switches(), "unknown" if lost is None else lost),
    ]
    if not m.get("complete", True):
        lines.append("WARNING   incomplete trace: %s; shown up to the last flushed chunk" % m.get("incomplete_reason"))
    lines.append("")
    if not len(trace.events):
        lines.append("(no GIL activity recorded)")
        return "\n".join(lines)
    d = trace.diagnose()
    lines.append(thread_table(d.threads))
    lines.append("(wait percentiles over the waits that had to block; released: running without the GIL)")
    lines.append("")
    lines.append(diagnosis(d))
    return "\n".join(lines)


def processes(main, children) -> str:
    """One line per process of a --subprocesses run: each has its own GIL."""
    rows = []
    for t in [main] + list(children):
        th = t.threads()
        worst = th.sort_values("wait_share", ascending=False).head(1)
        rows.append([str(t.meta.get("pid", "?")), os.path.basename(t.path or ""), "%.3f" % t.meta["duration_s"],
                     str(len(th)), str(t.switches()),
                     "%s %.1f%%" % (worst["name"].iloc[0], 100 * worst["wait_share"].iloc[0]) if len(worst) else "-",
                     "" if t.complete else "incomplete"])
    return table(["pid", "trace", "seconds", "threads", "switches", "most waiting thread", ""], rows, "llrrrll")


def _cpus(cpus: Sequence[int]) -> str:
    if not cpus:
        return "?"
    cpus = sorted(cpus)
    ranges, start, prev = [], cpus[0], cpus[0]
    for c in cpus[1:] + [None]:
        if c is not None and c == prev + 1:
            prev = c
            continue
        ranges.append(str(start) if start == prev else "%d-%d" % (start, prev))
        if c is not None:
            start = prev = c
    return ",".join(ranges)
