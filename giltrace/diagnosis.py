"""What went wrong with the GIL, told as findings: who waited, when, behind
which code (summed over every thread that ran it), grouped by thread pool,
and what to do about it -- each with the measured facts behind it.

Kinds of finding (criteria and numbers: docs/api.md, "Diagnosis"):

- ``convoy``: threads that give the GIL up by themselves (I/O, sleep) and
  wait a sizeable part of their time to take it back (starving I/O threads).
- ``serialised_pool``: several threads of one group running Python, taking
  turns on the GIL: the pool is no faster than one thread.
- ``long_hold_c``: a holder that keeps the GIL far past a drop request without
  answering it -- C code that never reaches the eval loop's check.
- ``oversubscription``: CPU-bound threads of different groups sharing one GIL.
- ``idle``: threads whose waiting looks large beside their little GIL time but
  costs nothing (rare waits, or waits after blocking on other threads).  Not a
  problem; reported so that nobody chases them.

Pure functions of a Trace (or of a ``Trace.window``); the whole trace and
each episode (episodes.py) are diagnosed alike.  ``render/text.py`` prints
the result, ``Diagnosis.to_dict()`` is the JSON of ``giltrace summary --format json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from . import predictions
from . import wakes as wk
from .analysis import NOT_PROGRAM_FILES, hold_programs, occupancy
from .groups import thread_groups

# A thread's role: "cpu" when most of its holds end because another thread
# asked for the GIL (it only lets go when forced) or it holds the GIL half its
# life; otherwise "io" (it lets go by itself: I/O, sleep, C code without the GIL).
CPU_MIN_FORCED_SHARE = 0.5
CPU_MIN_HOLD_SHARE = 0.5
# convoy: I/O threads (a group counts as one) waiting at least this share of
# their time -- not counting the time they sat parked waiting for work (a
# server's worker on its task queue) -- over enough waits, each a sizeable
# part of a switch interval.
CONVOY_MIN_BUSY_SHARE = 0.2
CONVOY_MIN_WAITS = 5
CONVOY_MIN_WAITS_PER_S = 5.0  # over the diagnosed window
# The mean, not the median: a server thread whose waits are half quick
# hand-offs and half whole switch intervals is convoyed all the same.
CONVOY_MIN_MEAN_WAIT = 0.2  # of the switch interval
CONVOY_MIN_WAIT_S = 0.05  # in all: a few ms of waiting is nobody's problem, however it is spread
# Waiting that follows a block on another thread (join, Condition/Event wait,
# futures, queues) is a coordinator waking up, not a starving thread.
SYNC_MAX_SHARE = 0.8
SYNC_FILES = wk.SYNC_FILES
# serialised_pool: at least 2 CPU-bound threads of one group, waiting this
# share of their time with the GIL.
POOL_MIN_WAIT_SHARE = 0.3
# oversubscription: CPU-bound threads of different groups, each waiting this share.
OVERSUB_MIN_WAIT_SHARE = 0.3
# A long hold: another thread waited this many switch intervals during it
# ("far past the switch interval"; 2 happens now and then when a vCPU is preempted).
LONG_HOLD_INTERVALS = 4
# ... held in C: the first drop request raised during it went unanswered for
# this many intervals (the eval loop answers one within microseconds).
C_UNANSWERED_INTERVALS = 2
# idle threads reported (not a problem) only when their waiting looks large
# beside their GIL time, the way the old verdict misread them.
IDLE_REPORT_WAIT_VS_GIL = 0.5
TOP_CULPRITS = 5
MIN_CULPRIT_SHARE = 0.01


# CPU state (cpu_state traces): holders off-CPU for at least this much of
# everybody's waiting, and this long, make a "cpu_starved" finding.
CPU_STARVED_SHARE = 0.1
CPU_STARVED_MIN_S = 0.010
STARVED_VICTIM_SHARE = 0.05  # of all the waiting: a thread named as a victim of cpu_starved
C_MIN_SHARE_OF_FORCED = 0.5  # "C code": at least this share of the forced holds ending at a line went unanswered
CPU_OFF_HOLD_SHARE = 0.25  # a holder off-CPU this much of its holds: its long holds are not "C code"


@dataclass
class Culprit:
    """Code that held the GIL while the finding's threads waited."""

    location: str  # "file:line" ("?" if unknown)
    function: str
    share: float  # of all the finding's waiting
    wait_s: float  # thread-seconds of waiting it caused
    threads: List[str]  # the holders that ran it
    group: Optional[str]  # their group, if they all belong to one
    label: str = ""  # "file:line (function)", paths shortened
    library_location: Optional[str] = None  # where in library code the holders let go, when that is not the program's line

    def to_dict(self) -> Dict[str, Any]:
        return {
            "location": self.location,
            "function": self.function,
            "share": round(self.share, 4),
            "wait_s": round(self.wait_s, 6),
            "threads": list(self.threads),
            "group": self.group,
            "library_location": self.library_location,
        }


@dataclass
class Finding:
    kind: str
    problem: bool
    threads: List[str]
    group: Optional[str]
    window_s: Tuple[float, float]  # since the start of the whole trace
    wait_s: float  # thread-seconds of waiting the finding is about
    summary: str  # one sentence with the numbers
    culprits: List[Culprit] = field(default_factory=list)
    waiting_at: List[Dict[str, Any]] = field(default_factory=list)  # where the waiters released the GIL before waiting
    advice: List[str] = field(default_factory=list)
    evidence: Dict[str, Any] = field(default_factory=dict)
    tids: List[int] = field(default_factory=list)
    episode: Optional[int] = None  # index into Diagnosis.episodes, None: the whole trace
    mode: Optional[str] = None  # convoy: "share" (of its time) or "latency" (per wake)
    predictions: List[Dict[str, Any]] = field(default_factory=list)  # the advice's predicted effect (predictions.py)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "kind": self.kind,
            "problem": self.problem,
            "threads": list(self.threads),
            "group": self.group,
            "window_s": [round(self.window_s[0], 6), round(self.window_s[1], 6)],
            "wait_s": round(self.wait_s, 6),
            "summary": self.summary,
            "culprits": [c.to_dict() for c in self.culprits],
            "waiting_at": self.waiting_at,
            "advice": list(self.advice),
            "evidence": self.evidence,
            "episode": self.episode,
            "mode": self.mode,
            "predictions": list(self.predictions),
        }


@dataclass
class EpisodeDiagnosis:
    window_s: Tuple[float, float]
    waiting_s: float  # thread-seconds of contended waiting in it
    level: float  # threads waiting on average
    baseline: float  # the calm's level
    findings: List[Finding]
    late: List[str] = field(default_factory=list)  # threads whose wake latency stood far above their calm in it

    def to_dict(self) -> Dict[str, Any]:
        return {
            "window_s": [round(self.window_s[0], 6), round(self.window_s[1], 6)],
            "waiting_s": round(self.waiting_s, 6),
            "level": round(self.level, 4),
            "baseline": round(self.baseline, 4),
            "late_threads": list(self.late),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class Diagnosis:
    switch_interval_s: float
    duration_s: float
    window_s: Tuple[float, float]
    threads: pd.DataFrame  # per thread: time split, waits, latency percentiles, group, role
    groups: pd.DataFrame  # per thread group: the same, summed
    findings: List[Finding]  # the whole trace's latency convoys, episodes', the whole trace's not said by one; problems first
    episodes: List[EpisodeDiagnosis]
    trace_findings: List[Finding]  # the whole window's own findings
    # Frames of the whole window, for notebooks and the HTML report:
    starving: pd.DataFrame  # threads in convoy findings, with their reacquisition latency
    culprits: pd.DataFrame  # waiter (thread or group), holder, blamed_s, share
    culprit_sites: pd.DataFrame  # waiter, holder, location, blamed_s, share
    waiting_sites: pd.DataFrame  # waiter, location, wait_s, share, waits (contended)
    long_holds: pd.DataFrame  # holder, start_s, duration_ms, waited_ms, drop_requests, unanswered_ms, in_c, location
    suggestions: List[str] = field(default_factory=list)
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def problems(self) -> List[Finding]:
        return [f for f in self.findings if f.problem]

    def to_dict(self) -> Dict[str, Any]:
        """The documented JSON structure (docs/api.md, "Diagnosis as JSON")."""
        th = self.threads
        threads = [
            {
                "name": str(r["name"]),
                "tid": int(tid),
                "group": r["group"],
                "role": r["role"],
                "wait_s": round(float(r["wait_s"]), 6),
                "hold_s": round(float(r["hold_s"]), 6),
                "released_s": round(float(r["released_s"]), 6),
                "active_s": round(float(r["active_s"]), 6),
                "wait_share": round(float(r["wait_share"]), 4),
                "waits": int(r["waits"]),
                "uncontended": int(r["uncontended"]),
                "waits_per_s": round(float(r["waits_per_s"]), 2),
                "wait_p50_ms": round(float(r["wait_p50_ms"]), 4),
                "wait_p99_ms": round(float(r["wait_p99_ms"]), 4),
                "wait_max_ms": round(float(r["wait_max_ms"]), 4),
                "wake": wk.as_json(r),
            }
            for tid, r in th.iterrows()
        ]
        groups = [
            {
                "group": str(g),
                "threads": int(r["threads"]),
                "wait_s": round(float(r["wait_s"]), 6),
                "hold_s": round(float(r["hold_s"]), 6),
                "waits": int(r["waits"]),
                "wait_p50_ms": round(float(r["wait_p50_ms"]), 4),
                "wait_p99_ms": round(float(r["wait_p99_ms"]), 4),
                "wake": wk.as_json(r),
            }
            for g, r in self.groups.iterrows()
        ]
        return strict_json(
            {
                "schema": SCHEMA,
                "trace": self.meta.get("path"),
                "python": self.meta.get("python_version"),
                "switch_interval_s": self.switch_interval_s,
                "duration_s": round(self.duration_s, 6),
                "window_s": [round(self.window_s[0], 6), round(self.window_s[1], 6)],
                "findings": [f.to_dict() for f in self.findings],
                "episodes": [e.to_dict() for e in self.episodes],
                "threads": threads,
                "groups": groups,
            }
        )

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]


SCHEMA = "giltrace.diagnosis/1"


def strict_json(v: Any) -> Any:
    """``v`` with every NaN / infinity (pandas' missing value) as None: JSON
    has no NaN, and the schema says null."""
    if isinstance(v, dict):
        return {k: strict_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [strict_json(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


# ---------------------------------------------------------------- per thread


def _percentiles(waits: pd.DataFrame) -> pd.DataFrame:
    g = waits.groupby("tid")["wait_ns"]
    return pd.DataFrame(
        {
            "wait_p50_ms": g.quantile(0.5) / 1e6,
            "wait_p99_ms": g.quantile(0.99) / 1e6,
            "wait_max_ms": g.max() / 1e6,
        }
    )


def thread_latency(trace) -> pd.DataFrame:
    """Per thread: time split, waits (takes that blocked) and uncontended takes,
    wait percentiles over the waits, group, role and how its waits began."""
    th = trace.threads()
    ev = trace.events
    contended = ev[(ev["kind"] == "acquire") & ev["contended"]]
    out = pd.DataFrame(
        {
            "name": th["name"],
            "hold_s": th["hold_s"],
            "wait_s": th["wait_s"],
            "released_s": th["released_s"],
            "active_s": th["active_s"],
            "wait_share": th["wait_share"],
            "acquires": th["acquires"],
            "waits": th["waits"],
            "uncontended": th["uncontended"],
        }
    )
    out = out.join(_percentiles(contended)).fillna({"wait_p50_ms": 0.0, "wait_p99_ms": 0.0, "wait_max_ms": 0.0})
    out["waits_per_s"] = np.where(th["active_s"] > 0, th["waits"] / th["active_s"].where(th["active_s"] > 0, 1), 0.0)
    spans = trace.intervals()
    out["release_p50_ms"] = _release_gaps(spans).reindex(out.index).fillna(0.0)
    out["forced_share"] = _forced_share(spans, ev).reindex(out.index).fillna(0.0)
    gil_time = out["wait_s"] + out["hold_s"]
    out["wait_vs_gil_time"] = np.where(gil_time > 0, out["wait_s"] / gil_time.where(gil_time > 0, 1), 0.0)
    groups = thread_groups({int(t): str(n) for t, n in out["name"].items()})
    out["group"] = [groups.get(int(t)) for t in out.index]
    cpu = (out["forced_share"] >= CPU_MIN_FORCED_SHARE) | (
        out["hold_s"] >= CPU_MIN_HOLD_SHARE * out["active_s"].where(out["active_s"] > 0, np.inf)
    )
    out["role"] = np.where(cpu, "cpu", "io")
    out["sync_share"] = _sync_share(trace, spans).reindex(out.index).fillna(0.0)
    out["parked_s"] = _parked(trace, spans).reindex(out.index).fillna(0.0)
    for col in wk.STAT_COLUMNS:  # wake latency (wakes.py)
        out[col] = th[col]
    cs = trace.cpu_state()
    if len(cs):  # cpu_state traces: whether holders were running (docs/how-it-works.md, "CPU state")
        for col in ("cpu_s", "runq_s", "held_run_s", "held_runq_s", "wait_runq_s"):
            out[col] = cs[col].reindex(out.index).fillna(0.0)
    return out


def _parked(trace, spans: pd.DataFrame) -> pd.Series:
    """Per thread, seconds spent without the GIL after letting it go inside a
    block on other threads (threading, queue, concurrent.futures, a subprocess): parked
    waiting for work, not doing any."""
    s = spans.sort_values(["tid", "start_ns"], kind="stable")
    nxt_start = s.groupby("tid")["start_ns"].shift(-1)
    nxt_state = s.groupby("tid")["state"].shift(-1)
    gaps = s[(s["state"] == "hold") & (nxt_state == "wait")]
    if gaps.empty:
        return pd.Series(dtype=float)
    files = trace._raw.locations
    uniq, inverse = np.unique(gaps["location"].to_numpy(), return_inverse=True)
    sync = np.array([bool(SYNC_FILES.search(str(files.get(int(u), ("",))[0]))) for u in uniq], bool)[inverse]
    gap = (nxt_start[gaps.index] - gaps["end_ns"]).clip(lower=0).to_numpy() / 1e9
    return pd.Series(np.where(sync, gap, 0.0), index=gaps.index).groupby(gaps["tid"]).sum()


def group_table(trace, lat: pd.DataFrame) -> pd.DataFrame:
    """One row per thread group (docs/api.md): threads, the time split summed,
    waits and uncontended takes, waits per second of the window, and wait
    percentiles over all the group's waits."""
    ev = trace.events
    contended = ev[(ev["kind"] == "acquire") & ev["contended"]]
    span_s = max(float(trace.meta["duration_s"]), 1e-9)
    woke, take = trace.wakes(), wk.take_cost_ns(ev)
    rows = []
    # astype(bool): an empty object-dtype mask would select columns, not rows (a trace without events)
    for group, g in lat[lat["group"].map(lambda v: isinstance(v, str)).astype(bool)].groupby("group"):
        w = contended[contended["tid"].isin(g.index)]["wait_ns"] / 1e6
        life = float(g["active_s"].sum())
        rows.append(
            {
                "group": group,
                "threads": len(g),
                "hold_s": g["hold_s"].sum(),
                "wait_s": g["wait_s"].sum(),
                "released_s": g["released_s"].sum(),
                "active_s": life,
                "wait_share": float(g["wait_s"].sum()) / life if life > 0 else 0.0,
                "acquires": int(g["acquires"].sum()),
                "waits": int(g["waits"].sum()),
                "uncontended": int(g["uncontended"].sum()),
                "waits_per_s": float(g["waits"].sum()) / span_s,
                "wait_p50_ms": float(w.median()) if len(w) else 0.0,
                "wait_p99_ms": float(w.quantile(0.99)) if len(w) else 0.0,
                "wait_max_ms": float(w.max()) if len(w) else 0.0,
                **wk.stats(woke[woke["tid"].isin(g.index)], take),
            }
        )
    cols = [
        "threads",
        "hold_s",
        "wait_s",
        "released_s",
        "active_s",
        "wait_share",
        "acquires",
        "waits",
        "uncontended",
        "waits_per_s",
        "wait_p50_ms",
        "wait_p99_ms",
        "wait_max_ms",
    ] + wk.STAT_COLUMNS
    return pd.DataFrame(rows, columns=["group"] + cols).set_index("group")


def _forced_share(spans: pd.DataFrame, events: pd.DataFrame) -> pd.Series:
    """Per thread, the share of its holds that ended because another thread
    asked (a drop request was raised during the hold): a CPU-bound thread's
    releases are forced, an I/O thread's are its own."""
    holds = spans[spans["state"] == "hold"]
    drops = np.sort(events[events["kind"] == "drop_request"]["time_ns"].to_numpy())
    # (start, end]: a request stamped at the instant a hold begins was meant for the previous holder
    n = np.searchsorted(drops, holds["end_ns"].to_numpy(), side="right") - np.searchsorted(
        drops, holds["start_ns"].to_numpy(), side="right"
    )
    return pd.Series(n > 0, index=holds.index).groupby(holds["tid"]).mean()


def _release_gaps(spans: pd.DataFrame) -> pd.Series:
    """Median time each thread ran without the GIL between a release and its next take (ms)."""
    s = spans.sort_values(["tid", "start_ns"], kind="stable")
    nxt_start = s.groupby("tid")["start_ns"].shift(-1)
    nxt_state = s.groupby("tid")["state"].shift(-1)
    gaps = s[(s["state"] == "hold") & (nxt_state == "wait")]
    gap = (nxt_start[gaps.index] - gaps["end_ns"]).clip(lower=0)
    return gap.groupby(gaps["tid"]).median() / 1e6


def released_at(spans: pd.DataFrame) -> pd.Series:
    """For each wait interval, where its thread last let the GIL go (the
    location of its previous hold: the innermost frame, library code
    included); 0 if unknown.  Indexed like ``spans``' wait rows."""
    s = spans.sort_values(["tid", "start_ns"], kind="stable")
    loc = s["location"].where(s["state"] == "hold")
    prev = loc.groupby(s["tid"]).shift(1)
    prev = prev.groupby(s["tid"]).ffill()
    waits = s["state"] == "wait"
    return prev[waits].fillna(0).astype(np.int64)


def _sync_share(trace, spans: pd.DataFrame) -> pd.Series:
    """Per thread, the share of its contended waiting that followed a block on
    another thread (threading, queue, concurrent.futures, a subprocess): waking up from a
    join or a Condition.wait."""
    waits = spans[(spans["state"] == "wait") & spans["contended"]]
    if waits.empty:
        return pd.Series(dtype=float)
    rel = released_at(spans).reindex(waits.index).fillna(0).astype(np.int64).to_numpy()
    files = trace._raw.locations
    uniq, inverse = np.unique(rel, return_inverse=True)  # one regex per location, not per wait
    is_sync = np.array([bool(SYNC_FILES.search(str(files.get(int(u), ("",))[0]))) for u in uniq], bool)[inverse]
    d = waits["duration_ns"].to_numpy().astype(float)
    # over the waits whose release is known: a window's first wait has none before it
    tot = pd.Series(np.where(rel != 0, d, 0.0), index=waits.index).groupby(waits["tid"]).sum()
    syn = pd.Series(np.where(is_sync, d, 0.0), index=waits.index).groupby(waits["tid"]).sum()
    return (syn / tot.where(tot > 0, 1)).fillna(0.0)


# ---------------------------------------------------------------- locations


def short_path(path: str, program_dir: str = "") -> str:
    """A file path for people: without the interpreter's and site-packages'
    prefixes, and relative to the traced program's directory when under it
    (the JSON keeps full paths)."""
    for marker in ("/site-packages/", "/dist-packages/"):
        if marker in path:
            return path.split(marker, 1)[1]
    m = re.search(r"/lib/python\d+\.\d+/(.*)$", path)
    if m:
        return m.group(1)
    if program_dir and path.startswith(program_dir + "/"):
        return path[len(program_dir) + 1 :]
    return path


class _Locations:
    """Labels of location ids, cached."""

    def __init__(self, trace):
        self._locs = trace._raw.locations
        self._cache: Dict[int, Tuple[str, str, str, str]] = {}
        self._prefixes = tuple(trace.meta.get("library_prefixes") or ())
        self._library: Dict[int, bool] = {}
        argv = trace.meta.get("argv") or [""]
        script = str(argv[0]) if argv else ""
        self._program_dir = script.rsplit("/", 1)[0] if script.startswith("/") else ""

    def is_library(self, loc: int) -> bool:
        """Whether a location is in the standard library, site-packages or giltrace (meta["library_prefixes"])."""
        loc = int(loc)
        if loc not in self._library:
            file = self.get(loc)[3]
            self._library[loc] = bool(file) and (file.startswith(self._prefixes) or file.startswith(NOT_PROGRAM_FILES))
        return self._library[loc]

    def library_ids(self) -> np.ndarray:
        """The location ids in library code (is_library)."""
        return np.array([k for k in self._locs if self.is_library(k)], np.int64)

    def get(self, loc: int) -> Tuple[str, str, str, str]:
        """(file:line, function, short label, file) for a location id."""
        loc = int(loc)
        if loc not in self._cache:
            v = self._locs.get(loc)
            if v:
                self._cache[loc] = (
                    "%s:%d" % (v[0], v[2]),
                    str(v[1]),
                    "%s:%d (%s)" % (short_path(v[0], self._program_dir), v[2], v[1]),
                    str(v[0]),
                )
            else:
                self._cache[loc] = ("?", "?", "?", "")
        return self._cache[loc]


# ---------------------------------------------------------------- blame by code


def blame_by_code(
    spans: pd.DataFrame, waiter_tids: Sequence[int], waits: Optional[pd.DataFrame] = None, locs: Optional["_Locations"] = None
) -> Tuple[pd.DataFrame, float]:
    """Each hold charged with the waiting of ``waiter_tids`` it overlapped (a
    hold overlapping two waiting threads counts twice: it made both wait),
    summed per (holder tid, location, program location).  The program
    location is where the holder's own code was when it took the GIL for
    that hold (the wait before it records the innermost frame outside the
    libraries).  Returns (frame with holder_tid, location, program,
    blamed_ns; total waiting ns of the waiters).  ``waits``: only these of
    their waits (start_ns, end_ns, duration_ns rows: a latency finding's wakes).
    With ``locs``, a hold whose take knew no program line (an uncontended
    take inherits the last release's, library code for a loop that checks
    ``Event.is_set()``) gets the holder's last program line seen before it."""
    if waits is None:
        waits = spans[(spans["state"] == "wait") & spans["tid"].isin(list(waiter_tids))]
    holds = spans[spans["state"] == "hold"]
    total = float(waits["duration_ns"].sum())
    ws, we = waits["start_ns"].to_numpy(), waits["end_ns"].to_numpy()
    blamed = occupancy(ws, we, holds["end_ns"].to_numpy()) - occupancy(ws, we, holds["start_ns"].to_numpy())
    if locs is not None:
        program = hold_programs(spans, locs.library_ids()).reindex(holds.index).fillna(0).to_numpy()
    else:
        program = _take_lines(spans, holds)
    per = pd.DataFrame(
        {
            "holder_tid": holds["tid"].to_numpy(),
            "location": holds["location"].to_numpy(),
            "program": program.astype(np.int64),
            "blamed_ns": blamed,
        }
    )
    per = per[per["blamed_ns"] > 0]
    return per.groupby(["holder_tid", "location", "program"], as_index=False)["blamed_ns"].sum(), total


def _take_lines(spans: pd.DataFrame, holds: pd.DataFrame) -> np.ndarray:
    """Per hold, the line recorded at its take (0 if none)."""
    every_wait = spans[spans["state"] == "wait"]
    took = pd.Series(every_wait["location"].to_numpy(), index=pd.MultiIndex.from_arrays([every_wait["tid"], every_wait["end_ns"]]))
    took = took[~took.index.duplicated(keep="last")]
    return took.reindex(pd.MultiIndex.from_arrays([holds["tid"], holds["start_ns"]])).fillna(0).to_numpy()


def _culprits(
    per: pd.DataFrame, total_ns: float, names: Dict[int, str], groups: Dict[int, Optional[str]], locs: "_Locations"
) -> List[Culprit]:
    """Blame by code line, summed across the threads that ran it.  A hold
    that let go inside library code (``Event.is_set`` in a spinning loop) is
    charged to the program's line that was running, when that is known."""
    if total_ns <= 0 or per.empty:
        return []
    keys, inner = [], []
    for loc, prog in zip(per["location"].to_numpy(), per["program"].to_numpy()):
        use = prog if (locs.is_library(loc) and prog and not locs.is_library(prog)) else loc
        keys.append(int(use))
        inner.append(int(loc) if use != loc else 0)
    keyed = per.assign(
        use=keys, inner=inner, key=[locs.get(l)[0] + "\0" + locs.get(l)[1] for l in keys]
    )  # offsets of one line are one line
    rows = []
    for _key, g in keyed.groupby("key"):
        ns = float(g["blamed_ns"].sum())
        if ns < MIN_CULPRIT_SHARE * total_ns:
            continue
        by_thread = g.groupby("holder_tid")["blamed_ns"].sum().sort_values(ascending=False)
        holders = [names.get(int(t), "thread-%d" % t) for t in by_thread.index]
        hgroups = {groups.get(int(t)) for t in by_thread.index}
        location, function, label, _ = locs.get(int(g["use"].iloc[0]))
        c = Culprit(location, function, ns / total_ns, ns / 1e9, holders, hgroups.pop() if len(hgroups) == 1 else None, label)
        lib = g[g["inner"] != 0]
        if len(lib) and float(lib["blamed_ns"].sum()) >= 0.5 * ns:
            c.library_location = locs.get(int(lib.groupby("inner")["blamed_ns"].sum().idxmax()))[2]
        rows.append(c)
    rows.sort(key=lambda c: c.share, reverse=True)
    return rows[:TOP_CULPRITS]


def _waiting_at(trace, spans: pd.DataFrame, tids: Sequence[int], locs: _Locations, top: int = TOP_CULPRITS) -> List[Dict[str, Any]]:
    """Where the waiters were when they began waiting.  The wait's location is
    the program's own innermost frame; when that is a module-level line (a
    launcher such as ``serve.py:3 (<module>)``: every frame below it was
    library code), the innermost library frame where the thread let the GIL
    go is shown with it."""
    waits = spans[(spans["state"] == "wait") & spans["tid"].isin(list(tids))]
    total = float(waits["duration_ns"].sum())
    if total <= 0:
        return []
    rel = released_at(spans).reindex(waits.index).fillna(0).astype(np.int64)
    # one label per distinct (wait location, release location): traces hold millions of waits
    pairs = pd.DataFrame(
        {
            "loc": waits["location"].to_numpy(),
            "rel": rel.to_numpy(),
            "ns": waits["duration_ns"].to_numpy(),
            "contended": waits["contended"].to_numpy(),
        }
    )
    pairs = pairs.groupby(["loc", "rel"], as_index=False).agg(ns=("ns", "sum"), contended=("contended", "sum"))
    labels, locations, functions, vias = [], [], [], []
    for loc, r in zip(pairs["loc"].to_numpy(), pairs["rel"].to_numpy()):
        location, function, label, _ = locs.get(loc)
        via = None
        if function == "<module>" and r and r != loc:
            inner = locs.get(r)
            via, (location, function) = location, inner[:2]
            label = "%s via %s" % (inner[2], label)
        labels.append(label)
        locations.append(location)
        functions.append(function)
        vias.append(via)
    df = pd.DataFrame(
        {
            "label": labels,
            "location": locations,
            "function": functions,
            "via": vias,
            "ns": pairs["ns"].to_numpy(),
            "contended": pairs["contended"].to_numpy(),
        }
    )
    out = []
    for label, g in df.groupby("label"):
        ns = float(g["ns"].sum())
        if ns < MIN_CULPRIT_SHARE * total:
            continue
        out.append(
            {
                "location": g["location"].iloc[0],
                "function": g["function"].iloc[0],
                "program_location": g["via"].iloc[0],
                "label": label,
                "share": round(ns / total, 4),
                "wait_s": round(ns / 1e9, 6),
                "waits": int(g["contended"].sum()),
            }
        )
    out.sort(key=lambda d: d["share"], reverse=True)
    return out[:top]


# ---------------------------------------------------------------- long holds


def _long_holds(trace, locs: _Locations) -> pd.DataFrame:
    """Holds during which another thread waited over LONG_HOLD_INTERVALS switch
    intervals, with how long the first drop request in each went unanswered."""
    lh = trace.long_holds(factor=LONG_HOLD_INTERVALS)
    ev = trace.events
    drops = np.sort(ev[ev["kind"] == "drop_request"]["time_ns"].to_numpy())
    first = np.searchsorted(drops, lh["start_ns"].to_numpy(), side="right")
    has = first < np.searchsorted(drops, lh["end_ns"].to_numpy(), side="right")
    first_t = np.where(has, drops[np.minimum(first, max(len(drops) - 1, 0))] if len(drops) else 0, lh["end_ns"].to_numpy())
    unanswered = np.where(has, lh["end_ns"].to_numpy() - first_t, 0)
    names = trace.names
    return (
        pd.DataFrame(
            {
                "holder": [names.get(int(t), "thread-%d" % t) for t in lh["tid"]],
                "holder_tid": lh["tid"].to_numpy(),
                "start_s": (lh["start_ns"].to_numpy() - trace.start_ns) / 1e9 + trace.window_s[0],
                "start_ns": lh["start_ns"].to_numpy(),
                "end_ns": lh["end_ns"].to_numpy(),
                "duration_ms": lh["duration_ns"].to_numpy() / 1e6,
                "waited_ms": lh["waited_ns"].to_numpy() / 1e6,
                "drop_requests": lh["drop_requests"].to_numpy(),
                "unanswered_ms": unanswered / 1e6,
                "in_c": unanswered >= C_UNANSWERED_INTERVALS * trace.switch_interval_ns,
                "location": [locs.get(l)[2] for l in lh["location"]],
                "location_id": lh["location"].to_numpy(),
            }
        )
        .sort_values("waited_ms", ascending=False)
        .reset_index(drop=True)
    )


# ---------------------------------------------------------------- findings


def _who(names: List[str], group: Optional[str]) -> str:
    if group and len(names) > 1:
        return "%s (%d threads)" % (group, len(names))
    if len(names) <= 3:
        return ", ".join(names)
    return "%s and %d more threads" % (", ".join(names[:2]), len(names) - 2)


def _holders(c: Culprit) -> str:
    if c.group and len(c.threads) > 1:
        return "%d threads of %s" % (len(c.threads), c.group)
    if len(c.threads) <= 3:
        return ", ".join(c.threads)
    return "%d threads (%s, ...)" % (len(c.threads), ", ".join(c.threads[:2]))


def culprit_sentence(whose: str, c: Culprit) -> str:
    """'83% of their waiting happened while render_report (app.py:12) ran in 4 threads of ...'"""
    where = "code at an unknown location" if c.location == "?" else "%s (%s)" % (c.function, c.label.rsplit(" (", 1)[0])
    return "%.0f%% of %s waiting happened while %s ran in %s" % (100 * c.share, whose, where, _holders(c))


def _window_text(window: Tuple[float, float], whole: bool) -> str:
    return "" if whole else " between %.2f s and %.2f s" % window


def diagnose_window(
    trace, lat: pd.DataFrame, locs: _Locations, whole: bool, episode: Optional[int] = None
) -> Tuple[List[Finding], pd.DataFrame]:
    """The findings of one window (a whole trace or an episode's Trace.window)."""
    si = trace.switch_interval_ns / 1e9
    window = trace.window_s
    span_s = max(trace.meta["duration_s"], 1e-9)
    spans = trace.intervals()
    names = {int(t): str(n) for t, n in lat["name"].items()}
    groups = {int(t): (g if isinstance(g, str) else None) for t, g in lat["group"].items()}
    ev = trace.events
    contended = ev[(ev["kind"] == "acquire") & ev["contended"]]
    wtext = _window_text(window, whole)
    findings: List[Finding] = []
    woken, take = trace.wakes(), wk.take_cost_ns(ev)
    woke_sync = woken["coordination"].to_numpy()  # waking for a pool's results behind the pool: not latency (wakes.py)

    # Holders that keep the GIL in C: their long holds' drop requests go unanswered.
    lh = _long_holds(trace, locs)
    c_holders = {}
    forced = _forced_holds(spans, ev)
    in_c = lh[lh["in_c"]]
    # A line where few of the forced holds went unanswered is Python code
    # preempted now and then on a busy machine, not C: every call of a C
    # function that keeps the GIL leaves it the same way.
    counts = in_c.groupby(["holder_tid", "location_id"]).size()
    keep = [C_MIN_SHARE_OF_FORCED * forced.get((int(t), int(l)), 0) <= n for (t, l), n in counts.items()]
    kept = set(k for k, ok in zip(counts.index, keep) if ok)
    in_c = in_c[np.array([(t, l) in kept for t, l in zip(in_c["holder_tid"], in_c["location_id"])], dtype=bool)]
    for tid, g in in_c.groupby("holder_tid"):
        if _mostly_off_cpu(lat, int(tid)):
            continue  # it did not answer drop requests because it was not running: cpu_starved says so
        c_holders[int(tid)] = g
        holds = spans[(spans["state"] == "hold") & (spans["tid"] == tid)]
        in_long = holds[holds["start_ns"].isin(g["start_ns"])]
        others = spans[(spans["state"] == "wait") & (spans["tid"] != tid)]
        ws, we = others["start_ns"].to_numpy(), others["end_ns"].to_numpy()
        blamed = occupancy(ws, we, in_long["end_ns"].to_numpy()) - occupancy(ws, we, in_long["start_ns"].to_numpy())
        per = pd.DataFrame(
            {"holder_tid": in_long["tid"].to_numpy(), "location": in_long["location"].to_numpy(), "program": 0, "blamed_ns": blamed}
        )
        total = float(blamed.sum())
        culprits = _culprits(
            per.groupby(["holder_tid", "location", "program"], as_index=False)["blamed_ns"].sum(), total, names, groups, locs
        )
        name = names.get(int(tid), "thread-%d" % tid)
        at = culprits[0].label if culprits else "?"
        # The finding is about its victims (threads, tids); the holder is in culprits and evidence.
        # (not the coordinators: a main thread in join or ex.map waits on the workers anyway)
        coordinators = set(lat.index[lat["sync_share"] >= SYNC_MAX_SHARE])
        waited = _victims_of(others, in_long, total)
        victims = [t for t in waited if t not in coordinators] or waited
        summary = (
            "%s kept the GIL in C code for up to %.1f ms at a time%s (%d %s during which another thread waited over %d switch "
            "intervals), leaving drop requests unanswered for up to %.1f ms: it never reached the interpreter's check for them. "
            "Other threads waited %.2f s during these holds, %.0f%% of it while it ran %s."
            % (
                name,
                g["duration_ms"].max(),
                wtext,
                len(g),
                "hold" if len(g) == 1 else "holds",
                LONG_HOLD_INTERVALS,
                g["unanswered_ms"].max(),
                total / 1e9,
                100 * (culprits[0].share if culprits else 0),
                at,
            )
        )
        advice = [
            "Release the GIL around the C call made at %s (Py_BEGIN_ALLOW_THREADS in C, `with nogil` in Cython) if it is your "
            "extension; otherwise split its input into smaller calls or run it in a process (ProcessPoolExecutor)." % at,
            "Lowering the switch interval (now %.1f ms) will not help: the holder does not look at drop requests while it is in C."
            % (1e3 * si),
        ]
        findings.append(
            Finding(
                "long_hold_c",
                True,
                [names.get(t, "thread-%d" % t) for t in victims],
                _common_group([groups.get(t) for t in victims]),
                window,
                total / 1e9,
                summary,
                culprits,
                [],
                advice,
                {
                    "holds": int(len(g)),
                    "max_hold_ms": round(float(g["duration_ms"].max()), 3),
                    "max_unanswered_ms": round(float(g["unanswered_ms"].max()), 3),
                    "switch_interval_ms": 1e3 * si,
                    "holders": [name],
                },
                victims,
                episode,
            )
        )

    # Units: a group's threads of one role count as one; a thread alone is its own unit.
    active = lat[(lat["waits"] > 0) | (lat["hold_s"] > 0)]
    units: Dict[Tuple[str, str], List[int]] = {}
    for tid, r in active.iterrows():
        g = r["group"] if isinstance(r["group"], str) else None
        units.setdefault((g or "\0" + str(r["name"]), r["role"]), []).append(int(tid))

    pool_tids: set = set()
    for (key, role), tids in units.items():
        rows = lat.loc[tids]
        group = None if key.startswith("\0") else key
        tnames = [names[t] for t in tids]
        waits = int(rows["waits"].sum())
        wait_s = float(rows["wait_s"].sum())
        hold_s = float(rows["hold_s"].sum())
        life = float(rows["active_s"].sum())
        parked = float(rows["parked_s"].sum())
        busy_share = wait_s / (life - parked) if life - parked > 0 else 0.0  # of the time not parked waiting for work
        mine = contended[contended["tid"].isin(tids)]["wait_ns"]
        p50 = float(mine.median()) / 1e6 if len(mine) else 0.0
        mean = float(mine.mean()) / 1e6 if len(mine) else 0.0
        p99 = float(mine.quantile(0.99)) / 1e6 if len(mine) else 0.0
        sync = float((rows["sync_share"] * rows["wait_s"]).sum() / wait_s) if wait_s > 0 else 0.0
        per_s = waits / span_s
        who = _who(tnames, group)
        their = "their" if len(tids) > 1 else "its"
        facts = {
            "waits": waits,
            "waits_per_s": round(per_s, 2),
            "wait_share_of_wall": round(wait_s / life if life > 0 else 0.0, 4),
            "wait_share_of_busy": round(busy_share, 4),
            "parked_s": round(parked, 6),
            "wait_share_of_gil_time": round(wait_s / (wait_s + hold_s), 4) if wait_s + hold_s > 0 else 0.0,
            "wait_p50_ms": round(p50, 4),
            "wait_mean_ms": round(mean, 4),
            "wait_p99_ms": round(p99, 4),
            "switch_interval_ms": 1e3 * si,
            "after_sync_share": round(sync, 4),
            "hold_s": round(hold_s, 6),
            "threads": len(tids),
        }
        if role == "io":
            convoy = (
                waits >= CONVOY_MIN_WAITS
                and per_s >= CONVOY_MIN_WAITS_PER_S
                and busy_share >= CONVOY_MIN_BUSY_SHARE
                and mean >= CONVOY_MIN_MEAN_WAIT * 1e3 * si
                and sync < SYNC_MAX_SHARE
                and wait_s >= CONVOY_MIN_WAIT_S
            )
            mine_wakes = woken[woken["tid"].isin(tids).to_numpy() & ~woke_sync]
            wake = wk.stats(mine_wakes, take)
            facts["wake"] = wk.as_json(wake)
            if convoy:
                per, total = blame_by_code(spans, tids, locs=locs)
                culprits = _culprits(per, total, names, groups, locs)
                at = _waiting_at(trace, spans, tids, locs)
                after = (
                    " (%.0f%% of the waiting after %s)" % (100 * at[0]["share"], at[0]["label"]) if at and at[0]["location"] != "?" else ""
                )
                summary = (
                    "%s waited %.2f s for the GIL%s, %.0f%% of %s time: %d waits, a median %.2f ms (mean %.2f, p99 %.2f ms) each, "
                    "%.1fx the %.1f ms switch interval, to take it back after letting it go%s."
                    % (who, wait_s, wtext, 100 * busy_share, their, waits, p50, mean, p99, p50 / (1e3 * si), 1e3 * si, after)
                )
                if parked >= 0.01 * life:
                    summary = summary.replace(
                        " of %s time:" % their, " of %s time not parked waiting for work (%.2f s parked):" % (their, parked), 1
                    )
                if culprits:
                    summary += " " + culprit_sentence("their" if len(tids) > 1 else names[tids[0]] + "'s", culprits[0]) + "."
                if wk.is_late(wake, si, wk.LATENCY_MIN_WAKES if whole else wk.LATENCY_MIN_EPISODE_WAKES):
                    summary += " " + wk.per_wake_sentence(wake, len(tids) > 1)  # the per-event cost as well
                    facts["late_per_wake"] = True
                f = Finding("convoy", True, tnames, group, window, wait_s, summary, culprits, at, [], facts, tids, episode, "share")
                f.advice = _convoy_advice(f, lat, c_holders, si, p50, old_gil=trace.meta.get("gil_kind") == "old")
                findings.append(f)
            elif wk.is_late(
                wake, si, wk.LATENCY_MIN_WAKES if whole else wk.LATENCY_MIN_EPISODE_WAKES
            ):  # few waits, each long beside its work: latency, whatever its share of time
                findings.append(_latency_convoy(trace, lat, locs, mine_wakes, wake, tids, group, facts, c_holders, wtext, episode))
            elif waits and (rows["wait_vs_gil_time"].max() >= IDLE_REPORT_WAIT_VS_GIL or sync >= SYNC_MAX_SHARE):
                why = (
                    "%.0f%% of it on waking from a wait on other threads (join, Condition/Event wait, futures)" % (100 * sync)
                    if sync >= SYNC_MAX_SHARE
                    else "%.1f waits/s, %.1f%% of %s wall time" % (per_s, 100 * facts["wait_share_of_wall"], their)
                )
                summary = (
                    "%s waited for the GIL %d %s (%.3f s%s), %s. Not a problem, although the waiting is %.0f%% of %s "
                    "little time with the GIL."
                    % (who, waits, "time" if waits == 1 else "times", wait_s, wtext, why, 100 * facts["wait_share_of_gil_time"], their)
                )
                findings.append(Finding("idle", False, tnames, group, window, wait_s, summary, [], [], [], facts, tids, episode))
        elif group is not None and len(tids) >= 2 and waits >= CONVOY_MIN_WAITS and facts["wait_share_of_gil_time"] >= POOL_MIN_WAIT_SHARE:
            per, total = blame_by_code(spans, tids, locs=locs)
            culprits = _culprits(per, total, names, groups, locs)
            share = facts["wait_share_of_gil_time"]
            n_eff = 1.0 / max(1.0 - share, 1e-9)  # N threads taking turns each wait (N-1)/N
            busy = float(spans[(spans["state"] == "hold") & spans["tid"].isin(tids)]["duration_ns"].sum()) / 1e9
            facts.update({"concurrency": round(n_eff, 2), "held_s": round(busy, 6)})
            summary = (
                "%d threads of %s ran Python and took turns on the GIL%s: they waited %.0f%% of their time with it, as %.1f threads "
                "running at once would ((N-1)/N), and held it %.2f s together in %.2f s -- the pool is no faster than one thread."
                % (len(tids), group, wtext, 100 * share, n_eff, busy, span_s)
            )
            if culprits:
                summary += " " + culprit_sentence("the pool's", culprits[0]) + "."
            advice = []
            if culprits and culprits[0].location != "?":
                advice.append(
                    "Run %s (%s) in processes (ProcessPoolExecutor) instead of threads, or make it call code that releases "
                    "the GIL (numpy, hashlib, zlib, a C extension): %d threads of Python code get one core's work done."
                    % (culprits[0].function, culprits[0].label.rsplit(" (", 1)[0], len(tids))
                )
            else:
                advice.append("Run this pool's work in processes (ProcessPoolExecutor): threads of Python code get one core's work done.")
            findings.append(
                Finding("serialised_pool", True, tnames, group, window, wait_s, summary, culprits, [], advice, facts, tids, episode)
            )
            pool_tids.update(tids)

    # CPU-bound threads of different groups (or alone) competing: oversubscription.
    cpu = lat[
        (lat["role"] == "cpu")
        & ~lat.index.isin(list(pool_tids))
        & ~lat.index.isin(list(c_holders))
        & (lat["wait_vs_gil_time"] >= OVERSUB_MIN_WAIT_SHARE)
        & (lat["waits"] >= CONVOY_MIN_WAITS)
    ]
    convoy_groups = {c.group for f in findings if f.kind == "convoy" for c in f.culprits if c.group}
    cpu = cpu[np.array([not (isinstance(g, str) and g in convoy_groups) for g in cpu["group"]], bool)]
    n_units = len({g if isinstance(g, str) else "\0%d" % t for t, g in cpu["group"].items()})
    if len(cpu) >= 2 and n_units >= 2:
        tids = [int(t) for t in cpu.index]
        per, total = blame_by_code(spans, tids, locs=locs)
        culprits = _culprits(per, total, names, groups, locs)
        tnames = [names[t] for t in tids]
        summary = (
            "%d CPU-bound threads (%s) shared one GIL%s: each waited %.0f-%.0f%% of its time with it; together they held it %.2f s in %.2f s."
            % (
                len(tids),
                ", ".join(tnames[:6]) + (", ..." if len(tids) > 6 else ""),
                wtext,
                100 * cpu["wait_vs_gil_time"].min(),
                100 * cpu["wait_vs_gil_time"].max(),
                float(cpu["hold_s"].sum()),
                span_s,
            )
        )
        advice = [
            "Run the CPU-bound work of %s in processes: under one GIL, threads of Python code add no throughput." % ", ".join(tnames[:6])
        ]
        findings.append(
            Finding(
                "oversubscription",
                True,
                tnames,
                None,
                window,
                float(cpu["wait_s"].sum()),
                summary,
                culprits,
                [],
                advice,
                {"threads": len(tids)},
                tids,
                episode,
            )
        )
    starved = _cpu_starved(trace, lat, names, window, wtext, episode, locs)
    if starved is not None:
        findings.append(starved)
        _no_switch_interval_advice_for_starved(findings, starved, lat, names)
    # a victim named by a problem (a long hold's few, long waits) is never also cleared as idle
    victims = {t for f in findings if f.problem for t in f.tids}
    findings = [f for f in findings if f.problem or not victims.intersection(f.tids)]
    order = {"convoy": 0, "cpu_starved": 1, "long_hold_c": 2, "serialised_pool": 3, "oversubscription": 4, "idle": 9}
    findings.sort(key=lambda f: (order.get(f.kind, 5), -f.wait_s))
    for f in findings:
        f.predictions = predictions.for_finding(trace, f, window)
    return findings, lh


def _victims_of(waits: pd.DataFrame, holds: pd.DataFrame, total_ns: float) -> List[int]:
    """The threads whose waits overlapped ``holds`` (at least MIN_CULPRIT_SHARE
    of ``total_ns`` each), most waiting first."""
    hs, he = holds["start_ns"].to_numpy(), holds["end_ns"].to_numpy()
    per = {}
    for t, w in waits.groupby("tid"):  # a loop over threads, not waits
        ws, we = w["start_ns"].to_numpy(), w["end_ns"].to_numpy()
        per[int(t)] = float((occupancy(ws, we, he) - occupancy(ws, we, hs)).sum())
    return [t for t, ns in sorted(per.items(), key=lambda kv: -kv[1]) if ns > 0 and ns >= MIN_CULPRIT_SHARE * total_ns]


def _common_group(groups: List[Optional[str]]) -> Optional[str]:
    return groups[0] if groups and len(set(groups)) == 1 else None


EVENT_LOOP_FILES = re.compile(r"(^|/)(selectors\.py|asyncio/[^/]+\.py)$")


def _latency_convoy(trace, lat, locs, woken, wake, tids, group, facts, c_holders, wtext, episode) -> Finding:
    """A convoy by latency (wakes.is_late): each wake-up late by the median wait,
    blamed on the code held during those waits only."""
    si = trace.switch_interval_ns / 1e9
    spans = trace.intervals()
    names = {int(t): str(n) for t, n in lat["name"].items()}
    groups = {int(t): (g if isinstance(g, str) else None) for t, g in lat["group"].items()}
    per, total = blame_by_code(spans, tids, waits=wk.wait_intervals(woken), locs=locs)
    culprits = _culprits(per, total, names, groups, locs)
    tnames = [names[t] for t in tids]
    files = [locs.get(l)[3] for l in woken["released_at"].to_numpy()]
    loop = np.mean([bool(EVENT_LOOP_FILES.search(f)) for f in files]) >= 0.5 if files else False
    culprit = ""
    if culprits:
        c = culprits[0]
        where = "code at an unknown location" if c.location == "?" else "%s (%s)" % (c.function, c.label.rsplit(" (", 1)[0])
        culprit = "%.0f%% of it behind %s in %s" % (100 * c.share, where, _holders(c))
    summary = wk.latency_sentence(_who(tnames, group), " (the event loop)" if loop else "", wake, wtext, culprit, len(tids) > 1)
    facts = dict(facts, wake_wait_s=round(total / 1e9, 6))
    f = Finding(
        "convoy",
        True,
        tnames,
        group,
        trace.window_s,
        total / 1e9,
        summary,
        culprits,
        _waiting_at(trace, spans, tids, locs),
        [],
        facts,
        tids,
        episode,
        "latency",
    )
    f.advice = _convoy_advice(f, lat, c_holders, si, 1e3 * wake["wake_p50_s"], old_gil=trace.meta.get("gil_kind") == "old")
    return f


def _no_switch_interval_advice_for_starved(findings: List[Finding], starved: Finding, lat: pd.DataFrame, names: Dict[int, str]) -> None:
    """A convoy behind a holder that was mostly not running: a shorter switch
    interval is not the remedy (its drop requests go unanswered while the
    holder waits for a CPU), so that advice gives way to the CPU one."""
    name_to_holder = {n: t for t, n in names.items()}
    off = {name_to_holder[n] for n in starved.evidence["holders"] if n in name_to_holder}
    name_to_tid = {n: t for t, n in names.items()}
    for f in findings:
        if f.kind != "convoy" or not f.culprits:
            continue
        holders = [name_to_tid[n] for n in f.culprits[0].threads if n in name_to_tid]
        hit = [t for t in holders if t in off and lat.loc[t, "hold_s"] > 0]
        if not hit:
            continue
        t = hit[0]
        f.advice = [a for a in f.advice if not a.startswith("Lower the switch interval")]
        f.advice.append(
            "Not the switch interval: %s spent %.0f%% of its holds waiting for a CPU (the cpu_starved finding); give the process "
            "CPU time first." % (names.get(t, str(t)), 100 * lat.loc[t, "held_runq_s"] / lat.loc[t, "hold_s"])
        )


def _forced_holds(spans: pd.DataFrame, events: pd.DataFrame) -> Dict[Tuple[int, int], int]:
    """Per (thread, location where it let go), how many holds saw a drop request."""
    holds = spans[spans["state"] == "hold"]
    drops = np.sort(events[events["kind"] == "drop_request"]["time_ns"].to_numpy())
    n = np.searchsorted(drops, holds["end_ns"].to_numpy(), side="right") - np.searchsorted(
        drops, holds["start_ns"].to_numpy(), side="right"
    )
    counts = pd.Series(n > 0, index=holds.index).groupby([holds["tid"], holds["location"]]).sum()
    return {(int(t), int(l)): int(c) for (t, l), c in counts.items()}


def _mostly_off_cpu(lat: pd.DataFrame, tid: int) -> bool:
    """cpu_state traces: the thread waited for a CPU during a large part of
    its holds (CPU_OFF_HOLD_SHARE), so long holds need not mean C code."""
    if "held_runq_s" not in lat.columns or tid not in lat.index:
        return False
    r = lat.loc[tid]
    return r["hold_s"] > 0 and r["held_runq_s"] >= CPU_OFF_HOLD_SHARE * r["hold_s"]


def _cpu_starved(
    trace, lat: pd.DataFrame, names: Dict[int, str], window: Tuple[float, float], wtext: str, episode: Optional[int], locs: _Locations
) -> Optional[Finding]:
    """Holders that held the GIL while not running (waiting for a CPU, or
    throttled by the cgroup's quota): everybody waited for a CPU, not for
    Python code.  Only for cpu_state traces."""
    if "held_runq_s" not in lat.columns:
        return None
    waited = float(lat["wait_s"].sum())
    off_cpu = lat["held_runq_s"]
    total = float(off_cpu.sum())
    if total < CPU_STARVED_MIN_S or total < CPU_STARVED_SHARE * waited:
        return None
    tid = int(off_cpu.idxmax())
    r = lat.loc[tid]
    throttle = trace.cgroup_throttling()
    why = "the machine is oversubscribed"
    if throttle["throttled_periods"]:
        why = "this process's cgroup was throttled by its CPU quota %d times (%.0f ms in all, summed over its CPUs' run queues)" % (
            throttle["throttled_periods"],
            1e3 * throttle["throttled_s"],
        )
    summary = (
        "%s held the GIL %.0f ms%s while other threads waited %.0f ms for it, but spent %.0f ms of its holds waiting for a CPU "
        "and ran %.0f ms: the threads waited for CPUs, not for Python code; %s."
        % (
            names.get(tid, str(tid)),
            1e3 * r["hold_s"],
            wtext,
            1e3 * (waited - r["wait_s"]),
            1e3 * r["held_runq_s"],
            1e3 * r["held_run_s"],
            why,
        )
    )
    advice = [
        "Give this process CPU time: fewer busy processes on its cores, a wider CPU affinity, or a larger CPU quota. "
        "A shorter switch interval or moving threads around will not help while the holder itself waits for a CPU."
    ]
    holders = [int(t) for t in off_cpu[off_cpu > 0.1 * total].index]
    # the finding names the threads that waited (a holder too, when it waited for the others; not
    # the coordinators, nor a thread with a sliver of the waiting); the holders are its culprits'
    waited_rows = lat[lat["wait_s"] >= STARVED_VICTIM_SHARE * waited].sort_values("wait_s", ascending=False)
    victims = [int(t) for t in waited_rows.index if waited_rows.loc[t, "sync_share"] < SYNC_MAX_SHARE] or [
        int(t) for t in waited_rows.index
    ]
    per, blamed = blame_by_code(trace.intervals(), victims, locs=locs)
    groups = {int(t): (g if isinstance(g, str) else None) for t, g in lat["group"].items()}
    culprits = _culprits(per[per["holder_tid"].isin(holders)], blamed, names, groups, locs)
    return Finding(
        "cpu_starved",
        True,
        [names.get(t, str(t)) for t in victims],
        _common_group([groups.get(t) for t in victims]),
        window,
        total,
        summary,
        culprits,
        [],
        advice,
        {
            "held_off_cpu_s": round(total, 6),
            "waited_s": round(waited, 6),
            "throttled_s": round(throttle["throttled_s"], 6),
            "throttled_periods": throttle["throttled_periods"],
            "holders": [names.get(t, str(t)) for t in holders],
        },
        victims,
        episode,
    )


def _convoy_advice(
    f: Finding, lat: pd.DataFrame, c_holders: Dict[int, pd.DataFrame], si: float, p50_ms: float, old_gil: bool = False
) -> List[str]:
    """Advice that follows from who the culprit is and from the measured switch
    interval (2.7's old GIL has none: it is let go every check interval)."""
    out: List[str] = []
    top = f.culprits[0] if f.culprits else None
    name_to_tid = {str(n): int(t) for t, n in lat["name"].items()}
    holder_tids = [name_to_tid[n] for n in (top.threads if top else []) if n in name_to_tid]
    # C code if the culprit line is where one of its holders' long holds in C let go
    in_c = [t for t in holder_tids if t in c_holders and top.label in set(c_holders[t]["location"])]
    where = top.label.rsplit(" (", 1)[0] if top and top.location != "?" else None
    if in_c:
        out.append(
            "The holder keeps the GIL in C at %s (see the long_hold_c finding): release the GIL around that call, or run it "
            "in a process. Lowering the switch interval (now %.1f ms) will not help." % (top.label, 1e3 * si)
        )
        return out
    cpu_holders = [t for t in holder_tids if t in lat.index and lat.loc[t, "role"] == "cpu"]
    if top and cpu_holders and where:
        out.append(
            "Move %s (%s) out of this process's GIL: run it in a process (ProcessPoolExecutor / multiprocessing) or in code "
            "that releases the GIL, so %s stop%s waiting behind it."
            % (top.function, where, _who(f.threads, f.group), "" if len(f.threads) > 1 else "s")
        )
    if old_gil:
        return out  # no switch interval to tune: the holder lets go every sys.getcheckinterval() ticks anyway
    if p50_ms >= 0.5 * 1e3 * si and si > 0.0011:
        out.append(
            "Lower the switch interval: sys.setswitchinterval(0.001) bounds each forced hand-off at about 1 ms instead of "
            "%.1f ms (the median wait is %.2f ms now), at the cost of more switches for the CPU-bound threads." % (1e3 * si, p50_ms)
        )
    elif si <= 0.0011 and cpu_holders:
        out.append(
            "The switch interval is already %.1f ms: the remaining waiting is the CPU-bound threads' turn on the GIL; only moving "
            "their work out of the process removes it." % (1e3 * si)
        )
    return out


# ---------------------------------------------------------------- the whole diagnosis


def _legacy_frames(findings: List[Finding], lat: pd.DataFrame, trace, locs: _Locations):
    """starving, culprits, culprit_sites, waiting_sites of the convoy findings (for notebooks and the HTML report)."""
    si = trace.switch_interval_ns / 1e9
    convoy = [f for f in findings if f.kind == "convoy"]
    tids = [t for f in convoy for t in f.tids]
    starving = lat.loc[tids].copy() if tids else lat.iloc[0:0].copy()
    starving["p50_vs_switch_interval"] = starving["wait_p50_ms"] / (1e3 * si)
    starving = starving.sort_values("wait_s", ascending=False)
    spans = trace.intervals()
    names = {int(t): str(n) for t, n in lat["name"].items()}
    c_rows, s_rows, w_rows = [], [], []
    for f in convoy:
        waiter = _who(f.threads, f.group)
        per, total = blame_by_code(spans, f.tids, locs=locs)
        if total <= 0:
            continue
        by_holder = per.groupby("holder_tid")["blamed_ns"].sum().sort_values(ascending=False)
        for holder, ns in by_holder.items():
            if ns >= 0.001 * total:
                c_rows.append(
                    {
                        "waiter": waiter,
                        "holder": names.get(int(holder), str(holder)),
                        "holder_tid": int(holder),
                        "blamed_s": ns / 1e9,
                        "share": ns / total,
                    }
                )
        nobody = total - float(by_holder.sum())
        if nobody >= 0.001 * total:
            c_rows.append(
                {"waiter": waiter, "holder": "nobody (hand-off)", "holder_tid": -1, "blamed_s": nobody / 1e9, "share": nobody / total}
            )
        for c in f.culprits:
            s_rows.append({"waiter": waiter, "holder": _holders(c), "location": c.label, "blamed_s": c.wait_s, "share": c.share})
        for w in f.waiting_at:
            w_rows.append({"waiter": waiter, "location": w["label"], "wait_s": w["wait_s"], "share": w["share"], "waits": w["waits"]})
    return (
        starving,
        pd.DataFrame(c_rows, columns=["waiter", "holder", "holder_tid", "blamed_s", "share"]),
        pd.DataFrame(s_rows, columns=["waiter", "holder", "location", "blamed_s", "share"]),
        pd.DataFrame(w_rows, columns=["waiter", "location", "wait_s", "share", "waits"]),
    )


def _same(a: Finding, b: Finding) -> bool:
    if a.kind == b.kind and "holders" in a.evidence:  # long_hold_c: the same holder, whoever waited behind it
        return a.evidence["holders"] == b.evidence.get("holders")
    return a.kind == b.kind and ((a.group is not None and a.group == b.group) or set(a.threads) == set(b.threads))


def diagnose(trace, top: int = TOP_CULPRITS, episodes: bool = True) -> Diagnosis:
    """Findings for the whole trace (or window) and for each of its episodes."""
    si = trace.switch_interval_ns / 1e9
    locs = _Locations(trace)
    lat = thread_latency(trace)
    whole, lh = diagnose_window(trace, lat, locs, whole=True)
    eps: List[EpisodeDiagnosis] = []
    if episodes:
        base_start = trace.start_ns - int(round(trace.window_s[0] * 1e9))
        for i, ep in enumerate(trace.episodes()):
            w = trace.window((ep.start_ns - trace.start_ns) / 1e9, (ep.end_ns - trace.start_ns) / 1e9)
            found, _ = diagnose_window(w, thread_latency(w), locs, whole=False, episode=i)
            eps.append(
                EpisodeDiagnosis(
                    ((ep.start_ns - base_start) / 1e9, (ep.end_ns - base_start) / 1e9),
                    ep.waiting_s,
                    ep.level,
                    ep.baseline,
                    found,
                    [trace.names.get(t, "thread-%d" % t) for t in ep.late],
                )
            )
    said = [f for e in eps for f in e.findings]
    # A convoy late per wake over the whole run is every wake of the run, late; an
    # episode's finding on the same thread covers a few of them: both stay.
    late = [f for f in whole if f.problem and (f.mode == "latency" or f.evidence.get("late_per_wake"))]
    findings = (
        [f for f in said if f.problem] + late + [f for f in whole if f.problem and f not in late and not any(_same(f, g) for g in said)]
    )
    # a unit cleared over the whole window but found late or waiting in an episode is not "not a problem"
    flagged = {t for f in findings for t in f.tids}
    findings += [f for f in whole if not f.problem and not flagged.intersection(f.tids)]
    starving, culprits, sites, waiting = _legacy_frames(whole, lat, trace, locs)
    d = Diagnosis(
        si,
        float(trace.meta["duration_s"]),
        trace.window_s,
        lat,
        group_table(trace, lat),
        findings,
        eps,
        whole,
        starving,
        culprits,
        sites,
        waiting,
        lh.drop(columns=["holder_tid", "start_ns", "end_ns", "location_id"]),
        meta={"path": trace.path, "python_version": trace.meta.get("python_version")},
    )
    d.suggestions = suggest(d)
    return d


def suggest(d: Diagnosis) -> List[str]:
    """The findings as sentences: each problem's summary, then its advice
    (indented, '->'); the threads that are not a problem; or why nothing is wrong."""
    out: List[str] = []
    for f in d.findings:
        if f.problem:
            out.append(f.summary)
            out += ["  -> " + a + predictions.advice_effect(f, a) for a in f.advice]
    for f in d.findings:
        if not f.problem:
            out.append(f.summary)
    if not any(f.problem for f in d.findings):
        th = d.threads
        worst = th.sort_values("wait_share", ascending=False).head(1)
        if len(worst) and worst["wait_share"].iloc[0] > 0:
            r = worst.iloc[0]
            calm = (
                "and no period stands out from the rest"
                if not d.episodes
                else "and the %s listed above stand%s out from the calm without a problem in %s"
                % (
                    "episode" if len(d.episodes) == 1 else "%d episodes" % len(d.episodes),
                    "s" if len(d.episodes) == 1 else "",
                    "it" if len(d.episodes) == 1 else "them",
                )
            )
            out.insert(
                0,
                "No thread starves: the most waiting is %s with %.1f%% of its time (median wait %.2f ms), %s."
                % (r["name"], 100 * r["wait_share"], r["wait_p50_ms"], calm),
            )
        else:
            out.insert(0, "No GIL contention recorded.")
    return out
