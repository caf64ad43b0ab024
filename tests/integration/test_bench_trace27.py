"""``giltrace bench --trace`` on CPython 2.7 cells: the children trace
themselves with the old-GIL recorder (giltrace/oldgil.py) and the runner
adds their contention figures like a 3.x cell's.  Skips without a 2.7."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import pytest

from giltrace import fileformat, layout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


pytestmark = pytest.mark.slow  # a 2.7 bench grid, built and traced: `make test-slow`


@pytest.fixture(scope="module")
def bench27(tmp_path_factory, python27, c_compiler):
    py27 = python27
    out = tmp_path_factory.mktemp("b") / "run"
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path_factory.mktemp("cache")))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "giltrace",
            "bench",
            "--python",
            py27,
            "--workloads",
            "cpu",
            "--cores",
            "1",
            "--n",
            "2",
            "--modes",
            "thread,procs",
            "--repeat",
            "1",
            "--load",
            "2000000",
            "--trace",
            "--no-progress",
            "-o",
            str(out),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    with open(out / "runs.csv") as f:
        return out, list(csv.DictReader(f)), done.stdout


def test_27_cells_are_traced_with_nothing_lost(bench27):
    out, rows, stdout = bench27
    assert {r["mode"] for r in rows} == {"thread", "procs"}
    for row in rows:
        assert row["python_version"].startswith("2.7") and row["traced"] == "True", row["trace_note"]
        assert row["events_lost"] == "0" and row["trace_note"] == ""
        assert float(row["gil_wait_share"]) >= 0
    assert "GIL contention per cell" in stdout and "untraced" not in stdout


def test_the_thread_cell_switches_and_its_files_are_old_gil_traces(bench27):
    out, rows, _ = bench27
    thread = next(r for r in rows if r["mode"] == "thread")
    assert float(thread["switches_per_s"]) > 0
    procs = next(r for r in rows if r["mode"] == "procs")
    assert float(procs["switches_per_s"]) == 0  # one thread per process: nobody to hand over to
    files = thread["trace_files"].split(",") + procs["trace_files"].split(",")
    assert len(files) == 3
    for name in files:
        raw = fileformat.read(str(out / name))
        assert raw.header["gil_kind"] == "old" and raw.complete
        acq = raw.events[raw.events["kind"] == layout.EV_ACQUIRE]
        assert ((acq["flags"] & layout.FLAG_SAME_HOLDER) != 0).any()
