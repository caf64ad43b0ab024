"""The on-disk layout of a trace file (version 1), declared once: the writer
(giltrace/tracer.py) and the reader (giltrace/fileformat.py) both use it.
The byte-level description is docs/file-format.md; the C writer's records
are ``gt_event`` / ``gt_sample`` in csrc/giltrace_api.h.

This module is imported at interpreter start-up when ``GILTRACE`` is set,
so it imports nothing beyond ``struct``, ``zlib`` and the C ``_json``
helper (the ``json`` package would bring ``re`` with it)::

    header  : b"GILTRACE" | u16 format_version | u16 flags (0) | u32 n | n bytes of JSON metadata
    chunk   : u32 b"CHNK" | u16 kind | u16 0 | u32 count | u32 payload_len | u32 crc32(payload) | payload
"""

from __future__ import annotations

import math
import os
import struct
import zlib


MAGIC = b"GILTRACE"
FORMAT_VERSION = 1
CHUNK_MAGIC = b"CHNK"

HEADER = struct.Struct("<8sHHI")
CHUNK = struct.Struct("<4sHHIII")

# Chunk kinds.  EVENTS, SAMPLES, LOCATIONS, OS_NAMES and PY_NAMES are written by C;
# START and THREADS by Python; FOOTER by Python, or by C when the process
# ends without running Python again (last thread gone, SIGTERM).
CHUNK_EVENTS = 1
CHUNK_SAMPLES = 2
CHUNK_START = 3
CHUNK_THREADS = 4
CHUNK_FOOTER = 5
CHUNK_LOCATIONS = 6
CHUNK_OS_NAMES = 7
CHUNK_CPU = 8  # CPU state beside GIL state (Tracer(cpu_state=True)): CPU_FIELDS records
CHUNK_PY_NAMES = 9  # Python's thread names handed to C as threads start: PY_NAME records
PY_NAME = struct.Struct("<I124s")  # gt_py_name: tid, UTF-8 name NUL-padded
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

# gt_cpu_sample: a thread's scheduler counters (tid > 0: ns on a CPU, ns
# runnable but waiting for one) or the cgroup's (tid 0: ns throttled, periods throttled).
CPU_FIELDS = [("time_ns", "<u8"), ("run_ns", "<u8"), ("wait_ns", "<u8"), ("tid", "<u4"), ("reserved", "<u4")]

# Event kinds and ACQUIRE flags, as in csrc/giltrace_api.h.
EV_WAIT, EV_ACQUIRE, EV_RELEASE, EV_DROP_REQUEST = 1, 2, 3, 4
FLAG_SWITCHED, FLAG_CONTENDED, FLAG_WAIT_UNKNOWN = 1, 2, 4
FLAG_SAME_HOLDER = 8  # old GIL (2.7): re-taken by the thread that released it last (csrc/oldgil.c)

try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - every CPython build has _json

    def _quote(text: str) -> str:
        import json

        return json.dumps(text)


def dumps(obj: object) -> str:
    """JSON for the metadata records (str, int, float, bool, None, lists and
    dicts of them), keys sorted, as ``json.dumps(obj, sort_keys=True)``."""
    if obj is None or obj is True or obj is False:
        return {None: "null", True: "true", False: "false"}[obj]
    if isinstance(obj, int):
        return int.__repr__(obj)
    if isinstance(obj, float):
        return float.__repr__(obj) if math.isfinite(obj) else "null"
    if isinstance(obj, str):
        return _quote(obj)
    if isinstance(obj, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in obj) + "]"
    if isinstance(obj, dict):
        return "{" + ", ".join(_quote(str(k)) + ": " + dumps(obj[k]) for k in sorted(obj, key=str)) + "}"
    raise TypeError("cannot write %s into a trace's metadata" % type(obj).__name__)


def header_bytes(meta: "dict[str, object]") -> bytes:
    body = dumps(meta).encode()
    return HEADER.pack(MAGIC, FORMAT_VERSION, 0, len(body)) + body


def json_chunk(kind: int, obj: object) -> bytes:
    payload = dumps(obj).encode()
    return CHUNK.pack(CHUNK_MAGIC, kind, 0, 1, len(payload), zlib.crc32(payload)) + payload


def write_all(fd: int, data: bytes) -> None:
    """One write(2) per chunk when possible (O_APPEND keeps chunks whole)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
