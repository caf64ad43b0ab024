"""giltrace attach to a process in its own mount and PID namespace, as in a
container (issue 21, item 2; docs/how-it-works.md "Attaching: containers").

The target is started with ``unshare --mount --pid --fork --mount-proc``, a
tmpfs over the directory giltrace is installed in (this checkout, its
virtual environment) and another over /tmp: it sees neither giltrace nor the
attaching user's temp directory, and numbers its threads from 1.  The CLI
runs outside, as usual; the trace must land where -o says, in our
filesystem."""

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid

import pytest

from ..conftest import REPO
from .test_attach import HTTP_SERVER, _one_line_error, needs_injector, thread_names, wait_until
from .test_attach_hostile import burner


def _unshare_problem():
    if os.geteuid() != 0:
        return "needs root (unshare --mount --pid)"
    try:
        res = subprocess.run(
            ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", "mount -t tmpfs none /tmp"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return "unshare is not usable: %s" % exc
    return None if res.returncode == 0 else "unshare --mount --pid fails here: %s" % res.stderr.strip()


UNSHARE_PROBLEM = _unshare_problem()
needs_namespaces = pytest.mark.skipif(UNSHARE_PROBLEM is not None, reason=str(UNSHARE_PROBLEM))


def _hidden_dirs():
    """Where giltrace and cffi are installed, as this interpreter finds them."""
    import _cffi_backend

    import giltrace

    dirs = {REPO, os.path.dirname(os.path.dirname(os.path.abspath(giltrace.__file__)))}
    dirs.add(os.path.dirname(os.path.abspath(_cffi_backend.__file__)))
    dirs.add("/tmp")  # the tmpfs over /tmp comes first: a checkout under /tmp (a CI clone) is hidden by it
    return sorted(d for d in dirs if not any(d.startswith(o + os.sep) for o in dirs))  # a tmpfs over a parent hides the rest


def _outer_pid(marker: str, timeout: float = 30) -> int:
    """Our pid of the python whose command line holds ``marker`` (its own is small)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    argv = f.read().split(b"\0")
                with open("/proc/%s/comm" % name) as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if marker.encode() in argv and comm.startswith("python"):
                return int(name)
        time.sleep(0.1)
    raise AssertionError("the target did not start")


def _start_box(python: str, source: str, run_as: str = ""):
    """(process, its first line, our pid of its python): ``python -c source`` in new mount
    and PID namespaces, with tmpfs over /tmp and giltrace's install dirs (``run_as``: a
    command prefix that drops privileges)."""
    marker = "giltrace-container-%s" % uuid.uuid4().hex[:8]
    mounts = " && ".join("mount -t tmpfs none %s" % d for d in _hidden_dirs())
    script = '%s && chmod 1777 /tmp && cd / && exec %s "$0" -I -c "$1" "$2"' % (mounts, run_as)
    box = subprocess.Popen(
        ["unshare", "--mount", "--pid", "--fork", "--mount-proc", "sh", "-c", script, python, source, marker],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    line = box.stdout.readline()
    if not line.startswith("ready"):
        raise AssertionError(line + _end_box(box)[1])
    return box, line, _outer_pid(marker)


def _end_box(box):
    try:
        os.killpg(box.pid, signal.SIGKILL)  # the namespace's first process: all in it end
    except OSError:
        pass
    return box.communicate()


class Client(threading.Thread):
    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.ok, self.failed, self.times, self.stop = port, 0, [], [], threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/" % self.port, timeout=20) as r:
                    assert r.read().startswith(b"ok")
                self.ok += 1
                self.times.append(time.monotonic())
            except Exception as exc:  # every failure is reported by the test
                self.failed.append(repr(exc))
            time.sleep(0.02)


@needs_namespaces
@needs_injector
def test_attach_to_a_server_in_its_own_mount_and_pid_namespace(tmp_path):
    import giltrace

    python = os.path.realpath(sys.executable)  # the base interpreter: the venv is hidden from the target
    if any(python.startswith(d + os.sep) for d in _hidden_dirs()):
        pytest.skip("this interpreter lives where giltrace is installed; the target could not run it")
    box, line, pid = _start_box(python, HTTP_SERVER)
    try:
        port = int(line.split()[1])
        with open("/proc/%d/status" % pid) as f:
            nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
        assert len(nspid) == 2 and nspid[0] == str(pid) and nspid[1] != str(pid), nspid
        assert not os.path.exists("/proc/%d/root%s/giltrace" % (pid, REPO))  # hidden from it
        client = Client(port)
        client.start()
        assert wait_until(lambda: client.ok >= 10, 30), client.failed
        out = str(tmp_path / "box.gtr")
        t0 = time.monotonic()
        env = dict(os.environ, PYTHONPATH=REPO)
        env.pop("GILTRACE", None)
        res = subprocess.run(
            [sys.executable, "-m", "giltrace", "attach", str(pid), "--duration", "2", "-o", out, "-v"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            stdin=subprocess.DEVNULL,
            cwd=str(tmp_path),
        )
        t1 = time.monotonic()
        assert res.returncode == 0, res.stderr
        assert "in its own PID namespace" in res.stderr, res.stderr
        # The trace is in our filesystem, ours alone, and names the threads as the target named them.
        st = os.stat(out)
        assert st.st_uid == os.geteuid() and st.st_mode & 0o077 == 0
        trace = giltrace.load(out)
        assert {"cpu-burner", "http-server"} <= set(trace.threads()["name"])
        assert int(trace.meta["pid"]) == int(nspid[1])  # the trace holds the target's own numbers
        # Requests answered during the trace and after it; nothing of giltrace left in the target.
        assert [t for t in client.times if t0 + 0.5 < t < t1], "no request answered while attached"
        done = client.ok
        assert wait_until(lambda: client.ok >= done + 10, 30)
        assert client.failed == []
        assert wait_until(lambda: "giltrace-attach" not in thread_names(pid), 10), thread_names(pid)
        assert [n for n in os.listdir("/proc/%d/root/tmp" % pid) if n.startswith("giltrace")] == []
        assert box.poll() is None
        client.stop.set()
    finally:
        _end_box(box)


# Runs giltrace under a seccomp filter that fails ptrace with EPERM, as
# Docker's default profile does for a container without CAP_SYS_PTRACE.
NO_PTRACE = r"""
import ctypes, os, struct, sys
def ins(code, k, jt=0, jf=0):
    return struct.pack("HBBI", code, jt, jf, k)
prog = b"".join([
    ins(0x20, 4),                    # ld arch
    ins(0x15, 0xC000003E, 0, 3),     # jeq x86-64, else allow
    ins(0x20, 0),                    # ld syscall number
    ins(0x15, 101, 0, 1),            # jeq ptrace
    ins(0x06, 0x00050000 | 1),       # ret errno(EPERM)
    ins(0x06, 0x7FFF0000),           # ret allow
])
buf = ctypes.create_string_buffer(prog)
fprog = struct.pack("HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
libc = ctypes.CDLL(None, use_errno=True)
assert libc.prctl(38, 1, 0, 0, 0) == 0  # no new privileges
assert libc.prctl(22, 2, ctypes.c_char_p(fprog), 0, 0) == 0, ctypes.get_errno()
os.execv(sys.executable, [sys.executable, "-m", "giltrace"] + sys.argv[1:])
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the test's seccomp filter is written for x86-64")
def test_a_seccomp_filter_that_refuses_ptrace_is_named(tmp_path):
    target = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        target.stdout.readline()
        env = dict(os.environ, PYTHONPATH=REPO)
        res = subprocess.run(
            [sys.executable, "-c", NO_PTRACE, "attach", str(target.pid), "--duration", "1", "-o", str(tmp_path / "x.gtr")],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        assert target.poll() is None
    finally:
        target.kill()
        target.wait()
    _one_line_error(res, "a seccomp filter on its own process refuses it")
    assert "--cap-add SYS_PTRACE" in res.stderr
    assert not (tmp_path / "x.gtr").exists()


def test_a_target_of_another_architecture_is_named(monkeypatch):
    """No emulated target here: this giltrace pretends to be built for another machine instead."""
    from giltrace.attach import elf
    from giltrace.attach import target as t

    real = t._own_machine()
    other = 183 if real != 183 else 62  # aarch64, or x86-64 on an aarch64 host
    proc = subprocess.Popen([sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE)
    try:
        proc.stdout.readline()
        monkeypatch.setattr(t, "_own_machine", lambda: other)
        expected = "runs %s code and this giltrace runs on %s: run a giltrace built for %s" % (
            elf.EM_NAMES[real],
            elf.EM_NAMES[other],
            elf.EM_NAMES[real],
        )
        with pytest.raises(t.AttachError) as info:
            t.python_of(proc.pid)
        assert expected in str(info.value)
    finally:
        proc.kill()
        proc.wait()


@needs_namespaces
@needs_injector
def test_a_killed_cli_leaves_nothing_in_the_container_and_the_next_attach_reuses_giltrace(tmp_path):
    """An unprivileged target in its own namespaces: the copy of giltrace is its
    user's, so the agent removes it with the rest when the CLI dies; the next
    attach finds that giltrace imported (the copy is gone) and uses it."""
    import pwd
    import shutil

    import giltrace

    from .test_attach_hostile import python_for

    if not shutil.which("setpriv"):
        pytest.skip("setpriv (util-linux) is not installed")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    drop = "setpriv --reuid=%d --regid=%d --clear-groups" % (nobody.pw_uid, nobody.pw_gid)
    box, _, pid = _start_box(python_for(nobody), burner("burner"), drop)
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("GILTRACE", None)
    cli = None
    try:

        def private():
            return [n for n in os.listdir("/proc/%d/root/tmp" % pid) if n.startswith("giltrace-attach")]

        cli = subprocess.Popen(
            [sys.executable, "-m", "giltrace", "attach", str(pid), "-o", str(tmp_path / "killed.gtr")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        assert wait_until(lambda: "giltrace-attach" in thread_names(pid), 60), cli.stderr.read() if cli.poll() is not None else ""
        assert private() and os.path.isdir("/proc/%d/root/tmp/%s/giltrace" % (pid, private()[0]))  # the copy
        cli.kill()
        cli.wait()
        assert wait_until(lambda: "giltrace-attach" not in thread_names(pid), 20), thread_names(pid)
        assert wait_until(lambda: private() == [], 20), private()
        out = str(tmp_path / "again.gtr")
        res = subprocess.run(
            [sys.executable, "-m", "giltrace", "attach", str(pid), "--duration", "1", "-o", out],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        assert res.returncode == 0, res.stderr
        assert "burner" in set(giltrace.load(out).threads()["name"])
        assert wait_until(lambda: private() == [], 20), private()
        assert box.poll() is None
    finally:
        if cli is not None and cli.poll() is None:
            cli.kill()
            cli.wait()
        _end_box(box)


def test_root_without_cap_sys_ptrace_is_told_so(tmp_path):
    """Root in a container that dropped CAP_SYS_PTRACE, attaching to another user's process."""
    import pwd
    import shutil

    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv (util-linux) to drop CAP_SYS_PTRACE")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    other = subprocess.Popen(["sleep", "60"], user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[])
    try:
        env = dict(os.environ, PYTHONPATH=REPO)
        res = subprocess.run(
            ["setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace", sys.executable, "-m", "giltrace", "attach"]
            + [str(other.pid), "--duration", "1", "-o", str(tmp_path / "x.gtr")],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    finally:
        other.kill()
        other.wait()
    _one_line_error(res, "without CAP_SYS_PTRACE")
    assert "--cap-add SYS_PTRACE" in res.stderr
