"""Contention timeline: one lane per thread (holding / waiting / running
without the GIL), drop requests as markers, and a strip above showing which
thread holds the GIL.

Fast on big traces: each pixel of a lane takes the state the thread spent
most of it in (computed with cumulative coverage, vectorised), runs of equal
pixels become one rectangle, and each state is one PolyCollection: never one
artist per interval.  ``lanes()`` and ``holder_strip()`` are pure functions so the
geometry can be tested without drawing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..analysis import coverage
from ..textsafe import plot_label

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
STATE_COLORS = {"hold": "#0072B2", "wait": "#E69F00", "released": "#D9D9D9"}
STATE_LABELS = {"hold": "holding the GIL", "wait": "waiting for the GIL", "released": "running without the GIL"}
# Holder strip: one colour per thread (never the state colours above); each
# lane's label is written in its thread's colour so the strip reads without a legend.
# Holder colours: distinct from each other and from white ("nobody"); no black, which reads as a gap.
HOLDER_PALETTE = ["#CC79A7", "#009E73", "#56B4E9", "#D55E00", "#F0A202", "#8C6D31", "#7F7F7F", "#5E3C99"]
IDLE_COLOR = "#FFFFFF"
DEFAULT_WIDTH_PX = 1600


@dataclass
class Window:
    start_ns: int
    end_ns: int
    reason: str  # why this window was shown


def choose_window(trace, start_s: Optional[float], end_s: Optional[float], max_intervals: float = 400) -> Window:
    """The window to draw: the one asked for; else the whole trace if it is
    short enough to read (``max_intervals`` switch intervals); else the worst
    episode of abnormal waiting (episodes.py); else the 100 switch intervals
    with the most GIL waiting."""
    t0, t1 = trace.start_ns, trace.stop_ns
    if start_s is not None or end_s is not None:
        a = t0 + int((start_s or 0) * 1e9)
        b = t0 + int(end_s * 1e9) if end_s is not None else t1
        b = min(b, t1)
        if not t0 <= a < b:
            raise ValueError("empty time window: --start %s --end %s (the trace lasts %.3f s)" % (start_s, end_s, (t1 - t0) / 1e9))
        return Window(a, b, "as asked")
    interval = max(trace.switch_interval_ns, 1)
    if t1 - t0 <= max_intervals * interval:
        return Window(t0, t1, "whole trace")
    episodes = trace.episodes() if hasattr(trace, "episodes") else []
    if episodes:
        worst = max(range(len(episodes)), key=lambda i: episodes[i].waiting_s)
        ep = episodes[worst]
        return Window(ep.start_ns, ep.end_ns, "episode %d of %d of abnormal GIL waiting, the worst" % (worst + 1, len(episodes)))
    span = 100 * interval
    iv = trace.intervals()
    waits = iv[iv["state"] == "wait"]
    if waits.empty:
        return Window(t0, t0 + span, "first %d ms (no GIL waiting in this trace)" % (span // 1_000_000))
    # The `span` with the most GIL waiting (by the end of each wait; good
    # enough to locate contention), ending at some wait's end: computed over
    # the waits, not over a grid of the trace's length, so a long (or a
    # crafted) duration costs nothing (issue 25).
    ends = waits["end_ns"].to_numpy().astype(np.int64)
    order = np.argsort(ends, kind="stable")
    ends = ends[order]
    cum = np.concatenate([[0.0], np.cumsum(waits["duration_ns"].to_numpy().astype(np.float64)[order])])
    first = np.searchsorted(ends, ends - span, side="right")
    best = int(np.argmax(cum[1:] - cum[first]))
    a = max(t0, int(ends[best]) - span)
    return Window(a, min(a + span, t1), "the %d ms with the most GIL waiting" % (span // 1_000_000))


def _runs(values: np.ndarray, edges: np.ndarray, skip) -> List[Tuple[object, float, float]]:
    """Run-length encode per-pixel values into (value, start, end) rectangles."""
    change = np.flatnonzero(np.diff(values)) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [len(values)]])
    return [(values[a], edges[a], edges[b]) for a, b in zip(starts, ends) if values[a] != skip]


def _pixel_edges(window: Window, width_px: int, intervals: pd.DataFrame) -> np.ndarray:
    """Pixel boundaries; when zoomed in so far that intervals span many pixels,
    their own edges are added so rectangles keep their exact ends."""
    edges = np.linspace(window.start_ns, window.end_ns, max(width_px, 1) + 1)
    inner = np.concatenate([intervals["start_ns"].to_numpy(), intervals["end_ns"].to_numpy()]).astype(np.float64)
    inner = inner[(inner > window.start_ns) & (inner < window.end_ns)]
    if len(inner) <= 4 * width_px:
        edges = np.union1d(edges, inner)
    return edges


STATES_DRAWN = ["hold", "wait", "released", None]  # None: the thread is not alive there


def lanes(trace, window: Window, threads: Optional[Sequence] = None, width_px: int = DEFAULT_WIDTH_PX) -> pd.DataFrame:
    """Rectangles to draw: tid, state ('hold'|'wait'|'released'), start_ns, end_ns.

    Each pixel of a lane shows the state the thread spent most of that pixel
    in, so alternation faster than a pixel reads as its dominant state rather
    than as whichever colour was drawn last."""
    iv = trace.intervals()
    th = trace.threads()
    tids = select_threads(th, threads)
    iv = iv[iv["tid"].isin(tids) & (iv["end_ns"] > window.start_ns) & (iv["start_ns"] < window.end_ns)]
    edges = _pixel_edges(window, width_px, iv)
    widths = np.diff(edges)
    rows = []
    for tid in tids:
        mine = iv[iv["tid"] == tid]
        occ = []
        for state in ("hold", "wait"):
            st = mine[mine["state"] == state]
            occ.append(np.diff(coverage(st["start_ns"].to_numpy(), st["end_ns"].to_numpy(), edges)))
        alive = np.clip(np.minimum(edges[1:], th.loc[tid, "last_ns"]) - np.maximum(edges[:-1], th.loc[tid, "first_ns"]), 0, None)
        occ.append(np.clip(alive - occ[0] - occ[1], 0, None))  # released
        occ.append(widths - np.maximum(alive, occ[0] + occ[1]))  # not alive
        best = np.argmax(np.vstack(occ), axis=0)
        for code, a, b in _runs(best, edges, skip=3):
            rows.append((tid, STATES_DRAWN[code], a, b))
    return pd.DataFrame(rows, columns=["tid", "state", "start_ns", "end_ns"])


def holder_strip(trace, window: Window, width_px: int = DEFAULT_WIDTH_PX) -> pd.DataFrame:
    """Who holds the GIL over the window: tid, start_ns, end_ns; per pixel the
    thread that held it longest (gaps: the GIL was mostly free)."""
    iv = trace.intervals()
    holds = iv[(iv["state"] == "hold") & (iv["end_ns"] > window.start_ns) & (iv["start_ns"] < window.end_ns)]
    if holds.empty:
        return pd.DataFrame(columns=["tid", "start_ns", "end_ns"])
    edges = _pixel_edges(window, width_px, holds)
    tids = sorted(holds["tid"].unique())
    occ = [np.diff(coverage(h["start_ns"].to_numpy(), h["end_ns"].to_numpy(), edges)) for _, h in holds.groupby("tid", sort=True)]
    held = np.sum(occ, axis=0)
    occ.append(np.diff(edges) - held)  # idle
    best = np.argmax(np.vstack(occ), axis=0)
    rows = [(tids[code], a, b) for code, a, b in _runs(best, edges, skip=len(tids))]
    return pd.DataFrame(rows, columns=["tid", "start_ns", "end_ns"])


def select_threads(threads: pd.DataFrame, wanted: Optional[Sequence]) -> List[int]:
    """tids in lane order (first seen first); ``wanted`` holds names or tids."""
    order = list(threads.sort_values("first_ns", kind="stable").index)
    if not wanted:
        return order
    by_key: Dict[str, List[int]] = {}  # one pass: thread-per-request traces name thousands of threads
    names = threads["name"].to_dict()
    for t in order:
        by_key.setdefault(str(t), []).append(t)
        if str(names[t]) != str(t):
            by_key.setdefault(str(names[t]), []).append(t)
    chosen: set = set()
    for w in wanted:
        hits = by_key.get(str(w), [])  # in lane order, each thread once
        if not hits:
            raise ValueError(
                "no thread named or numbered %r in this trace (threads: %s)" % (w, ", ".join(str(threads.loc[t, "name"]) for t in order))
            )
        chosen.update(hits)
    return [t for t in order if t in chosen]


MAX_LANES = 40


def busiest_in_window(trace, tids: List[int], window: Window, limit: int = MAX_LANES) -> List[int]:
    """The threads alive in the window, in lane order; past ``limit`` of them
    (a server that starts a thread per request) the ``limit`` that held or
    waited for the GIL longest there."""
    th = trace.threads()
    first, last = th["first_ns"].to_dict(), th["last_ns"].to_dict()
    alive = [t for t in tids if first[t] < window.end_ns and last[t] > window.start_ns]
    if len(alive) <= limit:
        return alive or tids
    iv = trace.intervals()
    iv = iv[(iv["end_ns"] > window.start_ns) & (iv["start_ns"] < window.end_ns)]
    busy = (np.minimum(iv["end_ns"], window.end_ns) - np.maximum(iv["start_ns"], window.start_ns)).groupby(iv["tid"]).sum()
    keep = set(busy.reindex(alive).fillna(0).sort_values(ascending=False).index[:limit])
    return [t for t in alive if t in keep]


def _rectangles(x0: np.ndarray, x1: np.ndarray, y: np.ndarray, half: float) -> np.ndarray:
    """Corners of rectangles [x0, x1] x [y - half, y + half], as PolyCollection takes them."""
    x0, x1, y = np.asarray(x0, dtype=float), np.asarray(x1, dtype=float), np.asarray(y, dtype=float)
    corners = [(x0, y - half), (x0, y + half), (x1, y + half), (x1, y - half)]
    return np.stack([np.column_stack(c) for c in corners], axis=1)


def plot_timeline(
    trace,
    ax=None,
    *,
    start_s: Optional[float] = None,
    end_s: Optional[float] = None,
    threads: Optional[Sequence] = None,
    width_px: int = DEFAULT_WIDTH_PX,
    title: Optional[str] = None,
    window: Optional[Window] = None,
):
    """Draw the timeline; returns (figure, axes).  Works headless (Agg) and in Jupyter.
    ``window`` (from choose_window) overrides start_s/end_s: a caller that
    reports which window was drawn chooses it first."""
    import matplotlib.pyplot as plt
    from matplotlib.collections import PolyCollection
    from matplotlib.patches import Patch
    from matplotlib.lines import Line2D

    window = window or choose_window(trace, start_s, end_s)
    th = trace.threads()
    tids = select_threads(th, threads)
    if not threads:
        tids = busiest_in_window(trace, tids, window)
    rects = lanes(trace, window, tids, width_px)
    strip = holder_strip(trace, window, width_px)
    span_ns = window.end_ns - window.start_ns
    unit, scale = ("ms", 1e6) if span_ns < 5e9 else ("s", 1e9)

    origin = (
        trace.start_ns - int(round(trace.window_s[0] * 1e9)) if hasattr(trace, "window_s") else trace.start_ns
    )  # the whole recording's start

    def x(ns):
        return (np.asarray(ns, dtype=np.float64) - origin) / scale

    if ax is None:
        fig, ax = plt.subplots(figsize=(14, 1.2 + 0.45 * (len(tids) + 1.5)), dpi=width_px / 14)
    else:
        fig = ax.figure
    y_of = {tid: len(tids) - i for i, tid in enumerate(tids)}  # first thread on top
    height = 0.7
    for state in ("released", "wait", "hold"):
        r = rects[rects["state"] == state]
        if r.empty:
            continue
        x0, x1 = x(r["start_ns"]), x(r["end_ns"])
        y = np.array([y_of[t] for t in r["tid"]], dtype=float)
        verts = _rectangles(x0, x1, y, height / 2)
        ax.add_collection(PolyCollection(verts, facecolors=STATE_COLORS[state], edgecolors="none", linewidths=0))

    # CPU state (cpu_state traces): hatched where a thread held the GIL without
    # running, or had been woken to take it but waited for a CPU.
    off = trace.off_cpu_spans() if hasattr(trace, "off_cpu_spans") else None
    if off is not None and len(off):
        off = off[off["tid"].isin(tids) & (off["end_ns"] > window.start_ns) & (off["start_ns"] < window.end_ns)]
        for kind, hatch in (("held_off_cpu", "////"), ("woken_waiting", "...")):
            o = off[off["kind"] == kind]
            if o.empty:
                continue
            x0, x1 = x(o["start_ns"].clip(lower=window.start_ns)), x(o["end_ns"].clip(upper=window.end_ns))
            y = np.array([y_of[t] for t in o["tid"]], dtype=float)
            verts = _rectangles(x0, x1, y, height / 2)
            ax.add_collection(PolyCollection(verts, facecolors="none", edgecolors="#222222", hatch=hatch, linewidths=0))

    # The holder strip above the lanes: one colour per thread, white = nobody holds it.
    strip_y = len(tids) + 1.15
    holder_color = {tid: HOLDER_PALETTE[i % len(HOLDER_PALETTE)] for i, tid in enumerate(tids)}
    if not strip.empty:
        x0, x1 = x(strip["start_ns"]), x(strip["end_ns"])
        verts = _rectangles(x0, x1, np.full(len(x0), strip_y), 0.35)
        colors = [holder_color.get(t, "#999999") for t in strip["tid"]]
        ax.add_collection(PolyCollection(verts, facecolors=colors, edgecolors="none"))
    ax.add_patch(plt.Rectangle((x(window.start_ns), strip_y - 0.35), span_ns / scale, 0.7, fill=False, edgecolor="#666666", linewidth=0.5))

    # Episodes of abnormal waiting (episodes.py) as light bands behind the lanes.
    for i, ep in enumerate(trace.episodes() if hasattr(trace, "episodes") else []):
        a, b = max(ep.start_ns, window.start_ns), min(ep.end_ns, window.end_ns)
        if a < b:
            ax.axvspan(x(a), x(b), ymin=0, ymax=1, color="#F0E442", alpha=0.18, zorder=0, linewidth=0)
            ax.text(x(a), 0.35, " episode %d" % (i + 1), fontsize=8, color="#8C6D31", va="bottom")

    ev = trace.events
    drops = ev[
        (ev["kind"] == "drop_request") & (ev["time_ns"] >= window.start_ns) & (ev["time_ns"] <= window.end_ns) & ev["tid"].isin(tids)
    ]
    if len(drops):
        ax.scatter(
            x(drops["time_ns"]),
            [y_of[t] + height / 2 + 0.08 for t in drops["tid"]],
            marker="v",
            s=14,
            color="black",
            zorder=3,
            linewidths=0,
        )

    ax.set_xlim(x(window.start_ns), x(window.end_ns))
    ax.set_ylim(0.3, strip_y + 0.6)
    ax.set_yticks([y_of[t] for t in tids] + [strip_y])
    ax.set_yticklabels(["%s (%d)" % (plot_label(th.loc[t, "name"]), t) for t in tids] + ["GIL held by"])
    for label, tid in zip(ax.get_yticklabels(), tids):
        label.set_color(holder_color[tid])
        label.set_fontweight("bold")
    ax.set_xlabel("time since trace start (%s)" % unit)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles = [Patch(color=STATE_COLORS[s], label=STATE_LABELS[s]) for s in ("hold", "wait", "released")]
    handles.append(Line2D([], [], marker="v", color="black", linestyle="none", markersize=5, label="drop request (forced switch)"))
    if off is not None and len(off):
        handles.append(Patch(facecolor="white", edgecolor="#222222", hatch="////", label="holds the GIL, not running"))
        handles.append(Patch(facecolor="white", edgecolor="#222222", hatch="...", label="woken, waiting for a CPU"))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.2 / max(len(tids), 1)), ncol=4, frameon=False, fontsize=9)
    shown = "%.3f–%.3f s" % ((window.start_ns - origin) / 1e9, (window.end_ns - origin) / 1e9)
    ax.set_title(title or "GIL timeline — %s of %.3f s (%s)" % (shown, (trace.stop_ns - trace.start_ns) / 1e9, window.reason), fontsize=11)
    fig.tight_layout()
    return fig, ax
