"""Every path giltrace writes, planted with a symbolic link to a victim file
and with a FIFO: the victim is untouched, nothing blocks, the refusal is one
line with a non-zero exit; files giltrace creates are 0600
(giltrace/safefiles.py, docs/how-it-works.md "Trace files")."""

from __future__ import annotations

import os
import stat
import threading

import pytest

import giltrace
from tests.conftest import run_python

pytestmark = pytest.mark.skipif(bool(giltrace.unsupported_reason()), reason=giltrace.unsupported_reason() or "")


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("src") / "t.gtr")

    def spin(n):
        x = 0
        for i in range(n):
            x += i

    with giltrace.trace(path):
        ts = [threading.Thread(target=spin, args=(100000,), name="w-%d" % i) for i in range(3)]
        [t.start() for t in ts]
        [t.join() for t in ts]
    return path


# (name, argv builder): each writes the path given last.
COMMANDS = {
    "report": lambda src, out: ["report", src, "-o", out],
    "export-chrome": lambda src, out: ["export", src, "--format", "chrome", "-o", out],
    "export-csv": lambda src, out: ["export", src, "--format", "csv", "-o", out],
    "timeline": lambda src, out: ["timeline", src, "-o", out],
    "run": lambda src, out: ["run", "-q", "-o", out, "prog.py"],
    "top": lambda src, out: ["top", "--iterations", "1", "--interval", "0.2", "-o", out, "--", "prog.py"],
}
SUFFIX = {"report": ".html", "timeline": ".png", "export-chrome": ".json", "export-csv": ".csv", "run": ".gtr", "top": ".gtr"}


def cli(tmp_path, *args):
    (tmp_path / "prog.py").write_text("pass\n")
    return run_python(["-m", "giltrace"] + list(args), cwd=str(tmp_path), timeout=60, env={"GILTRACE": ""})


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_planted_link_is_refused_and_its_target_untouched(tmp_path, trace_path, name):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    out = tmp_path / ("out" + SUFFIX[name])
    os.symlink(victim, out)
    r = cli(tmp_path, *COMMANDS[name](trace_path, str(out)))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "symbolic link" in r.stderr and "Traceback" not in r.stderr
    assert victim.read_bytes() == b"precious\n" and os.path.islink(out)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_planted_fifo_is_refused_without_blocking(tmp_path, trace_path, name):
    out = tmp_path / ("out" + SUFFIX[name])
    os.mkfifo(out)
    r = cli(tmp_path, *COMMANDS[name](trace_path, str(out)))  # run_python's timeout: a block fails the test
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "regular file" in r.stderr and "Traceback" not in r.stderr
    assert stat.S_ISFIFO(os.lstat(out).st_mode)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_planted_hard_link_is_never_written_through(tmp_path, trace_path, name):
    """A second name for the victim (O_NOFOLLOW does not see it): refused,
    or, for exports (renamed into place), the name replaced, never the victim
    written."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    out = tmp_path / ("out" + SUFFIX[name])
    os.link(victim, out)
    r = cli(tmp_path, *COMMANDS[name](trace_path, str(out)))
    assert victim.read_bytes() == b"precious\n"
    if not name.startswith("export"):
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert "hard links" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="planting another user's file needs chown (root)")
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_another_users_file_in_a_sticky_directory_is_refused(tmp_path, trace_path, name):
    """/tmp's case: a file planted by another user (world-writable, so root's
    data would be theirs to read) under the name root was told to write."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    out = shared / ("out" + SUFFIX[name])
    out.write_bytes(b"planted\n")
    os.chown(out, 65534, 65534)
    os.chmod(out, 0o666)
    r = cli(tmp_path, *COMMANDS[name](trace_path, str(out)))
    if name.startswith("export"):  # renamed into place: the planted file is replaced, not written
        assert r.returncode == 0 and out.stat().st_uid == 0, r.stderr
        return
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "another user" in r.stderr and out.read_bytes() == b"planted\n"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_new_files_are_0600(tmp_path, trace_path, name):
    out = tmp_path / ("out" + SUFFIX[name])
    r = cli(tmp_path, *COMMANDS[name](trace_path, str(out)))
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_giltrace_template_refuses_a_planted_link(tmp_path):
    """GILTRACE's derived name (t.<pid>.gtr) is known only once the child
    exists: a parent forks, plants the link, then lets the child exec a
    traced Python."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    code = (
        "import os, sys\n"
        "r, w = os.pipe()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os.read(r, 1)\n"
        "    os.environ['GILTRACE'] = %r\n"
        "    os.execve(sys.executable, [sys.executable, '-c', 'print(\"child ran\")'], os.environ)\n"
        "os.symlink(%r, 't.%%d.gtr' %% pid)\n"
        "os.write(w, b'x')\n"
        "print('status', os.waitpid(pid, 0)[1])\n"
    ) % (str(tmp_path / "t.gtr"), str(victim))
    r = run_python(code, cwd=str(tmp_path), env={"GILTRACE": ""}, timeout=60)
    assert "child ran" in r.stdout and "status 0" in r.stdout, (r.stdout, r.stderr)
    assert victim.read_bytes() == b"precious\n"
    assert "refusing" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_top_refuses_a_hard_linked_output_before_running_the_program(tmp_path):
    """top -o is written at the end: its refusal must come before the program runs."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious\n")
    os.link(victim, tmp_path / "out.gtr")
    (tmp_path / "marker.py").write_text("open('ran', 'w').close()\n")
    args = ["-m", "giltrace", "top", "--iterations", "1", "--interval", "0.2", "-o", "out.gtr", "--", "marker.py"]
    r = run_python(args, cwd=str(tmp_path), timeout=60, env={"GILTRACE": ""})
    assert r.returncode == 2 and "hard links" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert not (tmp_path / "ran").exists() and victim.read_bytes() == b"precious\n"
