"""Plain-text rendering of a trace: the header lines and the per-thread table."""
from __future__ import annotations

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


def thread_table(threads: pd.DataFrame) -> str:
    headers = ["thread", "tid", "hold ms", "wait ms", "released ms", "wait %", "acquires", "waits", "mean wait ms", "max wait ms", "drop req"]
    rows: List[List[str]] = []
    for tid, r in threads.iterrows():
        rows.append(
            [
                str(r["name"]),
                str(tid),
                _ms(r["hold_s"]),
                _ms(r["wait_s"]),
                _ms(r["released_s"]),
                "%.1f" % (100 * r["wait_share"]),
                str(r["acquires"]),
                str(r["waits"]),
                _ms(r["mean_wait_s"]),
                _ms(r["max_wait_s"]),
                str(r["drop_requests"]),
            ]
        )
    return table(headers, rows, "l" + "r" * (len(headers) - 1))


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
    threads = trace.threads()
    lines.append("")
    lines.append(thread_table(threads) if len(threads) else "(no GIL activity recorded)")
    holds = trace.long_holds()
    if len(holds):
        lines.append("")
        lines.append("%d holds longer than 2 switch intervals while others waited (longest %.1f ms, thread %s)"
                     % (len(holds), holds["duration_ns"].max() / 1e6,
                        trace.names.get(int(holds.loc[holds["duration_ns"].idxmax(), "tid"]), "?")))
    return "\n".join(lines)


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
