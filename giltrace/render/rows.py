"""Text rows built column by column with numpy, for exports of millions of rows.

A chunk of rows is a list of segments, each a uint8 matrix with one line per
row, padded with PAD (0xFF, a byte that UTF-8 never contains); the chunk's
text is the matrices side by side with the PAD bytes dropped.  Numbers are
cut into digits with integer arithmetic, strings come from small tables
indexed per row: no Python object per row, no per-row formatting call.
Used by giltrace/render/chrome.py and giltrace/render/csv.py.
"""

from __future__ import annotations

from typing import List, Sequence, Union

import numpy as np

PAD = 0xFF
Segment = Union[bytes, np.ndarray]

_SAFE = 10**18  # below int64's limit: every digit position fits
_EXACT = 2**53  # integers a double holds exactly


def join(segments: Sequence[Segment], n: int) -> bytes:
    """The text of ``n`` rows: constant bytes or per-row matrices, left to right."""
    if n == 0:
        return b""
    cols = [np.broadcast_to(np.frombuffer(s, np.uint8), (n, len(s))) if isinstance(s, bytes) else s for s in segments]
    # bytes.translate deletes in one C loop, 3-4x faster than a numpy boolean mask
    return np.concatenate(cols, axis=1).tobytes().translate(None, bytes([PAD]))


def table(codes: np.ndarray, strings: Sequence[bytes]) -> np.ndarray:
    """Row i is ``strings[codes[i]]``."""
    width = max([len(s) for s in strings] + [1])
    tbl = np.full((len(strings), width), PAD, np.uint8)
    for i, s in enumerate(strings):
        tbl[i, : len(s)] = np.frombuffer(s, np.uint8)
    return tbl[codes]


def strings(values: List[str]) -> np.ndarray:
    """A column of arbitrary (short, few-per-chunk or rare) strings: the slow, general way."""
    raw = np.array([v.encode() for v in values] or [b""], dtype=bytes)
    m = raw.view(np.uint8).reshape(len(raw), -1).copy()
    m[m == 0] = PAD  # numpy pads bytes with NUL; none of our texts contains one (repr, str of numbers)
    return m[: len(values)]


def _planes(v: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` last decimal digits of non-negative values below _SAFE, one
    row per digit position (most significant first; each row contiguous)."""
    out = np.empty((width, len(v)), np.uint8)
    if len(v) and int(v.max()) >= _EXACT:
        x = v.astype(np.int64, copy=True)
        for k in range(width - 1, -1, -1):
            y = x // 10
            out[k] = x - y * 10
            x = y
        return out
    # Doubles hold these integers exactly, and floor(x / 10) is exact below 2**53:
    # several times faster than int64 division.
    x = v.astype(np.float64)
    y = np.empty_like(x)
    for k in range(width - 1, -1, -1):
        np.divide(x, 10, out=y)
        np.floor(y, out=y)
        x -= y * 10
        out[k] = x
        x, y = y, x
    return out


def _digits(v: np.ndarray) -> np.ndarray:
    """Decimal digits of non-negative values below _SAFE, leading zeros padded away."""
    width = len(str(int(v.max()))) if len(v) else 1
    out = _planes(v, width)
    lead = _runs_of_zeros(out[:-1])  # the last digit stays: 0 is "0"
    out += ord("0")
    out[:-1] |= lead  # PAD is all ones
    return out.T


def _runs_of_zeros(planes: np.ndarray) -> np.ndarray:
    """PAD where a digit and all digits before it (in row order) are 0, else 0.
    A loop over the few rows: numpy's accumulate along axis 0 is much slower."""
    out = np.empty_like(planes)
    run = np.full(planes.shape[1], PAD, np.uint8)
    for k in range(len(planes)):
        run &= np.negative((planes[k] == 0).view(np.uint8))  # 1 -> 0xFF
        out[k] = run
    return out


def integers(v: np.ndarray) -> np.ndarray:
    """Integers as JSON/CSV writes them (``str(int(x))``)."""
    v = np.asarray(v)
    if len(v) and (int(v.min()) < 0 or int(v.max()) >= _SAFE):  # only in crafted traces
        return strings([str(int(x)) for x in v.tolist()])
    return _digits(v)


def _fraction(frac: np.ndarray, places: int) -> np.ndarray:
    """'.' and ``places`` digits of ``frac``, trailing zeros dropped (one kept): .5, .25, .0"""
    out = np.empty((places + 1, len(frac)), np.uint8)
    out[0] = ord(".")
    digits = out[1:]
    digits[:] = _planes(frac, places)
    trailing = _runs_of_zeros(digits[:0:-1])[::-1]  # the first digit stays: .0
    digits += ord("0")
    digits[1:] |= trailing
    return out.T


def micros(ns: np.ndarray, offset_ns: int = 0) -> List[np.ndarray]:
    """JSON numbers equal to the double ``float(ns + offset_ns) / 1e3`` for each
    value (what json.dumps wrote for Chrome timestamps before this module),
    written as exact decimals so that the text parses back to that very double."""
    ns = np.asarray(ns, np.int64)
    if len(ns) == 0:
        return [np.empty((0, 1), np.uint8)]
    lo, hi = int(ns.min()) + offset_ns, int(ns.max()) + offset_ns
    if 0 <= lo and hi < _EXACT:
        # v/1000 written exactly: the parser rounds it to the same double as the division does.
        v = ns + offset_ns
        return [_digits(v // 1000), _fraction(v % 1000, 3)]
    if -(2**63) <= lo and hi < 2**63:
        f = (ns + offset_ns).astype(np.float64) / 1e3
        if f.min() >= 2**43 and f.max() < _EXACT:
            # Unix-epoch us (~1.7e15): the double is a whole number of 1/512ths, i.e. exactly 9 decimals.
            q = np.floor(f)
            ninths = ((f - q) * 512).astype(np.int64) * 1953125  # 1/512 = 1953125e-9
            return [_digits(q.astype(np.int64)), _fraction(ninths, 9)]
        return [strings([repr(x) for x in f.tolist()])]
    return [strings([repr((x + offset_ns) / 1e3) for x in ns.tolist()])]  # outside int64: Python's exact sum
