"""A reader that stops early (`giltrace summary t.gtr | head -1`) ends a
command quietly: no traceback, no "Exception ignored" at exit (issue #9)."""

import os
import shlex
import subprocess
import sys

import pytest

from ..conftest import REPO
from ..unit.test_fileformat import ROWS, events_chunk, write_trace

GILTRACE = "%s -m giltrace" % shlex.quote(sys.executable)


@pytest.fixture
def trace_file(tmp_path):
    p = tmp_path / "t.gtr"
    write_trace(p, [events_chunk(ROWS)])
    return p


def shell(script, tmp_path, buffered=True):
    """Run a bash script; stdout, stderr.  ``buffered``: stdout as Python
    buffers it on a pipe (written at exit), else written at each print."""
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("PYTHONUNBUFFERED", None)
    if not buffered:
        env["PYTHONUNBUFFERED"] = "1"
    res = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    return res.stdout, res.stderr


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
def test_summary_into_head_is_quiet(trace_file, tmp_path, buffered):
    # head exits after the first summary's first line: the second summary
    # writes to a pipe nobody reads any more.  Whether the first one's later
    # lines still fit in the pipe before head exits is the scheduler's call
    # (unbuffered, each line is a write: on a busy machine head can go after
    # line one), so either command may end 0 or 141 -- the closed-pipe status
    # of Unix tools, giltrace/cli/__init__.py -- and both must be silent.
    cmd = "%s summary %s" % (GILTRACE, shlex.quote(str(trace_file)))
    out, err = shell("{ %s; echo $? > first; %s; echo $? > second; } | head -1" % (cmd, cmd), tmp_path, buffered)
    assert err == ""
    assert out.startswith("trace ") and out.count("\n") == 1
    assert (tmp_path / "first").read_text().strip() in ("0", "141")
    assert (tmp_path / "second").read_text().strip() in ("0", "141")


@pytest.mark.parametrize(
    "args, buffered",
    [
        ("summary {trace}", True),
        ("summary {trace}", False),
        ("export {trace} -o out.json", True),
        ("export {trace} -o out.json", False),
        ("export {trace} --format csv -o out.csv", True),
        ("--help", True),
        ("--version", True),
        ("export --help", True),
    ],
)
def test_any_command_into_a_closed_pipe_is_quiet(trace_file, tmp_path, args, buffered):
    cmd = "%s %s" % (GILTRACE, args.format(trace=shlex.quote(str(trace_file))))
    out, err = shell("{ sleep 0.2; %s; echo $? > status; } | true" % cmd, tmp_path, buffered)
    assert err == ""
    assert (tmp_path / "status").read_text().strip() in ("0", "141")
    if "-o" in args:  # the export itself is whole: only the closing message was lost
        assert (tmp_path / args.split("-o ")[1]).stat().st_size > 0


def test_errors_still_reach_stderr_and_the_status(tmp_path):
    out, err = shell("{ sleep 0.2; %s summary nope.gtr; echo $? > status; } | true" % GILTRACE, tmp_path)
    assert err.startswith("giltrace: error: cannot read nope.gtr") and err.count("\n") == 1
    assert (tmp_path / "status").read_text().strip() == "1"


def test_a_traced_program_meets_the_closed_pipe_as_it_would_untraced(tmp_path):
    """`giltrace run` leaves the program's own BrokenPipeError alone: the same
    status and the same report as under plain python."""
    (tmp_path / "prog.py").write_text("print('x')\n")
    python = shlex.quote(sys.executable)
    _, plain = shell("{ sleep 0.2; %s prog.py; echo $? > plain; } | true" % python, tmp_path)
    _, traced = shell("{ sleep 0.2; %s run -q -o t.gtr prog.py; echo $? > traced; } | true" % GILTRACE, tmp_path)
    assert "BrokenPipeError" in plain
    assert "BrokenPipeError" in traced
    assert (tmp_path / "traced").read_text() == (tmp_path / "plain").read_text()
