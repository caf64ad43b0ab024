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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List

import numpy as np
import pandas as pd

from .analysis import occupancy

EPISODE_FACTOR = 4.0
EPISODE_MIN_LEVEL = 0.25  # threads waiting on average: a quarter of the time, one thread
EPISODE_MAX_GAP_BINS = 2
EPISODE_MIN_BINS = 3
EPISODE_MAX_COVER = 0.8  # of the trace: above this, the contention is the whole trace
EPISODE_MAX = 5  # the worst ones


@dataclass
class Episode:
    start_ns: int
    end_ns: int
    waiting_s: float  # thread-seconds of contended waiting inside it
    level: float  # threads waiting on average inside it
    baseline: float  # threads waiting on average in the calm (25th percentile of bins)


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


def find_episodes(spans: pd.DataFrame, start_ns: int, stop_ns: int, switch_interval_ns: int) -> List[Episode]:
    """The abnormal periods of a trace, by start time (at most EPISODE_MAX, the worst)."""
    width = bin_width_ns(stop_ns - start_ns, switch_interval_ns)
    if stop_ns - start_ns < 2 * EPISODE_MIN_BINS * width:
        return []  # too short to have a calm and a storm
    edges, level = waiting_levels(spans, start_ns, stop_ns, width)
    smooth = np.convolve(level, np.ones(3) / 3, mode="same")
    baseline = float(np.percentile(level, 25))
    threshold = max(EPISODE_MIN_LEVEL, EPISODE_FACTOR * baseline)
    hot = np.flatnonzero(smooth >= threshold)
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
        inside = np.flatnonzero(level[a : b + 1] >= threshold)
        if len(inside) == 0:
            continue
        a, b = a + inside[0], a + inside[-1]
        if b - a + 1 < EPISODE_MIN_BINS:
            continue
        s, e = int(edges[a]), int(edges[b + 1])
        secs = float(level[a : b + 1] @ np.diff(edges[a : b + 2])) / 1e9
        out.append(Episode(s, e, secs, secs * 1e9 / max(e - s, 1), baseline))
    if len(out) == 1 and out[0].end_ns - out[0].start_ns >= EPISODE_MAX_COVER * (stop_ns - start_ns):
        return []
    worst = sorted(out, key=lambda ep: ep.waiting_s, reverse=True)[:EPISODE_MAX]
    return sorted(worst, key=lambda ep: ep.start_ns)
