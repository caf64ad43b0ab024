"""``Trace``: the one data model.  Renderers and analyses are functions of it."""

from __future__ import annotations

import os
import warnings
from functools import cached_property
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from . import analysis, fileformat, wakes


class IncompleteTraceWarning(UserWarning):
    """The trace file was not finalised; it was read up to its last whole chunk."""


class Trace:
    """A recorded GIL trace of one process.

    ``events``, ``intervals()``, ``threads()`` and ``samples`` are pandas
    frames with the columns documented in docs/api.md; ``meta`` is a dict.
    """

    def __init__(self, raw: fileformat.RawTrace, path: Optional[str] = None):
        self.path = path
        self._raw = raw
        self._parent: Optional["Trace"] = None  # set on a window()
        self._bounds: Optional[Tuple[int, int]] = None
        # Python's names win; the OS name covers threads Python never named (C
        # threads), unless it is just the process's name that every thread inherits.
        process_name = raw.os_names.get(int(raw.header.get("pid", -1)))
        self.names: Dict[int, str] = {t: n for t, n in raw.os_names.items() if n and n != process_name}
        self.names.update(analysis.names_from_records(raw.threads))

    @property
    def complete(self) -> bool:
        return self._raw.complete

    @cached_property
    def meta(self) -> Dict[str, Any]:
        raw = self._raw
        meta: Dict[str, Any] = dict(raw.header)
        meta.update(raw.start)
        meta.update(raw.footer)
        if not raw.footer:  # interrupted: the stop is the last thing recorded
            times = [int(a["time_ns"].max()) for a in (raw.events, raw.samples) if len(a)]
            meta["stop_ns"] = max(times + [int(meta.get("start_ns", 0))])
            meta["events_lost"] = None  # unknown: the writer never reported
        if self._bounds is not None:
            meta["window_s"] = [(b - meta["start_ns"]) / 1e9 for b in self._bounds]  # since the trace's own start
            meta["start_ns"], meta["stop_ns"] = self._bounds
        meta["duration_s"] = (meta["stop_ns"] - meta["start_ns"]) / 1e9
        meta["events"] = int(len(self.events)) if self._bounds is not None else int(len(raw.events))
        meta["complete"] = raw.complete
        if not raw.complete:
            meta["incomplete_reason"] = raw.problem
        return meta

    @property
    def start_ns(self) -> int:
        return int(self.meta["start_ns"])

    @property
    def stop_ns(self) -> int:
        return int(self.meta["stop_ns"])

    @property
    def switch_interval_ns(self) -> int:
        return int(round(float(self.meta.get("switch_interval_s", 0.005)) * 1e9))

    @cached_property
    def events(self) -> pd.DataFrame:
        if self._parent is not None:
            return analysis.window_events(self._parent.events, *self._bounds)
        return analysis.events_frame(self._raw.events, bool(self.meta.get("release_location_period_ns")))

    def window(self, start_s: Optional[float] = None, end_s: Optional[float] = None) -> "Trace":
        """The part of the trace between ``start_s`` and ``end_s`` (seconds from
        its start), as a Trace of its own: every table, the blame and the
        diagnosis then cover that period only.  ``meta["window_s"]`` keeps the
        bounds relative to the whole trace.  ValueError on an empty window."""
        base = self._parent or self
        t0, t1 = base.start_ns, base.stop_ns
        offset = (self.start_ns - t0) if self._parent is not None else 0
        a = t0 + offset + int(round((start_s or 0.0) * 1e9))
        b = t0 + offset + int(round(end_s * 1e9)) if end_s is not None else self.stop_ns
        a, b = max(a, t0), min(b, t1)
        if not a < b:
            raise ValueError("empty time window: start %s, end %s (the trace lasts %.3f s)" % (start_s, end_s, (t1 - t0) / 1e9))
        w = Trace(base._raw, base.path)
        w._parent, w._bounds = base, (a, b)
        return w

    @property
    def window_s(self) -> Tuple[float, float]:
        """(start, end) of this trace, in seconds since the start of the whole recording."""
        base = self._parent or self
        return ((self.start_ns - base.start_ns) / 1e9, (self.stop_ns - base.start_ns) / 1e9)

    @cached_property
    def locations(self) -> pd.DataFrame:
        """Code locations seen at releases and waits: index id -> file, function, line."""
        locs = self._raw.locations
        df = pd.DataFrame(
            {"file": [v[0] for v in locs.values()], "function": [v[1] for v in locs.values()], "line": [v[2] for v in locs.values()]},
            index=pd.Index(list(locs.keys()), name="location", dtype=np.int64),
        )
        return df.sort_index()

    def location_label(self, location: int) -> str:
        """'file:line (function)' for a location id; '?' if unknown."""
        loc = self._raw.locations.get(int(location))
        return "%s:%d (%s)" % (loc[0], loc[2], loc[1]) if loc else "?"

    @cached_property
    def samples(self) -> pd.DataFrame:
        s = self._raw.samples
        if self._bounds is not None:
            s = s[(s["time_ns"] >= self._bounds[0]) & (s["time_ns"] <= self._bounds[1])]
        return pd.DataFrame(
            {
                "time_ns": s["time_ns"].astype(np.int64),
                "holder_tid": s["holder_tid"].astype(np.int64),
                "locked": s["locked"].astype(bool),
                "drop_request": s["drop_request"].astype(bool),
                "waiters": s["waiters"].astype(np.int64),
                "switch_number": s["switch_number"].astype(np.int64),
            }
        )

    def intervals(self) -> pd.DataFrame:
        return self._intervals.copy(deep=False)  # cheap; the cache stays intact under copy-on-write

    @cached_property
    def _intervals(self) -> pd.DataFrame:
        return analysis.intervals(self.events, self.start_ns, self.stop_ns)

    def threads(self) -> pd.DataFrame:
        return self._threads.copy(deep=False)

    @cached_property
    def _threads(self) -> pd.DataFrame:
        th = analysis.thread_table(self.events, self._intervals, self.names, self.start_ns, self.stop_ns)
        stats = wakes.per_thread(self._wakes, th.index, wakes.take_cost_ns(self.events))
        return th.join(stats)

    def wakes(self) -> pd.DataFrame:
        """One row per wake: a take of the GIL after blocking work (I/O, sleep,
        a lock), with how long the thread waited to run Python again, how long
        it was blocked before, its work after, and who held the GIL (wakes.wakes)."""
        return self._wakes.copy(deep=False)

    @cached_property
    def _wakes(self) -> pd.DataFrame:
        return wakes.wakes(self._intervals, self.events, wakes.sync_locations(self._raw.locations), self.names)

    def long_holds(self, factor: float = 2.0) -> pd.DataFrame:
        """Holds during which another thread waited more than ``factor`` switch intervals."""
        return analysis.long_holds(self._intervals, self.events, self.switch_interval_ns, factor)

    def _cpu_records(self) -> "Optional[np.ndarray]":
        cpu = self._raw.cpu
        if cpu is None or self._bounds is None:
            return cpu
        # a window keeps the samples around it: the counters are cumulative
        t = cpu["time_ns"]
        lo = t[t <= self._bounds[0]].max() if (t <= self._bounds[0]).any() else self._bounds[0]
        hi = t[t >= self._bounds[1]].min() if (t >= self._bounds[1]).any() else self._bounds[1]
        return cpu[(t >= lo) & (t <= hi)]

    def cpu_state(self) -> pd.DataFrame:
        """Per thread: on-CPU and run-queue time, and how much of its GIL holds
        and waits it spent waiting for a CPU (traces made with cpu_state=True;
        empty otherwise).  See analysis.cpu_state."""
        return analysis.cpu_state(self._cpu_records(), self._intervals, self.start_ns, self.stop_ns)

    def off_cpu_spans(self) -> pd.DataFrame:
        """Holds spent mostly off-CPU, and waits after a wake-up spent in a run
        queue (cpu_state traces): analysis.off_cpu_spans."""
        spans = self._intervals.sort_values(["tid", "start_ns"], kind="stable")
        return analysis.off_cpu_spans(self._cpu_records(), spans)

    def cgroup_throttling(self) -> Dict[str, float]:
        """Time and periods this process's cgroup was throttled by its CPU quota."""
        return analysis.cgroup_throttling(self._cpu_records())

    def stuck_holders(self, factor: float = 2.0) -> pd.DataFrame:
        """The sampler's view of the same: runs of samples with a stuck holder."""
        s = self._raw.samples
        if self._bounds is not None:
            s = s[(s["time_ns"] >= self._bounds[0]) & (s["time_ns"] <= self._bounds[1])]
        return analysis.stuck_samples(s, self.switch_interval_ns, factor)

    def children(self) -> "List[Trace]":
        """Traces of the child processes (``giltrace run --subprocesses``), by start time."""
        import glob

        template = self.meta.get("children_template")
        if not template or self._parent is not None:
            return []
        out = []
        for path in sorted(glob.glob(template.replace("%p", "*"))):
            if os.path.abspath(path) == os.path.abspath(self.path or ""):
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", IncompleteTraceWarning)
                    out.append(load(path))
            except Exception:  # a child killed before its header: skip it
                continue
        return sorted(out, key=lambda t: t.meta.get("start_time_unix", 0))

    def diagnose(self, episodes: bool = True):
        """What went wrong, as findings with evidence, culprits by code line and
        advice, for the whole trace and for each episode of abnormal waiting (a
        Diagnosis; ``.to_dict()`` is ``giltrace summary --format json``)."""
        from .diagnosis import diagnose

        return diagnose(self, episodes=episodes)

    def episodes(self):
        """The periods in which threads waited for the GIL far above their calm, or
        a thread's wake latency stood far above its own (a list of Episode)."""
        from .episodes import find_episodes

        return find_episodes(self._intervals, self.start_ns, self.stop_ns, self.switch_interval_ns, self._wakes)

    def blame(self) -> pd.DataFrame:
        """Seconds each waiting thread (rows) waited while each thread (columns) held the GIL."""
        return analysis.blame(self._intervals)

    def blame_pairs(self) -> pd.DataFrame:
        """blame() as (waiter, holder, seconds) rows: only the pairs that overlapped."""
        return analysis.blame_pairs(self._intervals)

    def plot_timeline(self, ax=None, **options: Any):
        """Per-thread lanes of holding / waiting / released; returns (figure, axes).
        Options: start_s, end_s (seconds from the trace start), threads (names or tids)."""
        from .render.timeline import plot_timeline

        return plot_timeline(self, ax, **options)

    def switches(self) -> int:
        """Acquisitions that changed the holder (the interpreter's switch_number delta)."""
        return int(self.events["switched"].sum())

    def __repr__(self) -> str:
        m = self.meta
        return "<Trace %s: %.3f s, %d events, %d threads%s>" % (
            self.path or "(memory)",
            m["duration_s"],
            m["events"],
            len(self.names) or self.events["tid"].nunique(),
            "" if self.complete else ", INCOMPLETE",
        )


def load(path: str, *, warn: bool = True) -> Trace:
    """Read a trace file.  TraceFormatError (one-line reason) if it is not one.

    A file that was not finalised (killed process) loads up to its last whole
    chunk, with an IncompleteTraceWarning saying so.
    """
    raw = fileformat.read(str(path))
    if not raw.complete and warn:
        warnings.warn("%s: %s; loaded up to the last flushed chunk" % (path, raw.problem), IncompleteTraceWarning, stacklevel=2)
    return Trace(raw, str(path))
