"""Predictions on the synthetic convoy of test_diagnosis (known answer): an
I/O thread waits 20 forced hand-offs of 5 ms behind app.py:42, each answered
at once, then 30 ms behind a C call (ext.py:9) that leaves five drop
requests unanswered."""

import pytest

from giltrace import predictions

from .test_diagnosis import convoy  # noqa: F401  (the fixture)


def test_switch_interval_shortens_answered_hand_offs_only(convoy):  # noqa: F811
    d = convoy.diagnose()
    f = next(f for f in d.findings if f.kind == "convoy")
    p = {q["change"]: q for q in f.predictions}
    si = p["switch_interval"]
    assert si["value_s"] == 0.001 and si["threads"] == ["io"] and si["waits"] in (20, 21)  # its wakes, or every take
    # 20 waits of 5 ms become 1 ms; the 30 ms wait behind C code stays (the C call ends when it ends)
    assert si["now_p50_ms"] == pytest.approx(5.0, rel=0.01)
    assert si["wait_p50_ms"] == pytest.approx(1.0, rel=0.01)
    assert si["wait_p99_ms"] > 20


def test_removing_the_culprit_removes_its_waits(convoy):  # noqa: F811
    f = next(f for f in convoy.diagnose().findings if f.kind == "convoy")
    rm = next(q for q in f.predictions if q["change"] == "remove")
    assert rm["location"] == "app.py:42" and rm["threads"] == ["io"]
    assert rm["wait_p50_ms"] == pytest.approx(0.0, abs=0.01)
    assert rm["wait_p99_ms"] > 20  # the wait behind ext.py:9 is not app.py:42's


def test_long_hold_in_c_gets_no_switch_interval_gain(convoy):  # noqa: F811
    f = next(f for f in convoy.diagnose().findings if f.kind == "long_hold_c")
    si = next(q for q in f.predictions if q["change"] == "switch_interval")
    assert si["threads"] == ["io"] and si["wait_p50_ms"] == pytest.approx(30.0, rel=0.02)
    rm = next(q for q in f.predictions if q["change"] == "remove")
    assert rm["location"] == "ext.py:9" and rm["wait_p50_ms"] == pytest.approx(0.0, abs=0.01)


def test_advice_lines_carry_the_prediction(convoy):  # noqa: F811
    d = convoy.diagnose()
    lines = [s for s in d.suggestions if "switch interval" in s.lower() and "predicted" in s]
    assert lines and "-> predicted wait p50 1.0 ms (p99 " in lines[0]
    assert any("predicted" in f for f in [predictions.advice_effect(f, a) for f in d.findings for a in f.advice])
