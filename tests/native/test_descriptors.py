"""The traced program's own descriptor handling never reaches giltrace's
writes: a program that closes every descriptor (as daemonising code does) or
dup2()s over them keeps its files exactly as untraced, and the trace is
reopened by path or ends with a one-line reason (docs/how-it-works.md,
"The program's own descriptors")."""

from __future__ import annotations

import glob

import pytest

import giltrace
from tests.conftest import run_python

pytestmark = pytest.mark.skipif(bool(giltrace.unsupported_reason()), reason=giltrace.unsupported_reason() or "")

PROGRAM = r"""
import os, sys, threading, time
mode = sys.argv[1]

def spin(n):
    x = 0
    for i in range(n):
        x += i

def churn():
    ts = [threading.Thread(target=spin, args=(20000,)) for _ in range(3)]
    [t.start() for t in ts]
    [t.join() for t in ts]

churn()
if mode == "unlink":
    for p in os.listdir("."):
        if p.endswith(".gtr"):
            os.unlink(p)
if mode in ("close", "unlink"):
    os.closerange(3, 1000)
elif mode == "dup2":
    victim = os.open("victim.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for fd in range(3, 1024):
        if fd == victim:
            continue
        try:
            os.fstat(fd)
        except OSError:
            continue
        os.dup2(victim, fd)
fds = [os.open("data%d.txt" % k, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) for k in range(4)]
for i in range(20):
    churn()
    for k, fd in enumerate(fds):
        os.write(fd, b"line %d of file %d\n" % (i, k))
    time.sleep(0.01)  # past a flush period or two: the writer writes meanwhile
print("done", mode)
"""


def expected(k: int) -> bytes:
    return b"".join(b"line %d of file %d\n" % (i, k) for i in range(20))


def run(tmp_path, mode: str, traced: bool):
    d = tmp_path / ("traced" if traced else "plain") / mode
    d.mkdir(parents=True)
    (d / "prog.py").write_text(PROGRAM)
    env = {"GILTRACE": str(d / "t.gtr")} if traced else {"GILTRACE": ""}
    r = run_python(["prog.py", mode], cwd=str(d), env=env)
    return d, r


@pytest.mark.parametrize("mode", ["close", "dup2"])
def test_program_files_hold_exactly_its_data_and_trace_continues(tmp_path, mode):
    plain_dir, plain = run(tmp_path, mode, traced=False)
    d, r = run(tmp_path, mode, traced=True)
    assert (r.returncode, r.stdout, r.stderr) == (plain.returncode, plain.stdout, plain.stderr)
    for k in range(4):
        assert (d / ("data%d.txt" % k)).read_bytes() == expected(k)
    if mode == "dup2":
        assert (d / "victim.txt").read_bytes() == b""
    (path,) = glob.glob(str(d / "t.*.gtr"))
    trace = giltrace.load(path)
    assert trace.meta.get("fd_reopened", 0) >= 1  # reopened by path: the chunk stream goes on
    assert trace.meta.get("write_errno") == 0
    # events after the close: the writer kept writing the later churns (20 x 3 threads)
    assert trace.events["tid"].nunique() > 30


def test_trace_file_gone_too_stops_in_one_line_and_touches_nothing(tmp_path):
    plain_dir, plain = run(tmp_path, "unlink", traced=False)
    d, r = run(tmp_path, "unlink", traced=True)
    assert (r.returncode, r.stdout) == (plain.returncode, plain.stdout)
    for k in range(4):
        assert (d / ("data%d.txt" % k)).read_bytes() == expected(k)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "could not be reopened" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_giltrace_holds_no_low_descriptor_and_no_eventfd(tmp_path):
    code = r"""
import os, giltrace
tr = giltrace.start(%r)
mine = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        mine[int(fd)] = os.readlink("/proc/self/fd/" + fd)
    except OSError:
        pass
giltrace.stop(load=False)
print(sorted(fd for fd, target in mine.items() if target.endswith("t.gtr")))
print(sum("eventfd" in target for target in mine.values()))
""" % str(tmp_path / "t.gtr")
    r = run_python(code, env={"GILTRACE": ""})
    assert r.returncode == 0, r.stderr
    fds, eventfds = r.stdout.split("\n")[:2]
    assert all(fd >= 900 for fd in eval(fds)) and eval(fds), fds  # moved high: ordinary opens never land there
    assert eventfds == "0"  # the writer sleeps on a futex: nothing a program could close or reuse
