"""Self-contained HTML report of one trace: table, timeline, wait
distributions, blame matrix.  Images are embedded (base64 PNG) so the file
opens offline, and also written alongside as PNG files."""

from __future__ import annotations

import base64
import html
import io
import os
from typing import Dict

import pandas as pd

from ..cpus import format_cpus
from . import Document

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.25em .6em;border-bottom:1px solid #eee;text-align:right}
th{background:#f6f6f6}td:first-child,th:first-child{text-align:left}.note{color:#555;font-size:.9em}
img{max-width:100%}.warn{color:#a00}.sites td:last-child,.sites th:last-child{text-align:left}
"""


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buf.getvalue()


def img_tag(data: bytes, alt: str) -> str:
    return '<img alt="%s" src="data:image/png;base64,%s">' % (html.escape(alt), base64.b64encode(data).decode())


def thread_table_html(d) -> str:
    """Per-thread time split and wait latency, from a Diagnosis."""
    th = d.threads
    df = pd.DataFrame(
        {
            "thread": th["name"],
            "tid": th.index,
            "hold ms": (1e3 * th["hold_s"]).round(2),
            "wait ms": (1e3 * th["wait_s"]).round(2),
            "released ms": (1e3 * th["released_s"]).round(2),
            "wait %": (100 * th["wait_share"]).round(1),
            "group": th["group"].map(lambda g: g if isinstance(g, str) else ""),
            "waits": th["waits"],
            "uncontended": th["uncontended"],
            "waits/s": th["waits_per_s"].round(0),
            "p50 ms": th["wait_p50_ms"].round(3),
            "p99 ms": th["wait_p99_ms"].round(3),
            "max ms": th["wait_max_ms"].round(3),
            "wakes": th["wakes"],
            "wake p50 ms": (1e3 * th["wake_p50_s"]).round(3),
            "wake p90 ms": (1e3 * th["wake_p90_s"]).round(3),
            "wake p99 ms": (1e3 * th["wake_p99_s"]).round(3),
            "work/wake ms": (1e3 * th["work_per_wake_s"]).round(3),
            "inflation": th["wake_inflation"].round(0),
        }
    )
    return df.to_html(border=0, index=False)


def diagnosis_html(d) -> str:
    """Episodes, then each finding: its sentence, advice, culprits by code line and where the waiters were."""
    parts = []
    if d.episodes:
        ep = pd.DataFrame(
            [
                {
                    "window s": "%.2f–%.2f" % e.window_s,
                    "threads waiting (avg)": round(e.level, 2),
                    "thread-s waiting": round(e.waiting_s, 2),
                    "late wake-ups": ", ".join(e.late) or "-",
                    "findings": ", ".join(sorted({f.kind for f in e.findings if f.problem})) or "-",
                }
                for e in d.episodes
            ]
        )
        parts.append(
            "<p class='note'>Episodes: periods in which threads waited for the GIL far above the calm (%.2f threads waiting "
            "on average), or a thread's wake latency far above its own calm; each is diagnosed on its own.</p>" % d.episodes[0].baseline
        )
        parts.append(ep.to_html(border=0, index=False))
    items = []
    for f in d.findings:
        kind = f.kind + (" (%s)" % f.mode if f.mode else "")
        body = "<b>%s</b>%s: %s" % (html.escape(kind), "" if f.problem else " (not a problem)", html.escape(f.summary))
        if f.advice:
            body += "<ul>%s</ul>" % "".join("<li>%s</li>" % html.escape(a) for a in f.advice)
        if f.culprits:
            cs = pd.DataFrame(
                [
                    {
                        "share %": round(100 * c.share, 1),
                        "blamed ms": round(1e3 * c.wait_s, 2),
                        "code": c.label,
                        "ran in": ", ".join(c.threads[:4]) + (" (+%d)" % (len(c.threads) - 4) if len(c.threads) > 4 else ""),
                    }
                    for c in f.culprits
                ]
            )
            body += "<p class='note'>Code that held the GIL while they waited (summed over the threads that ran it):</p>"
            body += cs.to_html(border=0, index=False, classes="sites")
        if f.waiting_at:
            ws = pd.DataFrame(
                [
                    {
                        "share %": round(100 * w["share"], 1),
                        "wait ms": round(1e3 * w["wait_s"], 2),
                        "waits": w["waits"],
                        "location": w["label"],
                    }
                    for w in f.waiting_at
                ]
            )
            body += "<p class='note'>Where the waiters let the GIL go before waiting:</p>" + ws.to_html(
                border=0, index=False, classes="sites"
            )
        items.append("<li>%s</li>" % body)
    if not any(f.problem for f in d.findings):
        items.insert(0, "<li>%s</li>" % html.escape(d.suggestions[0]))
    parts.append("<ul>%s</ul>" % "".join(items))
    return "\n".join(parts)


def blame_html(trace) -> str:
    """Who made whom wait, in ms; threads of one group (groups.py) are one row
    and one column.  Summed from blame_pairs, not blame(): a dense matrix of
    5,000 threads would be 200 MB for a table of a few groups."""
    from ..groups import thread_groups

    pairs = trace.blame_pairs()
    if pairs.empty:
        return "<p>No thread waited.</p>"
    names = trace.names
    tids = set(int(t) for t in pairs["waiter"]) | set(pairs.attrs["holders"])
    groups = thread_groups({t: names.get(t, "thread-%d" % t) for t in tids})

    def label(t) -> str:
        return "nobody" if t == "nobody" else groups.get(int(t)) or names.get(int(t), "thread-%d" % t)

    ms = pd.DataFrame(
        {
            "waiter": [label(t) for t in pairs["waiter"]],
            "holder": [label(t) for t in pairs["holder"]],
            "ms": 1e3 * pairs["seconds"].to_numpy(),
        }
    )
    columns = sorted({label(t) for t in pairs.attrs["holders"]} | {"nobody"})
    b = ms.groupby(["waiter", "holder"])["ms"].sum().unstack(fill_value=0.0).reindex(columns=columns, fill_value=0.0).round(2)
    b.columns.name = None
    b.index.name = "waiter \\ holder (ms)"
    return b.to_html(border=0)


def trace_report(trace, out_html: str) -> "Document":
    """The report of one trace: self-contained HTML, with its PNGs also as
    attachments (``<stem>-timeline.png``, ``<stem>-waits.png``)."""
    import matplotlib

    matplotlib.use("Agg")
    from .latency import plot_wait_cdf
    from .timeline import choose_window, plot_timeline

    stem = os.path.splitext(os.path.basename(out_html))[0]
    images: Dict[str, bytes] = {}
    window = choose_window(trace, None, None)
    fig, _ = plot_timeline(trace, window=window)
    images["timeline"] = png(fig)
    images["waits"] = png(plot_wait_cdf(trace)[0])

    m = trace.meta
    holds = trace.long_holds()
    d = trace.diagnose()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>giltrace report: %s</title><style>%s</style></head><body>"
        % (html.escape(os.path.basename(trace.path or "")), CSS),
        "<h1>GIL report: %s</h1>" % html.escape(trace.path or ""),
        "<p>%s</p>"
        % ("Window %.3f–%.3f s of the trace: everything below covers it only." % tuple(m["window_s"]) if "window_s" in m else ""),
        "<p>%s %s · switch interval %.1f ms · %s CPUs (affinity %s) · %.3f s traced · %d events · %d GIL switches · %s events lost</p>"
        % (
            m.get("python_implementation", ""),
            m.get("python_version", ""),
            1e3 * float(m.get("switch_interval_s", 0)),
            m.get("cpu_count", "?"),
            format_cpus(m.get("affinity", []), empty="?"),
            m["duration_s"],
            m["events"],
            trace.switches(),
            "unknown" if m.get("events_lost") is None else m["events_lost"],
        ),
    ]
    if not m.get("complete", True):
        parts.append(
            "<p class='warn'>Incomplete trace: %s. Shown up to the last flushed chunk.</p>" % html.escape(str(m.get("incomplete_reason")))
        )
    parts += [
        "<h2>Diagnosis</h2>",
        diagnosis_html(d),
        "<h2>Threads</h2>",
        thread_table_html(d),
        "<p class='note'>hold: the thread held the GIL; wait: it was blocked taking it; released: it ran without it (I/O, sleep, C code). "
        "waits: takes of the GIL that had to block; uncontended: takes that did not; p50/p99/max over the waits.</p>",
        "<h2>Timeline</h2>",
        "<p class='note'>Window %.3f–%.3f s (%s). Top strip: which thread held the GIL (lane labels in the same colour; white: nobody).</p>"
        % ((window.start_ns - trace.start_ns) / 1e9, (window.end_ns - trace.start_ns) / 1e9, html.escape(window.reason)),
        img_tag(images["timeline"], "GIL timeline"),
        "<h2>Who made whom wait (blame matrix)</h2>",
        "<p class='note'>Milliseconds each waiting thread (row) spent waiting while each thread (column) held the GIL; "
        "<i>nobody</i>: the GIL was free but the waiter had not taken it yet.</p>",
        blame_html(trace),
        "<h2>Wait latency</h2>",
        img_tag(images["waits"], "wait latency CDF"),
    ]
    if len(holds):
        worst = holds.loc[holds["waited_ns"].idxmax()]
        parts.append(
            "<h2>Long holds</h2><p>During %d holds another thread waited more than 2 switch intervals for the GIL; "
            "the worst: %s held it %.1f ms while a thread waited %.1f ms, letting go at %s.</p>"
            % (
                len(holds),
                html.escape(trace.names.get(int(worst["tid"]), "?")),
                worst["duration_ns"] / 1e6,
                worst["waited_ns"] / 1e6,
                html.escape(trace.location_label(worst["location"])),
            )
        )
    parts.append("</body></html>")
    return Document("\n".join(parts), {"%s-%s.png" % (stem, name): data for name, data in images.items()})
