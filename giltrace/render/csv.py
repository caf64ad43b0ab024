"""The intervals as CSV, for people who bring their own tools.

Written a chunk of rows at a time (giltrace/render/rows.py): memory stays
bounded whatever the trace's size.  Quoting as Python's csv module does by
default (QUOTE_MINIMAL): a field with a comma, a quote or a line break is
quoted, its quotes doubled.
"""

from __future__ import annotations

from typing import IO, Union

import numpy as np

from . import rows

COLUMNS = ["tid", "thread", "state", "start_ns", "end_ns", "duration_ns", "location"]
CHUNK_ROWS = 65536
CHUNK_BYTES = 16 << 20


def _field(text: str) -> bytes:
    if any(c in text for c in ',"\r\n'):
        text = '"%s"' % text.replace('"', '""')
    return text.encode("utf-8")


def write_intervals_csv(trace, out: IO[bytes]) -> int:
    """Write tid, thread, state, start_ns, end_ns, duration_ns, location to a binary file; return the row count."""
    iv = trace.intervals()
    out.write((",".join(COLUMNS) + "\n").encode())
    tid = iv["tid"].to_numpy()
    tids = np.unique(tid)
    names = [b"," + _field(trace.names.get(int(t), "thread-%d" % t)) + b"," for t in tids]
    name_code = np.searchsorted(tids, tid)
    states = [b"%s," % str(c).encode() for c in iv["state"].cat.categories]
    state_code = iv["state"].cat.codes.to_numpy()
    loc = iv["location"].to_numpy()
    ids = np.unique(loc)
    labels = [b"," + (_field(trace.location_label(int(i))) if i else b"") + b"\n" for i in ids]
    loc_code = np.searchsorted(ids, loc)
    start, end, dur = iv["start_ns"].to_numpy(), iv["end_ns"].to_numpy(), iv["duration_ns"].to_numpy()
    width = 80 + max([len(x) for x in names] + [0]) + max([len(x) for x in labels] + [0])
    step = max(256, min(CHUNK_ROWS, CHUNK_BYTES // width))
    for lo in range(0, len(iv), step):
        s = slice(lo, min(len(iv), lo + step))
        segments = [
            rows.integers(tid[s]),
            rows.table(name_code[s], names),
            rows.table(state_code[s], states),
            rows.integers(start[s]),
            b",",
            rows.integers(end[s]),
            b",",
            rows.integers(dur[s]),
            rows.table(loc_code[s], labels),
        ]
        out.write(rows.join(segments, s.stop - s.start))
    return len(iv)


def intervals_csv(trace, path: Union[str, "IO[bytes]"]) -> int:
    """Write the CSV to a path (or a binary file); return the row count."""
    if not isinstance(path, str):
        return write_intervals_csv(trace, path)
    from ..safefiles import open_new

    with open_new(path) as f:
        return write_intervals_csv(trace, f)
