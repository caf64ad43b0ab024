"""Wake latency on real programs (issue 20): a thread that sleeps most of the
time and pays a switch interval on every wake-up is reported, with its
per-wake cost near what its clients see; healthy programs get no problem.

The programs are written here, run under ``giltrace run`` in a child
process, and read back through ``giltrace summary --format json``.  The
answers were written down before the code ran; assertions have wide margins
(a loaded machine stretches every wait).
"""

import json
import os

import pytest

from ..conftest import run_python

pytestmark = pytest.mark.usefixtures("native")

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wake_programs")


def run(tmp_path, name, *args):
    """Run wake_programs/NAME.py under giltrace: (its last stdout line as JSON or
    None, the diagnosis JSON parsed strictly, the program's path)."""
    prog = os.path.join(PROGRAMS, name + ".py")
    out = str(tmp_path / (name + ".gtr"))
    res = run_python(["-m", "giltrace", "run", "-q", "-o", out, prog] + list(args), cwd=str(tmp_path), timeout=120)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    lines = [x for x in res.stdout.splitlines() if x.startswith("{")]
    summary = run_python(["-m", "giltrace", "summary", out, "--format", "json"], timeout=120)
    assert summary.returncode == 0, summary.stderr[-2000:]

    def strict(c):
        raise ValueError("bare %s in the JSON" % c)

    return (json.loads(lines[-1]) if lines else None), json.loads(summary.stdout, parse_constant=strict), prog


def problems(d):
    return [f for f in d["findings"] if f["problem"]]


def thread(d, name):
    return next(t for t in d["threads"] if t["name"] == name)


def test_ticker_beside_a_cpu_thread(tmp_path):
    """Expected: the ticker (10 ms sleeps) is a convoy, each wake-up about one
    5 ms switch interval late, >= 80 % of it behind crunch's line; its wake
    p50 is what the ticker measured itself (sleep overshoot)."""
    own, d, prog = run(tmp_path, "ticker", "1.5")
    f = [f for f in problems(d) if f["kind"] == "convoy" and f["threads"] == ["ticker"]]
    assert f, [x["summary"] for x in problems(d)]
    # the loop's header or body: where the eval loop checked for the drop request
    crunch = sum(c["share"] for c in f[0]["culprits"] if c["function"] == "crunch" and c["location"].startswith(prog + ":"))
    assert crunch >= 0.8, f[0]["culprits"]
    wake = thread(d, "ticker")["wake"]
    assert wake["count"] >= 30 and 2.5 <= wake["p50_ms"] <= 15, wake
    assert abs(wake["p50_ms"] - own["late_p50_ms"]) <= 0.3 * own["late_p50_ms"] + 0.5, (wake, own)


def test_udp_ping_handler_beside_a_cpu_thread(tmp_path):
    """Expected: the ping handler waits ~9 % of its time (5 ms of each 55 ms):
    no convoy by share, but one by latency: wake p50 ~5 ms, >= 10x its work,
    >= 80 % behind crunch's line; the client's round trip p50 is the wake p50
    plus a fraction of a millisecond."""
    client, d, prog = run(tmp_path, "ping", "40")
    f = [f for f in problems(d) if f["kind"] == "convoy" and f["threads"] == ["ping-handler"]]
    assert f, [x["summary"] for x in problems(d)]
    # the loop's header or body: where the eval loop checked for the drop request
    crunch = sum(c["share"] for c in f[0]["culprits"] if c["function"] == "crunch" and c["location"].startswith(prog + ":"))
    assert crunch >= 0.8, f[0]["culprits"]
    assert "to run Python again after each of its" in f[0]["summary"] or f[0]["mode"] == "share"
    wake = thread(d, "ping-handler")["wake"]
    assert wake["count"] >= 30 and wake["p50_ms"] >= 10 * wake["work_p50_ms"], wake
    assert abs(wake["p50_ms"] - client["rtt_p50_ms"]) <= 0.3 * client["rtt_p50_ms"] + 0.5, (wake, client)


@pytest.mark.parametrize("name", ["logging_lock", "http_pool"])
def test_healthy_programs_have_no_problem(tmp_path, name):
    """Expected: threads blocked on a logging handler's lock (not the GIL), and
    a pool of HTTP GETs against a slow server in another process: no problem
    finding, no episode."""
    _, d, _ = run(tmp_path, name)
    assert not problems(d), [f["summary"] for f in problems(d)]
