"""The trace file format (version 1).  Documented in docs/file-format.md.

A trace file is a header followed by self-delimiting chunks, appended as the
trace runs, so that a killed process leaves a file readable up to its last
whole chunk::

    header  : b"GILTRACE" | u16 format_version | u16 flags (0) | u32 n | n bytes of JSON metadata
    chunk   : u32 b"CHNK" | u16 kind | u16 0 | u32 count | u32 payload_len | u32 crc32(payload) | payload

Integers are little-endian.  Chunk kinds: EVENTS and SAMPLES are arrays of
fixed-size records written by the C writer thread (see EVENT_FIELDS and
SAMPLE_FIELDS, identical to ``gt_event`` / ``gt_sample`` in
csrc/giltrace_api.h); START, THREADS and FOOTER are JSON written by Python.
The file is opened with O_APPEND and every chunk is written with one
``write(2)``, so chunks from the two writers never interleave.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Tuple

from .errors import TraceFormatError

# The layout itself (magic, structs, chunk kinds, record fields, event kinds)
# is declared once, in giltrace/layout.py, shared with the writer.
from .layout import (  # noqa: E402,F401  (re-exported: fileformat.CHUNK_START etc.)
    CHUNK,
    CHUNK_CPU,
    CHUNK_EVENTS,
    CHUNK_FOOTER,
    CHUNK_LOCATIONS,
    CHUNK_MAGIC,
    CHUNK_OS_NAMES,
    CHUNK_PY_NAMES,
    CHUNK_SAMPLES,
    CHUNK_START,
    CHUNK_THREADS,
    CPU_FIELDS,
    EV_ACQUIRE,
    EV_DROP_REQUEST,
    EV_RELEASE,
    EV_WAIT,
    EVENT_FIELDS,
    FLAG_CONTENDED,
    FLAG_SWITCHED,
    FLAG_WAIT_UNKNOWN,
    FORMAT_VERSION,
    HEADER,
    LOCATION_HEAD,
    MAGIC,
    PY_NAME,
    SAMPLE_FIELDS,
    header_bytes,
    json_chunk,
    write_all,
)

if TYPE_CHECKING:
    import numpy as np


@dataclass
class RawTrace:
    """What a file holds, before any interpretation."""

    header: Dict[str, Any]
    start: Dict[str, Any]
    footer: Dict[str, Any]
    threads: List[Dict[str, Any]]
    events: "np.ndarray"
    samples: "np.ndarray"
    cpu: "np.ndarray | None" = None  # CPU_FIELDS records (cpu_state traces), else None
    locations: Dict[int, tuple] = field(default_factory=dict)  # id -> (file, function, line)
    os_names: Dict[int, str] = field(default_factory=dict)  # tid -> OS thread name
    complete: bool = True
    problem: str = ""  # why the file is incomplete, if it is
    extra: Dict[str, Any] = field(default_factory=dict)


def _json(payload: bytes, where: str, path: str) -> Any:
    try:
        obj = json.loads(bytes(payload).decode(), parse_constant=_no_constant)
    except RecursionError:  # json's C scanner recurses once per nesting level
        raise TraceFormatError("%s is corrupt: the JSON of its %s is nested too deeply" % (path, where)) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise TraceFormatError("%s is corrupt: bad JSON in its %s (%s)" % (path, where, _one_line(exc))) from None
    try:
        return _clean(obj, 0)
    except _Bad as exc:
        raise TraceFormatError("%s is corrupt: %s %s" % (path, where, exc)) from None


class _Bad(ValueError):
    """A reason, completed into a TraceFormatError message by the caller."""


def _no_constant(name: str) -> Any:
    raise ValueError("%s is not a number" % name)  # NaN / Infinity are not JSON


MAX_JSON_DEPTH = 16  # the writers (giltrace/tracer.py) nest 3 levels at most


def _clean(obj: Any, depth: int) -> Any:
    """Reject what no writer produces (deep nesting, 1e400 read as inf) and
    make strings printable: a lone surrogate (``"\\udc80"``) cannot be
    written to a UTF-8 stdout or CSV file."""
    if depth > MAX_JSON_DEPTH:
        raise _Bad("JSON is nested more than %d levels deep" % MAX_JSON_DEPTH)
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
            return obj
        except UnicodeEncodeError:
            return obj.encode("utf-8", "replace").decode("utf-8")
    if isinstance(obj, float) and not math.isfinite(obj):
        raise _Bad("holds a number out of range")
    if isinstance(obj, list):
        return [_clean(v, depth + 1) for v in obj]
    if isinstance(obj, dict):
        return {_clean(k, depth + 1): _clean(v, depth + 1) for k, v in obj.items()}
    return obj


def _one_line(value: Any, limit: int = 40) -> str:
    """A short one-line rendering: an exception's text, or a JSON value as JSON."""
    text = str(value) if isinstance(value, Exception) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# Field checks of the JSON records.  Trace.meta merges header, START and
# FOOTER into one dict (giltrace/model.py), so each key is checked wherever it
# appears; keys not listed here are free (newer writers may add some).
INT64_MAX = 2**63 - 1  # times and counters become numpy int64 (giltrace/analysis.py)
MIN_SWITCH_INTERVAL_S = 1e-6
MAX_SWITCH_INTERVAL_S = 3600.0
MAX_DURATION_NS = 366 * 86400 * 10**9  # a year: longer is a crafted or corrupt stop


def _is_int(v: Any, lo: int = 0, hi: int = INT64_MAX) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _int(lo: int = 0, hi: int = INT64_MAX, null: bool = False) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v is None and null:
            return ""
        return "" if _is_int(v, lo, hi) else "is not an integer in [%d, %d]" % (lo, hi)

    return check


def _number(lo: float, hi: float) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and lo <= v <= hi
        return "" if ok else "is not a number in [%g, %g]" % (lo, hi)

    return check


def _text(v: Any) -> str:
    return "" if v is None or isinstance(v, str) else "is not a string"


def _texts(v: Any) -> str:
    return "" if isinstance(v, list) and all(isinstance(x, str) for x in v) else "is not a list of strings"


def _cpu_list(v: Any) -> str:
    ok = v is None or (isinstance(v, list) and all(_is_int(x, 0, 2**31) for x in v))
    return "" if ok else "is not a list of CPU numbers"


def _clock_pair(v: Any) -> str:
    ok = isinstance(v, list) and len(v) == 2 and all(_is_int(x) for x in v)
    return "" if ok else "is not a [monotonic ns, Unix ns] pair"


def _flag(v: Any) -> str:
    return "" if isinstance(v, (bool, int)) else "is not a boolean"


_NS = _int()
FIELDS: Dict[str, Callable[[Any], str]] = {
    # header (giltrace/tracer.py Tracer._header)
    "format_version": _int(),
    "pid": _int(0, 2**31),
    "cpu_count": _int(0, 2**31, null=True),
    "affinity": _cpu_list,
    # CPython keeps it in whole microseconds; 0 or a huge value would size
    # grids and divide by zero downstream (issue 25)
    "switch_interval_s": _number(MIN_SWITCH_INTERVAL_S, MAX_SWITCH_INTERVAL_S),
    "sample_period_ns": _NS,
    "flush_period_ns": _NS,
    "buffer_events": _NS,
    "locations": _flag,
    "start_time_unix": _number(0, 1e11),
    "argv": _texts,
    "library_prefixes": _texts,
    "children_template": _text,
    "giltrace_version": _text,
    "clock": _text,
    "executable": _text,
    "python_version": _text,
    "python_implementation": _text,
    "platform": _text,
    "machine": _text,
    "hostname": _text,
    # START and FOOTER
    "start_ns": _NS,
    "stop_ns": _NS,
    "clock_pair": _clock_pair,
    "switch_number_start": _NS,
    "switch_number_stop": _NS,
    "hooked_object": _text,
    "stop_time_unix": _number(0, 1e11),
    "events_written": _NS,
    "events_lost": _int(null=True),
    "samples_written": _NS,
    "write_errno": _int(0, 2**31),
    "locations_lost": _NS,
    "fd_reopened": _int(0, 2**32),
}


def _record(obj: Any, where: str, path: str, required: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """A header/START/FOOTER record: a JSON object whose known fields have sane types and ranges."""
    if not isinstance(obj, dict):
        raise TraceFormatError("%s is corrupt: its %s is %s, not a JSON object" % (path, where, _json_type(obj)))
    for key in required:
        if key not in obj:
            raise TraceFormatError("%s is corrupt: its %s has no %s" % (path, where, key))
    for key, value in obj.items():
        check = FIELDS.get(key)
        problem = check(value) if check else ""
        if problem:
            raise TraceFormatError("%s is corrupt: %s field %s %s (%s)" % (path, where, key, problem, _one_line(value)))
    return obj


def _thread_records(obj: Any, path: str, where: int) -> List[Dict[str, Any]]:
    """A THREADS payload: a list of {"tid": int, "name": str}."""
    if not isinstance(obj, list):
        raise TraceFormatError("%s is corrupt: thread names at byte %d are %s, not a JSON list" % (path, where, _json_type(obj)))
    for r in obj:
        if not (isinstance(r, dict) and _is_int(r.get("tid"), 0, 2**32 - 1) and isinstance(r.get("name"), str)):
            raise TraceFormatError("%s is corrupt: bad thread record at byte %d (%s)" % (path, where, _one_line(r)))
    return obj


def py_names(payload, count: int, path: str, where: int) -> List[Dict[str, Any]]:
    """A PY_NAMES payload (C's copy of the names Python learnt as threads
    started): thread records, as in THREADS."""
    if len(payload) != PY_NAME.size * count:
        raise TraceFormatError("%s is corrupt: bad thread-names chunk at byte %d" % (path, where))
    out = []
    for i in range(count):
        tid, name = PY_NAME.unpack_from(payload, PY_NAME.size * i)
        out.append({"tid": tid, "name": name.split(b"\0", 1)[0].decode("utf-8", "replace")})
    return out


def _json_type(obj: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if obj is None else names.get(type(obj), type(obj).__name__)


def read_header(data: bytes, path: str) -> "Tuple[Dict[str, Any], int] | None":
    """The header record and where the chunks begin; None while the file is
    shorter than its header (a live file still being started)."""
    if len(data) < HEADER.size:
        if MAGIC.startswith(bytes(data[: len(MAGIC)])):
            return None
        raise TraceFormatError("%s is not a giltrace trace file (bad magic)" % path)
    if not bytes(data[: len(MAGIC)]) == MAGIC:
        raise TraceFormatError("%s is not a giltrace trace file (bad magic)" % path)
    _, version, _, n = HEADER.unpack_from(data, 0)
    if version != FORMAT_VERSION:
        raise TraceFormatError("%s has trace format version %d; this giltrace reads version %d" % (path, version, FORMAT_VERSION))
    if HEADER.size + n > len(data):
        return None
    return _record(_json(data[HEADER.size : HEADER.size + n], "header", path), "header", path), HEADER.size + n


def check_records(arr: "np.ndarray", kind: int, path: str) -> "np.ndarray":
    """Event or sample records as the analyses need them: times in int64's
    range, event kinds known."""
    if not len(arr):
        return arr
    if int(arr["time_ns"].max()) > INT64_MAX:
        name = {CHUNK_EVENTS: "an event", CHUNK_SAMPLES: "a sample"}.get(kind, "a CPU sample")
        raise TraceFormatError("%s is corrupt: %s time is out of range" % (path, name))
    if kind == CHUNK_EVENTS:  # checked here too (giltrace/analysis.py does) so that the message names the file
        kinds = arr["kind"]
        lo, hi = int(kinds.min()), int(kinds.max())
        if lo < EV_WAIT or hi > EV_DROP_REQUEST:
            raise TraceFormatError("%s is corrupt: unknown event kind %d" % (path, lo if lo < EV_WAIT else hi))
    return arr


def records(kind: int, count: int, payload: Any, path: str, where: int) -> "np.ndarray":
    """An EVENTS / SAMPLES / CPU chunk's records, their size checked."""
    import numpy as np

    dtype = np.dtype(EVENT_FIELDS if kind == CHUNK_EVENTS else SAMPLE_FIELDS if kind == CHUNK_SAMPLES else CPU_FIELDS)
    if len(payload) != count * dtype.itemsize:
        raise TraceFormatError("%s is corrupt: chunk at byte %d has a bad size" % (path, where))
    return np.frombuffer(payload, dtype=dtype)


def json_record(kind: int, payload: Any, path: str, where: int) -> Any:
    """A START / FOOTER record (a checked dict) or THREADS (a list of {tid, name})."""
    if kind == CHUNK_START:
        return _record(_json(payload, "START record", path), "START record", path, ("start_ns",))
    if kind == CHUNK_FOOTER:
        return _record(_json(payload, "FOOTER record", path), "FOOTER record", path, ("stop_ns",))
    return _thread_records(_json(payload, "thread names", path), path, where)


def os_names(payload: Any, count: int, out: Dict[int, str], path: str, where: int) -> None:
    """An OS_NAMES chunk: records of u32 tid, char name[16]."""
    if len(payload) != 20 * count:
        raise TraceFormatError("%s is corrupt: bad thread-names chunk at byte %d" % (path, where))
    for i in range(count):
        tid, name = struct.unpack_from("<I16s", payload, 20 * i)
        out[tid] = name.split(b"\0", 1)[0].decode("utf-8", "replace")


def check_span(start: Dict[str, Any], footer: Dict[str, Any], path: str) -> None:
    """The trace's start and stop: in order, and no longer than a year."""
    start_ns = footer.get("start_ns", start.get("start_ns", 0))  # Trace.meta: the footer's fields win
    if footer and "stop_ns" in footer:
        if footer["stop_ns"] < start_ns:
            raise TraceFormatError("%s is corrupt: the trace stops (%d) before it starts (%d)" % (path, footer["stop_ns"], start_ns))
        if footer["stop_ns"] - start_ns > MAX_DURATION_NS:
            raise TraceFormatError(
                "%s is corrupt: the trace claims to last %.0f days (its stop is %d ns after its start)"
                % (path, (footer["stop_ns"] - start_ns) / 86400e9, footer["stop_ns"] - start_ns)
            )


def read(path: str) -> RawTrace:
    """Parse a trace file.  Raises TraceFormatError with a one-line reason."""
    import numpy as np  # only reading needs numpy: tracing works without it

    event_dtype, sample_dtype = np.dtype(EVENT_FIELDS), np.dtype(SAMPLE_FIELDS)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except IsADirectoryError:
        raise TraceFormatError("%s is a directory, not a trace file" % path) from None
    except OSError as exc:
        raise TraceFormatError("cannot read %s: %s" % (path, exc.strerror or exc)) from None
    head = read_header(data, path) if len(data) >= HEADER.size else None
    if head is None:
        if len(data) < HEADER.size:
            raise TraceFormatError("%s is not a giltrace trace file (bad magic)" % path)
        raise TraceFormatError("%s is truncated inside its header" % path)
    header, body = head

    raw = RawTrace(header=header, start={}, footer={}, threads=[], events=np.empty(0, event_dtype), samples=np.empty(0, sample_dtype))
    events: List["np.ndarray"] = []
    samples: List["np.ndarray"] = []
    cpu: List["np.ndarray"] = []
    view = memoryview(data)
    off = body
    while off < len(data):
        if off + CHUNK.size > len(data):
            raw.complete, raw.problem = False, "the file ends inside a chunk header (%d stray bytes)" % (len(data) - off)
            break
        magic, kind, _, count, plen, crc = CHUNK.unpack_from(data, off)
        if magic != CHUNK_MAGIC:
            raise TraceFormatError("%s is corrupt: bad chunk marker at byte %d" % (path, off))
        body_start = off + CHUNK.size
        if body_start + plen > len(data):
            raw.complete, raw.problem = False, "the last chunk was cut short (%d of %d bytes)" % (len(data) - body_start, plen)
            break
        payload = view[body_start : body_start + plen]
        if zlib.crc32(payload) != crc:
            raise TraceFormatError("%s is corrupt: checksum mismatch in the chunk at byte %d" % (path, off))
        if kind in (CHUNK_EVENTS, CHUNK_SAMPLES, CHUNK_CPU):
            {CHUNK_EVENTS: events, CHUNK_SAMPLES: samples, CHUNK_CPU: cpu}[kind].append(records(kind, count, payload, path, off))
        elif kind == CHUNK_START:
            raw.start = json_record(kind, payload, path, off)
        elif kind == CHUNK_THREADS:
            raw.threads.extend(json_record(kind, payload, path, off))
        elif kind == CHUNK_FOOTER:
            raw.footer = json_record(kind, payload, path, off)
        elif kind == CHUNK_LOCATIONS:
            read_locations(bytes(payload), count, raw.locations, path, off)
        elif kind == CHUNK_PY_NAMES:
            raw.threads.extend(py_names(payload, count, path, off))
        elif kind == CHUNK_OS_NAMES:
            os_names(payload, count, raw.os_names, path, off)
        # Unknown kinds are skipped: newer writers may add chunk kinds.
        off = body_start + plen
    if events:
        raw.events = np.concatenate(events)
    if samples:
        raw.samples = np.concatenate(samples)
    if cpu:
        raw.cpu = np.concatenate(cpu)
    if not raw.footer and raw.complete:
        raw.complete, raw.problem = False, "the trace was not finalised (the process was killed or crashed)"
    if not raw.start:
        raise TraceFormatError("%s holds no trace: the tracer never started" % path)
    # Times become int64 (giltrace/analysis.py); an unfinalised trace stops at its last timestamp.
    for kind, arr in ((CHUNK_EVENTS, raw.events), (CHUNK_SAMPLES, raw.samples), (CHUNK_CPU, raw.cpu)):
        if arr is not None:
            check_records(arr, kind, path)
    check_span(raw.start, raw.footer, path)
    return raw


def read_locations(payload: bytes, count: int, out: Dict[int, tuple], path: str, where: int) -> None:
    """A LOCATIONS chunk: records of u32 id, i32 line, u16 file_len, u16 name_len, file, name."""
    pos = 0
    try:
        for _ in range(count):
            loc_id, line, flen, nlen = LOCATION_HEAD.unpack_from(payload, pos)
            pos += LOCATION_HEAD.size
            file = payload[pos : pos + flen].decode("utf-8", "replace")
            func = payload[pos + flen : pos + flen + nlen].decode("utf-8", "replace")
            pos += flen + nlen
            out[loc_id] = (file, func, line)
        if pos != len(payload):  # names running past the payload, or bytes after the last record
            raise struct.error("bad length")
    except struct.error:
        raise TraceFormatError("%s is corrupt: bad locations chunk at byte %d" % (path, where)) from None
