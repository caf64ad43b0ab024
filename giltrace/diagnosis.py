"""Why do threads starve?  Plain facts from a trace: who waits to take the
GIL back after brief releases (I/O), how long each reacquisition takes
compared with the switch interval, which threads held the GIL meanwhile and
where in their code, who held it far too long -- and what to do about it,
with the numbers behind each suggestion.

Pure functions of a Trace; ``render/text.py`` prints the result.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np
import pandas as pd

from .analysis import coverage

# A thread starves when, of the time it spends with the GIL (waiting for it or
# holding it), at least STARVING_WAIT_SHARE is waiting, over at least
# STARVING_MIN_WAITS contended waits whose median is a sizeable part of a
# switch interval, and it mostly lets the GIL go by itself (I/O, sleep) rather
# than being forced to (CPU-bound threads taking turns are not starving).
STARVING_WAIT_SHARE = 0.5
STARVING_MIN_WAITS = 5
STARVING_MIN_P50 = 0.2  # of the switch interval
STARVING_MAX_FORCED = 0.5  # share of its releases forced by drop requests
# A long hold: another thread waited this many switch intervals during it ("far
# past the switch interval"; 2 happens now and then when a vCPU is preempted).
LONG_HOLD_INTERVALS = 4


@dataclass
class Diagnosis:
    switch_interval_s: float
    duration_s: float
    threads: pd.DataFrame        # per thread: time split and wait-latency percentiles
    starving: pd.DataFrame       # threads that starve, with their reacquisition latency
    culprits: pd.DataFrame       # waiter, holder, blamed_s, share
    culprit_sites: pd.DataFrame  # waiter, holder, location, blamed_s, share
    waiting_sites: pd.DataFrame  # waiter, location (where it released the GIL before waiting), wait_s, share, waits
    long_holds: pd.DataFrame     # holder, start_s, duration_ms, waited_ms, drop_requests, location
    suggestions: List[str] = field(default_factory=list)


def _percentiles(waits: pd.DataFrame) -> pd.DataFrame:
    g = waits.groupby("tid")["wait_ns"]
    return pd.DataFrame({
        "wait_p50_ms": g.quantile(0.5) / 1e6,
        "wait_p99_ms": g.quantile(0.99) / 1e6,
        "wait_max_ms": g.max() / 1e6,
    })


def thread_latency(trace) -> pd.DataFrame:
    th = trace.threads()
    ev = trace.events
    contended = ev[(ev["kind"] == "acquire") & ev["contended"]]
    out = pd.DataFrame({
        "name": th["name"],
        "hold_s": th["hold_s"],
        "wait_s": th["wait_s"],
        "released_s": th["released_s"],
        "wait_share": th["wait_share"],
        "acquires": th["acquires"],
        "waits": th["waits"],
    })
    out = out.join(_percentiles(contended)).fillna({"wait_p50_ms": 0.0, "wait_p99_ms": 0.0, "wait_max_ms": 0.0})
    out["waits_per_s"] = np.where(th["active_s"] > 0, th["waits"] / th["active_s"].where(th["active_s"] > 0, 1), 0.0)
    spans = trace.intervals()
    out["release_p50_ms"] = _release_gaps(spans).reindex(out.index).fillna(0.0)
    out["forced_share"] = _forced_share(spans, ev).reindex(out.index).fillna(0.0)
    return out


def _forced_share(spans: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Per thread, the share of its holds that ended because another thread
    asked (a drop request was raised during the hold): a CPU-bound thread's
    releases are forced, an I/O thread's are its own."""
    holds = spans[spans["state"] == "hold"]
    drops = np.sort(events[events["kind"] == "drop_request"]["time_ns"].to_numpy())
    # (start, end]: a request stamped at the instant a hold begins was meant for the previous holder
    n = np.searchsorted(drops, holds["end_ns"].to_numpy(), side="right") - np.searchsorted(drops, holds["start_ns"].to_numpy(), side="right")
    return pd.Series(n > 0, index=holds.index).groupby(holds["tid"]).mean()


def _release_gaps(spans: pd.DataFrame) -> pd.Series:
    """Median time each thread ran without the GIL between a release and its next take (ms)."""
    s = spans.sort_values(["tid", "start_ns"], kind="stable")
    nxt_start = s.groupby("tid")["start_ns"].shift(-1)
    nxt_state = s.groupby("tid")["state"].shift(-1)
    gaps = s[(s["state"] == "hold") & (nxt_state == "wait")]
    gap = (nxt_start[gaps.index] - gaps["end_ns"]).clip(lower=0)
    return gap.groupby(gaps["tid"]).median() / 1e6


def diagnose(trace, top: int = 5) -> Diagnosis:
    si = float(trace.meta.get("switch_interval_s", 0.005))
    lat = thread_latency(trace)
    gil_time = lat["wait_s"] + lat["hold_s"]
    lat["wait_vs_gil_time"] = np.where(gil_time > 0, lat["wait_s"] / gil_time.where(gil_time > 0, 1), 0.0)
    starving = lat[(lat["wait_vs_gil_time"] >= STARVING_WAIT_SHARE) & (lat["waits"] >= STARVING_MIN_WAITS)
                   & (lat["wait_p50_ms"] >= STARVING_MIN_P50 * 1e3 * si) & (lat["forced_share"] < STARVING_MAX_FORCED)].copy()
    starving["p50_vs_switch_interval"] = starving["wait_p50_ms"] / (1e3 * si)
    starving = starving.sort_values("wait_s", ascending=False)

    spans = trace.intervals()
    blame = trace.blame()
    names = trace.names
    culprit_rows, site_rows, waiting_rows = [], [], []
    holds = spans[spans["state"] == "hold"]
    for waiter in starving.index:
        total = float(blame.loc[waiter].sum()) if waiter in blame.index else 0.0
        if total <= 0:
            continue
        for holder, secs in blame.loc[waiter].sort_values(ascending=False).items():
            if secs <= 0.001 * total:
                continue
            culprit_rows.append({"waiter": names.get(int(waiter), str(waiter)), "waiter_tid": int(waiter),
                                 "holder": "nobody (hand-off)" if holder == "nobody" else names.get(int(holder), str(holder)),
                                 "holder_tid": -1 if holder == "nobody" else int(holder), "blamed_s": float(secs), "share": float(secs) / total})
        # Where the waiter was: the line that released the GIL (I/O, sleep) before each wait.
        mine = spans[(spans["state"] == "wait") & (spans["tid"] == waiter)]
        labels = mine["location"].map(_labeller(trace))  # several offsets of one line are one site
        own = mine["duration_ns"].groupby(labels).agg(["sum", "size"]).sort_values("sum", ascending=False).head(top)
        for label, r in own.iterrows():
            if r["sum"] <= 0.001 * total * 1e9:  # below 0.1 % of the waiting: noise
                continue
            waiting_rows.append({"waiter": names.get(int(waiter), str(waiter)), "location": label,
                                 "wait_s": r["sum"] / 1e9, "share": r["sum"] / 1e9 / total, "waits": int(r["size"])})
        # Which code the holders were running: each hold is charged with the
        # part of this waiter's waiting it overlapped, at the hold's release site.
        w = spans[(spans["state"] == "wait") & (spans["tid"] == waiter)]
        others = holds[holds["tid"] != waiter]
        ws, we = w["start_ns"].to_numpy(), w["end_ns"].to_numpy()
        overlap = coverage(ws, we, others["end_ns"].to_numpy()) - coverage(ws, we, others["start_ns"].to_numpy())
        per_site = pd.DataFrame({"holder_tid": others["tid"].to_numpy(),
                                 "location": others["location"].map(_labeller(trace)).to_numpy(), "blamed_ns": overlap})
        per_site = per_site.groupby(["holder_tid", "location"])["blamed_ns"].sum().sort_values(ascending=False).head(top)
        for (holder, label), ns in per_site.items():
            if ns <= 0.001 * total * 1e9:  # below 0.1 % of the waiting: noise
                continue
            site_rows.append({"waiter": names.get(int(waiter), str(waiter)), "holder": names.get(int(holder), str(holder)),
                              "location": label, "blamed_s": ns / 1e9, "share": ns / 1e9 / total})
    culprits = pd.DataFrame(culprit_rows, columns=["waiter", "waiter_tid", "holder", "holder_tid", "blamed_s", "share"])
    sites = pd.DataFrame(site_rows, columns=["waiter", "holder", "location", "blamed_s", "share"])
    waiting_sites = pd.DataFrame(waiting_rows, columns=["waiter", "location", "wait_s", "share", "waits"])

    lh = trace.long_holds(factor=LONG_HOLD_INTERVALS)
    long_holds = pd.DataFrame({
        "holder": [names.get(int(t), str(t)) for t in lh["tid"]],
        "start_s": (lh["start_ns"] - trace.start_ns) / 1e9,
        "duration_ms": lh["duration_ns"] / 1e6,
        "waited_ms": lh["waited_ns"] / 1e6,
        "drop_requests": lh["drop_requests"],
        "location": [trace.location_label(loc) for loc in lh["location"]],
    }).sort_values("waited_ms", ascending=False).reset_index(drop=True)

    d = Diagnosis(si, float(trace.meta["duration_s"]), lat, starving, culprits, sites, waiting_sites, long_holds)
    d.suggestions = suggest(d)
    return d


def _labeller(trace):
    cache = {}

    def label(loc: int) -> str:
        if loc not in cache:
            cache[loc] = trace.location_label(loc)
        return cache[loc]

    return label


def suggest(d: Diagnosis) -> List[str]:
    """Advice tied to the measured numbers; nothing without evidence."""
    out: List[str] = []
    given = set()  # each remedy once, after the first thread it would help
    si_ms = 1e3 * d.switch_interval_s
    for tid, s in d.starving.iterrows():
        mine = d.culprits[d.culprits["waiter_tid"] == tid]
        real = mine[mine["holder_tid"] >= 0]
        if real.empty:
            continue
        top = real.iloc[0]
        holder = d.threads.loc[top["holder_tid"]] if top["holder_tid"] in d.threads.index else None
        site = d.culprit_sites[(d.culprit_sites["waiter"] == s["name"]) & (d.culprit_sites["holder"] == top["holder"])]
        where = " at %s" % site.iloc[0]["location"] if len(site) and site.iloc[0]["location"] != "?" else ""
        cpu_bound = holder is not None and holder["hold_s"] > 0 and holder["released_s"] < 0.1 * holder["hold_s"]
        own = d.waiting_sites[d.waiting_sites["waiter"] == s["name"]]
        after = ""
        if len(own) and own.iloc[0]["location"] != "?":
            after = " (%.0f%% of its waiting follows %s)" % (100 * own.iloc[0]["share"], own.iloc[0]["location"])
        out.append(
            "%s waits a median %.2f ms (p99 %.2f ms) to take the GIL back after each release%s, %.1fx the %.1f ms switch interval; "
            "%.0f%% of that waiting is behind %s%s." % (s["name"], s["wait_p50_ms"], s["wait_p99_ms"], after, s["p50_vs_switch_interval"],
                                                       si_ms, 100 * top["share"], top["holder"], where))
        if cpu_bound and ("process", top["holder"]) not in given:
            given.add(("process", top["holder"]))
            out.append(
                "  -> %s is CPU-bound in Python (held the GIL %.2f s, ran without it %.2f s): run that work in a process "
                "(multiprocessing / concurrent.futures.ProcessPoolExecutor) so it stops competing for this GIL." % (top["holder"], holder["hold_s"], holder["released_s"]))
        if s["wait_p50_ms"] >= 0.5 * si_ms and "interval" not in given:
            given.add("interval")
            out.append(
                "  -> or lower the switch interval: sys.setswitchinterval(0.001) bounds each forced hand-off at about 1 ms instead of "
                "the %.1f ms measured (at the cost of more switches for the CPU-bound threads)." % s["wait_p50_ms"])
    if len(d.long_holds):
        lh = d.long_holds.iloc[0]
        out.append(
            "%s kept the GIL %.1f ms in one go while another thread waited %.1f ms for it (%d such holds, each over %d switch intervals "
            "of waiting), letting go at %s: code that does not check for drop requests -- if it is C code, release the GIL around it "
            "(Py_BEGIN_ALLOW_THREADS / nogil)." % (lh["holder"], lh["duration_ms"], lh["waited_ms"], len(d.long_holds), LONG_HOLD_INTERVALS, lh["location"]))
    if not out:
        worst = d.threads.sort_values("wait_share", ascending=False).head(1)
        if len(worst) and worst["wait_share"].iloc[0] > 0:
            r = worst.iloc[0]
            out.append("No thread starves: the most waiting is %s with %.1f%% of its time (median wait %.2f ms)."
                       % (r["name"], 100 * r["wait_share"], r["wait_p50_ms"]))
        else:
            out.append("No GIL contention recorded.")
    return out
