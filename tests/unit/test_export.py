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
    for tid, sl in by_tid.items():
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

    viz = {"traceEvents": [{"ph": "X", "name": "f", "pid": 1, "tid": 7, "ts": 1.0, "dur": 5.0},
                           {"ph": "M", "name": "thread_name", "pid": 1, "tid": 7, "args": {"name": "worker"}}]}
    assert guess_clock(viz) == "monotonic"
    merged = merge_into(viz, trace)
    assert merged["traceEvents"][:2] == viz["traceEvents"]
    assert any(e["name"] == "hold GIL" for e in merged["traceEvents"])
    epoch = {"traceEvents": [{"ph": "X", "name": "f", "pid": 1, "tid": 7, "ts": 1.7e15, "dur": 5.0}]}
    assert guess_clock(epoch) == "epoch"
    holds = [e for e in merge_into(epoch, trace)["traceEvents"] if e["name"] == "hold GIL"]
    assert holds[0]["ts"] > 1e15
