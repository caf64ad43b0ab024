"""Wake latency: how long a thread waits to run Python again once the
blocking work it released the GIL for (I/O, sleep, a lock, select/poll) is
done (docs/api.md, "Wake latency").

A thread that sleeps most of the time -- an event loop, an accept loop, a
ping handler, a ticker -- waits little in all, yet every event it handles
is late by its wait.  Per event is how it is felt, so per event is how it
is measured here.  Pure functions of the interval frame (analysis.intervals)
and the events; no I/O.

What counts as a wake (the trace has no syscall names, so it is decided
from what it holds): a take of the GIL whose thread's previous hold ended
at least ``WAKE_MIN_BLOCKED_NS`` (250 us) before it began waiting, and whose previous
hold was not ended by a drop request aimed at it.  A forced switch re-requests
the GIL within microseconds (later only when the OS preempts the thread on a
busy machine: still no blocking work); a non-blocking send or recv lasts up to
~150 us; blocking work lasts longer.  A short blocking call (a lock free within 250 us) is not
counted: approximate by design.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional

import numpy as np
import pandas as pd

from .groups import thread_groups


WAKE_MIN_BLOCKED_NS = 250_000  # a non-blocking UDP sendto on loopback took 50-140 us here (it wakes the receiver)
# The take of a GIL nobody holds costs ~0.1-1 us; below this a baseline is clock noise.
BASELINE_FLOOR_NS = 1_000
# A thread's own uncontended wakes make its baseline when it has this many.
BASELINE_MIN_OWN = 3

# Waking from a block on another thread (join, Condition/Event wait, futures,
# queues) is a coordinator or a parked worker waking up; so is polling a child
# process (subprocess's wait sleeps in a loop): ``after_sync``.  It is
# ``coordination`` (left out of the latency rule) only when the thread it then
# waited behind is one of a pool (a thread group): a coordinator collecting
# its pool's results waits behind the pool, which serialised_pool reports.  A
# heartbeat's ``Event.wait(0.01)`` or a queue consumer fed by a CPU thread
# waiting behind that thread is an event handled late: latency.
SYNC_LONG_BLOCK_NS = 50_000_000
SYNC_FILES = re.compile(r"(^|/)(threading\.py|queue\.py|concurrent/futures/[^/]+\.py|subprocess\.py)$")

WAKE_COLUMNS = [
    "tid",
    "time_ns",
    "wait_ns",
    "blocked_ns",
    "work_ns",
    "contended",
    "released_at",
    "waiting_at",
    "holder_tid",
    "holder_location",
    "after_sync",
    "coordination",
]


def sync_locations(locations: Mapping[int, tuple]) -> np.ndarray:
    """The location ids in threading / queue / concurrent.futures / subprocess (SYNC_FILES); ``locations``: id -> (file, ...)."""
    return np.array(sorted(int(k) for k, v in locations.items() if SYNC_FILES.search(str(v[0]))), np.int64)


def wakes(
    spans: pd.DataFrame, events: pd.DataFrame, sync: Optional[np.ndarray] = None, names: Optional[Mapping[int, str]] = None
) -> pd.DataFrame:
    """One row per wake, by time: ``tid``; ``time_ns`` (when it got the GIL
    back); ``wait_ns`` (from asking for the GIL to taking it); ``blocked_ns``
    (released before asking: its I/O, sleep or lock); ``work_ns`` (the hold
    that followed, up to the stop for one still running then);
    ``contended``; ``released_at`` (location where it let go before
    blocking); ``waiting_at`` (the program's line when it began waiting);
    ``holder_tid`` / ``holder_location`` (the thread that held the GIL last
    before the take, and where it let go; -1 / 0 when nobody held it during
    the wait); ``after_sync`` (it let go in one of the ``sync`` location ids:
    sync_locations); ``coordination`` (after_sync, and the holder is in a
    thread group of ``names``: groups.thread_groups)."""
    if spans.empty:
        return pd.DataFrame({c: pd.Series(dtype=np.int64) for c in WAKE_COLUMNS}).astype(
            {"contended": bool, "after_sync": bool, "coordination": bool}
        )
    state = spans["state"].cat.codes.to_numpy()  # 0 wait, 1 hold
    order = np.lexsort((state, spans["start_ns"].to_numpy(), spans["tid"].to_numpy()))
    tid = spans["tid"].to_numpy()[order]
    st = state[order]
    start = spans["start_ns"].to_numpy()[order]
    end = spans["end_ns"].to_numpy()[order]
    loc = spans["location"].to_numpy()[order]
    cont = spans["contended"].to_numpy()[order]
    n = len(tid)
    i = np.arange(1, n)
    # a wait preceded by the same thread's hold (its release) ...
    cand = i[(st[i] == 0) & (tid[i - 1] == tid[i]) & (st[i - 1] == 1)]
    blocked = start[cand] - end[cand - 1]
    forced = _forced(tid[cand - 1], start[cand - 1], end[cand - 1], events)
    keep = (blocked >= WAKE_MIN_BLOCKED_NS) & ~forced
    w, b = cand[keep], blocked[keep]
    # ... and the hold that followed it (the same thread's next interval)
    nxt = np.minimum(w + 1, n - 1)
    has_next = (w + 1 < n) & (tid[nxt] == tid[w]) & (st[nxt] == 1)
    work = np.where(has_next, end[nxt] - start[nxt], 0)
    holder, holder_loc = _last_holder(tid[w], start[w], end[w], tid, st, start, end, loc)
    out = pd.DataFrame(
        {
            "tid": tid[w].astype(np.int64),
            "time_ns": end[w].astype(np.int64),
            "wait_ns": (end[w] - start[w]).astype(np.int64),
            "blocked_ns": b.astype(np.int64),
            "work_ns": work.astype(np.int64),
            "contended": cont[w].astype(bool),
            "released_at": loc[w - 1].astype(np.int64),
            "waiting_at": loc[w].astype(np.int64),
            "holder_tid": holder,
            "holder_location": holder_loc,
            "after_sync": np.isin(loc[w - 1], sync) if sync is not None else np.zeros(len(w), bool),
        }
    )
    pooled = [t for t, g in thread_groups(names or {}).items() if g is not None]
    # a long sync block (>= SYNC_LONG_BLOCK_NS: a coordinator polling for its end, grpc's wait_for_termination) is one too
    out["coordination"] = out["after_sync"].to_numpy() & (np.isin(holder, pooled) | (b >= SYNC_LONG_BLOCK_NS))
    return out.sort_values("time_ns", kind="stable").reset_index(drop=True)


def _forced(htid: np.ndarray, hstart: np.ndarray, hend: np.ndarray, events: pd.DataFrame) -> np.ndarray:
    """For each hold, whether a drop request aimed at its thread was raised in (start, end]."""
    out = np.zeros(len(htid), bool)
    ev = events[events["kind"] == "drop_request"]
    if ev.empty or not len(htid):
        return out
    dt, dh = ev["time_ns"].to_numpy(), ev["holder_tid"].to_numpy()
    for t in np.unique(htid):  # a loop over threads, not events
        times = np.sort(dt[dh == t])
        if not len(times):
            continue
        m = htid == t
        out[m] = np.searchsorted(times, hend[m], side="right") > np.searchsorted(times, hstart[m], side="right")
    return out


def _last_holder(wtid, wstart, wend, tid, st, start, end, loc):
    """The other thread whose hold ended last at or before each take, if that
    hold overlapped the wait (it made the thread wait, and handed the GIL over)."""
    h = st == 1
    ht, hs, he, hl = tid[h], start[h], end[h], loc[h]
    by_end = np.argsort(he, kind="stable")
    ht, hs, he, hl = ht[by_end], hs[by_end], he[by_end], hl[by_end]
    if not len(he):
        return np.full(len(wtid), -1, np.int64), np.zeros(len(wtid), np.int64)
    k = np.searchsorted(he, wend, side="right") - 1
    kk = np.maximum(k, 0)
    ok = (k >= 0) & (ht[kk] != wtid) & (he[kk] > wstart)
    return np.where(ok, ht[kk], -1).astype(np.int64), np.where(ok, hl[kk], 0).astype(np.int64)


STAT_COLUMNS = [
    "wakes",
    "wake_p50_s",
    "wake_p90_s",
    "wake_p99_s",
    "wake_max_s",
    "work_per_wake_s",
    "wake_baseline_s",
    "wake_inflation",
]


def take_cost_ns(events: pd.DataFrame) -> Optional[float]:
    """The median take of a GIL nobody held, over the whole process (any thread)."""
    acq = events[(events["kind"] == "acquire") & ~events["contended"] & ~events["wait_clipped"]]
    return float(acq["wait_ns"].median()) if len(acq) else None


def stats(w: pd.DataFrame, take_ns: Optional[float] = None) -> dict:
    """Wake figures of one thread or group (rows of ``wakes()``): the
    STAT_COLUMNS.  The baseline is the median wait of its wakes that found
    the GIL free (at least BASELINE_MIN_OWN of them), else the process's
    uncontended take (``take_ns``); floored at BASELINE_FLOOR_NS."""
    if not len(w):
        return {"wakes": 0, **{c: 0.0 for c in STAT_COLUMNS[1:-2]}, "wake_baseline_s": np.nan, "wake_inflation": np.nan}
    wait = w["wait_ns"].to_numpy().astype(np.float64)
    q = np.quantile(wait, [0.5, 0.9, 0.99])
    free = wait[~w["contended"].to_numpy()]
    base = float(np.median(free)) if len(free) >= BASELINE_MIN_OWN else take_ns
    base = max(base, BASELINE_FLOOR_NS) if base is not None and np.isfinite(base) else np.nan
    return {
        "wakes": int(len(w)),
        "wake_p50_s": q[0] / 1e9,
        "wake_p90_s": q[1] / 1e9,
        "wake_p99_s": q[2] / 1e9,
        "wake_max_s": float(wait.max()) / 1e9,
        "work_per_wake_s": float(np.median(w["work_ns"].to_numpy())) / 1e9,
        "wake_baseline_s": base / 1e9,
        "wake_inflation": q[0] / base if base == base else np.nan,
    }


def per_thread(w: pd.DataFrame, tids, take_ns: Optional[float] = None) -> pd.DataFrame:
    """STAT_COLUMNS per thread of ``tids`` (threads without wakes: 0 wakes, NaN baseline)."""
    groups = dict(tuple(w.groupby("tid"))) if len(w) else {}
    rows = [stats(groups.get(int(t), w.iloc[0:0]), take_ns) for t in tids]
    return pd.DataFrame(rows, index=pd.Index(list(tids), name="tid"), columns=STAT_COLUMNS)


def as_json(r) -> dict:
    """``threads[].wake`` of the JSON (milliseconds; null where unknown)."""

    def ms(v, digits=4):
        v = float(v)
        return round(1e3 * v, digits) if np.isfinite(v) else None

    inf = float(r["wake_inflation"])
    return {
        "count": int(r["wakes"]),
        "p50_ms": ms(r["wake_p50_s"]),
        "p90_ms": ms(r["wake_p90_s"]),
        "p99_ms": ms(r["wake_p99_s"]),
        "max_ms": ms(r["wake_max_s"]),
        "work_p50_ms": ms(r["work_per_wake_s"]),
        "baseline_ms": ms(r["wake_baseline_s"], 6),
        "inflation": round(inf, 1) if np.isfinite(inf) else None,
    }


# ---------------------------------------------------------------- the latency finding (docs/api.md, "Findings")

# A unit (thread, or a group's threads of one role) whose median wake waits
# at least this long -- LATENCY_MIN_INTERVALS of the switch interval or
# LATENCY_MIN_S, whichever is less -- and LATENCY_MIN_VS_WORK times its own
# work per wake, over LATENCY_MIN_WAKES wakes at least, is a convoy by latency
# whatever its share of wall time: every event it handles is that late.
LATENCY_MIN_WAKES = 10
LATENCY_MIN_EPISODE_WAKES = 3  # inside an episode, already picked out for its latency (episodes.LATENCY_MIN_BIN_WAKES) or waiting
LATENCY_MIN_INTERVALS = 0.5
LATENCY_MIN_S = 0.001
LATENCY_MIN_VS_WORK = 10.0


def latency_threshold_s(switch_interval_s: float) -> float:
    """The median wake wait that counts as late (with no switch interval, as on 2.7: LATENCY_MIN_S)."""
    return min(LATENCY_MIN_INTERVALS * switch_interval_s, LATENCY_MIN_S) if switch_interval_s > 0 else LATENCY_MIN_S


def is_late(s: dict, switch_interval_s: float, min_wakes: int = LATENCY_MIN_WAKES) -> bool:
    """The latency rule on ``stats()`` of a unit's wakes."""
    return (
        s["wakes"] >= min_wakes
        and s["wake_p50_s"] >= latency_threshold_s(switch_interval_s)
        and s["wake_p50_s"] >= LATENCY_MIN_VS_WORK * s["work_per_wake_s"]
    )


def wait_intervals(w: pd.DataFrame) -> pd.DataFrame:
    """The wakes' waits as interval rows (tid, start_ns, end_ns, duration_ns), for blame."""
    return pd.DataFrame(
        {
            "tid": w["tid"].to_numpy(),
            "start_ns": (w["time_ns"] - w["wait_ns"]).to_numpy(),
            "end_ns": w["time_ns"].to_numpy(),
            "duration_ns": w["wait_ns"].to_numpy(),
        }
    )


def _figures(s: dict, plural: bool):
    """(p50 ms, p99 ms, 'its'/'their', ', 25x its own 0.20 ms of work' or '') of ``stats()``."""
    p50, p99, work = 1e3 * s["wake_p50_s"], 1e3 * s["wake_p99_s"], 1e3 * s["work_per_wake_s"]
    its = "their" if plural else "its"
    return p50, p99, its, (", %.0fx %s own %.2f ms of work" % (p50 / work, its, work) if work > 0 else "")


def latency_sentence(who: str, role: str, s: dict, window_text: str, culprit: str, plural: bool = False) -> str:
    """'MainThread (the event loop) waited a median 5.1 ms (p99 11.0 ms) to run
    Python again after each of its 117 blocking calls (I/O, sleep, a lock), 25x
    its own 0.20 ms of work; 97% of it behind crunch (echo.py:18) in ThreadPoolExecutor-0_0.'"""
    p50, p99, its, ratio = _figures(s, plural)
    return (
        "%s%s waited a median %.1f ms (p99 %.1f ms) to run Python again after each of %s %d blocking calls (I/O, sleep, a lock)%s%s%s."
        % (
            who,
            role,
            p50,
            p99,
            its,
            s["wakes"],
            window_text,
            ratio,
            "; " + culprit if culprit else "",
        )
    )


def per_wake_sentence(s: dict, plural: bool = False) -> str:
    """'Each wake-up was late by a median 5.1 ms (p99 9.5 ms) over its 43 blocking calls, 113x its own 0.05 ms of work.'"""
    p50, p99, its, ratio = _figures(s, plural)
    return "Each wake-up was late by a median %.1f ms (p99 %.1f ms) over %s %d blocking calls%s." % (p50, p99, its, s["wakes"], ratio)
