"""The diagnosis on a synthetic trace with a known answer: an I/O thread
that releases the GIL for 0.1 ms and then waits a full switch interval
behind a CPU-bound thread looping at app.py:42."""

import zlib

import pytest

import giltrace
from giltrace import fileformat as ff

from .test_fileformat import events_chunk, write_trace

A, R, W, D = ff.EV_ACQUIRE, ff.EV_RELEASE, ff.EV_WAIT, ff.EV_DROP_REQUEST
MS = 1_000_000
IO, CPU = 11, 22


def locations_chunk(locs):
    payload = b""
    for loc_id, (file, func, line) in locs.items():
        f, n = file.encode(), func.encode()
        payload += ff.LOCATION_HEAD.pack(loc_id, line, len(f), len(n)) + f + n
    return ff.CHUNK.pack(ff.CHUNK_MAGIC, ff.CHUNK_LOCATIONS, 0, len(locs), len(payload), zlib.crc32(payload)) + payload


@pytest.fixture
def convoy(tmp_path):
    rows, t = [], 0
    # cpu holds from 0; each cycle: io waits 5 ms, takes the GIL for 0.05 ms,
    # releases at io.py:7 (its read), 0.1 ms later wants it back; cpu is forced to let go at app.py:42.
    rows.append((0, CPU, A, 0, 1))
    for _ in range(20):
        t += 100_000
        rows.append((t, IO, W, 1, 0))
        rows.append((t + 5 * MS, IO, D, CPU, 0))
        t += 5 * MS
        rows.append((t, CPU, R, 2, 0))
        rows.append((t, IO, A, 5 * MS, 3))
        t += 50_000
        rows.append((t, IO, R, 1, 0))
        rows.append((t, CPU, A, 1000, 3))
    # then the cpu thread's C extension keeps it 30 ms while io asks for it
    rows.append((t + 100_000, IO, W, 1, 0))
    for k in range(1, 6):
        rows.append((t + 100_000 + k * 5 * MS, IO, D, CPU, 0))
    rows.append((t + 30 * MS, CPU, R, 3, 0))
    rows.append((t + 30 * MS, IO, A, 30 * MS - 100_000, 3))
    rows.sort(key=lambda r: r[0])
    locs = {1: ("io.py", "reader", 7), 2: ("app.py", "crunch", 42), 3: ("ext.py", "call_c", 9)}
    p = tmp_path / "c.gtr"
    write_trace(
        p,
        [locations_chunk(locs), events_chunk(rows)],
        start=0,
        stop=t + 31 * MS,
        threads=[{"tid": IO, "name": "io"}, {"tid": CPU, "name": "cpu"}],
    )
    return giltrace.load(str(p))


def test_starving_thread_and_its_culprit(convoy):
    d = convoy.diagnose()
    kinds = {f.kind: f for f in d.findings}
    assert set(kinds) == {"convoy", "long_hold_c"}
    assert kinds["convoy"].threads == ["io"] and kinds["convoy"].group is None
    top = kinds["convoy"].culprits[0]
    # 20 forced hand-offs of 5 ms behind crunch, then 30 ms behind the C call: 100 / 130 of the waiting
    assert (top.location, top.function, top.threads) == ("app.py:42", "crunch", ["cpu"])
    assert top.share == pytest.approx(100 / 130, abs=0.01)
    # the finding names its victims; the holder is the culprit's (issue 20, item 4)
    assert kinds["long_hold_c"].threads == ["io"] and kinds["long_hold_c"].tids == [IO]
    assert kinds["long_hold_c"].culprits[0].location == "ext.py:9" and kinds["long_hold_c"].culprits[0].threads == ["cpu"]
    assert kinds["long_hold_c"].evidence["holders"] == ["cpu"]
    assert list(d.starving.index) == [IO]
    s = d.starving.loc[IO]
    assert s["wait_p50_ms"] == pytest.approx(5.0, rel=0.01)
    assert s["p50_vs_switch_interval"] == pytest.approx(1.0, rel=0.01)
    assert s["release_p50_ms"] == pytest.approx(0.1, rel=0.01)
    top = d.culprits.iloc[0]
    assert top["holder_tid"] == CPU and top["share"] > 0.99
    assert d.culprit_sites.iloc[0]["location"] == "app.py:42 (crunch)"
    assert d.waiting_sites.iloc[0]["waits"] == 21  # waits: the takes that blocked, in every table
    assert d.waiting_sites.iloc[0]["location"] == "io.py:7 (reader)" and d.waiting_sites.iloc[0]["share"] > 0.99


def test_long_hold_is_located(convoy):
    d = convoy.diagnose()
    assert len(d.long_holds) == 1
    lh = d.long_holds.iloc[0]
    assert lh["duration_ms"] == pytest.approx(30.0, abs=0.01)
    assert lh["location"] == "ext.py:9 (call_c)" and lh["drop_requests"] == 5
    # the first drop request came 5 ms into the wait; the holder let go 24.9 ms after it: C code
    assert lh["in_c"] and lh["unanswered_ms"] == pytest.approx(24.9, abs=0.01)


def test_suggestions_carry_the_numbers(convoy):
    text = "\n".join(convoy.diagnose().suggestions)
    assert "median 5.00 ms" in text and "1.0x the 5.0 ms switch interval" in text
    assert "77% of io's waiting happened while crunch (app.py:42) ran in cpu" in text
    assert "after io.py:7 (reader)" in text
    assert "ProcessPoolExecutor" in text and "setswitchinterval(0.001)" in text
    assert "up to 30.0 ms" in text and "ext.py:9 (call_c)" in text and "1 hold during" in text
    # the C holder is not called CPU-bound in Python, and no advice line starts with "or"
    assert "CPU-bound in Python" not in text
    assert not any(line.strip().lstrip("->").strip().lower().startswith("or ") for line in text.splitlines())


def test_waiting_site_of_each_acquisition(convoy):
    ev = convoy.events
    acq = ev[(ev["kind"] == "acquire") & (ev["tid"] == IO)]
    assert set(acq["location"]) == {1}
    assert convoy.location_label(1) == "io.py:7 (reader)"


def test_cpu_threads_taking_turns_are_not_starving(tmp_path):
    rows, t = [(0, 1, A, 0, 1)], 0
    for k in range(20):  # each forced out by the other's drop request every 5 ms
        holder, waiter = (1, 2) if k % 2 == 0 else (2, 1)
        rows += [(t + 1000, waiter, W, 0, 0), (t + 5 * MS, waiter, D, holder, 0)]
        t += 5 * MS + 2000
        rows += [(t, holder, R, 0, 0), (t, waiter, A, 5 * MS, 3)]
    p = tmp_path / "turns.gtr"
    write_trace(
        p,
        [events_chunk(sorted(rows, key=lambda r: r[0]))],
        start=0,
        stop=t + MS,
        threads=[{"tid": 1, "name": "cpu-a"}, {"tid": 2, "name": "cpu-b"}],
    )
    d = giltrace.load(str(p)).diagnose()
    assert (d.threads["forced_share"] > 0.9).all()
    assert d.starving.empty


# ---- synthetic traces with a known answer for episodes, groups, idle threads and advice

MAIN = 1
HANDLERS = [31, 32, 33, 34]
S = 1_000_000_000


def write(path, rows, stop, threads, locs, switch_interval_s=0.005, start=0):
    data = ff.header_bytes(
        {"switch_interval_s": switch_interval_s, "python_version": "3.11.7", "library_prefixes": ["/usr/lib/python3.11/"]}
    )
    data += ff.json_chunk(ff.CHUNK_START, {"start_ns": start, "switch_number_start": 0, "clock_pair": [start, 1_700_000_000_000_000_000]})
    data += ff.json_chunk(ff.CHUNK_THREADS, list(threads))
    data += locations_chunk(locs) + events_chunk(sorted(rows, key=lambda r: r[0]))
    data += ff.json_chunk(ff.CHUNK_FOOTER, {"start_ns": start, "stop_ns": stop, "events_lost": 0})
    with open(path, "wb") as f:
        f.write(data)
    return giltrace.load(str(path))


def storm_rows(storm=(2 * S, 5 * S), end=8 * S, si=5 * MS):
    """io reads (io.py:7) every ms and takes the GIL back at once, except
    during the storm: then 4 handler threads take turns running render
    (app.py:12) and io waits a full switch interval behind whichever holds it."""
    rows, t, k = [], 0, 0
    while t < end:
        if storm[0] <= t < storm[1]:
            holder = HANDLERS[k % 4]
            k += 1
            rows += [
                (t, holder, A, 1000, 1),
                (t + 100_000, IO, W, 1, 0),
                (t + 100_000 + si, IO, D, holder, 0),
                (t + 100_000 + si, holder, R, 2, 0),
                (t + 100_000 + si, IO, A, si, 3),
                (t + 150_000 + si, IO, R, 1, 0),
            ]
            t += 200_000 + si
        else:
            rows += [(t, IO, A, 100, 1), (t + 50_000, IO, R, 1, 0)]
            t += MS
    return rows, t


@pytest.fixture
def storm(tmp_path):
    rows, t = storm_rows()
    threads = [{"tid": IO, "name": "io"}] + [{"tid": h, "name": "Thread-%d (handle)" % h} for h in HANDLERS]
    return write(tmp_path / "storm.gtr", rows, t + MS, threads, {1: ("io.py", "reader", 7), 2: ("app.py", "render", 12)})


def test_a_storm_in_the_calm_is_an_episode_with_its_own_finding(storm):
    d = storm.diagnose()
    assert len(d.episodes) == 1
    a, b = d.episodes[0].window_s
    assert a == pytest.approx(2.0, abs=0.06) and b == pytest.approx(5.0, abs=0.06)  # one bin: max(10 intervals, 8 s / 400)
    convoy = [f for f in d.findings if f.kind == "convoy"]
    assert len(convoy) == 1 and convoy[0].episode == 0 and convoy[0].threads == ["io"]
    assert tuple(convoy[0].window_s) == d.episodes[0].window_s
    top = convoy[0].culprits[0]
    # one code line, summed over the 4 threads that ran it: all of the waiting
    assert (top.location, top.function, top.group) == ("app.py:12", "render", "Thread-* (handle)")
    assert top.share > 0.99 and sorted(top.threads) == sorted("Thread-%d (handle)" % h for h in HANDLERS)
    assert "of io's waiting happened while render (app.py:12) ran in 4 threads of Thread-* (handle)" in convoy[0].summary
    assert "between 2.0" in convoy[0].summary


def test_a_window_restricts_everything(storm):
    calm = storm.window(0.0, 1.5)
    assert calm.window_s == (0.0, 1.5) and calm.meta["duration_s"] == pytest.approx(1.5)
    assert not [f for f in calm.diagnose().findings if f.problem]
    inside = storm.window(3.0, 4.0)
    d = inside.diagnose()
    assert d.window_s == (3.0, 4.0)
    th = d.threads.set_index("name")
    assert th.loc["io", "wait_s"] == pytest.approx(1.0 * 5 / 5.2, abs=0.02)  # 5 ms of each 5.2 ms cycle
    f = [f for f in d.findings if f.kind == "convoy"][0]
    assert tuple(f.window_s) == (3.0, 4.0)
    with pytest.raises(ValueError):
        storm.window(9.0, 10.0)


def test_json_structure(storm):
    import json

    out = json.loads(json.dumps(storm.diagnose().to_dict()))
    assert out["schema"] == "giltrace.diagnosis/1"
    f = [f for f in out["findings"] if f["kind"] == "convoy"][0]
    assert set(f) >= {"kind", "threads", "group", "window_s", "wait_s", "culprits", "advice"}
    assert f["threads"] == ["io"] and f["group"] is None and len(f["window_s"]) == 2
    c = f["culprits"][0]
    assert c["location"] == "app.py:12" and c["function"] == "render" and 0.99 < c["share"] <= 1 and len(c["threads"]) == 4
    assert all(isinstance(a, str) and not a.lower().startswith("or ") for a in f["advice"])
    assert out["episodes"][0]["findings"][0]["kind"] == "convoy"
    io = [t for t in out["threads"] if t["name"] == "io"][0]
    assert io["waits"] + io["uncontended"] == len(storm.events.query("kind == 'acquire' and tid == @IO"))


def test_advice_follows_the_switch_interval(tmp_path):
    rows, t = storm_rows(storm=(0, 2 * S), end=2 * S, si=MS)
    threads = [{"tid": IO, "name": "io"}] + [{"tid": h, "name": "Thread-%d (handle)" % h} for h in HANDLERS]
    tr = write(
        tmp_path / "si1.gtr", rows, t + MS, threads, {1: ("io.py", "reader", 7), 2: ("app.py", "render", 12)}, switch_interval_s=0.001
    )
    f = [f for f in tr.diagnose().findings if f.kind == "convoy"][0]
    text = "\n".join(f.advice)
    assert "setswitchinterval" not in text and "already 1.0 ms" in text
    assert "render (app.py:12)" in text


def test_a_main_thread_that_joins_is_not_starving(tmp_path):
    rows = [(0, CPU, A, 0, 1)]
    t = 0
    for _ in range(3):  # main wakes from join 3 times in 3 s and waits a switch interval each time
        t += S
        rows += [
            (t - 5 * MS, MAIN, W, 4, 0),
            (t, CPU, R, 2, 0),
            (t, MAIN, A, 5 * MS, 3),
            (t + 10_000, MAIN, R, 4, 0),
            (t + 20_000, CPU, A, 100, 1),
        ]
    tr = write(
        tmp_path / "join.gtr",
        rows,
        t + MS,
        [{"tid": MAIN, "name": "MainThread"}, {"tid": CPU, "name": "cpu"}],
        {2: ("app.py", "crunch", 42), 4: ("/usr/lib/python3.11/threading.py", "Thread._wait_for_tstate_lock", 1167)},
    )
    d = tr.diagnose()
    assert not d.problems
    idle = [f for f in d.findings if f.kind == "idle"]
    assert len(idle) == 1 and idle[0].threads == ["MainThread"] and not idle[0].problem
    assert "not a problem" in idle[0].summary.lower()


def turns(tmp_path, names):
    """Threads taking turns on the GIL: the holder is forced out by a drop
    request after 5 ms, the others wait their turn; they run work.py:5."""
    rows, t = [], 0
    pool = list(names)
    rows.append((0, pool[0], A, 0, 1))
    since = {p: 0 for p in pool}  # when each began waiting
    rows += [(0, p, W, 0, 0) for p in pool[1:]]
    for k in range(300):
        holder, nxt = pool[k % len(pool)], pool[(k + 1) % len(pool)]
        rows.append((t + 5 * MS, nxt, D, holder, 0))
        t += 5 * MS + 2000
        rows += [(t, holder, R, 2, 0), (t, nxt, A, t - since[nxt], 3), (t + 3000, holder, W, 0, 0)]
        since[holder] = t + 3000
    return write(tmp_path / "turns.gtr", rows, t + MS, [{"tid": p, "name": n} for p, n in names.items()], {2: ("work.py", "task", 5)})


def test_a_pool_taking_turns_is_serialised(tmp_path):
    d = turns(tmp_path, {41: "ThreadPoolExecutor-0_0", 42: "ThreadPoolExecutor-0_1", 43: "ThreadPoolExecutor-0_2"}).diagnose()
    kinds = [f.kind for f in d.problems]
    assert kinds == ["serialised_pool"]
    f = d.problems[0]
    assert f.group == "ThreadPoolExecutor-0_*" and len(f.threads) == 3
    assert f.culprits[0].location == "work.py:5" and f.culprits[0].share > 0.95
    assert f.evidence["wait_share_of_gil_time"] == pytest.approx(2 / 3, abs=0.05)  # (N-1)/N for N = 3
    assert "setswitchinterval" not in " ".join(f.advice) and "ProcessPoolExecutor" in " ".join(f.advice)


def test_cpu_threads_of_different_kinds_are_oversubscription(tmp_path):
    d = turns(tmp_path, {51: "indexer", 52: "reporter", 53: "MainThread"}).diagnose()
    assert [f.kind for f in d.problems] == ["oversubscription"]
    f = d.problems[0]
    assert sorted(f.threads) == ["MainThread", "indexer", "reporter"] and f.group is None
    assert f.culprits[0].location == "work.py:5" and f.culprits[0].share > 0.95
    assert "processes" in f.advice[0]


def test_cli_summary_json_window_and_bad_input(storm, capsys, tmp_path):
    import json

    from giltrace.cli import main

    assert main(["summary", storm.path, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [f["kind"] for f in out["findings"] if f["problem"]] == ["convoy"] and len(out["episodes"]) == 1
    assert main(["summary", storm.path, "--format", "json", "--start", "0", "--end", "1.5"]) == 0
    calm = json.loads(capsys.readouterr().out)
    assert calm["window_s"] == [0.0, 1.5] and not [f for f in calm["findings"] if f["problem"]]
    assert main(["summary", storm.path, "--start", "3", "--end", "4"]) == 0
    text = capsys.readouterr().out
    assert "window    3.000-4.000 s" in text and "happened while render (app.py:12) ran in 4 threads of Thread-* (handle)" in text
    for bad in (["--start", "9", "--end", "10"], ["--start", "-1"], ["--start", "4", "--end", "3"]):
        assert main(["summary", storm.path] + bad) == 2
        err = capsys.readouterr().err
        assert err.startswith("giltrace: error: ") and err.count("\n") == 1
    html = str(tmp_path / "r.html")
    assert main(["report", storm.path, "-o", html, "--start", "1", "--end", "6"]) == 0
    page = open(html).read()
    assert "Window 1.000–6.000 s" in page and "Episodes" in page and "render (app.py:12)" in page


# ---- wake latency (issue 20): answers written before the code ran

HANDLER = 61


def pings(tmp_path, n=40, gap=50 * MS, wait=5 * MS, work=50_000, late=lambda k: True, name="pings.gtr", extra=()):
    """cpu holds the GIL throughout at app.py:42; the handler blocks ``gap``
    in recvfrom (h.py:3), then waits ``wait`` for the GIL when ``late(k)``
    (cpu forced out by its drop request) or takes it at once, and works ``work``."""
    rows, t = [(0, CPU, A, 0, 1)], 0
    for k in range(n):
        t += gap
        if late(k):
            rows += [(t, HANDLER, W, 1, 0), (t + wait, HANDLER, D, CPU, 0), (t + wait, CPU, R, 2, 0), (t + wait, HANDLER, A, wait, 3)]
            t += wait
            rows += [(t + work, HANDLER, R, 1, 0), (t + work, CPU, A, work, 3)]
        else:  # cpu sleeps here: the GIL is free
            rows += [(t - 10_000, CPU, R, 4, 0), (t, HANDLER, A, 200, 1), (t + work, HANDLER, R, 1, 0), (t + work + 1000, CPU, A, 100, 1)]
        t += work
    threads = [{"tid": HANDLER, "name": "ping-handler"}, {"tid": CPU, "name": "cpu"}] + list(extra)
    locs = {1: ("h.py", "handler", 3), 2: ("app.py", "crunch", 42), 4: ("app.py", "nap", 50)}
    return write(tmp_path / name, rows, t + MS, threads, locs)


def test_wakes_of_a_ping_handler(tmp_path):
    # Expected: 40 wakes (the first take after each 50 ms recv), each 5 ms late
    # behind cpu, 0.05 ms of work after each; the cpu thread has none (forced out).
    tr = pings(tmp_path)
    w = tr.wakes()
    assert set(w["tid"]) == {HANDLER} and len(w) == 39  # the first take has no release before it
    assert (w["wait_ns"] == 5 * MS).all() and (w["work_ns"] == 50_000).all()
    assert (w["blocked_ns"] == 50 * MS).all() and (w["holder_tid"] == CPU).all()
    assert set(w["released_at"]) == {1} and set(w["holder_location"]) == {2}
    th = tr.threads().loc[HANDLER]
    assert th["wakes"] == 39 and th["wake_p50_s"] == pytest.approx(0.005) and th["wake_p99_s"] == pytest.approx(0.005)
    assert th["work_per_wake_s"] == pytest.approx(50e-6)
    assert th["wake_inflation"] > 100  # over the process's uncontended take (the cpu thread's first take)


def test_a_late_ping_handler_is_a_latency_convoy(tmp_path):
    # Expected: not a convoy by share (5 ms of every 55 ms: 9 % < 20 %) but by
    # latency: median 5.0 ms, 100x its 0.05 ms of work, 100 % behind crunch.
    d = pings(tmp_path).diagnose()
    f = [f for f in d.problems if f.kind == "convoy"]
    assert len(f) == 1 and f[0].mode == "latency" and f[0].threads == ["ping-handler"]
    assert f[0].culprits[0].location == "app.py:42" and f[0].culprits[0].share > 0.99
    assert "ping-handler waited a median 5.0 ms (p99 5.0 ms) to run Python again after each of its 39 blocking calls" in f[0].summary
    assert "100x its own 0.05 ms of work; 100% of it behind crunch (app.py:42) in cpu" in f[0].summary
    assert any("setswitchinterval(0.001)" in a for a in f[0].advice)
    assert f[0].evidence["wake"]["count"] == 39 and f[0].evidence["wake"]["p50_ms"] == pytest.approx(5.0)
    assert f[0].to_dict()["mode"] == "latency" and isinstance(f[0].to_dict()["predictions"], list)


def test_quick_wakes_and_forced_switches_are_no_latency_problem(tmp_path):
    # Expected: waking from 50 ms blocks to a free GIL (a lock's victims, an
    # HTTP pool) is no problem; CPU threads forced to take turns have no wakes.
    d = pings(tmp_path, late=lambda k: False).diagnose()
    assert not d.problems and d.threads.loc[HANDLER, "wakes"] == 39
    assert d.threads.loc[HANDLER, "wake_p50_s"] < 1e-6
    turns_trace = turns(tmp_path, {41: "a-0", 42: "a-1"})
    assert turns_trace.wakes().empty


def test_latency_episode_in_the_calm(tmp_path):
    # Expected: the handler is late only for pings 60-79 (3.0-4.1 s): an
    # episode there, found by latency (the waiting level stays low), with a
    # latency convoy in it; the whole trace is not called calm.
    tr = pings(tmp_path, n=160, late=lambda k: 60 <= k < 80)
    d = tr.diagnose()
    assert len(d.episodes) == 1 and d.episodes[0].late == ["ping-handler"]
    a, b = d.episodes[0].window_s
    assert 2.8 <= a <= 3.4 and 3.9 <= b <= 4.6, (a, b)
    f = [f for f in d.problems if f.kind == "convoy"]
    assert f and f[0].episode == 0 and f[0].mode == "latency" and f[0].culprits[0].location == "app.py:42"
    text = "\n".join(d.suggestions)
    assert "no period stands out" not in text
    assert not any(x.kind == "idle" and "ping-handler" in x.threads for x in d.findings)


def test_few_long_waits_behind_c_name_the_victim(tmp_path):
    # Expected: a ticker waits 3 times, 200 ms each, behind cpu's C call at
    # ext.py:9: long_hold_c names the ticker (threads) and cpu (culprit); the
    # ticker is never cleared as idle.
    rows, t = [(0, CPU, A, 0, 1)], 0
    for _ in range(3):
        t += 300 * MS
        rows += [(t, HANDLER, W, 1, 0)] + [(t + k * 5 * MS, HANDLER, D, CPU, 0) for k in range(1, 40)]
        rows += [(t + 200 * MS, CPU, R, 3, 0), (t + 200 * MS, HANDLER, A, 200 * MS, 3)]
        rows += [(t + 200 * MS + 20_000, HANDLER, R, 1, 0), (t + 200 * MS + 30_000, CPU, A, 10_000, 3)]
        t += 200 * MS
    tr = write(
        tmp_path / "c.gtr",
        rows,
        t + MS,
        [{"tid": HANDLER, "name": "ticker"}, {"tid": CPU, "name": "cpu"}],
        {1: ("h.py", "tick", 3), 3: ("ext.py", "call_c", 9)},
    )
    d = tr.diagnose()
    held = [f for f in d.problems if f.kind == "long_hold_c"]  # one per episode: each hold stands out
    assert held and all(f.threads == ["ticker"] and f.culprits[0].threads == ["cpu"] for f in held)
    assert all(f.culprits[0].location == "ext.py:9" for f in held)
    assert not [f for f in d.findings if f.kind == "idle" and "ticker" in f.threads]


def test_summary_json_is_strict(tmp_path, capsys):
    # Expected: no bare NaN anywhere (ungrouped threads' group, a thread without wakes' baseline): null.
    import json

    from giltrace.cli import main

    tr = pings(tmp_path, extra=[{"tid": 77, "name": "bystander"}])
    assert main(["summary", tr.path, "--format", "json"]) == 0

    def no_nan(c):
        raise ValueError("bare %s in JSON" % c)

    out = json.loads(capsys.readouterr().out, parse_constant=no_nan)
    th = {t["name"]: t for t in out["threads"]}
    assert th["ping-handler"]["group"] is None
    assert th["ping-handler"]["wake"] == {
        "count": 39,
        "p50_ms": 5.0,
        "p90_ms": 5.0,
        "p99_ms": 5.0,
        "max_ms": 5.0,
        "work_p50_ms": 0.05,
        "baseline_ms": th["ping-handler"]["wake"]["baseline_ms"],
        "inflation": th["ping-handler"]["wake"]["inflation"],
    }
    assert th["cpu"]["wake"]["count"] == 0 and th["cpu"]["wake"]["baseline_ms"] is None
    f = [f for f in out["findings"] if f["kind"] == "convoy"][0]
    assert f["mode"] == "latency" and "predictions" in f


def test_no_period_stands_out_only_without_episodes(tmp_path):
    # Expected: with no problem, the text says no period stands out only when it lists no episode.
    from giltrace.diagnosis import EpisodeDiagnosis, suggest

    d = pings(tmp_path, late=lambda k: False).diagnose()
    assert not d.problems and "no period stands out" in suggest(d)[0]
    d.episodes = [EpisodeDiagnosis((1.0, 2.0), 0.1, 0.3, 0.01, [], ["ping-handler"])]
    first = suggest(d)[0]
    assert "no period stands out" not in first and "the episode listed above stands out" in first
