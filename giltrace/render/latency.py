"""Wait-latency distributions: one CDF per thread on a log time axis."""

from __future__ import annotations

from typing import Optional

import numpy as np

from ..textsafe import plot_label


def plot_wait_cdf(trace, ax=None, contended_only: bool = True, title: Optional[str] = None):
    """CDF of each thread's GIL waits (contended ones by default: the
    uncontended ~100 ns takes would hide the shape).  Returns (figure, axes)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    else:
        fig = ax.figure
    from .timeline import HOLDER_PALETTE

    from ..groups import thread_groups

    order = list(trace.threads().sort_values("first_ns", kind="stable").index)  # same colours as the timeline's labels
    ev = trace.events
    acq = ev[(ev["kind"] == "acquire") & ((ev["contended"]) if contended_only else True)]
    # The threads of one group (a pool, a server's request threads) are one curve.
    groups = thread_groups({int(t): trace.names.get(int(t), "thread-%d" % t) for t in order})
    key = acq["tid"].map(lambda t: groups.get(int(t)) or t)
    drawn = 0
    for k, g in acq.groupby(key, sort=False):
        tid = int(g["tid"].iloc[0])
        w = np.sort(g["wait_ns"].to_numpy()) / 1e6
        w = w[w > 0]
        if len(w) == 0:
            continue
        y = np.arange(1, len(w) + 1) / len(w)
        colour = HOLDER_PALETTE[order.index(tid) % len(HOLDER_PALETTE)] if tid in order else "#7F7F7F"
        name = k if isinstance(k, str) else trace.names.get(tid, "thread-%d" % tid)
        ax.step(w, y, where="post", color=colour, label="%s (%d waits)" % (plot_label(name), len(w)))
        drawn += 1
    si = 1e3 * float(trace.meta.get("switch_interval_s", 0.005))
    ax.axvline(si, color="#666666", linestyle="--", linewidth=1)
    ax.text(si, 0.02, " switch interval %.1f ms" % si, color="#666666", fontsize=8)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("wait for the GIL (ms, log scale)")
    ax.set_ylabel("fraction of waits ≤ x")
    ax.set_title(title or ("contended GIL waits per thread" if contended_only else "GIL waits per thread"), fontsize=11)
    if drawn:
        ax.legend(fontsize=8, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no contended waits", transform=ax.transAxes, ha="center")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig, ax
