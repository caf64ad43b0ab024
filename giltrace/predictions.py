"""What a finding's advice would do to the waiting threads, predicted from the
trace itself (docs/api.md, "Predictions"; docs/profiling.md has predicted vs
measured on real programs).

Two changes are modelled, each on the waiting threads' takes of the GIL that
the finding counts (a latency finding's wakes, ``Trace.wakes()``; otherwise
the takes that blocked; for ``long_hold_c`` those during the culprit's holds):

- ``switch_interval``: ``sys.setswitchinterval(value_s)``.  A holder that
  answered a drop request promptly (Python code: the eval loop checks for it)
  was asked to let go when a waiter's timed wait ran out; with the new
  interval the request comes ``value_s`` after that waiter began waiting (or
  after the hold began, if later), and is answered as fast as it was.  Each
  such hold loses what lies past that: a waiter's wait shrinks by its overlap
  with those tails.  Holds let go where the holder answers requests late as a
  rule (median over its forced holds there: C code that keeps the GIL) end
  when they end anyway and are not shortened.
- ``remove``: the culprit's holds at ``location`` gone: each wait shrinks by
  its overlap with them.

Approximate: everything else stays where it was in time (no later hold moves
earlier, nobody takes the freed time instead), and the extra switches a
shorter interval costs the CPU-bound threads are not counted; a waiter's own
wake-up (the OS scheduling it once signalled) is kept as measured.

Pure functions of the trace's frames: numpy/pandas and model data only.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from .analysis import NOT_PROGRAM_FILES, hold_programs, occupancy

NEW_SWITCH_INTERVAL_S = 0.001  # what the convoy advice proposes (diagnosis._convoy_advice)
# Where a holder's forced holds answer their drop request within this (median;
# or a tenth of the interval, if larger) it runs Python code, which the eval
# loop lets go at once; slower is C code, which a shorter interval would not hurry.
ANSWERED_NS = 1_000_000
# Findings about threads that wait behind others.  CPU-bound threads taking turns
# (serialised_pool, oversubscription) wait behind themselves: a shorter interval
# only trades their waits for switches, and their code is the work itself.
PREDICTED_KINDS = ("convoy", "long_hold_c")


def for_finding(trace, finding, window: Optional[Tuple[float, float]] = None) -> List[Dict[str, Any]]:
    """The predictions for one finding (``findings[].predictions`` in the JSON).

    ``trace`` is the trace (or ``Trace.window``) the finding was made from;
    ``window`` (seconds since the start of the whole recording, as
    ``Finding.window_s``) limits the waits considered to those that ended
    in it.  Empty when the finding names no waiting thread that took the GIL.
    """
    if not getattr(finding, "problem", False) or finding.kind not in PREDICTED_KINDS:
        return []
    spans = trace.intervals()
    names = {int(t): str(n) for t, n in trace.names.items()}
    holder_tids = _tids_of(names, [n for c in (finding.culprits or [])[:1] for n in c.threads])
    # A pool's threads wait behind each other's holds: holders can be waiters too.
    victims = _victims(finding, names)
    if not victims:  # a finding that names no waiter: everybody but the holders who waited
        waited = spans[(spans["state"] == "wait") & spans["contended"]]["tid"].unique()
        victims = [int(t) for t in waited if int(t) not in holder_tids]
    waits = _takes(trace, spans, victims, window, wakes=getattr(finding, "mode", None) == "latency")
    top = (finding.culprits or [None])[0]
    holds = culprit_holds(trace, spans, top.location, _tids_of(names, top.threads)) if top and top.location != "?" else None
    if finding.kind == "long_hold_c" and holds is not None:  # the finding is about the waits during those holds
        waits = waits[_overlap(holds, waits) > 0]
    if waits.empty:
        return []
    who = [names.get(t, "thread-%d" % t) for t in victims if t in set(waits["tid"].to_numpy().tolist())]
    out: List[Dict[str, Any]] = []
    si_ns = int(trace.switch_interval_ns)
    new_ns = int(NEW_SWITCH_INTERVAL_S * 1e9)
    if si_ns > new_ns and trace.meta.get("gil_kind") != "old":
        new = switch_interval_waits(spans, trace.events, waits, si_ns, new_ns)
        out.append(_prediction({"change": "switch_interval", "value_s": NEW_SWITCH_INTERVAL_S}, who, waits, new))
    if holds is not None and len(holds):
        new = waits["duration_ns"].to_numpy() - _overlap(holds, waits)
        out.append(_prediction({"change": "remove", "location": top.location}, who, waits, new))
    return out


def switch_interval_waits(spans: pd.DataFrame, events: pd.DataFrame, waits: pd.DataFrame, old_ns: int, new_ns: int) -> np.ndarray:
    """Each wait's predicted duration (ns) under a switch interval of ``new_ns``
    instead of ``old_ns`` (module docstring): a hold that answered its first
    drop request would have been asked ``new_ns`` after the requester began
    its timed wait (or after the hold began, if later) and answered as fast;
    it loses what lies past that."""
    holds = spans[spans["state"] == "hold"]
    hs, he = holds["start_ns"].to_numpy(), holds["end_ns"].to_numpy()
    dr = events[events["kind"] == "drop_request"][["time_ns", "tid"]].sort_values("time_ns", kind="stable")
    if dr.empty or not len(holds):
        return waits["duration_ns"].to_numpy().astype(np.int64)
    # when each request's waiter began waiting: its last wait that started before the request
    w = spans[spans["state"] == "wait"][["tid", "start_ns"]].sort_values("start_ns", kind="stable")
    dr = pd.merge_asof(dr, w.rename(columns={"start_ns": "began_ns"}), left_on="time_ns", right_on="began_ns", by="tid")
    drops = dr["time_ns"].to_numpy()
    began = dr["began_ns"].fillna(dr["time_ns"] - old_ns).to_numpy().astype(np.int64)  # unknown: one interval before
    k = np.searchsorted(drops, hs, side="right")
    forced = k < np.searchsorted(drops, he, side="right")  # a drop request came during the hold
    kk = np.minimum(k, len(drops) - 1)
    answer = he - drops[kk]
    # Python code or C code, per (thread, where it let go): Python answers most
    # requests at once (a late answer is a holder preempted on a busy machine,
    # and keeps its delay below); C code that keeps the GIL answers none.
    key = pd.MultiIndex.from_arrays([holds["tid"].to_numpy()[forced], holds["location"].to_numpy()[forced]])
    typical = pd.Series(answer[forced], index=key).groupby(level=[0, 1]).median()
    python = typical <= max(ANSWERED_NS, old_ns // 10)
    answered = np.zeros(len(holds), bool)
    answered[forced] = python.reindex(key).to_numpy()
    new_end = np.maximum(hs, began[kk]) + new_ns + answer
    cut = answered & (new_end < he)
    tail = pd.DataFrame({"start_ns": np.maximum(hs, new_end)[cut], "end_ns": he[cut]})
    return waits["duration_ns"].to_numpy() - _overlap(tail, waits)


def culprit_holds(trace, spans: pd.DataFrame, location: str, holder_tids: Sequence[int]) -> pd.DataFrame:
    """The holds of ``holder_tids`` charged to ``location`` ("file:line") as
    the diagnosis charges them: let go there, or let go in library code
    while the program's line was ``location`` (analysis.hold_programs)."""
    locs = trace.locations
    prefixes = tuple(trace.meta.get("library_prefixes") or ())
    files = locs["file"].astype(str)
    ids = locs.index.to_numpy()[((files + ":" + locs["line"].astype(str)) == location).to_numpy()]
    library = locs.index.to_numpy()[np.array([f.startswith(prefixes) or f.startswith(NOT_PROGRAM_FILES) for f in files], bool)]
    mine = spans[spans["tid"].isin(list(holder_tids))]
    holds = mine[mine["state"] == "hold"]
    program = hold_programs(mine, library).reindex(holds.index).fillna(0).to_numpy()
    own = holds["location"].to_numpy()
    hit = np.isin(own, ids) | (np.isin(own, library) & np.isin(program, ids))
    return holds[hit][["start_ns", "end_ns"]]


def _overlap(segments: pd.DataFrame, waits: pd.DataFrame) -> np.ndarray:
    """Per wait, ns of overlap with ``segments`` (holds are disjoint: one holder at a time)."""
    if segments.empty:
        return np.zeros(len(waits))
    ss, se = segments["start_ns"].to_numpy(), segments["end_ns"].to_numpy()
    return occupancy(ss, se, waits["end_ns"].to_numpy()) - occupancy(ss, se, waits["start_ns"].to_numpy())


def _takes(trace, spans: pd.DataFrame, tids: Sequence[int], window: Optional[Tuple[float, float]], wakes: bool = False) -> pd.DataFrame:
    """The waiting threads' takes the finding counts, ending in ``window``:
    their wakes (``wakes``: a latency finding, Trace.wakes(), takes after a
    release around blocking work), else their waits (takes that blocked)."""
    w = spans[(spans["state"] == "wait") & spans["tid"].isin(list(tids))]
    if wakes:
        wk = trace.wakes()  # time_ns: when it got the GIL back, the end of its wait
        w = w[pd.MultiIndex.from_arrays([w["tid"], w["end_ns"]]).isin(pd.MultiIndex.from_arrays([wk["tid"], wk["time_ns"]]))]
    else:
        w = w[w["contended"]]
    if window is not None:
        base = trace.start_ns - int(round(trace.window_s[0] * 1e9))
        lo, hi = base + int(round(window[0] * 1e9)), base + int(round(window[1] * 1e9))
        w = w[(w["end_ns"] >= lo) & (w["end_ns"] <= hi)]
    return w[["tid", "start_ns", "end_ns", "duration_ns"]]


def _prediction(change: Dict[str, Any], who: List[str], waits: pd.DataFrame, new_ns: np.ndarray) -> Dict[str, Any]:
    now = waits["duration_ns"].to_numpy().astype(np.float64)
    new = np.clip(np.asarray(new_ns, np.float64), 0, None)
    out = dict(change)
    out.update(
        {
            "threads": list(who),
            "waits": int(len(now)),
            "wait_p50_ms": round(float(np.percentile(new, 50)) / 1e6, 4),
            "wait_p99_ms": round(float(np.percentile(new, 99)) / 1e6, 4),
            "now_p50_ms": round(float(np.percentile(now, 50)) / 1e6, 4),
            "now_p99_ms": round(float(np.percentile(now, 99)) / 1e6, 4),
        }
    )
    return out


def _victims(finding, names: Dict[int, str]) -> List[int]:
    tids = [int(t) for t in (getattr(finding, "tids", None) or [])]
    by_name = _tids_of(names, finding.threads or [])
    return list(dict.fromkeys(by_name + [t for t in tids if t not in by_name]))


def _tids_of(names: Dict[int, str], wanted: Sequence[str]) -> List[int]:
    want = set(wanted)
    return [t for t, n in names.items() if n in want]


def advice_effect(finding, advice: str) -> str:
    """The predicted effect to print after an advice line ('' if none):
    ' -> predicted wait p50 1.0 ms (p99 12 ms)'."""
    for p in getattr(finding, "predictions", None) or []:
        if (p["change"] == "switch_interval" and "switch interval" in advice.lower() and "not help" not in advice) or (
            p["change"] == "remove" and p["location"].rsplit("/", 1)[-1] in advice
        ):
            return " -> predicted wait p50 %s ms (p99 %s ms)" % (_ms(p["wait_p50_ms"]), _ms(p["wait_p99_ms"]))
    return ""


def _ms(v: float) -> str:
    return "%.0f" % v if v >= 10 else "%.1f" % v if v >= 1 else "%.2g" % v
