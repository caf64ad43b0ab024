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
import os
import struct
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List

from .errors import TraceFormatError

MAGIC = b"GILTRACE"
FORMAT_VERSION = 1
CHUNK_MAGIC = b"CHNK"

HEADER = struct.Struct("<8sHHI")
CHUNK = struct.Struct("<4sHHIII")

CHUNK_EVENTS = 1
CHUNK_SAMPLES = 2
CHUNK_START = 3
CHUNK_THREADS = 4
CHUNK_FOOTER = 5
CHUNK_LOCATIONS = 6
CHUNK_OS_NAMES = 7
LOCATION_HEAD = struct.Struct("<IiHH")

# Record layouts (numpy dtype specs), identical to gt_event / gt_sample.
EVENT_FIELDS = [("time_ns", "<u8"), ("arg", "<u8"), ("tid", "<u4"), ("kind", "u1"), ("flags", "u1"), ("reserved", "<u2")]
SAMPLE_FIELDS = [
    ("time_ns", "<u8"),
    ("switch_number", "<u8"),
    ("holder_tid", "<u4"),
    ("waiters", "<u2"),
    ("locked", "u1"),
    ("drop_request", "u1"),
]
RECORD_SIZE = 24

if TYPE_CHECKING:
    import numpy as np

# Event kinds and ACQUIRE flags, as in csrc/giltrace_api.h.
EV_WAIT, EV_ACQUIRE, EV_RELEASE, EV_DROP_REQUEST = 1, 2, 3, 4
FLAG_SWITCHED, FLAG_CONTENDED, FLAG_WAIT_UNKNOWN = 1, 2, 4


def header_bytes(meta: Dict[str, Any]) -> bytes:
    body = json.dumps(meta, sort_keys=True).encode()
    return HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(body)) + body


def json_chunk(kind: int, obj: Any) -> bytes:
    payload = json.dumps(obj, sort_keys=True).encode()
    return CHUNK.pack(CHUNK_MAGIC, kind, 0, 1, len(payload), zlib.crc32(payload)) + payload


@dataclass
class RawTrace:
    """What a file holds, before any interpretation."""

    header: Dict[str, Any]
    start: Dict[str, Any]
    footer: Dict[str, Any]
    threads: List[Dict[str, Any]]
    events: "np.ndarray"
    samples: "np.ndarray"
    locations: Dict[int, tuple] = field(default_factory=dict)  # id -> (file, function, line)
    os_names: Dict[int, str] = field(default_factory=dict)     # tid -> OS thread name
    complete: bool = True
    problem: str = ""  # why the file is incomplete, if it is
    extra: Dict[str, Any] = field(default_factory=dict)


def _json(payload: bytes, where: str) -> Any:
    try:
        return json.loads(payload.decode())
    except (UnicodeDecodeError, ValueError):
        raise TraceFormatError("corrupt %s chunk" % where) from None


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
    if len(data) < HEADER.size or not data.startswith(MAGIC):
        raise TraceFormatError("%s is not a giltrace trace file (bad magic)" % path)
    _, version, _, n = HEADER.unpack_from(data, 0)
    if version != FORMAT_VERSION:
        raise TraceFormatError("%s has trace format version %d; this giltrace reads version %d" % (path, version, FORMAT_VERSION))
    if HEADER.size + n > len(data):
        raise TraceFormatError("%s is truncated inside its header" % path)
    header = _json(data[HEADER.size : HEADER.size + n], "header")

    raw = RawTrace(header=header, start={}, footer={}, threads=[], events=np.empty(0, event_dtype), samples=np.empty(0, sample_dtype))
    events: List["np.ndarray"] = []
    samples: List["np.ndarray"] = []
    view = memoryview(data)
    off = HEADER.size + n
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
        if kind in (CHUNK_EVENTS, CHUNK_SAMPLES):
            dtype = event_dtype if kind == CHUNK_EVENTS else sample_dtype
            if plen != count * dtype.itemsize:
                raise TraceFormatError("%s is corrupt: chunk at byte %d has a bad size" % (path, off))
            (events if kind == CHUNK_EVENTS else samples).append(np.frombuffer(payload, dtype=dtype))
        elif kind == CHUNK_START:
            raw.start = _json(bytes(payload), "start")
        elif kind == CHUNK_THREADS:
            raw.threads.extend(_json(bytes(payload), "threads"))
        elif kind == CHUNK_FOOTER:
            raw.footer = _json(bytes(payload), "footer")
        elif kind == CHUNK_LOCATIONS:
            _read_locations(bytes(payload), count, raw.locations, path, off)
        elif kind == CHUNK_OS_NAMES:
            if plen != 20 * count:
                raise TraceFormatError("%s is corrupt: bad thread-names chunk at byte %d" % (path, off))
            for i in range(count):
                tid, name = struct.unpack_from("<I16s", payload, 20 * i)
                raw.os_names[tid] = name.split(b"\0", 1)[0].decode("utf-8", "replace")
        # Unknown kinds are skipped: newer writers may add chunk kinds.
        off = body_start + plen
    if events:
        raw.events = np.concatenate(events)
    if samples:
        raw.samples = np.concatenate(samples)
    if not raw.footer and raw.complete:
        raw.complete, raw.problem = False, "the trace was not finalised (the process was killed or crashed)"
    if not raw.start:
        raise TraceFormatError("%s holds no trace: the tracer never started" % path)
    return raw


def _read_locations(payload: bytes, count: int, out: Dict[int, tuple], path: str, where: int) -> None:
    pos = 0
    try:
        for _ in range(count):
            loc_id, line, flen, nlen = LOCATION_HEAD.unpack_from(payload, pos)
            pos += LOCATION_HEAD.size
            file = payload[pos : pos + flen].decode("utf-8", "replace")
            func = payload[pos + flen : pos + flen + nlen].decode("utf-8", "replace")
            pos += flen + nlen
            out[loc_id] = (file, func, line)
    except struct.error:
        raise TraceFormatError("%s is corrupt: bad locations chunk at byte %d" % (path, where)) from None


def write_all(fd: int, data: bytes) -> None:
    """One chunk, one write(2) (O_APPEND keeps chunks whole); loop only on short writes."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
