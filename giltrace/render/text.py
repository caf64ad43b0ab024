"""Plain-text rendering of a trace: the header lines and the per-thread table."""

from __future__ import annotations

import os
from typing import List, Sequence

import pandas as pd

from ..diagnosis import LONG_HOLD_INTERVALS
from ..textsafe import printable
from ..cpus import format_cpus


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A simple aligned table; ``align`` is one char per column, 'l' or 'r'.
    Cells may be the traced program's text (thread names): control characters are escaped."""
    align = align or "l" + "r" * (len(headers) - 1)
    rows = [[printable(c) for c in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(cells, widths, align)).rstrip()

    out = [line(headers), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def _ms(seconds: float) -> str:
    return "%.2f" % (seconds * 1e3)


# Culprits and waiting sites below this share are in the JSON, not in the text tables.
TEXT_MIN_SHARE = 0.05
# A group with more threads than this is shown as one row of the thread table.
GROUP_ROW_MIN_THREADS = 4


def thread_table(lat: pd.DataFrame, groups: "pd.DataFrame | None" = None) -> str:
    """Per-thread time split and wait latency (a Diagnosis.threads frame);
    a big thread group (``groups``: Diagnosis.groups) is one row, its name
    with the thread count.  waits: takes that had to block; uncontended:
    takes that did not."""
    headers = [
        "thread",
        "tid",
        "hold ms",
        "wait ms",
        "released ms",
        "wait %",
        "waits",
        "uncontended",
        "waits/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "wakes",
        "wake p50",
        "wake p99",
        "work/wake",
        "inflation",
    ]
    cpu_state = "held_runq_s" in lat.columns  # cpu_state traces: run-queue time, and inside holds
    if cpu_state:
        headers += ["runq ms", "held off-CPU ms"]
    big = set(groups[groups["threads"] > GROUP_ROW_MIN_THREADS].index) if groups is not None and len(groups) else set()
    rows: List[List[str]] = []
    shown = set()
    for tid, r in lat.iterrows():
        g = r.get("group")
        if isinstance(g, str) and g in big:
            if g in shown:
                continue
            shown.add(g)
            r, name, tid_text = groups.loc[g], "%s x%d" % (g, groups.loc[g, "threads"]), "-"
        else:
            name, tid_text = str(r["name"]), str(tid)
        rows.append(
            [
                name,
                tid_text,
                _ms(r["hold_s"]),
                _ms(r["wait_s"]),
                _ms(r["released_s"]),
                "%.1f" % (100 * r["wait_share"]),
                str(int(r["waits"])),
                str(int(r["uncontended"])),
                "%.0f" % r["waits_per_s"],
                "%.2f" % r["wait_p50_ms"],
                "%.2f" % r["wait_p99_ms"],
                "%.2f" % r["wait_max_ms"],
            ]
            + _wake_cells(r)
        )
        if cpu_state:
            rows[-1] += [_ms(r["runq_s"]), _ms(r["held_runq_s"])] if "runq_s" in r else ["-", "-"]
    return table(headers, rows)


def _wake_cells(r) -> List[str]:
    """wakes, wake p50 / p99 and work per wake (ms), inflation over the uncontended baseline ('-' without wakes)."""
    if not r.get("wakes", 0):
        return ["0", "-", "-", "-", "-"]
    inf = r["wake_inflation"]
    return [
        str(int(r["wakes"])),
        "%.2f" % (1e3 * r["wake_p50_s"]),
        "%.2f" % (1e3 * r["wake_p99_s"]),
        "%.2f" % (1e3 * r["work_per_wake_s"]),
        "%.0fx" % inf if inf == inf else "-",
    ]


def _who(f) -> str:
    if f.group and len(f.threads) > 1:
        return "%s x%d" % (f.group, len(f.threads))
    return ", ".join(f.threads[:3]) + (" +%d" % (len(f.threads) - 3) if len(f.threads) > 3 else "")


def _span(f) -> str:
    return "%.2f-%.2f" % tuple(f.window_s)


def diagnosis(d) -> str:
    """Episodes, the findings' culprits (by code line) and waiting sites, long holds, then the sentences."""
    out: List[str] = []
    if d.episodes:
        out.append(
            "Episodes (periods in which threads waited for the GIL far above the calm of %.2f threads waiting on average, "
            "or a thread's wake latency stood far above its own calm):" % d.episodes[0].baseline
        )
        out.append(
            table(
                ["#", "window s", "threads waiting", "thread-s waiting", "late wake-ups", "findings"],
                [
                    [
                        str(i + 1),
                        "%.2f-%.2f" % e.window_s,
                        "%.2f" % e.level,
                        "%.2f" % e.waiting_s,
                        ", ".join(e.late[:3]) + (" +%d" % (len(e.late) - 3) if len(e.late) > 3 else "") or "-",
                        ", ".join(sorted({f.kind for f in e.findings if f.problem})) or "-",
                    ]
                    for i, e in enumerate(d.episodes)
                ],
                "lrrrll",
            )
        )
        out.append("")
    problems = [f for f in d.findings if f.problem]
    rows = [
        [
            f.kind + ("/latency" if f.mode == "latency" else ""),
            _who(f),
            _span(f),
            "%.1f%%" % (100 * c.share),
            _ms(c.wait_s),
            c.label,
            _holders(c),
        ]
        for f in problems
        for c in f.culprits
        if c.share >= TEXT_MIN_SHARE
    ]
    if rows:
        out.append("Culprits: code that held the GIL while they waited, summed over every thread that ran it:")
        out.append(table(["finding", "waiters", "window s", "share", "blamed ms", "code", "ran in"], rows, "lllrrll"))
        out.append("")
    rows = [
        [_who(f), _span(f), _ms(w["wait_s"]), "%.1f%%" % (100 * w["share"]), str(w["waits"]), w["label"]]
        for f in problems
        if f.kind == "convoy"
        for w in f.waiting_at
        if w["share"] >= TEXT_MIN_SHARE
    ]
    if rows:
        out.append("Where the waiters were when they let the GIL go before waiting (their I/O, sleep or C calls):")
        out.append(table(["waiters", "window s", "wait ms", "share", "waits", "location"], rows, "llrrrl"))
        out.append("")
    if len(d.long_holds):
        out.append("Long holds (another thread waited over %d switch intervals during them):" % LONG_HOLD_INTERVALS)
        out.append(
            table(
                ["holder", "at s", "held ms", "waited ms", "drop requests", "unanswered ms", "location"],
                [
                    [
                        r["holder"],
                        "%.3f" % r["start_s"],
                        "%.1f" % r["duration_ms"],
                        "%.1f" % r["waited_ms"],
                        str(r["drop_requests"]),
                        "%.1f" % r["unanswered_ms"],
                        r["location"],
                    ]
                    for _, r in d.long_holds.head(10).iterrows()
                ],
                "lrrrrrl",
            )
        )
        out.append("")
    out.append("Diagnosis:")
    out += ["  " + printable(line) for line in d.suggestions]
    return "\n".join(out)


def _holders(c) -> str:
    if c.group and len(c.threads) > 1:
        return "%d threads of %s" % (len(c.threads), c.group)
    return ", ".join(c.threads[:3]) + (" +%d" % (len(c.threads) - 3) if len(c.threads) > 3 else "")


def summary(trace, d=None) -> str:
    """What ``giltrace summary`` prints (``d``: the trace's Diagnosis, if already made)."""
    m = trace.meta
    lost = m.get("events_lost")
    if m.get("gil_kind") == "old":  # 2.7: dropped and re-requested every check interval, no switch interval
        interval = "old GIL, check interval %s ticks" % m.get("check_interval", "?")
    else:
        interval = "switch interval %.1f ms" % (1e3 * float(m.get("switch_interval_s", 0)))
    lines = [
        "trace     %s" % printable(trace.path or "(memory)"),
        "python    %s %s, %s, %s CPUs (affinity %s)"
        % (
            printable(m.get("python_implementation", "?")),
            printable(m.get("python_version", "?")),
            interval,
            printable(m.get("cpu_count", "?")),
            format_cpus(m.get("affinity", []), empty="?"),
        ),
        "duration  %.3f s, %d events, %d GIL switches, %s events lost"
        % (m["duration_s"], m["events"], trace.switches(), "unknown" if lost is None else lost),
    ]
    if "window_s" in m:
        lines.append("window    %.3f-%.3f s of the trace (everything below covers this window only)" % tuple(m["window_s"]))
    if not m.get("complete", True):
        lines.append("WARNING   incomplete trace: %s; shown up to the last flushed chunk" % printable(m.get("incomplete_reason")))
    lines.append("")
    if not len(trace.events):
        lines.append("(no GIL activity recorded)")
        return "\n".join(lines)
    d = d or trace.diagnose()
    lines.append(thread_table(d.threads, d.groups))
    lines.append(
        "(waits: takes of the GIL that had to block, percentiles over those; uncontended: takes that did not; "
        "released: running without the GIL; wakes: takes after blocking work (I/O, sleep, a lock), their wait in ms, "
        "the work done after each, and the median wait over an uncontended take's, about 1 us: "
        "one 5 ms switch interval per wake reads ~5000x, 1-3x is nothing in the way)"
    )
    lines.append("")
    lines.append(diagnosis(d))
    return "\n".join(lines)


def processes(main, children) -> str:
    """One line per process of a --subprocesses run: each has its own GIL."""
    rows = []
    for t in [main] + list(children):
        th = t.threads()
        worst = th.sort_values("wait_share", ascending=False).head(1)
        rows.append(
            [
                str(t.meta.get("pid", "?")),
                os.path.basename(t.path or ""),
                "%.3f" % t.meta["duration_s"],
                str(len(th)),
                str(t.switches()),
                "%s %.1f%%" % (worst["name"].iloc[0], 100 * worst["wait_share"].iloc[0]) if len(worst) else "-",
                "" if t.complete else "incomplete",
            ]
        )
    return table(["pid", "trace", "seconds", "threads", "switches", "most waiting thread", ""], rows, "llrrrll")
