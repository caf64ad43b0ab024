"""CPU state beside GIL state (Tracer(cpu_state=True), giltrace run --cpu-state):
a holder that is not running, and a cgroup's CPU quota, told apart from
GIL contention (docs/how-it-works.md, "CPU state")."""

import os
import runpy
import subprocess
import sys
import textwrap

import pytest

import giltrace

from ..conftest import REPO

PROGRAM = textwrap.dedent("""
    import sys, threading, time
    def spin(stop):
        while not stop.is_set():
            pass
    def ticker(stop):
        while not stop.is_set():
            time.sleep(0.001)
    stop = threading.Event()
    ts = [threading.Thread(target=spin, args=(stop,), name="cpu-%d" % i) for i in range(2)]
    ts.append(threading.Thread(target=ticker, args=(stop,), name="io"))
    for t in ts:
        t.start()
    time.sleep(float(sys.argv[1]))
    stop.set()
    for t in ts:
        t.join()
    """)


def traced(tmp_path, prefix=(), seconds=1.0):
    script = tmp_path / "prog.py"
    script.write_text(PROGRAM)
    out = tmp_path / "prog.gtr"
    res = subprocess.run(
        list(prefix) + [sys.executable, "-m", "giltrace", "run", "-q", "--cpu-state", "-o", str(out), str(script), str(seconds)],
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    return giltrace.load(str(out))


def test_a_holder_sharing_its_cpu_with_a_busy_process_is_seen_off_cpu(native, tmp_path, taskset):
    cpu = min(os.sched_getaffinity(0))
    burner = subprocess.Popen(["taskset", "-c", str(cpu), sys.executable, "-c", "while True: pass"])
    try:
        trace = traced(tmp_path, prefix=["taskset", "-c", str(cpu)])
    finally:
        burner.kill()
        burner.wait()
    cs = trace.cpu_state().join(trace.threads()[["name", "hold_s"]])
    cpu_threads = cs[cs["name"].str.startswith("cpu-")]
    # Expected: one CPU shared by the GIL holder and the burner: the holder is
    # runnable but not running for a good part of each hold (about half in
    # theory; the 5 ms samples' split is an estimate: 24-50 % seen).  Pinned
    # alone, a holder's run-queue time is near 0.
    assert (cpu_threads["held_runq_s"] >= 0.1 * cpu_threads["hold_s"]).all(), cpu_threads
    assert cpu_threads["held_runq_s"].sum() >= 0.2 * cpu_threads["hold_s"].sum(), cpu_threads
    d = trace.diagnose()
    kinds = [f.kind for f in d.findings]
    assert "cpu_starved" in kinds
    starved = next(f for f in d.findings if f.kind == "cpu_starved")
    assert set(starved.threads) & {"cpu-0", "cpu-1"} and "oversubscribed" in starved.summary
    assert "long_hold_c" not in kinds  # not answering drop requests because it was not running is not "C code"
    off = trace.off_cpu_spans()
    names = trace.threads()["name"]
    held_off = off[off["kind"] == "held_off_cpu"]
    assert set(names.reindex(held_off["tid"])) >= {"cpu-0", "cpu-1"}  # what the timeline hatches
    assert ((held_off["end_ns"] - held_off["start_ns"]).sum() / 1e9) > 0.1
    from giltrace.render.text import summary

    assert "held off-CPU ms" in summary(trace)


def test_on_an_idle_machine_the_holders_run_and_nothing_is_throttled(native, tmp_path, quiet_machine):
    """Nothing beside the program: the GIL's holders ran through their holds
    (run-queue time inside holds ~0), their CPU time is their hold time, and
    no finding blames the CPUs."""
    trace = traced(tmp_path)
    cs = trace.cpu_state().join(trace.threads()[["name", "hold_s"]])
    cpu_threads = cs[cs["name"].str.startswith("cpu-")]
    held = cpu_threads["hold_s"].sum()
    # Expected: held_runq ~0 (1 % of the holds seen: a tick, the writer, a
    # stray daemon); cpu time >= 90 % of the holds (the split is per 5 ms sample).
    assert held > 0.5 and cpu_threads["held_runq_s"].sum() <= 0.05 * held, cpu_threads
    assert cpu_threads["cpu_s"].sum() >= 0.9 * held, cpu_threads
    # A woken waiter's wait for a CPU is the scheduler's wake-up latency here:
    # "io" wakes 1000 times a second, 25-56 us each seen (25-56 ms over the
    # run); with a burner on the CPU it is the burner's time slices.
    assert cs["wait_runq_s"].sum() <= 0.1 * trace.meta["duration_s"], cs
    assert "cpu_starved" not in [f.kind for f in trace.diagnose().findings]
    assert trace.cgroup_throttling()["throttled_s"] < 0.01


def test_a_cgroup_cpu_quota_shows_as_throttling(native, tmp_path, cgroup_cpu):
    # the demo's own set-up: cgroup v2 (unified or hybrid) cpu.max, else v1's cfs quota
    demo = runpy.run_path(os.path.join(REPO, "examples", "cpu_state_demo.py"))
    try:
        group = demo["make_cgroup"](0.2)  # 20 % of one CPU
    except (OSError, SystemExit) as exc:
        pytest.skip("cannot create a CPU cgroup here: %s" % exc)
    try:
        # The shell moves itself into the cgroup, then becomes the traced program.
        trace = traced(tmp_path, prefix=["sh", "-c", 'echo $$ > %s/cgroup.procs && exec "$@"' % group, "sh"], seconds=1.0)
    finally:
        try:
            os.rmdir(group)
        except OSError:
            pass
    throttle = trace.cgroup_throttling()
    assert throttle["throttled_periods"] >= 5 and throttle["throttled_s"] > 0.1, throttle
    starved = [f for f in trace.diagnose().findings if f.kind == "cpu_starved"]
    assert starved and "CPU quota" in starved[0].summary


def test_without_cpu_state_there_are_no_cpu_columns(native, tmp_path):
    with giltrace.trace(str(tmp_path / "t.gtr")) as tr:
        sum(range(1000))
    assert tr.result.cpu_state().empty and tr.result.cgroup_throttling()["throttled_periods"] == 0
    assert "held_runq_s" not in tr.result.diagnose().threads.columns
