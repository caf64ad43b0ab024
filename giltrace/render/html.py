"""Self-contained HTML report of one trace: table, timeline, wait
distributions, blame matrix.  Images are embedded (base64 PNG) so the file
opens offline, and also written alongside as PNG files."""
from __future__ import annotations

import base64
import html
import io
import os
from typing import Dict, List

import pandas as pd

from .text import _cpus

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
            "acquires": th["acquires"],
            "waits": th["waits"],
            "waits/s": th["waits_per_s"].round(0),
            "p50 ms": th["wait_p50_ms"].round(3),
            "p99 ms": th["wait_p99_ms"].round(3),
            "max ms": th["wait_max_ms"].round(3),
        }
    )
    return df.to_html(border=0, index=False)


def diagnosis_html(d) -> str:
    parts = ["<ul>%s</ul>" % "".join("<li>%s</li>" % html.escape(line.strip().lstrip("-> ").strip()) for line in d.suggestions)]
    if len(d.waiting_sites):
        ws = d.waiting_sites.assign(**{"wait ms": (1e3 * d.waiting_sites["wait_s"]).round(2), "share %": (100 * d.waiting_sites["share"]).round(1)})
        parts.append("<p class='note'>Where the starving threads were when they released the GIL before waiting:</p>")
        parts.append(ws[["waiter", "wait ms", "share %", "waits", "location"]].to_html(border=0, index=False, classes="sites"))
    if len(d.culprit_sites):
        cs = d.culprit_sites.assign(**{"blamed ms": (1e3 * d.culprit_sites["blamed_s"]).round(2), "share %": (100 * d.culprit_sites["share"]).round(1)})
        parts.append("<p class='note'>Who held the GIL meanwhile, and the line at which they let go:</p>")
        parts.append(cs[["waiter", "holder", "blamed ms", "share %", "location"]].to_html(border=0, index=False, classes="sites"))
    return "\n".join(parts)


def blame_html(trace) -> str:
    b = trace.blame()
    if b.empty:
        return "<p>No thread waited.</p>"
    names = trace.names
    b = (1e3 * b).round(2)
    b.index = [names.get(int(t), "thread-%d" % t) for t in b.index]
    b.columns = [c if c == "nobody" else names.get(int(c), "thread-%d" % c) for c in b.columns]
    b.index.name = "waiter \\ holder (ms)"
    return b.to_html(border=0)


def trace_report(trace, out_html: str) -> List[str]:
    """Write the report and its PNGs; return the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    from .latency import plot_wait_cdf
    from .timeline import plot_timeline

    stem = os.path.splitext(out_html)[0]
    images: Dict[str, bytes] = {}
    fig, _ = plot_timeline(trace)
    window = fig.giltrace_window
    images["timeline"] = png(fig)
    images["waits"] = png(plot_wait_cdf(trace)[0])
    written = []
    for name, data in images.items():
        path = "%s-%s.png" % (stem, name)
        with open(path, "wb") as f:
            f.write(data)
        written.append(path)

    m = trace.meta
    holds = trace.long_holds()
    d = trace.diagnose()
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>giltrace report: %s</title><style>%s</style></head><body>"
        % (html.escape(os.path.basename(trace.path or "")), CSS),
        "<h1>GIL report: %s</h1>" % html.escape(trace.path or ""),
        "<p>%s %s · switch interval %.1f ms · %s CPUs (affinity %s) · %.3f s traced · %d events · %d GIL switches · %s events lost</p>"
        % (m.get("python_implementation", ""), m.get("python_version", ""), 1e3 * float(m.get("switch_interval_s", 0)),
           m.get("cpu_count", "?"), _cpus(m.get("affinity", [])), m["duration_s"], m["events"], trace.switches(),
           "unknown" if m.get("events_lost") is None else m["events_lost"]),
    ]
    if not m.get("complete", True):
        parts.append("<p class='warn'>Incomplete trace: %s. Shown up to the last flushed chunk.</p>" % html.escape(str(m.get("incomplete_reason"))))
    parts += [
        "<h2>Diagnosis</h2>", diagnosis_html(d),
        "<h2>Threads</h2>", thread_table_html(d),
        "<p class='note'>hold: the thread held the GIL; wait: it was blocked taking it; released: it ran without it (I/O, sleep, C code). "
        "waits: acquisitions that had to block; p50/p99/max over those.</p>",
        "<h2>Timeline</h2>",
        "<p class='note'>Window %.3f–%.3f s (%s). Top strip: which thread held the GIL (lane labels in the same colour; white: nobody).</p>"
        % ((window.start_ns - trace.start_ns) / 1e9, (window.end_ns - trace.start_ns) / 1e9, html.escape(window.reason)),
        img_tag(images["timeline"], "GIL timeline"),
        "<h2>Who made whom wait (blame matrix)</h2>",
        "<p class='note'>Milliseconds each waiting thread (row) spent waiting while each thread (column) held the GIL; "
        "<i>nobody</i>: the GIL was free but the waiter had not taken it yet.</p>",
        blame_html(trace),
        "<h2>Wait latency</h2>", img_tag(images["waits"], "wait latency CDF"),
    ]
    if len(holds):
        worst = holds.loc[holds["waited_ns"].idxmax()]
        parts.append("<h2>Long holds</h2><p>During %d holds another thread waited more than 2 switch intervals for the GIL; "
                     "the worst: %s held it %.1f ms while a thread waited %.1f ms, letting go at %s.</p>"
                     % (len(holds), html.escape(trace.names.get(int(worst["tid"]), "?")), worst["duration_ns"] / 1e6,
                        worst["waited_ns"] / 1e6, html.escape(trace.location_label(worst["location"]))))
    parts.append("</body></html>")
    with open(out_html, "w") as f:
        f.write("\n".join(parts))
    return [out_html] + written
