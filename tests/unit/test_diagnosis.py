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
    write_trace(p, [locations_chunk(locs), events_chunk(rows)], start=0, stop=t + 31 * MS,
                threads=[{"tid": IO, "name": "io"}, {"tid": CPU, "name": "cpu"}])
    return giltrace.load(str(p))


def test_starving_thread_and_its_culprit(convoy):
    d = convoy.diagnose()
    assert list(d.starving.index) == [IO]
    s = d.starving.loc[IO]
    assert s["wait_p50_ms"] == pytest.approx(5.0, rel=0.01)
    assert s["p50_vs_switch_interval"] == pytest.approx(1.0, rel=0.01)
    assert s["release_p50_ms"] == pytest.approx(0.1, rel=0.01)
    top = d.culprits.iloc[0]
    assert top["holder_tid"] == CPU and top["share"] > 0.99
    assert d.culprit_sites.iloc[0]["location"] == "app.py:42 (crunch)"
    assert d.waiting_sites.iloc[0]["location"] == "io.py:7 (reader)" and d.waiting_sites.iloc[0]["share"] > 0.99


def test_long_hold_is_located(convoy):
    d = convoy.diagnose()
    assert len(d.long_holds) == 1
    lh = d.long_holds.iloc[0]
    assert lh["duration_ms"] == pytest.approx(30.0, abs=0.01)
    assert lh["location"] == "ext.py:9 (call_c)" and lh["drop_requests"] == 5


def test_suggestions_carry_the_numbers(convoy):
    text = "\n".join(convoy.diagnose().suggestions)
    assert "median 5.00 ms" in text and "1.0x the 5.0 ms switch interval" in text
    assert "at app.py:42 (crunch)" in text
    assert "follows io.py:7 (reader)" in text
    assert "process" in text and "setswitchinterval" in text
    assert "30.0 ms in one go" in text and "ext.py:9 (call_c)" in text


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
    write_trace(p, [events_chunk(sorted(rows, key=lambda r: r[0]))], start=0, stop=t + MS,
                threads=[{"tid": 1, "name": "cpu-a"}, {"tid": 2, "name": "cpu-b"}])
    d = giltrace.load(str(p)).diagnose()
    assert (d.threads["forced_share"] > 0.9).all()
    assert d.starving.empty
