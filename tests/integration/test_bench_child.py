"""The workload child run standalone: every workload and mode, pinning, and
every interpreter from 2.7 to 3.13 that this machine has (others are skipped)."""

import json
import os
import subprocess
import sys

import pytest

from giltrace.bench import pinning
from giltrace.bench.cells import CHILD_SCRIPT

TINY = ["--load", "20000", "--io-ops", "200", "--sync-ops", "4", "--duration", "0.05"]


def run_child(python, *args, cpus=None):
    argv = [python, CHILD_SCRIPT] + TINY + list(args)
    if cpus is not None:
        argv = pinning.pinned_argv(cpus, argv)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1  # exactly one JSON line
    return json.loads(lines[0])


@pytest.mark.parametrize("mode", ["serial", "thread", "procs"])
@pytest.mark.parametrize("workload", ["cpu", "io", "io-sync", "mix", "mix-sync"])
def test_every_workload_and_mode(workload, mode):
    out = run_child(sys.executable, "--workload", workload, "--mode", mode, "--n", "2")
    assert (out["workload"], out["mode"], out["n"]) == (workload, mode, 2)
    kinds = ["cpu", "cpu"] if workload == "cpu" else ["io", "io"] if workload.startswith("io") else ["cpu", "io"]
    assert [w["kind"] for w in out["workers"]] == kinds
    assert out["wall_s"] > 0 and out["user_s"] + out["sys_s"] > 0
    pids = {w["pid"] for w in out["workers"]}
    if mode == "procs":
        assert len(pids) == 2 and out["pid"] not in pids
        assert out["start_method"] in ("fork", "spawn", "forkserver")
    else:
        assert pids == {out["pid"]}
    if mode == "thread":
        assert len({w["native_id"] for w in out["workers"]}) == 2
    assert out["trace"] == {"requested": False, "enabled": False, "reason": None, "files": []}


@pytest.mark.parametrize("mode", ["thread", "procs"])
def test_pinning_reaches_every_worker(mode):
    cpu = max(os.sched_getaffinity(0))
    out = run_child(sys.executable, "--workload", "mix", "--mode", mode, "--n", "2", cpus=[cpu])
    assert out["affinity"] == [cpu]
    assert [w["affinity"] for w in out["workers"]] == [[cpu], [cpu]]
    assert {w["last_cpu"] for w in out["workers"]} == {cpu}


def test_procs_with_the_spawn_start_method_are_pinned_too():
    cpu = min(os.sched_getaffinity(0))
    out = run_child(sys.executable, "--workload", "cpu", "--mode", "procs", "--n", "2", "--start-method", "spawn", cpus=[cpu])
    assert out["start_method"] == "spawn"
    assert [w["affinity"] for w in out["workers"]] == [[cpu], [cpu]]


@pytest.mark.parametrize("mode, k", [("thread", 0), ("thread", 1), ("procs", 1)])
@pytest.mark.parametrize("workload", ["latency", "latency-sync"])
def test_latency_cells(workload, mode, k):
    out = run_child(sys.executable, "--workload", workload, "--mode", mode, "--n", str(k))
    lat = out["latency"]
    assert lat["competitors"] == k and lat["form"] == (mode if k else "alone")
    assert lat["ops"] > 0 and lat["ops_per_s"] > 0
    assert 0 < lat["p50_s"] <= lat["p99_s"] <= lat["max_s"]
    assert [w["role"] for w in out["workers"]] == ["io-0"] + ["cpu-%d" % i for i in range(k)]
    if k:
        assert lat["competitor_iters_per_s"] > 0


def test_mix_with_one_worker_is_one_counter_and_says_so():
    out = run_child(sys.executable, "--workload", "mix", "--mode", "thread", "--n", "1")
    assert [w["role"] for w in out["workers"]] == ["cpu-0"]
    assert out["notes"] == ["mix with N=1 runs a single cpu worker (no io)"]


def test_bad_arguments_fail_with_one_line():
    proc = subprocess.run(
        [sys.executable, CHILD_SCRIPT, "--workload", "cpu", "--mode", "thread", "--n", "0"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert "--n must be at least 1" in proc.stderr


VERSIONS = ["2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13"]


@pytest.mark.parametrize("version", VERSIONS)
def test_runs_untraced_on_every_interpreter(version, tmp_path, python_of):
    python = python_of(version)
    cpu = max(os.sched_getaffinity(0))
    out = run_child(python, "--workload", "mix", "--mode", "procs", "--n", "2", cpus=[cpu])
    assert out["python"]["version"].startswith(version + ".")
    assert [w["affinity"] for w in out["workers"]] == [[cpu], [cpu]]
    out = run_child(python, "--workload", "latency", "--mode", "thread", "--n", "1")
    assert out["latency"]["ops"] > 0
    if version in ("2.7", "3.6", "3.7", "3.8"):  # asked to trace: runs untraced and says why
        out = run_child(python, "--workload", "io", "--mode", "thread", "--n", "2", "--trace", str(tmp_path / "x.gtr"))
        assert out["trace"]["enabled"] is False and out["trace"]["requested"] is True
        if version == "2.7":  # traceable, but only with the recorder library the runner builds and names
            assert out["trace"]["reason"].startswith("trace did not start: OldGilError: no old-GIL recorder library")
        else:
            assert out["trace"]["reason"] == "tracing needs CPython 2.7 or 3.9-3.13; this is %s" % version
        assert out["wall_s"] > 0


def test_an_unsupported_start_method_on_27_fails_cleanly(python27):
    python = python27
    proc = subprocess.run(
        [python, CHILD_SCRIPT, "--workload", "cpu", "--mode", "procs", "--start-method", "spawn"] + TINY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "child failed: ValueError: this Python only has the 'fork' start method"
