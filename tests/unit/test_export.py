"""Chrome/Perfetto JSON and CSV exports of a synthetic trace."""

import json

import pytest

from giltrace.render.chrome import chrome_events
from giltrace.render.csv import intervals_csv

from .test_timeline import trace  # noqa: F401  (fixture)


def test_chrome_structure(trace):  # noqa: F811
    doc = json.loads(json.dumps(chrome_events(trace)))
    evs = doc["traceEvents"]
    for e in evs:
        assert {"ph", "name", "pid", "tid"} <= set(e)
    names = {e["tid"]: e["args"]["name"] for e in evs if e["ph"] == "M" and e["name"] == "thread_name"}
    assert names == {7: "worker", 8: "thread-8"}
    slices = [e for e in evs if e["ph"] == "X"]
    assert all(e["dur"] > 0 and "ts" in e for e in slices)
    by_tid = {}
    for e in slices:
        by_tid.setdefault(e["tid"], []).append((e["ts"], e["ts"] + e["dur"], e["name"]))
    for sl in by_tid.values():
        assert sl == sorted(sl), "monotonic timestamps per track"
        assert all(a[1] <= b[0] + 1e-9 for a, b in zip(sl, sl[1:])), "slices on a track do not overlap"
    assert (2.0, 4.0, "wait GIL") in by_tid[8] and (4.0, 6.0, "hold GIL") in by_tid[8]
    drops = [e for e in evs if e["ph"] == "i"]
    assert len(drops) == 1 and drops[0]["tid"] == 8 and drops[0]["args"]["holder"] == "worker"


def test_chrome_epoch_clock(trace):  # noqa: F811
    doc = chrome_events(trace, clock="epoch")
    assert doc["otherData"]["clock"] == "epoch"
    with pytest.raises(ValueError):
        chrome_events(trace, clock="tsc")


def test_csv(trace, tmp_path):  # noqa: F811
    n = intervals_csv(trace, str(tmp_path / "i.csv"))
    lines = (tmp_path / "i.csv").read_text().splitlines()
    assert lines[0] == "tid,thread,state,start_ns,end_ns,duration_ns,location"
    assert len(lines) == n + 1 and "8,thread-8,wait,2000,4000,2000," in lines


def test_merge_into_another_trace_on_its_clock(trace):  # noqa: F811
    from giltrace.render.chrome import guess_clock, merge_into

    viz = {
        "traceEvents": [
            {"ph": "X", "name": "f", "pid": 1, "tid": 7, "ts": 1.0, "dur": 5.0},
            {"ph": "M", "name": "thread_name", "pid": 1, "tid": 7, "args": {"name": "worker"}},
        ]
    }
    assert guess_clock(viz) == "monotonic"
    merged = merge_into(viz, trace)
    assert merged["traceEvents"][:2] == viz["traceEvents"]
    assert any(e["name"] == "hold GIL" for e in merged["traceEvents"])
    epoch = {"traceEvents": [{"ph": "X", "name": "f", "pid": 1, "tid": 7, "ts": 1.7e15, "dur": 5.0}]}
    assert guess_clock(epoch) == "epoch"
    holds = [e for e in merge_into(epoch, trace)["traceEvents"] if e["name"] == "hold GIL"]
    assert holds[0]["ts"] > 1e15


# ---- The streamed export against the implementation it replaced (issue #9) ----

import csv  # noqa: E402
import io  # noqa: E402
import os  # noqa: E402
import zlib  # noqa: E402

import numpy as np  # noqa: E402

import giltrace  # noqa: E402
from giltrace import fileformat as ff  # noqa: E402
from giltrace.render import chrome, rows  # noqa: E402
from giltrace.render import csv as csv_render  # noqa: E402

from .test_fileformat import events_chunk  # noqa: E402


def reference_chrome_events(trace, clock="monotonic"):
    """giltrace/render/chrome.py chrome_events before streaming (commit 9341855), verbatim but for names."""
    meta = trace.meta
    pid = int(meta.get("pid", 0))
    offset_ns = 0
    if clock == "epoch":
        pair = meta.get("clock_pair")
        if pair:
            offset_ns = int(pair[1]) - int(pair[0])
        else:
            offset_ns = int(float(meta["start_time_unix"]) * 1e9) - trace.start_ns
    th = trace.threads()
    out = [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": "python %s (giltrace)" % meta.get("python_version", "")}}
    ]
    for i, (tid, row) in enumerate(th.iterrows()):
        out.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": int(tid), "args": {"name": str(row["name"])}})
        out.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": int(tid), "args": {"sort_index": i}})
    iv = trace.intervals()
    iv = iv[iv["duration_ns"] > 0].sort_values(["tid", "start_ns"], kind="stable")
    ts = (iv["start_ns"].to_numpy() + offset_ns) / 1e3
    dur = iv["duration_ns"].to_numpy() / 1e3
    names = np.where(iv["state"].to_numpy() == "hold", "hold GIL", "wait GIL")
    labels = {loc: trace.location_label(loc) for loc in iv["location"].unique() if loc}
    for tid, t, d, n, loc in zip(iv["tid"].to_numpy(), ts, dur, names, iv["location"].to_numpy()):
        e = {"ph": "X", "cat": "gil", "name": str(n), "pid": pid, "tid": int(tid), "ts": float(t), "dur": float(d)}
        if loc:
            e["args"] = {"location": labels[loc]}
        out.append(e)
    ev = trace.events
    drops = ev[ev["kind"] == "drop_request"]
    for tid, t, holder in zip(drops["tid"].to_numpy(), drops["time_ns"].to_numpy(), drops["holder_tid"].to_numpy()):
        out.append(
            {
                "ph": "i",
                "s": "t",
                "cat": "gil",
                "name": "drop request",
                "pid": pid,
                "tid": int(tid),
                "ts": (int(t) + offset_ns) / 1e3,
                "args": {"holder_tid": int(holder), "holder": trace.names.get(int(holder), "")},
            }
        )
    return json.loads(
        json.dumps(
            {
                "traceEvents": out,
                "displayTimeUnit": "ms",
                "otherData": {
                    "source": "giltrace",
                    "clock": clock,
                    "switch_interval_s": meta.get("switch_interval_s"),
                    "events_lost": meta.get("events_lost"),
                    "complete": meta.get("complete"),
                },
            }
        )
    )


def reference_csv_rows(trace, path):
    """giltrace/render/csv.py before streaming (commit 9341855), read back with the csv module.
    intervals() had exactly the CSV's columns then; columns added since are not exported."""
    iv = trace.intervals()[["tid", "state", "start_ns", "end_ns", "duration_ns", "location"]].copy()
    iv.insert(1, "thread", [trace.names.get(int(t), "thread-%d" % t) for t in iv["tid"]])
    labels = {loc: trace.location_label(loc) if loc else "" for loc in iv["location"].unique()}
    iv["location"] = iv["location"].map(labels)
    iv.to_csv(path, index=False)
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def streamed_chrome(trace, clock="monotonic"):
    buf = io.BytesIO()
    n = chrome.write_chrome(trace, buf, clock)
    doc = json.loads(buf.getvalue())
    assert n == len(doc["traceEvents"])
    return doc


def streamed_csv_rows(trace):
    buf = io.BytesIO()
    n = csv_render.write_intervals_csv(trace, buf)
    got = list(csv.reader(io.StringIO(buf.getvalue().decode("utf-8"), newline="")))
    assert n == len(got) - 1
    return got


@pytest.fixture
def awkward(tmp_path):
    """Names and code locations that need escaping and quoting; a drop request naming an unknown holder."""
    A, R, W, D = ff.EV_ACQUIRE, ff.EV_RELEASE, ff.EV_WAIT, ff.EV_DROP_REQUEST
    rows_ = [
        (1000, 7, A, 0, 1),
        (1500, 8, W, 2, 0),
        (2000, 8, D, 7, 0),
        (2100, 9, D, 12345, 0),
        (3000, 7, R, 1, 0),
        (3000, 8, A, 1500, 3),
        (3001, 8, R, 3, 0),
        (4000, 9, A, 7, 1),
        (4000, 9, R, 0, 0),
        (5000, 7, A, 9, 1),
    ]
    locs = [(1, 10, 'a "quoted", file.py', "f"), (2, 20, "új/naïve\n.py", "g<h>"), (3, -1, "x\\y.py", "C,D")]
    payload = b"".join(ff.LOCATION_HEAD.pack(i, line, len(f.encode()), len(n.encode())) + f.encode() + n.encode() for i, line, f, n in locs)
    data = ff.header_bytes({"switch_interval_s": 0.005, "python_version": "3.11.7", "pid": 321})
    data += ff.json_chunk(ff.CHUNK_START, {"start_ns": 500, "clock_pair": [500, 1_700_000_000_123_456_789]})
    data += ff.json_chunk(ff.CHUNK_THREADS, [{"tid": 7, "name": 'main, "the" one'}, {"tid": 8, "name": "ünï\r\ncode"}])
    data += ff.CHUNK.pack(ff.CHUNK_MAGIC, ff.CHUNK_LOCATIONS, 0, len(locs), len(payload), zlib.crc32(payload)) + payload
    data += events_chunk(rows_)
    data += ff.json_chunk(ff.CHUNK_FOOTER, {"start_ns": 500, "stop_ns": 6000, "events_lost": 0})
    (tmp_path / "a.gtr").write_bytes(data)
    return giltrace.load(str(tmp_path / "a.gtr"))


@pytest.fixture
def recorded(tmp_path, native):
    """A real small trace: CPU threads contending (drop requests), one sleeping, code locations on."""
    import time

    from tests.conftest import trace_threads

    def spin(stop):
        while not stop.is_set():
            sum(range(2000))

    def nap(stop):
        while not stop.is_set():
            time.sleep(0.002)

    return trace_threads(str(tmp_path / "r.gtr"), [(spin, (), "spin-1"), (spin, (), "spin-2"), (nap, (), "nap")], seconds=0.3)


@pytest.mark.parametrize("clock", ["monotonic", "epoch"])
@pytest.mark.parametrize("which", ["trace", "awkward", "recorded"])
def test_streamed_chrome_equals_the_previous_output(request, which, clock, monkeypatch):
    t = request.getfixturevalue(which)
    expected = reference_chrome_events(t, clock)
    assert len(expected["traceEvents"]) > 5
    assert streamed_chrome(t, clock) == expected
    monkeypatch.setattr(chrome, "CHUNK_ROWS", 3)  # chunk boundaries everywhere: still the same document
    monkeypatch.setattr(chrome, "CHUNK_BYTES", 1)
    assert streamed_chrome(t, clock) == expected


@pytest.mark.parametrize("which", ["trace", "awkward", "recorded"])
def test_streamed_csv_equals_the_previous_output(request, which, tmp_path, monkeypatch):
    t = request.getfixturevalue(which)
    expected = reference_csv_rows(t, str(tmp_path / "ref.csv"))
    assert len(expected) > 3
    assert streamed_csv_rows(t) == expected
    monkeypatch.setattr(csv_render, "CHUNK_ROWS", 2)
    monkeypatch.setattr(csv_render, "CHUNK_BYTES", 1)
    assert streamed_csv_rows(t) == expected


def test_awkward_strings_survive(awkward):
    doc = streamed_chrome(awkward)
    names = {e["tid"]: e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "thread_name"}
    assert names[7] == 'main, "the" one' and names[8] == "ünï\r\ncode"
    assert any(e.get("args", {}).get("location") == 'a "quoted", file.py:10 (f)' for e in doc["traceEvents"])
    rows_ = streamed_csv_rows(awkward)
    assert ["8", "ünï\r\ncode", "wait", "1500", "3000", "1500", "új/naïve\n.py:20 (g<h>)"] in rows_


def test_merge_equals_the_previous_output(awkward):
    viz = {
        "otherData": {"x": 1},
        "traceEvents": [
            {"ph": "X", "name": "f", "pid": 321, "tid": 7, "ts": 1.7e15, "dur": 5.0},
            {"ph": "M", "name": "thread_name", "pid": 321, "tid": 7, "args": {"name": "w"}},
        ],
    }
    ours = reference_chrome_events(awkward, "epoch")["traceEvents"]
    known = {(321, 7, "thread_name")}
    expected = dict(
        viz, traceEvents=viz["traceEvents"] + [e for e in ours if e["ph"] != "M" or (e["pid"], e["tid"], e["name"]) not in known]
    )
    assert chrome.merge_into(viz, awkward) == expected
    assert chrome.merge_into(viz["traceEvents"], awkward) == {"traceEvents": expected["traceEvents"]}


def test_micros_parse_back_to_the_divided_double():
    """Every branch of rows.micros: exact decimals (monotonic, epoch) and repr (anything else)."""
    rng = np.random.default_rng(9)
    values = np.concatenate([rng.integers(0, 2**53, 2000), rng.integers(0, 10**7, 2000), [0, 1, 999, 1000, 2**53 - 1]])
    for offset in (0, 1_700_000_000_123_456_789, 2**43 * 1000, -(2**52), 2**62, -(10**18)):
        v = values[(values + offset >= -(2**63)) & (values + offset < 2**63 - 1)] if offset > 2**60 else values
        text = rows.join([b"[", *rows.micros(v, offset), b"],"], len(v))
        got = json.loads(b"[" + text[:-1] + b"]")
        assert [g[0] for g in got] == [(int(x) + offset) / 1e3 for x in v.tolist()], offset


def test_integers_and_fallbacks():
    v = np.array([0, 9, 10, 123456789, 10**18 - 1, 10**18, -5, -(2**63)], np.int64)
    assert rows.join([rows.integers(v), b" "], len(v)).split() == [str(int(x)).encode() for x in v]


# ---- The CLI: streamed into a temporary file, renamed at the end ----


def _export(*args):
    from giltrace.cli import main

    return main(["export", *map(str, args)])


def test_cli_export_writes_both_formats_and_merges(awkward, tmp_path, capsys):
    src = awkward.path
    assert _export(src, "-o", tmp_path / "o.json") == 0
    assert json.loads((tmp_path / "o.json").read_bytes()) == reference_chrome_events(awkward)
    assert _export(src, "--clock", "epoch", "-o", tmp_path / "e.json") == 0
    assert json.loads((tmp_path / "e.json").read_bytes()) == reference_chrome_events(awkward, "epoch")
    assert _export(src, "--format", "csv", "-o", tmp_path / "o.csv") == 0
    with open(tmp_path / "o.csv", newline="", encoding="utf-8") as f:
        assert list(csv.reader(f)) == reference_csv_rows(awkward, str(tmp_path / "ref.csv"))
    (tmp_path / "viz.json").write_text(json.dumps([{"ph": "X", "name": "f", "pid": 1, "tid": 7, "ts": 1.0, "dur": 5.0}]))
    assert _export(src, "--merge", tmp_path / "viz.json", "-o", tmp_path / "m.json") == 0
    merged = json.loads((tmp_path / "m.json").read_bytes())
    assert merged["traceEvents"][0]["name"] == "f" and any(e["name"] == "hold GIL" for e in merged["traceEvents"])
    assert "wrote" in capsys.readouterr().out
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_cli_export_failure_leaves_no_file(awkward, tmp_path, monkeypatch):
    def boom(trace, out, clock="monotonic"):
        out.write(b'{"traceEvents":[')
        raise RuntimeError("disk on fire")

    (tmp_path / "keep.json").write_text("old")
    monkeypatch.setattr(chrome, "write_chrome", boom)
    with pytest.raises(RuntimeError):
        _export(awkward.path, "-o", tmp_path / "keep.json")
    assert (tmp_path / "keep.json").read_text() == "old"  # the previous file stays whole
    assert sorted(os.listdir(tmp_path)) == ["a.gtr", "keep.json"]


def test_cli_export_unwritable_output_is_one_line(awkward, tmp_path, capsys):
    (tmp_path / "out.json").mkdir()  # renaming onto a directory fails, even for root
    assert _export(awkward.path, "-o", tmp_path / "out.json") == 2
    err = capsys.readouterr().err
    assert err.startswith("giltrace: error: cannot write") and err.count("\n") == 1
    assert sorted(os.listdir(tmp_path)) == ["a.gtr", "out.json"]
