"""The file format on synthetic files: no native code involved."""

import json
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
    data += ff.json_chunk(
        ff.CHUNK_START, {"start_ns": start, "switch_number_start": 0, "clock_pair": [start, 1_700_000_000_000_000_000 + start]}
    )
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


# ---- Crafted files: every field the model reads, with valid CRCs (issue #9) ----


def raw_json_chunk(kind, text):
    """A JSON chunk from literal text (NaN, deep nesting, bad UTF-8: what json.dumps won't write)."""
    payload = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    return ff.CHUNK.pack(ff.CHUNK_MAGIC, kind, 0, 1, len(payload), zlib.crc32(payload)) + payload


def raw_chunk(kind, payload, count):
    return ff.CHUNK.pack(ff.CHUNK_MAGIC, kind, 0, count, len(payload), zlib.crc32(payload)) + payload


def craft(
    header='{"switch_interval_s": 0.005}',
    start='{"start_ns": 1000}',
    threads='[{"tid": 7, "name": "w"}]',
    footer='{"start_ns": 1000, "stop_ns": 10000, "events_lost": 0}',
    extra=(),
):
    """File bytes from JSON texts (None leaves a chunk out); ``extra`` chunks go before the footer."""
    body = header if isinstance(header, bytes) else header.encode("utf-8", "surrogatepass")
    data = ff.HEADER.pack(ff.MAGIC, ff.FORMAT_VERSION, 0, len(body)) + body
    if start is not None:
        data += raw_json_chunk(ff.CHUNK_START, start)
    if threads is not None:
        data += raw_json_chunk(ff.CHUNK_THREADS, threads)
    data += events_chunk(ROWS) + b"".join(extra)
    if footer is not None:
        data += raw_json_chunk(ff.CHUNK_FOOTER, footer)
    return data


def records_chunk(kind, times):
    arr = np.zeros(len(times), ff.EVENT_FIELDS if kind == ff.CHUNK_EVENTS else ff.SAMPLE_FIELDS)
    arr["time_ns"] = times
    if kind == ff.CHUNK_EVENTS:
        arr["kind"], arr["tid"] = ff.EV_RELEASE, 7
    return raw_chunk(kind, arr.tobytes(), len(times))


DEEP = 100_000
CRAFTED = [
    # the cases
    ("header []", craft(header="[]"), "its header is a list, not a JSON object"),
    ('header "s"', craft(header='"s"'), "its header is a string, not a JSON object"),
    ("pid string", craft(header='{"pid": "x"}'), r'header field pid is not an integer .* \("x"\)'),
    ("stop_ns null", craft(footer='{"start_ns": 1000, "stop_ns": null}'), "FOOTER record field stop_ns is not an integer"),
    ("NaN start", craft(start='{"start_ns": NaN}'), r"bad JSON in its START record \(NaN is not a number\)"),
    ("nested 100k", craft(header="[" * DEEP + "]" * DEEP), "JSON of its header is nested too deeply"),
    # non-finite and out-of-range numbers
    ("Infinity", craft(footer='{"start_ns": 1000, "stop_ns": 10000, "stop_time_unix": -Infinity}'), "-Infinity is not a number"),
    ("1e400", craft(header='{"switch_interval_s": 1e400}'), "header holds a number out of range"),
    ("5000 digits", craft(start='{"start_ns": %s}' % ("9" * 5000)), "bad JSON in its START record"),
    ("negative start", craft(start='{"start_ns": -1}'), "START record field start_ns is not an integer"),
    ("start 2**64", craft(start='{"start_ns": %d}' % 2**64), "START record field start_ns is not an integer"),
    ("start float", craft(start='{"start_ns": 1000.5}'), "START record field start_ns is not an integer"),
    ("start bool", craft(start='{"start_ns": true}'), "START record field start_ns is not an integer"),
    ("start string", craft(start='{"start_ns": "1000"}'), "START record field start_ns"),
    ("interval negative", craft(header='{"switch_interval_s": -0.005}'), "header field switch_interval_s is not a number"),
    ("interval string", craft(header='{"switch_interval_s": "5ms"}'), "header field switch_interval_s"),
    ("start time string", craft(header='{"start_time_unix": "today"}'), "header field start_time_unix"),
    ("events_lost string", craft(footer='{"stop_ns": 10000, "events_lost": "many"}'), "field events_lost"),
    ("clock_pair short", craft(start='{"start_ns": 1000, "clock_pair": [1]}'), "field clock_pair is not a"),
    ("clock_pair strings", craft(start='{"start_ns": 1000, "clock_pair": ["a", "b"]}'), "field clock_pair"),
    ("template number", craft(header='{"children_template": 5}'), "header field children_template is not a string"),
    ("affinity string", craft(header='{"affinity": "0-3"}'), "header field affinity is not a list of CPU numbers"),
    ("argv nested", craft(header='{"argv": [["x"]]}'), "header field argv is not a list of strings"),
    ("header start_ns", craft(header='{"start_ns": {}}'), "header field start_ns"),  # Trace.meta merges the three
    ("footer start_ns", craft(footer='{"start_ns": [], "stop_ns": 10000}'), "FOOTER record field start_ns"),
    # records of the wrong shape
    ("start list", craft(start="[1000]"), "its START record is a list, not a JSON object"),
    ("start null", craft(start="null"), "its START record is null, not a JSON object"),
    ("start without start_ns", craft(start='{"clock_pair": [1, 2]}'), "its START record has no start_ns"),
    ("footer string", craft(footer='"done"'), "its FOOTER record is a string"),
    ("footer without stop", craft(footer='{"start_ns": 1000}'), "its FOOTER record has no stop_ns"),
    ("stop before start", craft(footer='{"start_ns": 1000, "stop_ns": 999}'), r"stops \(999\) before it starts \(1000\)"),
    ("threads number", craft(threads="5"), "thread names at byte \\d+ are a number, not a JSON list"),
    ("threads object", craft(threads='{"tid": 7, "name": "w"}'), "thread names at byte \\d+ are an object"),
    ("thread tid string", craft(threads='[{"tid": "7", "name": "w"}]'), "bad thread record at byte"),
    ("thread name null", craft(threads='[{"tid": 7, "name": null}]'), "bad thread record"),
    ("thread tid 2**40", craft(threads='[{"tid": %d, "name": "w"}]' % 2**40), "bad thread record"),
    ("threads nested 20", craft(threads="[" * 20 + "]" * 20), "thread names JSON is nested more than 16 levels"),
    # bytes
    ("header not UTF-8", craft(header=b'{"hostname": "\xff"}'), "bad JSON in its header"),
    ("header empty", craft(header=b""), "bad JSON in its header"),
    ("event time 2**64-1", craft(footer=None, extra=[records_chunk(ff.CHUNK_EVENTS, [2**64 - 1])]), "an event time is out of range"),
    ("sample time 2**63", craft(footer=None, extra=[records_chunk(ff.CHUNK_SAMPLES, [2**63])]), "a sample time is out of range"),
    ("locations short", craft(extra=[raw_chunk(ff.CHUNK_LOCATIONS, b"\x01\x00\x00\x00", 1)]), "bad locations chunk"),
    ("locations count", craft(extra=[raw_chunk(ff.CHUNK_LOCATIONS, ff.LOCATION_HEAD.pack(1, 2, 0, 0), 2**32 - 1)]), "bad locations chunk"),
    (
        "locations trailing",
        craft(extra=[raw_chunk(ff.CHUNK_LOCATIONS, ff.LOCATION_HEAD.pack(1, 2, 0, 0) + b"x", 1)]),
        "bad locations chunk",
    ),
    (
        "locations name past end",
        craft(extra=[raw_chunk(ff.CHUNK_LOCATIONS, ff.LOCATION_HEAD.pack(1, 2, 9, 0) + b"ab", 1)]),
        "bad locations chunk",
    ),
    ("os names size", craft(extra=[raw_chunk(ff.CHUNK_OS_NAMES, b"\0" * 19, 1)]), "bad thread-names chunk"),
    ("event kind 0", craft(extra=[events_chunk([(3000, 7, 0, 0, 0)])]), "unknown event kind 0"),
    ("event kind 255", craft(extra=[events_chunk([(3000, 7, 255, 0, 0)])]), "unknown event kind 255"),
    ("events size", craft(extra=[raw_chunk(ff.CHUNK_EVENTS, b"\0" * 24, 2)]), "bad size"),
]


@pytest.mark.parametrize("data, match", [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_files_raise_trace_format_error(tmp_path, data, match):
    p = tmp_path / "t.gtr"
    p.write_bytes(data)
    with pytest.raises(giltrace.TraceFormatError, match=match) as info:
        giltrace.load(p, warn=False)
    message = str(info.value)
    assert "\n" not in message and len(message) < 300 and message.startswith(str(p))


def test_crafted_base_file_is_valid(tmp_path):
    """The crafted cases differ from a loadable file by their one defect only."""
    p = tmp_path / "t.gtr"
    p.write_bytes(craft(extra=[raw_chunk(ff.CHUNK_LOCATIONS, ff.LOCATION_HEAD.pack(1, 2, 1, 1) + b"ab", 1)]))
    t = giltrace.load(p)
    assert t.complete and t.start_ns == 1000 and t.stop_ns == 10_000 and len(t.intervals()) == 2
    assert t.location_label(1) == "a:2 (b)"


def test_lone_surrogates_in_names_are_replaced(tmp_path):
    # json.loads accepts "\udc80"; such a name could not be printed or written as UTF-8
    p = tmp_path / "t.gtr"
    p.write_bytes(craft(header='{"hostname": "h\\udc80"}', threads='[{"tid": 7, "name": "w\\udc80"}]'))
    t = giltrace.load(p)
    assert t.names[7] == "w?" and t.meta["hostname"] == "h?"
    t.threads()["name"].iloc[0].encode("utf-8")


# ---- Structure-aware fuzzing: valid CRCs, mutated contents ----

ODD_VALUES = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**31,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63),
    0.5,
    -0.0,
    1e308,
    1e-300,
    float("nan"),
    float("inf"),
    "",
    "x",
    "\udc80",
    "%p",
    [],
    [1, 2],
    ["a"],
    [None],
    {},
    {"tid": 1},
    [[[[1]]]],
    "9" * 30,
]


def base_records():
    header = {
        "switch_interval_s": 0.005,
        "python_version": "3.11.7",
        "pid": 42,
        "argv": ["x"],
        "affinity": [0, 1],
        "cpu_count": 2,
        "children_template": None,
        "start_time_unix": 1.7e9,
        "locations": True,
        "sample_period_ns": 10**6,
    }
    start = {"start_ns": 1000, "switch_number_start": 0, "clock_pair": [1000, 1_700_000_000_000_001_000], "buffer_events": 1024}
    threads = [{"tid": 7, "name": "worker"}, {"tid": 8, "name": "other"}]
    footer = {
        "start_ns": 1000,
        "stop_ns": 20_000,
        "events_lost": 0,
        "events_written": 8,
        "switch_number_stop": 3,
        "stop_time_unix": 1.7e9 + 1,
        "write_errno": 0,
    }
    rows = [
        (1000, 7, ff.EV_ACQUIRE, 0, 1),
        (2000, 8, ff.EV_WAIT, 1, 0),
        (3000, 8, ff.EV_DROP_REQUEST, 7, 0),
        (4000, 7, ff.EV_RELEASE, 2, 0),
        (4000, 8, ff.EV_ACQUIRE, 2000, 3),
        (6000, 8, ff.EV_RELEASE, 1, 0),
        (9000, 7, ff.EV_ACQUIRE, 10, 5),
        (9500, 7, ff.EV_RELEASE, 0, 0),
    ]
    return header, start, threads, footer, rows


def mutate_record(rng, obj):
    """Replace, add or drop one field, or replace the whole record."""
    choice = rng.integers(4)
    if choice == 0 or not isinstance(obj, dict):
        return ODD_VALUES[rng.integers(len(ODD_VALUES))]
    obj = dict(obj)
    key = sorted(obj)[rng.integers(len(obj))] if obj else "x"
    if choice == 1:
        obj.pop(key, None)
    else:
        key = key if choice == 2 else sorted(ff.FIELDS)[rng.integers(len(ff.FIELDS))]
        obj[key] = ODD_VALUES[rng.integers(len(ODD_VALUES))]
    return obj


def fuzz_file(rng):
    header, start, threads, footer, rows = base_records()
    arr = np.zeros(len(rows), ff.EVENT_FIELDS)
    for i, (t, tid, kind, arg, flags) in enumerate(rows):
        arr[i] = (t, arg, tid, kind, flags, 0)
    samples = np.zeros(3, ff.SAMPLE_FIELDS)
    samples["time_ns"], samples["holder_tid"], samples["locked"] = [1500, 2500, 3500], 7, 1
    target = rng.integers(7)
    for _ in range(rng.integers(1, 4)):
        if target == 0:
            header = mutate_record(rng, header)
        elif target == 1:
            start = mutate_record(rng, start)
        elif target == 2:
            footer = mutate_record(rng, footer)
        elif target == 3:
            threads = (
                [mutate_record(rng, r) for r in threads] if isinstance(threads, list) and rng.integers(2) else mutate_record(rng, threads)
            )
        elif target == 4:  # event records: any field, any value of its type
            i, name = rng.integers(len(arr)), ["time_ns", "arg", "tid", "kind", "flags"][rng.integers(5)]
            arr[name][i] = rng.choice([0, 1, 2, 4, 5, 255, 2**31, 2**63 - 1, 2**63, 2**64 - 1]) % (np.iinfo(arr[name].dtype).max + 1)
        elif target == 5:
            i, name = rng.integers(len(samples)), ["time_ns", "switch_number", "holder_tid", "waiters"][rng.integers(4)]
            samples[name][i] = rng.choice([0, 7, 2**15, 2**31, 2**63, 2**64 - 1]) % (np.iinfo(samples[name].dtype).max + 1)
        else:
            header = dict(header, pid=7)  # the model compares OS names with the pid's
    chunks = [
        raw_json_chunk(ff.CHUNK_START, json.dumps(start)),
        raw_json_chunk(ff.CHUNK_THREADS, json.dumps(threads)),
        raw_chunk(ff.CHUNK_EVENTS, arr.tobytes(), len(arr)),
        raw_chunk(ff.CHUNK_SAMPLES, samples.tobytes(), len(samples)),
        raw_chunk(ff.CHUNK_LOCATIONS, ff.LOCATION_HEAD.pack(1, 3, 1, 1) + b"fg" + ff.LOCATION_HEAD.pack(2, -1, 0, 0), 2),
        raw_chunk(ff.CHUNK_OS_NAMES, struct.pack("<I16s", 7, b"\xffname"), 1),
        raw_json_chunk(ff.CHUNK_FOOTER, json.dumps(footer)),
    ]
    if rng.integers(4) == 0:  # reorder, duplicate or drop chunks too
        chunks = [chunks[i] for i in rng.integers(len(chunks), size=rng.integers(1, len(chunks) + 2))]
    body = json.dumps(header).encode("utf-8", "surrogatepass")
    return ff.HEADER.pack(ff.MAGIC, ff.FORMAT_VERSION, 0, len(body)) + body + b"".join(chunks)


def test_fuzz_structured_files_load_or_raise_trace_format_error(tmp_path):
    import warnings

    rng = np.random.default_rng(20261202)
    outcomes = {"loaded": 0, "rejected": 0}
    for case in range(400):
        p = tmp_path / ("f%d.gtr" % case)
        p.write_bytes(fuzz_file(rng))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", giltrace.IncompleteTraceWarning)
                t = giltrace.load(p)
                t.meta, t.events, t.intervals(), t.threads()
            outcomes["loaded"] += 1
        except giltrace.TraceFormatError as exc:
            assert "\n" not in str(exc), str(exc)
            outcomes["rejected"] += 1
        except Exception as exc:  # the defect this test exists for: say which file
            raise AssertionError("case %d: %s: %s\n%r" % (case, type(exc).__name__, exc, p.read_bytes()[:400])) from exc
    assert outcomes["loaded"] > 40 and outcomes["rejected"] > 40, outcomes  # both sides exercised
