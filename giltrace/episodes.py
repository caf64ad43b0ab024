"""Episodes: the periods in which threads wait for the GIL far more than
they do the rest of the time (docs/api.md, "Episodes").

A verdict over a whole trace averages a 3-second storm into seconds of calm;
diagnosing each episode on its own tells the story of the storm.  Time is cut
into bins of ``max(10 switch intervals, duration / 400)``; each bin's level is
the number of threads waiting for the GIL in it on average (thread-seconds of
contended waiting per second).  The calm baseline is the 25th percentile of
the levels; a bin is abnormal when its level (smoothed over 3 bins) is at
least ``EPISODE_FACTOR`` times the baseline and at least
``EPISODE_MIN_LEVEL``.  Abnormal bins closer than ``EPISODE_MAX_GAP_BINS``
merge into one episode; episodes shorter than ``EPISODE_MIN_BINS`` bins are
noise.  When one episode covers most of the trace there is no calm to stand
out from, and the whole trace is the story: no episode is reported.

A thread that sleeps most of the time never raises the level, however late
each of its wake-ups is; so a bin is also abnormal when some thread's wake
latency in it (the median wait of its wakes in the bin and 2 bins each side,
wakes.py) is at least ``EPISODE_FACTOR`` times that thread's own calm (the
25th percentile of those medians; a calm that is itself late does not count), late by the latency rule's measures
(wakes.latency_threshold_s, ``LATENCY_MIN_VS_WORK`` times its median work per
wake), over at least ``LATENCY_MIN_BIN_WAKES`` wakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from . import wakes as wk
from .analysis import occupancy

EPISODE_FACTOR = 4.0
EPISODE_MIN_LEVEL = 0.25  # threads waiting on average: a quarter of the time, one thread
EPISODE_MAX_GAP_BINS = 2
EPISODE_MIN_BINS = 3
EPISODE_MAX_COVER = 0.8  # of the trace: above this, the contention is the whole trace
EPISODE_MAX = 5  # the worst ones
LATENCY_NEAR_BINS = 2  # a bin's wake latency: the median over it and this many bins each side
LATENCY_MIN_BIN_WAKES = 3  # ... when they hold this many wakes


@dataclass
class Episode:
    start_ns: int
    end_ns: int
    waiting_s: float  # thread-seconds of contended waiting inside it
    level: float  # threads waiting on average inside it
    baseline: float  # threads waiting on average in the calm (25th percentile of bins)
    late: List[int] = field(default_factory=list)  # threads whose wake latency stood out in it (tids)


def bin_width_ns(duration_ns: int, switch_interval_ns: int) -> int:
    return int(max(10 * switch_interval_ns, duration_ns / 400, 1_000_000))


def waiting_levels(spans: pd.DataFrame, start_ns: int, stop_ns: int, width_ns: int):
    """(bin edges, threads waiting on average per bin) over contended waits."""
    waits = spans[(spans["state"] == "wait") & spans["contended"]]
    edges = np.arange(start_ns, stop_ns + width_ns, width_ns, dtype=np.float64)
    edges[-1] = min(edges[-1], stop_ns) if len(edges) > 1 else stop_ns
    occ = occupancy(waits["start_ns"].to_numpy(), waits["end_ns"].to_numpy(), edges)
    widths = np.maximum(np.diff(edges), 1)
    return edges, np.diff(occ) / widths


def late_bins(woken: pd.DataFrame, edges: np.ndarray, switch_interval_ns: int) -> Dict[int, np.ndarray]:
    """Per thread with enough wakes, which bins its wake latency stands out in
    (see the module's docstring)."""
    out: Dict[int, np.ndarray] = {}
    nb = len(edges) - 1
    floor_ns = 1e9 * wk.latency_threshold_s(switch_interval_ns / 1e9)
    woken = woken[~woken["coordination"]] if "coordination" in woken else woken  # a pool's coordinator: not latency (wakes.py)
    for tid, w in woken.groupby("tid"):  # a loop over threads, then over bins with wakes
        if len(w) < wk.LATENCY_MIN_WAKES:
            continue
        b = np.clip(np.searchsorted(edges, w["time_ns"].to_numpy(), side="right") - 1, 0, nb - 1)
        wait = w["wait_ns"].to_numpy()
        work = float(np.median(w["work_ns"].to_numpy()))
        order = np.argsort(b, kind="stable")
        b, wait = b[order], wait[order]
        med = np.full(nb, np.nan)
        near = np.unique(np.clip(b[:, None] + np.arange(-LATENCY_NEAR_BINS, LATENCY_NEAR_BINS + 1), 0, nb - 1))
        for k in near:
            lo = np.searchsorted(b, k - LATENCY_NEAR_BINS, side="left")
            hi = np.searchsorted(b, k + LATENCY_NEAR_BINS, side="right")
            if hi - lo >= LATENCY_MIN_BIN_WAKES:
                med[k] = np.median(wait[lo:hi])
        seen = med[np.isfinite(med)]
        if not len(seen):
            continue
        calm = float(np.percentile(seen, 25))
        if calm >= floor_ns:
            continue  # late all along: no calm to stand out from, the whole trace is its story
        need = max(floor_ns, EPISODE_FACTOR * calm, wk.LATENCY_MIN_VS_WORK * work)
        hot = np.nan_to_num(med, nan=0.0) >= need
        if hot.any():
            out[int(tid)] = hot
    return out


def find_episodes(
    spans: pd.DataFrame, start_ns: int, stop_ns: int, switch_interval_ns: int, woken: Optional[pd.DataFrame] = None
) -> List[Episode]:
    """The abnormal periods of a trace, by start time (at most EPISODE_MAX, the
    worst); ``woken`` (wakes.wakes) adds the periods of abnormal wake latency."""
    width = bin_width_ns(stop_ns - start_ns, switch_interval_ns)
    if stop_ns - start_ns < 2 * EPISODE_MIN_BINS * width:
        return []  # too short to have a calm and a storm
    edges, level = waiting_levels(spans, start_ns, stop_ns, width)
    smooth = np.convolve(level, np.ones(3) / 3, mode="same")
    baseline = float(np.percentile(level, 25))
    threshold = max(EPISODE_MIN_LEVEL, EPISODE_FACTOR * baseline)
    late = late_bins(woken, edges, switch_interval_ns) if woken is not None and len(woken) else {}
    late_any = np.zeros(len(level), bool)
    for hot_bins in late.values():
        late_any |= hot_bins
    hot = np.flatnonzero((smooth >= threshold) | late_any)
    if len(hot) == 0:
        return []
    runs, first, prev = [], hot[0], hot[0]
    for b in list(hot[1:]) + [None]:
        if b is not None and b - prev <= EPISODE_MAX_GAP_BINS + 1:
            prev = b
            continue
        runs.append((first, prev))
        if b is not None:
            first = prev = b
    out = []
    for a, b in runs:
        # trim the smoothing's spill-over: the episode starts and ends with bins that are hot themselves
        inside = np.flatnonzero((level[a : b + 1] >= threshold) | late_any[a : b + 1])
        if len(inside) == 0:
            continue
        a, b = a + inside[0], a + inside[-1]
        if b - a + 1 < EPISODE_MIN_BINS:
            continue
        s, e = int(edges[a]), int(edges[b + 1])
        secs = float(level[a : b + 1] @ np.diff(edges[a : b + 2])) / 1e9
        who = [t for t, hot_bins in late.items() if hot_bins[a : b + 1].any()]
        out.append(Episode(s, e, secs, secs * 1e9 / max(e - s, 1), baseline, who))
    if len(out) == 1 and out[0].end_ns - out[0].start_ns >= EPISODE_MAX_COVER * (stop_ns - start_ns):
        return []
    worst = sorted(out, key=lambda ep: (ep.waiting_s, len(ep.late)), reverse=True)[:EPISODE_MAX]
    return sorted(worst, key=lambda ep: ep.start_ns)
