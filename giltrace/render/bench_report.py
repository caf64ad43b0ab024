"""HTML report of a ``giltrace bench --trace`` output directory: each
workload's wall-clock table in the study's layout, its GIL contention table,
and for every threaded cell that was traced, its timeline and wait-latency
distribution beside the cell's serial / thread / procs times."""

from __future__ import annotations

import html
import os
from typing import TYPE_CHECKING, Any, Dict, List, Optional

import pandas as pd

from .bench_tables import contention_table, grid_table, latency_table
from . import Document
from .html import CSS, img_tag, png

if TYPE_CHECKING:  # the data interface only; nothing of the bench runs here
    from ..bench.view import BenchView


def _cell_time(view: "BenchView", workload: str, python: str, cores: int, n: int, mode: str) -> str:
    r = view.cell(workload, python, cores, n, mode)
    if r is None or r["status"] != "ok":
        return "–"
    return "%.2f s" % r["wall_median"]


def _figures(trace) -> Dict[str, bytes]:
    from .latency import plot_wait_cdf
    from .timeline import plot_timeline

    fig, _ = plot_timeline(trace, width_px=1100, title="GIL timeline")
    return {"timeline": png(fig), "waits": png(plot_wait_cdf(trace, title="contended waits")[0])}


def bench_report(out_dir: str, out_html: str) -> "Document":
    """The report of a bench output directory: self-contained HTML, with each
    traced cell's PNGs also as attachments in ``<out_html stem>-files/``."""
    from ..bench import view

    return render_report(view.load(out_dir), out_dir, out_html)


def header(view: "BenchView", out_dir: str) -> List[str]:
    """The page's title, the machine's headline and the run's notices."""
    return [
        "<h1>Threading experiments: %s</h1>" % html.escape(out_dir),
        "<p>%s</p>" % html.escape("; ".join("%s: %s" % fact for fact in view.headline)),
    ] + ["<p class='note'>%s</p>" % html.escape(msg) for msg in view.messages]


def render_report(view: "BenchView", out_dir: str, out_html: str) -> "Document":
    """The report of ``view`` (its trace files under ``out_dir``)."""
    import matplotlib

    matplotlib.use("Agg")
    from ..model import load

    table, runs, labels = view.table, view.runs, view.pythons
    files_dir = os.path.splitext(os.path.basename(out_html))[0] + "-files"
    attachments: Dict[str, bytes] = {}

    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>giltrace bench report</title><style>%s"
        "pre{font-size:.85em;background:#fafafa;padding:.6em;overflow-x:auto}"
        ".cell{display:flex;flex-wrap:wrap;gap:.5em;margin:1em 0}.cell img:first-child{width:100%%}.cell img+img{width:48%%}"
        "</style></head><body>" % CSS
    ] + header(view, out_dir)

    for section in view.sections:
        workload, latency = section.workload, section.latency
        parts.append("<h2>%s</h2>" % html.escape(section.heading))
        if latency:
            text = latency_table(table, workload, labels, section.cores, section.latency_rows, traced=view.traced)
        else:
            text = grid_table(table, workload, labels, section.cores, section.ns, section.modes, show_range=view.repeat > 1)
        parts.append("<pre>%s</pre>" % html.escape(text))
        if view.traced and not latency:
            figures = contention_table(table, workload, labels, section.cores, section.ns, section.modes)
            if figures:
                parts.append("<p>GIL contention per cell (medians over repeats):</p><pre>%s</pre>" % html.escape(figures))
        cells = runs[
            (runs["workload"] == workload)
            & (runs["mode"] == "thread")
            & (runs["repeat"] == 1)
            & runs["trace_files"].fillna("").astype(str).str.len().gt(0)
        ]
        for _, r in cells.iterrows():
            path = os.path.join(out_dir, str(r["trace_files"]).split(",")[0])
            if not os.path.isfile(path):
                continue
            trace = load(path, warn=False)  # a cell's trace cut short still shows what it has
            if latency:
                caption = "python %s · %d core%s · I/O thread beside %d CPU thread%s: p50 %.3f ms, %.0f ops/s (alone: %s)" % (
                    r["python"],
                    r["cores"],
                    "" if r["cores"] == 1 else "s",
                    r["n"],
                    "" if r["n"] == 1 else "s",
                    r["lat_p50_ms"],
                    r["ops_per_s"],
                    _latency_alone(runs, r),
                )
            else:
                caption = "python %s · %d core%s · N=%d: serial %s · thread %s · procs %s" % (
                    r["python"],
                    r["cores"],
                    "" if r["cores"] == 1 else "s",
                    r["n"],
                    _cell_time(view, workload, r["python"], r["cores"], r["n"], "serial"),
                    _cell_time(view, workload, r["python"], r["cores"], r["n"], "thread"),
                    _cell_time(view, workload, r["python"], r["cores"], r["n"], "procs"),
                )
            if pd.notna(r.get("gil_wait_share")):
                caption += " · threads waited %.0f%% of the time for the GIL, %.0f switches/s" % (
                    100 * r["gil_wait_share"],
                    r["switches_per_s"] if pd.notna(r["switches_per_s"]) else 0,
                )
            images = _figures(trace)
            stem = os.path.splitext(os.path.basename(path))[0]
            for name, data in images.items():
                attachments[os.path.join(files_dir, "%s-%s.png" % (stem, name))] = data
            parts.append(
                "<h3>%s</h3><div class='cell'>%s%s</div>"
                % (html.escape(caption), img_tag(images["timeline"], "timeline " + stem), img_tag(images["waits"], "waits " + stem))
            )
    parts.append("</body></html>")
    return Document("\n".join(parts), attachments)


def _latency_alone(runs: pd.DataFrame, r: Any) -> Optional[str]:
    alone = runs[
        (runs["workload"] == r["workload"]) & (runs["python"] == r["python"]) & (runs["cores"] == r["cores"]) & (runs["mode"] == "alone")
    ]
    if alone.empty:
        return "–"
    return "p50 %.3f ms, %.0f ops/s" % (alone["lat_p50_ms"].median(), alone["ops_per_s"].median())
