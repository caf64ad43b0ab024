"""Chrome Trace Event / Perfetto JSON: one track per thread with `hold GIL`
and `wait GIL` slices, drop requests as instants, thread names as metadata.

Timestamps are microseconds of CLOCK_MONOTONIC (``clock="monotonic"``, the
clock VizTracer records on Linux, so the two files line up when combined
with ``viztracer --combine``), or of the Unix epoch (``clock="epoch"``),
converted with the (monotonic, wall) pair taken at the trace start.  pid is
the traced process's pid and tid the OS thread id, as VizTracer writes them.

The document is written as it is produced, a chunk of events at a time
(giltrace/render/rows.py), one event per line: memory stays bounded whatever
the trace's size.  ``chrome_events`` and ``merge_into`` give the same
document as a dict, for small traces and for tests.
"""

from __future__ import annotations

import io
import json
from typing import IO, Any, Dict, Iterator, List, Optional, Set, Tuple

import numpy as np

from ..errors import TraceFormatError
from . import rows

CHUNK_ROWS = 65536  # events per vectorised chunk
CHUNK_BYTES = 16 << 20  # ...fewer when rows are wide (long code locations)


class _EventWriter:
    """Writes the events of a JSON array, ',\\n' between them."""

    def __init__(self, out: IO[bytes]):
        self.out, self.count = out, 0

    def one(self, event: Dict[str, Any]) -> None:
        self.out.write((b",\n" if self.count else b"") + json.dumps(event, separators=(",", ":")).encode())
        self.count += 1

    def chunk(self, text: bytes, n: int) -> None:
        """``n`` events, each starting with ',\\n'."""
        if n:
            self.out.write(text if self.count else text[2:])
            self.count += n


def _offset_ns(trace, clock: str) -> int:
    if clock not in ("monotonic", "epoch"):
        raise ValueError("clock must be 'monotonic' or 'epoch'")
    if clock == "monotonic":
        return 0
    pair = trace.meta.get("clock_pair")
    if pair:
        return int(pair[1]) - int(pair[0])
    if trace.meta.get("start_time_unix") is None:
        raise TraceFormatError("%s records no wall-clock time: it cannot be exported on the Unix-epoch clock" % (trace.path or "the trace"))
    # older files: the header's wall time, taken just before the start
    return int(float(trace.meta["start_time_unix"]) * 1e9) - trace.start_ns


def _metadata(trace) -> Iterator[Dict[str, Any]]:
    meta = trace.meta
    pid = int(meta.get("pid", 0))
    yield {
        "ph": "M",
        "name": "process_name",
        "pid": pid,
        "tid": 0,
        "args": {"name": "python %s (giltrace)" % meta.get("python_version", "")},
    }
    th = trace.threads()
    for i, (tid, name) in enumerate(zip(th.index, th["name"])):
        yield {"ph": "M", "name": "thread_name", "pid": pid, "tid": int(tid), "args": {"name": str(name)}}
        yield {"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": int(tid), "args": {"sort_index": i}}


def _chunks(n: int, width: int) -> Iterator[Tuple[int, int]]:
    step = max(256, min(CHUNK_ROWS, CHUNK_BYTES // max(width, 1)))
    for lo in range(0, n, step):
        yield lo, min(n, lo + step)


def _slices(trace, w: _EventWriter, offset_ns: int) -> None:
    """The hold/wait slices ("X"), by thread then time."""
    pid = int(trace.meta.get("pid", 0))
    iv = trace.intervals()
    keep = iv["duration_ns"].to_numpy() > 0
    tid, start = iv["tid"].to_numpy()[keep], iv["start_ns"].to_numpy()[keep]
    order = np.lexsort((start, tid))  # stable: equal (tid, start) keep their interval order
    tid, start = tid[order], start[order]
    dur = iv["duration_ns"].to_numpy()[keep][order]
    hold = (iv["state"].cat.codes.to_numpy()[keep][order] == list(iv["state"].cat.categories).index("hold")).astype(np.intp)
    loc = iv["location"].to_numpy()[keep][order]
    heads = [b',\n{"ph":"X","cat":"gil","name":"%s","pid":%d,"tid":' % (name, pid) for name in (b"wait GIL", b"hold GIL")]
    # A wait's location is where the thread began waiting; a hold's, where it let go (0: none).
    ids = np.unique(loc[loc != 0])
    tails = [b"}"] + [b',"args":{"location":%s}}' % json.dumps(trace.location_label(int(i))).encode() for i in ids]
    code = np.where(loc != 0, np.searchsorted(ids, loc) + 1, 0)
    width = 100 + max(len(t) for t in tails)
    for lo, hi in _chunks(len(tid), width):
        s = slice(lo, hi)
        segments = [
            rows.table(hold[s], heads),
            rows.integers(tid[s]),
            b',"ts":',
            *rows.micros(start[s], offset_ns),
            b',"dur":',
            *rows.micros(dur[s]),
            rows.table(code[s], tails),
        ]
        w.chunk(rows.join(segments, hi - lo), hi - lo)


def _drops(trace, w: _EventWriter, offset_ns: int) -> None:
    """Drop requests as thread-scoped instants ("i"), in time order."""
    pid = int(trace.meta.get("pid", 0))
    ev = trace.events
    m = (ev["kind"] == "drop_request").to_numpy()
    tid, t, holder = ev["tid"].to_numpy()[m], ev["time_ns"].to_numpy()[m], ev["holder_tid"].to_numpy()[m]
    holders = np.unique(holder)
    tails = [b',"args":{"holder_tid":%d,"holder":%s}}' % (int(h), json.dumps(trace.names.get(int(h), "")).encode()) for h in holders]
    code = np.searchsorted(holders, holder)
    head = b',\n{"ph":"i","s":"t","cat":"gil","name":"drop request","pid":%d,"tid":' % pid
    width = 120 + max([len(x) for x in tails] + [0])
    for lo, hi in _chunks(len(tid), width):
        s = slice(lo, hi)
        segments = [head, rows.integers(tid[s]), b',"ts":', *rows.micros(t[s], offset_ns), rows.table(code[s], tails)]
        w.chunk(rows.join(segments, hi - lo), hi - lo)


def _gil_events(trace, w: _EventWriter, clock: str, skip: Optional[Set[Tuple[Any, Any, Any]]] = None) -> None:
    offset_ns = _offset_ns(trace, clock)
    for e in _metadata(trace):
        if not skip or (e["pid"], e["tid"], e["name"]) not in skip:
            w.one(e)
    _slices(trace, w, offset_ns)
    _drops(trace, w, offset_ns)


def write_chrome(trace, out: IO[bytes], clock: str = "monotonic") -> int:
    """Write the trace's Chrome JSON document to a binary file; return the number of events."""
    _offset_ns(trace, clock)  # a bad clock fails before anything is written
    meta = trace.meta
    out.write(b'{"traceEvents":[\n')
    w = _EventWriter(out)
    _gil_events(trace, w, clock)
    other = {
        "source": "giltrace",
        "clock": clock,
        "switch_interval_s": meta.get("switch_interval_s"),
        "events_lost": meta.get("events_lost"),
        "complete": meta.get("complete"),
    }
    out.write(b'\n],"displayTimeUnit":"ms","otherData":%s}\n' % json.dumps(other, separators=(",", ":")).encode())
    return w.count


def write_merged(other: Any, trace, out: IO[bytes]) -> int:
    """Write another Chrome trace of the same run (e.g. a VizTracer report) with
    the GIL tracks added, on that trace's clock; return the number of events."""
    if isinstance(other, list):  # the JSON array form of the format
        other = {"traceEvents": other}
    theirs = other.get("traceEvents", [])
    known = {(e.get("pid"), e.get("tid"), e.get("name")) for e in theirs if isinstance(e, dict) and e.get("ph") == "M"}
    clock = guess_clock(other)
    out.write(b"{")
    for key, value in other.items():
        if key != "traceEvents":
            out.write(b"%s:%s," % (json.dumps(key).encode(), json.dumps(value, separators=(",", ":")).encode()))
    out.write(b'"traceEvents":[\n')
    w = _EventWriter(out)
    for e in theirs:
        w.one(e)
    _gil_events(trace, w, clock, skip=known)
    out.write(b"\n]}\n")
    return w.count


def chrome_events(trace, clock: str = "monotonic") -> Dict[str, Any]:
    """The document of write_chrome as a dict (it holds every event: for small traces)."""
    buf = io.BytesIO()
    write_chrome(trace, buf, clock)
    return json.loads(buf.getvalue())


def guess_clock(doc: Any) -> str:
    """Which clock another Chrome trace uses: Unix-epoch microseconds are
    ~1.7e15 today, CLOCK_MONOTONIC microseconds (time since boot) far less."""
    events = doc.get("traceEvents", []) if isinstance(doc, dict) else doc
    ts = sorted(e["ts"] for e in events if isinstance(e, dict) and isinstance(e.get("ts"), (int, float)))
    if not ts:
        return "monotonic"
    return "epoch" if ts[len(ts) // 2] > 1e14 else "monotonic"


def merge_into(other: Any, trace) -> Dict[str, Any]:
    """The document of write_merged as a dict."""
    buf = io.BytesIO()
    write_merged(other, trace, buf)
    return json.loads(buf.getvalue())


__all__: List[str] = ["write_chrome", "write_merged", "chrome_events", "merge_into", "guess_clock"]
