"""``giltrace top``: the live screen in a real terminal (tmux), its keys, and
the incremental reader it is built on."""

import os
import shutil
import subprocess
import sys

import pytest

from ..conftest import REPO
from .test_attach import FAKE_GDB, JOIN_MAIN, Target, giltrace_cli, needs_injector, needs_ptrace, needs_tracer, thread_names, wait_until

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)")


class Tmux:
    """One private tmux server (-L) with one session running ``command``."""

    def __init__(self, tmp_path, command: str) -> None:
        self.sock = "giltrace-test-%d" % os.getpid()
        env = dict(os.environ, PYTHONPATH=REPO, TERM="xterm-256color", GILTRACE_GDB=FAKE_GDB)  # attach without gdb
        env.pop("TMUX", None)
        env.pop("GILTRACE_INJECTOR", None)
        self.env = env
        self._tmux("new-session", "-d", "-s", "top", "-x", "150", "-y", "40", "sh -c '%s; echo EXIT=$?; sleep 60'" % command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run([TMUX, "-L", self.sock] + list(args), capture_output=True, text=True, env=self.env, timeout=30).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "top")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", "top", *keys)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        assert wait_until(lambda: text in self.screen(), timeout, 0.2), self.screen()
        return self.screen()

    def close(self) -> None:
        self._tmux("kill-server")


def _events(screen: str) -> int:
    for line in screen.splitlines():
        if "events" in line and "giltrace top" in line:
            return int(line.split(" events")[0].rsplit(" ", 1)[1])
    return -1


@needs_tmux
@needs_injector
@needs_ptrace
@needs_tracer
def test_top_attaches_refreshes_folds_and_detaches_on_q(tmp_path):
    target = Target(tmp_path, JOIN_MAIN, "60")
    term = Tmux(tmp_path, "%s -m giltrace top --pid %d --interval 0.5 --window 3" % (sys.executable, target.pid))
    try:
        first = term.wait_for("crunch-* x3")  # the pool folded into one row
        assert "WAIT%" in first and "HOLD%" in first and "P99 ms" in first
        assert "GIL held by:" in first and "Top culprit:" in first and "(crunch)" in first
        n = _events(first)
        assert wait_until(lambda: _events(term.screen()) != n, 20, 0.2), term.screen()  # it refreshes
        term.keys("g")
        unfolded = lambda: all("crunch-%d" % i in term.screen() for i in range(3)) and "crunch-* x3" not in term.screen()  # noqa: E731
        assert wait_until(unfolded, 20, 0.2), term.screen()
        term.keys("q")
        end = term.wait_for("EXIT=")
        assert "EXIT=0" in end and "detached from process %d" % target.pid in end
        assert wait_until(lambda: not [n for n in thread_names(target.pid) if "giltrace" in n], 10)
        assert target.proc.poll() is None  # still running, untouched
        import glob
        import tempfile

        assert glob.glob(os.path.join(tempfile.gettempdir(), "giltrace-attach-%d-*" % target.pid)) == []
    finally:
        term.close()
        target.kill()


@needs_tracer
def test_top_of_a_command_without_a_terminal(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(JOIN_MAIN)
    res = giltrace_cli("top", "--iterations", "3", "--interval", "0.5", "-o", str(tmp_path / "top.gtr"), "--", str(script), "30")
    assert res.returncode == 0, res.stderr
    assert "giltrace top: prog.py 30 (pid " in res.stdout
    assert "crunch-* x3" in res.stdout
    assert "the program was stopped" in res.stderr and "ready 0" in res.stderr  # its output, shown at the end
    import giltrace

    assert {"crunch-0", "crunch-1", "crunch-2"} <= set(giltrace.load(str(tmp_path / "top.gtr"), warn=False).threads()["name"])


def test_top_needs_a_pid_or_a_command():
    res = giltrace_cli("top")
    assert res.returncode == 2 and res.stderr.strip() == (
        "giltrace: error: give either --pid PID or a command after -- (giltrace top -- script.py args)"
    )


@needs_tracer
def test_live_reader_follows_a_growing_file_chunk_by_chunk(tmp_path):
    """Fed the file a few bytes at a time (as a writer appends), the reader
    ends with every event the whole-file reader sees, and the same figures."""
    import giltrace
    from giltrace.live import LiveTrace

    script = tmp_path / "prog.py"
    script.write_text(JOIN_MAIN)
    whole = str(tmp_path / "whole.gtr")
    res = giltrace_cli("run", "-q", "-o", whole, str(script), "1")
    assert res.returncode == 0, res.stderr
    data = open(whole, "rb").read()
    growing = tmp_path / "growing.gtr"
    live = LiveTrace(str(growing), keep_s=3600)
    total = 0
    with open(growing, "wb") as f:
        for i in range(0, len(data), 777):
            f.write(data[i : i + 777])
            f.flush()
            total += live.poll()
    trace = giltrace.load(whole)
    assert total == len(trace.events) and live.footer
    snap = live.snapshot(window_s=3600)
    threads = trace.threads().set_index("name")
    for row in snap.rows:
        if row.name.startswith("crunch-"):
            t = threads.loc[row.name]
            assert abs(row.hold_pct / 100 * snap.window_s - t["hold_s"]) < 0.02 * snap.window_s
            assert len(snap.waits[row.tid]) == t["waits"]
    assert "(crunch)" in snap.culprit


def test_live_reader_refuses_a_file_that_is_not_a_trace(tmp_path):
    from giltrace.errors import TraceFormatError
    from giltrace.live import LiveTrace

    p = tmp_path / "x.gtr"
    p.write_bytes(b"not a trace at all, long enough for a header")
    with pytest.raises(TraceFormatError, match="not a giltrace trace file"):
        LiveTrace(str(p)).poll()
    assert LiveTrace(str(tmp_path / "missing.gtr")).poll() == 0  # not there yet: nothing new
