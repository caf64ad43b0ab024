"""The file format on synthetic files: no native code involved."""
import struct
import zlib

import numpy as np
import pytest

import giltrace
from giltrace import fileformat as ff


def events_chunk(rows):
    arr = np.zeros(len(rows), ff.EVENT_FIELDS)
    for i, (t, tid, kind, arg, flags) in enumerate(rows):
        arr[i] = (t, arg, tid, kind, flags, 0)
    payload = arr.tobytes()
    return ff.CHUNK.pack(ff.CHUNK_MAGIC, ff.CHUNK_EVENTS, 0, len(rows), len(payload), zlib.crc32(payload)) + payload


def write_trace(path, chunks, footer=True, start=1000, stop=10_000, threads=({"tid": 7, "name": "worker"},)):
    data = ff.header_bytes({"switch_interval_s": 0.005, "python_version": "3.11.7"})
    data += ff.json_chunk(ff.CHUNK_START, {"start_ns": start, "switch_number_start": 0, "clock_pair": [start, 1_700_000_000_000_000_000 + start]})
    data += ff.json_chunk(ff.CHUNK_THREADS, list(threads))
    data += b"".join(chunks)
    if footer:
        data += ff.json_chunk(ff.CHUNK_FOOTER, {"start_ns": start, "stop_ns": stop, "events_lost": 0})
    with open(path, "wb") as f:
        f.write(data)
    return data


ROWS = [(2000, 7, ff.EV_ACQUIRE, 500, 0), (5000, 7, ff.EV_RELEASE, 0, 0)]


def test_roundtrip(tmp_path):
    p = tmp_path / "t.gtr"
    write_trace(p, [events_chunk(ROWS)])
    t = giltrace.load(p)
    assert t.complete
    assert list(t.events["kind"]) == ["acquire", "release"]
    assert list(t.events["wait_ns"]) == [500, -1]
    assert t.names == {7: "worker"}
    assert t.meta["duration_s"] == pytest.approx(9e-6)


def test_truncated_last_chunk_loads_what_was_flushed(tmp_path):
    p = tmp_path / "t.gtr"
    data = write_trace(p, [events_chunk(ROWS), events_chunk(ROWS)], footer=False)
    with open(p, "wb") as f:
        f.write(data[:-10])  # killed in the middle of writing the second chunk
    with pytest.warns(giltrace.IncompleteTraceWarning, match="cut short"):
        t = giltrace.load(p)
    assert not t.complete and len(t.events) == 2
    assert "cut short" in t.meta["incomplete_reason"]


def test_missing_footer_is_incomplete(tmp_path):
    p = tmp_path / "t.gtr"
    write_trace(p, [events_chunk(ROWS)], footer=False)
    with pytest.warns(giltrace.IncompleteTraceWarning, match="not finalised"):
        t = giltrace.load(p)
    assert t.meta["stop_ns"] == 5000 and t.meta["events_lost"] is None


def test_corrupt_checksum(tmp_path):
    p = tmp_path / "t.gtr"
    data = bytearray(write_trace(p, [events_chunk(ROWS)]))
    data[-200] ^= 0xFF  # inside the events payload
    p.write_bytes(bytes(data))
    with pytest.raises(giltrace.TraceFormatError, match="corrupt"):
        giltrace.load(p)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "not a giltrace"),
        (b"PK\x03\x04 a zip file", "not a giltrace"),
        (struct.pack("<8sHHI", b"GILTRACE", 99, 0, 2) + b"{}", "version 99"),
        (struct.pack("<8sHHI", b"GILTRACE", 1, 0, 50) + b"{}", "truncated inside its header"),
        (struct.pack("<8sHHI", b"GILTRACE", 1, 0, 2) + b"{}", "never started"),
    ],
)
def test_foreign_or_broken_files(tmp_path, content, match):
    p = tmp_path / "t.gtr"
    p.write_bytes(content)
    with pytest.raises(giltrace.TraceFormatError, match=match):
        giltrace.load(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(giltrace.TraceFormatError, match="cannot read"):
        giltrace.load(tmp_path / "nope.gtr")
    with pytest.raises(giltrace.TraceFormatError, match="directory"):
        giltrace.load(tmp_path)


def test_unknown_event_kind_is_reported(tmp_path):
    p = tmp_path / "t.gtr"
    write_trace(p, [events_chunk([(2000, 7, 9, 0, 0)])])
    with pytest.raises(giltrace.TraceFormatError, match="unknown event kind"):
        giltrace.load(p).events
