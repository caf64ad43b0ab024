"""Pure functions from recorded events to frames.  No I/O, no globals.

Everything here is vectorised with numpy/pandas: traces hold millions of
events, and a Python loop per event would take minutes.
"""

from __future__ import annotations

from typing import Dict, Mapping

import numpy as np
import pandas as pd

from .errors import TraceFormatError
from .fileformat import EV_ACQUIRE, EV_DROP_REQUEST, EV_RELEASE, EV_WAIT, FLAG_CONTENDED, FLAG_SWITCHED, FLAG_WAIT_UNKNOWN

KINDS = ["wait", "acquire", "release", "drop_request"]  # code k is KINDS[k - 1]
STATES = ["wait", "hold"]


def events_frame(ev: np.ndarray, sampled_release_locations: bool = False) -> pd.DataFrame:
    """The documented events table (docs/api.md), sorted by time.

    The ring is written in the order the interpreter serialises GIL
    transitions, except that a ``wait`` event is stamped with the moment the
    thread began to block, a little before it is emitted; a stable sort by
    time restores the true order without reordering a thread's own events.
    """
    t = ev["time_ns"]
    order = None if len(t) < 2 or bool((t[1:] >= t[:-1]).all()) else np.argsort(t, kind="stable")

    def column(name: str, dtype) -> np.ndarray:
        # One contiguous copy per column: strided field views are slow to work on.
        col = ev[name] if order is None else np.take(ev[name], order)
        return np.ascontiguousarray(col, dtype=dtype)

    kind = column("kind", np.int8)
    if len(kind) and (kind.min() < 1 or kind.max() > len(KINDS)):
        raise TraceFormatError("corrupt trace: unknown event kind %d" % int(kind.max()))
    arg = column("arg", np.int64)
    flags = column("flags", np.uint8)
    is_acq = kind == EV_ACQUIRE
    kind -= 1
    wait_ns = np.where(is_acq, arg, -1)
    holder = np.where(kind == EV_DROP_REQUEST - 1, arg, -1)
    tid = column("tid", np.int64)
    return pd.DataFrame(
        {
            "time_ns": column("time_ns", np.int64),
            "tid": tid,
            "kind": pd.Categorical.from_codes(kind, categories=KINDS),
            "wait_ns": wait_ns,
            "switched": is_acq & ((flags & FLAG_SWITCHED) != 0),
            "contended": is_acq & ((flags & FLAG_CONTENDED) != 0),
            "wait_clipped": is_acq & ((flags & FLAG_WAIT_UNKNOWN) != 0),
            "holder_tid": holder,
            "location": _location_per_event(tid, kind, arg, sampled_release_locations),
        },
        copy=False,
    )


def _location_per_event(tid: np.ndarray, kind0: np.ndarray, arg: np.ndarray, sampled_releases: bool = False) -> np.ndarray:
    """Where each event's thread was in Python code (a location id, 0 if
    unknown).  Releases and waits carry it; an acquisition or a drop request
    inherits it from the thread's last release or wait (vectorised
    forward-fill within each thread).  With ``sampled_releases`` (2.7 traces:
    header ``release_location_period_ns``) only some releases were located,
    and the others inherit too."""
    n = len(tid)
    carries = (kind0 == EV_RELEASE - 1) | (kind0 == EV_WAIT - 1)
    if sampled_releases:
        carries &= (arg != 0) | (kind0 == EV_WAIT - 1)
    if n == 0 or not (carries & (arg != 0)).any():
        return np.zeros(n, np.int64)
    order = np.argsort(tid, kind="stable")
    t_sorted, loc_sorted, ok = tid[order], np.where(carries, arg, 0)[order], carries[order]
    last = np.maximum.accumulate(np.where(ok, np.arange(n), -1))
    starts = np.flatnonzero(np.r_[True, t_sorted[1:] != t_sorted[:-1]])
    group_start = np.repeat(starts, np.diff(np.r_[starts, n]))
    filled = np.where(last >= group_start, loc_sorted[np.maximum(last, 0)], 0)
    out = np.empty(n, np.int64)
    out[order] = filled
    return out


def intervals(events: pd.DataFrame, start_ns: int, stop_ns: int) -> pd.DataFrame:
    """Per-thread ``wait`` and ``hold`` intervals, sorted by start.

    wait: from the moment a thread entered the GIL's mutex to its acquisition
    (every acquisition has one; uncontended ones last ~100 ns).
    hold: from an acquisition to the same thread's next release.  A hold
    that was already running when the trace started begins at ``start_ns``;
    one still running at the stop ends at ``stop_ns``.
    location: for a wait, where the thread was when it began waiting (the
    line that released the GIL, e.g. around I/O); for a hold, where it was
    when it let go (0: unknown, or still held at the stop).
    contended: for a wait, whether the take had to block (a *wait* in every
    table); an uncontended take is a ~100 ns interval.  False for holds.
    """
    kind = events["kind"].cat.codes.to_numpy() + 1
    tid = events["tid"].to_numpy()
    t = events["time_ns"].to_numpy()
    loc = events["location"].to_numpy()

    acq = kind == EV_ACQUIRE
    wait_end = t[acq]
    wait_start = wait_end - events["wait_ns"].to_numpy()[acq]
    wait_tid = tid[acq]
    wait_loc = loc[acq]
    wait_contended = events["contended"].to_numpy()[acq]

    m = acq | (kind == EV_RELEASE)
    htid, ht, hk, hl = tid[m], t[m], kind[m], loc[m]
    order = np.argsort(htid, kind="stable")  # group by thread, keep time order
    htid, ht, hk, hl = htid[order], ht[order], hk[order], hl[order]
    same = htid[1:] == htid[:-1]
    pair = same & (hk[:-1] == EV_ACQUIRE) & (hk[1:] == EV_RELEASE)
    first = np.ones(len(htid), bool)
    first[1:] = ~same
    last = np.ones(len(htid), bool)
    last[:-1] = ~same
    open_start = first & (hk == EV_RELEASE)  # held since before the trace
    open_end = last & (hk == EV_ACQUIRE)  # still held at the stop
    hold_tid = np.concatenate([htid[:-1][pair], htid[open_start], htid[open_end]])
    hold_start = np.concatenate([ht[:-1][pair], np.full(open_start.sum(), start_ns), ht[open_end]])
    hold_end = np.concatenate([ht[1:][pair], ht[open_start], np.full(open_end.sum(), stop_ns)])
    hold_loc = np.concatenate([hl[1:][pair], hl[open_start], np.zeros(open_end.sum(), np.int64)])

    n_wait, n_hold = len(wait_tid), len(hold_tid)
    tids = np.concatenate([wait_tid, hold_tid]).astype(np.int64, copy=False)
    starts = np.concatenate([wait_start, hold_start]).astype(np.int64, copy=False)
    ends = np.concatenate([wait_end, hold_end]).astype(np.int64, copy=False)
    states = np.concatenate([np.zeros(n_wait, np.int8), np.ones(n_hold, np.int8)])
    locs = np.concatenate([wait_loc, hold_loc]).astype(np.int64, copy=False)
    contended = np.concatenate([wait_contended, np.zeros(n_hold, bool)])
    order = np.argsort(starts, kind="stable")  # a few long sorted runs: timsort merges them fast
    return pd.DataFrame(
        {
            "tid": tids[order],
            "state": pd.Categorical.from_codes(states[order], categories=STATES),
            "start_ns": starts[order],
            "end_ns": ends[order],
            "duration_ns": ends[order] - starts[order],
            "location": locs[order],
            "contended": contended[order],
        },
        copy=False,
    )


def window_events(events: pd.DataFrame, start_ns: int, stop_ns: int) -> pd.DataFrame:
    """The events between two instants, as if the trace had been started at
    ``start_ns`` and stopped at ``stop_ns``: a take that began before the
    window counts from its start (``wait_clipped``).  Locations were filled
    in over the whole trace, so they stay right inside the window."""
    t = events["time_ns"].to_numpy()
    lo, hi = np.searchsorted(t, start_ns, side="left"), np.searchsorted(t, stop_ns, side="right")
    out = events.iloc[lo:hi].copy()
    acq = (out["kind"] == "acquire").to_numpy()
    began = out["time_ns"].to_numpy() - out["wait_ns"].to_numpy()
    early = acq & (began < start_ns)
    if early.any():
        out.loc[early, "wait_ns"] = out["time_ns"].to_numpy()[early] - start_ns
        out.loc[early, "wait_clipped"] = True
    return out.reset_index(drop=True)


def occupancy(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Integral of the number of intervals open at each instant, from the
    first start to each instant in ``at``: overlapping intervals (several
    threads waiting at once) each count.  Differences give thread-seconds
    spent in the intervals over any span, with no loop over threads."""
    if len(starts) == 0:
        return np.zeros(len(at))
    t = np.concatenate([starts, ends]).astype(np.float64)
    step = np.concatenate([np.ones(len(starts)), -np.ones(len(ends))])
    order = np.argsort(t, kind="stable")
    t, step = t[order], step[order]
    level = np.cumsum(step)  # intervals open just after t[k]
    before = np.concatenate([[0.0], np.cumsum(level[:-1] * np.diff(t))])  # integral up to t[k]
    k = np.searchsorted(t, at, side="right") - 1
    kk = np.maximum(k, 0)
    return np.where(k >= 0, before[kk] + level[kk] * (np.asarray(at, np.float64) - t[kk]), 0.0)


def thread_table(events: pd.DataFrame, spans: pd.DataFrame, names: Mapping[int, str], start_ns: int, stop_ns: int) -> pd.DataFrame:
    """One row per thread seen in the trace, indexed by tid.

    released_s is the time the thread was alive in the trace but neither
    holding nor waiting: I/O, sleeping, C code that released the GIL.
    """
    ev = events
    acq = ev[ev["kind"] == "acquire"]
    g = acq.groupby("tid")
    per = pd.DataFrame(
        {
            "acquires": g.size(),
            "switches": g["switched"].sum(),
            "waits": g["contended"].sum(),
            "max_wait_s": g["wait_ns"].max() / 1e9,
        }
    )
    contended = acq[acq["contended"]]
    per["mean_wait_s"] = (contended.groupby("tid")["wait_ns"].mean() / 1e9).reindex(per.index)
    per["releases"] = ev[ev["kind"] == "release"].groupby("tid").size()
    per["drop_requests"] = ev[ev["kind"] == "drop_request"].groupby("tid").size()

    sums = spans.groupby(["tid", "state"], observed=False)["duration_ns"].sum().unstack(fill_value=0)
    for state in STATES:
        if state not in sums:
            sums[state] = 0
    per = per.join(sums[STATES].rename(columns={"wait": "wait_ns_total", "hold": "hold_ns_total"}), how="outer")

    first = ev.groupby("tid")["time_ns"].min()
    last = ev.groupby("tid")["time_ns"].max()
    # A thread that held the GIL at the start was alive then; one holding it at the end, until the stop.
    holds = spans[spans["state"] == "hold"].groupby("tid")
    first = np.minimum(first, holds["start_ns"].min().reindex(first.index).fillna(first))
    last = np.maximum(last, holds["end_ns"].max().reindex(last.index).fillna(last))
    per = per.reindex(first.index)
    out = pd.DataFrame(index=per.index.astype(np.int64))
    out.index.name = "tid"
    out["name"] = [names.get(int(t), "thread-%d" % t) for t in out.index]
    out["wait_s"] = per["wait_ns_total"].fillna(0) / 1e9
    out["hold_s"] = per["hold_ns_total"].fillna(0) / 1e9
    out["active_s"] = (last - first).reindex(out.index) / 1e9
    out["released_s"] = (out["active_s"] - out["wait_s"] - out["hold_s"]).clip(lower=0)
    for col in ("acquires", "switches", "waits", "releases", "drop_requests"):
        out[col] = per[col].fillna(0).astype(np.int64)
    out["uncontended"] = out["acquires"] - out["waits"]  # takes that did not block
    out["max_wait_s"] = per["max_wait_s"].fillna(0)
    out["mean_wait_s"] = per["mean_wait_s"].fillna(0)
    out["wait_share"] = np.where(out["active_s"] > 0, out["wait_s"] / out["active_s"].where(out["active_s"] > 0, 1), 0.0)
    out["first_ns"] = first.reindex(out.index).astype(np.int64)
    out["last_ns"] = last.reindex(out.index).astype(np.int64)
    return out.sort_values("first_ns", kind="stable")


def long_holds(spans: pd.DataFrame, events: pd.DataFrame, switch_interval_ns: int, factor: float = 2.0) -> pd.DataFrame:
    """Holds during which another thread waited more than ``factor`` switch
    intervals: a holder that did not let go when asked (C code that keeps
    the GIL, a stuck eval loop).  A long hold nobody waited for is fine, and
    so is one whose waiter got the GIL one interval after asking.
    Adds ``waited_ns`` (the longest any other thread waited within the hold)
    and ``drop_requests`` (raised during it)."""
    holds = spans[(spans["state"] == "hold") & (spans["duration_ns"] > factor * switch_interval_ns)]
    waits = spans[spans["state"] == "wait"].sort_values("start_ns", kind="stable")
    ws, we, wt = waits["start_ns"].to_numpy(), waits["end_ns"].to_numpy(), waits["tid"].to_numpy()
    longest_wait = int(waits["duration_ns"].max()) if len(waits) else 0
    waited = np.zeros(len(holds), np.int64)
    for i, (hs, he, tid) in enumerate(zip(holds["start_ns"].to_numpy(), holds["end_ns"].to_numpy(), holds["tid"].to_numpy())):
        lo, hi = np.searchsorted(ws, hs - longest_wait), np.searchsorted(ws, he)  # only waits that can overlap
        overlap = np.minimum(we[lo:hi], he) - np.maximum(ws[lo:hi], hs)
        overlap = overlap[wt[lo:hi] != tid]
        waited[i] = overlap.max() if len(overlap) else 0
    drops = np.sort(events[events["kind"] == "drop_request"]["time_ns"].to_numpy())
    out = holds.assign(
        waited_ns=waited,
        drop_requests=np.searchsorted(drops, holds["end_ns"].to_numpy(), side="right")
        - np.searchsorted(drops, holds["start_ns"].to_numpy(), side="left"),
    )
    return out[out["waited_ns"] > factor * switch_interval_ns].reset_index(drop=True)


def stuck_samples(samples: np.ndarray, switch_interval_ns: int, factor: float = 2.0) -> pd.DataFrame:
    """Sampler view of stuck holders: runs of samples where the GIL stayed
    locked with the same switch number while a drop request was pending,
    for longer than ``factor`` switch intervals."""
    cols = ["holder_tid", "start_ns", "end_ns", "duration_ns", "samples"]
    if len(samples) == 0:
        return pd.DataFrame(columns=cols)
    s = samples
    pending = (s["locked"] > 0) & (s["drop_request"] > 0)
    key = np.where(pending, s["switch_number"].astype(np.int64), -1)
    change = np.ones(len(s), bool)
    change[1:] = key[1:] != key[:-1]
    run_id = np.cumsum(change)
    df = pd.DataFrame({"run": run_id, "key": key, "t": s["time_ns"].astype(np.int64), "holder": s["holder_tid"].astype(np.int64)})
    df = df[df["key"] >= 0]
    if df.empty:
        return pd.DataFrame(columns=cols)
    g = df.groupby("run")
    runs = pd.DataFrame({"holder_tid": g["holder"].last(), "start_ns": g["t"].min(), "end_ns": g["t"].max(), "samples": g.size()})
    # The drop request is raised one interval after the holder's last switch.
    runs["start_ns"] -= switch_interval_ns
    runs["duration_ns"] = runs["end_ns"] - runs["start_ns"]
    runs = runs[runs["duration_ns"] > factor * switch_interval_ns]
    return runs[cols].reset_index(drop=True)


def coverage(starts: np.ndarray, ends: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Time covered by non-overlapping intervals up to each instant in ``at``."""
    if len(starts) == 0:
        return np.zeros(len(at))
    order = np.argsort(starts, kind="stable")
    s, e = starts[order].astype(np.float64), ends[order].astype(np.float64)
    before = np.concatenate([[0.0], np.cumsum(e - s)])  # covered before interval k
    k = np.searchsorted(s, at, side="right") - 1
    inside = np.where(k >= 0, np.clip(at - s[np.maximum(k, 0)], 0, e[np.maximum(k, 0)] - s[np.maximum(k, 0)]), 0.0)
    return np.where(k >= 0, before[np.maximum(k, 0)] + inside, 0.0)


def _blame_overlaps(spans: pd.DataFrame):
    """Each (wait, hold) overlap once: (waiter tids, holder tids, waiter index
    and holder index of each overlap, its seconds, each waiter's total wait in
    seconds).  Holds never overlap (one holder at a time): sorted by start,
    their ends are sorted too, and the holds a wait overlaps are one run of
    that order, so the work is linear in the overlaps, not in waiters x
    holders (issue 25: 5,000 threads)."""
    waits = spans[spans["state"] == "wait"]
    holds = spans[spans["state"] == "hold"]
    waiters = np.sort(waits["tid"].unique())
    holders = np.sort(holds["tid"].unique())
    total = (waits.groupby("tid")["duration_ns"].sum() / 1e9).reindex(waiters).to_numpy(dtype=np.float64)
    if not len(waiters) or not len(holders):
        empty = np.zeros(0, dtype=np.int64)
        return waiters, holders, empty, empty, np.zeros(0), total
    order = np.argsort(holds["start_ns"].to_numpy(), kind="stable")
    s = holds["start_ns"].to_numpy()[order].astype(np.int64)
    e = holds["end_ns"].to_numpy()[order].astype(np.int64)
    h = np.searchsorted(holders, holds["tid"].to_numpy()[order])
    a = waits["start_ns"].to_numpy().astype(np.int64)
    b = waits["end_ns"].to_numpy().astype(np.int64)
    w = np.searchsorted(waiters, waits["tid"].to_numpy())
    lo = np.searchsorted(e, a, side="right")  # first hold ending after the wait began
    hi = np.searchsorted(s, b, side="left")  # past the last hold starting before it ended
    n = np.maximum(hi - lo, 0)
    pair_wait = np.repeat(np.arange(len(a)), n)
    pair_hold = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
    overlap = np.minimum(e[pair_hold], b[pair_wait]) - np.maximum(s[pair_hold], a[pair_wait])
    return waiters, holders, w[pair_wait], h[pair_hold], np.maximum(overlap, 0) / 1e9, total


def blame(spans: pd.DataFrame) -> pd.DataFrame:
    """Who made whom wait: seconds of each thread's waiting (rows) spent while
    each other thread held the GIL (columns).  The column ``nobody`` is the
    part of the waits when no thread held it (hand-off latency: the GIL was
    free but the waiter had not run yet).  Dense: waiters x holders floats
    (5,000 threads: 200 MB); blame_pairs has the same figures in proportion
    to the pairs that overlapped."""
    waiters, holders, w, h, seconds, total = _blame_overlaps(spans)
    matrix = np.zeros((len(waiters), len(holders)))
    np.add.at(matrix, (w, h), seconds)
    out = pd.DataFrame(matrix, index=pd.Index(list(waiters), name="waiter"), columns=list(holders))
    out["nobody"] = (total - matrix.sum(axis=1)).clip(min=0) if len(waiters) else pd.Series(dtype=np.float64)
    return out


def blame_pairs(spans: pd.DataFrame) -> pd.DataFrame:
    """blame() as rows (waiter, holder, seconds): the pairs whose waits and
    holds overlapped, and a (waiter, "nobody") row for every waiter; also
    ``holders``, every holder's tid, in the frame's attrs (a holder that made
    no one wait is a zero column of blame())."""
    waiters, holders, w, h, seconds, total = _blame_overlaps(spans)
    key, inverse = np.unique(w * max(len(holders), 1) + h, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=seconds, minlength=len(key)) if len(key) else np.zeros(0)
    kw, kh = key // max(len(holders), 1), key % max(len(holders), 1)
    held = np.bincount(kw, weights=summed, minlength=len(waiters)) if len(waiters) else np.zeros(0)
    out = pd.DataFrame(
        {
            "waiter": np.concatenate([waiters[kw], waiters]) if len(waiters) else np.zeros(0, dtype=np.int64),
            "holder": list(holders[kh]) + ["nobody"] * len(waiters),
            "seconds": np.concatenate([summed, (total - held).clip(min=0)]),
        }
    )
    out.attrs["holders"] = [int(t) for t in holders]
    return out


def names_from_records(records) -> Dict[int, str]:
    """tid -> name from THREADS chunk records; later records (renames) win."""
    names: Dict[int, str] = {}
    for r in records:
        try:
            names[int(r["tid"])] = str(r["name"])
        except (KeyError, TypeError, ValueError):
            continue
    return names


def cpu_state(cpu: np.ndarray, spans: pd.DataFrame, start_ns: int, stop_ns: int) -> pd.DataFrame:
    """CPU state beside GIL state, per thread, from the scheduler counters a
    ``cpu_state`` trace samples (docs/how-it-works.md, "CPU state"):

    cpu_s / runq_s: time on a CPU / runnable but waiting for one, over the trace;
    held_runq_s: of the thread's GIL holds, the time it was waiting for a CPU
    (it held the GIL while not running: everybody else waited for a CPU, not
    for Python code); held_run_s: the time it really ran;
    wait_runq_s: of its GIL waits, the time it spent waiting for a CPU.

    Between two samples (the sample period apart) the counters are shared
    out over the states the thread was in: run and run-queue time go to the
    time it held the GIL or ran without it (a thread blocked waiting for the
    GIL is not runnable), except in a stretch spent waiting throughout, where
    run-queue time is a woken waiter's wait for a CPU.  The split is that
    resolution's estimate."""
    cols = ["cpu_s", "runq_s", "held_run_s", "held_runq_s", "wait_runq_s"]
    threads = cpu[cpu["tid"] > 0] if cpu is not None and len(cpu) else None
    if threads is None or not len(threads):
        return pd.DataFrame(columns=cols, index=pd.Index([], name="tid", dtype=np.int64))
    rows = {}
    for tid in np.unique(threads["tid"]):
        mine = np.sort(threads[threads["tid"] == tid], order="time_ns")
        t = mine["time_ns"].astype(np.int64)
        run = mine["run_ns"].astype(np.float64)
        runq = mine["wait_ns"].astype(np.float64)
        d_t = np.diff(t).astype(np.float64)
        d_run, d_runq = np.diff(run), np.diff(runq)
        out = {"cpu_s": (run[-1] - run[0]) / 1e9, "runq_s": (runq[-1] - runq[0]) / 1e9}
        at = t.astype(np.float64)
        inside = {}
        for state in ("hold", "wait"):
            sp = spans[(spans["tid"] == tid) & (spans["state"] == state)]
            s, e = sp["start_ns"].to_numpy(), sp["end_ns"].to_numpy()
            inside[state] = np.diff(coverage(s, e, at)) if len(d_t) else np.zeros(0)
        runnable = np.clip(d_t - inside["wait"], 0, None)  # holding, or running without the GIL
        to_holds = np.divide(inside["hold"], runnable, out=np.zeros_like(d_t), where=runnable > 0)
        waiting_throughout = runnable <= 0.01 * d_t
        out["held_run_s"] = float((d_run * to_holds).sum()) / 1e9
        out["held_runq_s"] = float((d_runq * to_holds).sum()) / 1e9
        out["wait_runq_s"] = float(d_runq[waiting_throughout].sum()) / 1e9
        rows[int(tid)] = out
    df = pd.DataFrame.from_dict(rows, orient="index")[cols]
    df.index.name = "tid"
    return df


def cgroup_throttling(cpu: np.ndarray) -> "Dict[str, float]":
    """Time and periods the process's cgroup was throttled (CPU quota) during
    the trace: ``{"throttled_s", "throttled_periods"}``, zeros if not sampled."""
    rows = cpu[cpu["tid"] == 0] if cpu is not None and len(cpu) else None
    if rows is None or len(rows) < 2:
        return {"throttled_s": 0.0, "throttled_periods": 0}
    rows = np.sort(rows, order="time_ns")
    return {
        "throttled_s": float(int(rows["run_ns"][-1]) - int(rows["run_ns"][0])) / 1e9,
        "throttled_periods": int(rows["wait_ns"][-1]) - int(rows["wait_ns"][0]),
    }


def off_cpu_spans(cpu: np.ndarray, spans: pd.DataFrame, min_share: float = 0.5) -> pd.DataFrame:
    """Where a cpu_state trace shows a thread mostly not running while it
    held the GIL (``held_off_cpu``) or after it was woken to take it
    (``woken_waiting``): the parts of its holds / waits inside sample
    intervals in which at least ``min_share`` of its runnable time was spent
    in a run queue.  Columns: tid, kind, start_ns, end_ns."""
    cols = ["tid", "kind", "start_ns", "end_ns"]
    threads = cpu[cpu["tid"] > 0] if cpu is not None and len(cpu) else None
    if threads is None or not len(threads):
        return pd.DataFrame(columns=cols)
    out = []
    for tid in np.unique(threads["tid"]):
        mine = np.sort(threads[threads["tid"] == tid], order="time_ns")
        t = mine["time_ns"].astype(np.int64)
        d_run, d_runq = np.diff(mine["run_ns"].astype(np.float64)), np.diff(mine["wait_ns"].astype(np.float64))
        busy = d_run + d_runq
        off = np.flatnonzero((busy > 0) & (d_runq >= min_share * np.where(busy > 0, busy, 1)))
        holds = spans[(spans["tid"] == tid) & (spans["state"] == "hold")]
        s, e = holds["start_ns"].to_numpy(), holds["end_ns"].to_numpy()
        for k in off:  # the thread's holds inside each mostly-off-CPU sample interval
            a, b = t[k], t[k + 1]
            lo, hi = np.searchsorted(e, a, side="right"), np.searchsorted(s, b, side="left")
            for i in range(lo, hi):
                x0, x1 = max(s[i], a), min(e[i], b)
                if x1 > x0:
                    out.append((int(tid), "held_off_cpu", int(x0), int(x1)))
        # A waiter is runnable only once woken: its run-queue time in an
        # interval is the end of the wait that ends there (estimated).
        waits = spans[(spans["tid"] == tid) & (spans["state"] == "wait")]
        ends = waits["end_ns"].to_numpy()
        starts = waits["start_ns"].to_numpy()
        k_of = np.searchsorted(t, ends, side="left") - 1
        for st, en, k in zip(starts, ends, k_of):
            if 0 <= k < len(d_runq) and d_runq[k] > 0 and en > st:
                x0 = max(st, en - int(min(d_runq[k], en - st)))
                out.append((int(tid), "woken_waiting", int(x0), int(en)))
    return pd.DataFrame(out, columns=cols)


# Pseudo-files that are not the program's code: frozen modules, and a thread
# with no Python frame (its start or end, "<thread>:0": csrc/locations.c).
NOT_PROGRAM_FILES = ("<frozen", "<thread>")


def hold_programs(spans: pd.DataFrame, library: np.ndarray) -> pd.Series:
    """Per hold of ``spans`` (indexed like its hold rows): the program's line
    its thread was running, for charging a hold that let go in library code
    (``library``: the location ids of library code).  The line recorded at
    the take (the wait before the hold records the innermost frame outside
    the libraries) when it is program code; else -- an uncontended take
    inherits the location of the thread's last release, ``Event.is_set()`` in
    ``while not stop.is_set(): ...`` -- the last program line its thread was
    seen at before the hold (its earlier waits and releases); 0 if none."""
    s = spans.sort_values(["tid", "start_ns"], kind="stable")
    loc = s["location"].to_numpy()
    tid = s["tid"].to_numpy()
    n = len(loc)
    good = (loc != 0) & ~np.isin(loc, library)
    last = np.maximum.accumulate(np.where(good, np.arange(n), -1)) if n else np.zeros(0, np.int64)
    prev = np.r_[-1, last[:-1]] if n else last  # strictly before: a hold's own release is where it let go, not what it ran
    starts = np.flatnonzero(np.r_[True, tid[1:] != tid[:-1]]) if n else np.zeros(0, np.int64)
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    recent = np.where(prev >= first, loc[np.maximum(prev, 0)], 0) if n else np.zeros(0, np.int64)
    # the take's own line: the wait just before the hold, ending where it began
    is_hold = (s["state"] == "hold").to_numpy()
    before = np.r_[False, (tid[1:] == tid[:-1]) & ~is_hold[:-1] & (s["end_ns"].to_numpy()[:-1] == s["start_ns"].to_numpy()[1:])]
    took = np.where(before, np.r_[0, loc[:-1]], 0)
    took_ok = (took != 0) & ~np.isin(took, library)
    prog = np.where(took_ok, took, recent)
    return pd.Series(prog[is_hold].astype(np.int64), index=s.index[is_hold])
