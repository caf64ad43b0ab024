"""``giltrace bench`` end to end: output files, and bad input that fails in
one line with nothing written."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from giltrace.cli import main

TOO_MANY = len(os.sched_getaffinity(0)) + 1
TINY = ["--load", "20000", "--io-ops", "100", "--repeat", "1", "--no-progress"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_a_small_grid_prints_the_tables_and_saves_everything(tmp_path, capsys):
    out = tmp_path / "results"
    code = main(["bench", "--workloads", "cpu,io", "--cores", "1,%d" % TOO_MANY, "--n", "1,2", "-o", str(out)] + TINY)
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "| cores  |      N | serial | thread | procs  |" in stdout
    assert "|     %d  | unavailable: only" % TOO_MANY in stdout
    assert "cores %d: unavailable" % TOO_MANY in stderr  # said up front
    assert sorted(os.listdir(out)) == ["results.json", "runs.csv", "table.csv", "tables.txt"]
    assert os.listdir(tmp_path) == ["results"]  # no staging folder left behind
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs[runs["status"] == "ok"]) == 2 * 1 * 2 * 3
    doc = json.loads((out / "results.json").read_text())
    assert set(doc) == {"machine", "config", "messages", "runs", "table"}
    assert doc["machine"]["kernel"] and doc["machine"]["interpreters"][0]["version"]
    assert (out / "tables.txt").read_text() in stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--cores", "0"], "--cores: 0 is too small (at least 1)"),
        (["--workloads", "cpu,gpu"], "--workloads: unknown 'gpu'"),
        (["--python", "/nonexistent/python9"], "--python /nonexistent/python9: not an executable file"),
        (["--python", "/bin/false"], "--python /bin/false: does not run"),
        (["--python", "/bin/echo"], "--python /bin/echo: is not a Python interpreter"),
    ],
)
def test_bad_input_one_line_nonzero_nothing_written(tmp_path, capsys, argv, message):
    out = tmp_path / "results"
    code = main(["bench", "-o", str(out)] + TINY + argv)
    _, stderr = capsys.readouterr()
    assert code == 2
    assert stderr.startswith("giltrace: error: " + message)
    assert stderr.count("\n") == 1
    assert os.listdir(tmp_path) == []


def test_an_existing_output_directory_is_not_touched(tmp_path, capsys):
    (tmp_path / "old.txt").write_text("keep me")
    code = main(["bench", "--workloads", "cpu", "--cores", "1", "--n", "1", "-o", str(tmp_path)] + TINY)
    _, stderr = capsys.readouterr()
    assert code == 2 and "already exists and is not an empty directory" in stderr
    assert os.listdir(tmp_path) == ["old.txt"]


def test_the_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "giltrace", "bench", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "--workloads" in proc.stdout and "--trace" in proc.stdout
