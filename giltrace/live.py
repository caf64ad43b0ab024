"""Read a trace file while it is being written, and summarise its last seconds.

``giltrace top`` polls a growing ``.gtr`` file (the writer appends whole,
CRC-checked chunks every flush period, 100 ms by default): :class:`LiveTrace`
reads only the bytes added since the last poll, keeps the complete chunks,
and leaves a chunk that is still being written for the next poll.  Only the
last ``keep_s`` seconds of events are kept, so memory stays bounded however
long the trace runs.  :meth:`LiveTrace.snapshot` computes, for the last
``window_s`` seconds, per thread: wait %, hold %, waits/s, the p50/p99 of the
waits, who holds the GIL now, and the code line that held the GIL while
others waited (the blame of each wait goes to the release that preceded its
acquisition, as in docs/api.md "Attribution").

The whole-file reader (giltrace/fileformat.py) stays the reference: this one
uses the same layout constants and skips what ``top`` does not show.
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from . import fileformat
from .errors import TraceFormatError
from .layout import (
    CHUNK,
    CHUNK_EVENTS,
    CHUNK_FOOTER,
    CHUNK_LOCATIONS,
    CHUNK_MAGIC,
    CHUNK_OS_NAMES,
    CHUNK_PY_NAMES,
    CHUNK_START,
    CHUNK_THREADS,
    EV_ACQUIRE,
    EV_RELEASE,
    EV_WAIT,
    EVENT_FIELDS,
    FLAG_CONTENDED,
)

EVENT_DTYPE = np.dtype(EVENT_FIELDS)


@dataclass
class ThreadRow:
    tid: int
    name: str
    wait_pct: float
    hold_pct: float
    waits_per_s: float
    p50_ms: Optional[float]
    p99_ms: Optional[float]
    state: str  # "holding", "waiting" or ""
    members: int = 1  # > 1: a collapsed group of threads


@dataclass
class Snapshot:
    window_s: float
    rows: List[ThreadRow]
    holder: Optional[str]  # name of the thread holding the GIL at the last event
    holder_where: str
    culprit: str  # the code line that held the GIL during the most waiting
    culprit_ms: float
    events: int  # in the window
    complete: bool  # the trace has its footer (the target stopped tracing)
    waits: Dict[int, np.ndarray] = field(default_factory=dict, repr=False)


class LiveTrace:
    def __init__(self, path: str, keep_s: float = 30.0) -> None:
        self.path = path
        self.keep_ns = int(keep_s * 1e9)
        self.header: Dict[str, object] = {}
        self.start: Dict[str, object] = {}
        self.footer: Dict[str, object] = {}
        self.names: Dict[int, str] = {}
        self.os_names: Dict[int, str] = {}
        self.locations: Dict[int, Tuple[str, str, int]] = {}
        self._offset = 0
        self._parts: List[np.ndarray] = []
        self.events = np.empty(0, EVENT_DTYPE)
        self.last_ns = 0

    def poll(self) -> int:
        """Read what was appended since the last call; the number of new events."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise TraceFormatError("cannot read %s: %s" % (self.path, exc.strerror or exc)) from None
        pos, new = 0, 0
        if self._offset == 0:
            head = fileformat.read_header(data, self.path)  # the file reader's checks, word for word
            if head is None:
                return 0  # still being started
            self.header, pos = head
        while pos + CHUNK.size <= len(data):
            magic, kind, _, count, plen, crc = CHUNK.unpack_from(data, pos)
            if magic != CHUNK_MAGIC:
                raise TraceFormatError("%s is corrupt: bad chunk marker at byte %d" % (self.path, self._offset + pos))
            body = pos + CHUNK.size
            if body + plen > len(data):
                break  # still being written: next poll
            payload = data[body : body + plen]
            if zlib.crc32(payload) != crc:
                raise TraceFormatError("%s is corrupt: checksum mismatch at byte %d" % (self.path, self._offset + pos))
            new += self._chunk(kind, count, payload, self._offset + pos)
            pos = body + plen
        self._offset += pos
        if new:
            self.events = np.concatenate([self.events] + self._parts) if self._parts else self.events
            self._parts = []
            self.last_ns = max(self.last_ns, int(self.events["time_ns"].max()))
            cut = self.last_ns - self.keep_ns
            if len(self.events) and int(self.events["time_ns"][0]) < cut:
                self.events = self.events[np.searchsorted(self.events["time_ns"], cut) :]
        return new

    def _chunk(self, kind: int, count: int, payload: bytes, where: int) -> int:
        """One chunk, through the file reader's own checks (giltrace/fileformat.py):
        whatever a hostile writer put there, a TraceFormatError at worst."""
        path = self.path
        if kind == CHUNK_EVENTS:
            arr = fileformat.check_records(fileformat.records(kind, count, payload, path, where), kind, path).copy()
            arr.sort(order="time_ns", kind="stable")  # one thread's events keep their order
            self._parts.append(arr)
            return len(arr)
        if kind in (CHUNK_START, CHUNK_FOOTER, CHUNK_THREADS):
            rec = fileformat.json_record(kind, payload, path, where)
            if kind == CHUNK_START:
                self.start = rec
            elif kind == CHUNK_FOOTER:
                self.footer = rec
            else:
                self.names.update((int(r["tid"]), str(r["name"])) for r in rec)
            fileformat.check_span(self.start, self.footer, path)
        elif kind == CHUNK_PY_NAMES:
            self.names.update((int(r["tid"]), str(r["name"])) for r in fileformat.py_names(payload, count, path, where))
        elif kind == CHUNK_OS_NAMES:
            fileformat.os_names(payload, count, self.os_names, path, where)
        elif kind == CHUNK_LOCATIONS:
            fileformat.read_locations(payload, count, self.locations, path, where)
        return 0

    def name(self, tid: int) -> str:
        if tid in self.names:
            return self.names[tid]
        process = self.os_names.get(int(self.header.get("pid", -1) or -1))  # type: ignore[arg-type]
        os_name = self.os_names.get(tid)
        return os_name if os_name and os_name != process else "thread-%d" % tid

    def where(self, location: int) -> str:
        loc = self.locations.get(location)
        if not loc:
            return "?"
        return "%s:%d (%s)" % (os.path.basename(loc[0]), loc[2], loc[1])

    def snapshot(self, window_s: float = 5.0) -> Snapshot:
        """Per-thread figures over the last ``window_s`` seconds of the trace."""
        ev = self.events
        end = self.last_ns
        start_ns = int(self.start.get("start_ns", 0) or 0) if self.start else 0
        begin = max(end - int(window_s * 1e9), start_ns)
        span = max(end - begin, 1)
        rows: List[ThreadRow] = []
        waits: Dict[int, np.ndarray] = {}
        holder, holder_tid, holder_where, last_acquire = None, None, "", -1
        t, tid, kind, arg, flags = ev["time_ns"].astype(np.int64), ev["tid"], ev["kind"], ev["arg"], ev["flags"]
        for thread in np.unique(tid) if len(ev) else []:
            mask = tid == thread
            tt, kk, aa, ff = t[mask], kind[mask], arg[mask], flags[mask]
            inwin = tt >= begin
            acq = (kk == EV_ACQUIRE) & inwin
            # A take's wait ends at its acquire: count the part inside the window.
            wait_ns = np.minimum(aa[acq].astype(np.int64), tt[acq] - begin).clip(0).sum()
            contended = acq & ((ff & FLAG_CONTENDED) != 0)
            w = aa[contended].astype(np.int64)
            waits[int(thread)] = w
            state = ""
            if len(kk):
                last = kk[-1]
                if last == EV_WAIT:
                    wait_ns += end - max(int(tt[-1]), begin)
                    state = "waiting"
                elif last == EV_ACQUIRE:
                    state = "holding"
                    if int(tt[-1]) > last_acquire:
                        last_acquire, holder, holder_tid = int(tt[-1]), self.name(int(thread)), thread
            hold_ns = _held(tt, kk, begin, end)
            rows.append(
                ThreadRow(
                    int(thread),
                    self.name(int(thread)),
                    float(100.0 * wait_ns / span),
                    100.0 * hold_ns / span,
                    len(w) / (span / 1e9),
                    _pct(w, 50),
                    _pct(w, 99),
                    state,
                )
            )
        culprit, culprit_ms = self._culprit(begin)
        if holder_tid is not None:  # where it last let go: the loop or call it is most likely back in
            mine = np.flatnonzero((tid == holder_tid) & (kind == EV_RELEASE))
            holder_where = self.where(_location_of(ev, int(mine[-1]))) if len(mine) else ""
        rows.sort(key=lambda r: (-r.wait_pct, -r.hold_pct, r.tid))
        return Snapshot(span / 1e9, rows, holder, holder_where, culprit, culprit_ms, int((t >= begin).sum()), bool(self.footer), waits)

    def _culprit(self, begin: int) -> Tuple[str, float]:
        """The location of the release each contended acquisition waited behind, by total wait."""
        ev = self.events
        if not len(ev):
            return "", 0.0
        t = ev["time_ns"].astype(np.int64)
        rel = np.flatnonzero(ev["kind"] == EV_RELEASE)
        acq = np.flatnonzero((ev["kind"] == EV_ACQUIRE) & ((ev["flags"] & FLAG_CONTENDED) != 0) & (t >= begin))
        if not len(rel) or not len(acq):
            return "", 0.0
        k = np.searchsorted(t[rel], t[acq], side="right") - 1
        ok = k >= 0
        before = rel[k[ok]]
        other = ev["tid"][before] != ev["tid"][acq[ok]]
        blamed: Dict[int, int] = {}
        for r, a in zip(before[other], acq[ok][other]):
            loc = _location_of(ev, int(r))
            blamed[loc] = blamed.get(loc, 0) + int(ev["arg"][a])
        if not blamed:
            return "", 0.0
        loc, ns = max(blamed.items(), key=lambda kv: kv[1])
        return self.where(loc), ns / 1e6


def _location_of(ev: np.ndarray, i: int) -> int:
    """A RELEASE event's code location id (csrc/giltrace_api.h: its ``arg``)."""
    return int(ev["arg"][i])


def _held(t: np.ndarray, k: np.ndarray, begin: int, end: int) -> int:
    """ns between each ACQUIRE and the next RELEASE of one thread, clipped to [begin, end]."""
    total, since = 0, None
    marks = np.flatnonzero((k == EV_ACQUIRE) | (k == EV_RELEASE))
    if len(marks) and k[marks[0]] == EV_RELEASE:
        since = begin  # held when the kept events begin
    for i in marks:
        if k[i] == EV_ACQUIRE:
            since = int(t[i])
        elif since is not None:
            a, b = max(since, begin), min(int(t[i]), end)
            total += max(0, b - a)
            since = None
    if since is not None:
        total += max(0, end - max(since, begin))
    return total


def _pct(values: np.ndarray, q: float) -> Optional[float]:
    if not len(values):
        return None
    ordered = np.sort(values)  # nearest rank, as the summary's percentiles
    return float(ordered[min(len(ordered) - 1, max(0, int(np.ceil(q / 100.0 * len(ordered))) - 1))]) / 1e6
