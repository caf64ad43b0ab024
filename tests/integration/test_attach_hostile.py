"""giltrace attach run by root against a process whose owner is hostile
(issue 21, item 5; docs/how-it-works.md "Attaching: safety").

The target's owner chooses its executable, its libraries, its /tmp, the
private directory's contents once it is theirs, its thread names and every
byte the agent sends back.  None of that may run anything as the attaching
user, make it read a file the owner could not, or reach its terminal raw.
The tests that need root attaching to another user create that user (when
run as root) and skip otherwise."""

import glob
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

from ..conftest import REPO
from .test_attach import needs_injector

HOSTILE_USER = "giltrace-hostile"


@pytest.fixture(scope="module")
def other_user():
    """A second, unprivileged user (created here, removed after): root attaches to its processes."""
    if os.geteuid() != 0:
        pytest.skip("root attaching to another user's process: needs root (to create that user and attach)")
    if not shutil.which("useradd"):
        pytest.skip("useradd is not installed: cannot create a second user")
    created = False
    try:
        pwd.getpwnam(HOSTILE_USER)
    except KeyError:
        res = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", HOSTILE_USER], capture_output=True, text=True
        )
        if res.returncode != 0:
            pytest.skip("useradd failed: %s" % res.stderr.strip())
        created = True
    yield pwd.getpwnam(HOSTILE_USER)
    if created:
        subprocess.run(["userdel", HOSTILE_USER], capture_output=True)


def _home_of(user) -> str:
    """A directory the user owns (pytest's tmp_path is root's alone)."""
    home = tempfile.mkdtemp(prefix="giltrace-hostile-")
    os.chown(home, user.pw_uid, user.pw_gid)
    return home


def python_for(user) -> str:
    """A CPython of our version that ``user`` may run (this one may sit in root's home)."""
    mine = "python%d.%d" % sys.version_info[:2]
    for cand in (os.path.realpath(sys.executable), "/usr/bin/" + mine, "/usr/local/bin/" + mine):
        try:
            if _run_as(user, [cand, "-c", "pass"]).returncode == 0:
                return cand
        except OSError:  # missing, or in a directory the user may not enter
            continue
    pytest.skip("no CPython %d.%d that user %s may run" % (sys.version_info[:2] + (user.pw_name,)))


def _run_as(user, args, **kw):
    return subprocess.run(args, user=user.pw_uid, group=user.pw_gid, extra_groups=[], capture_output=True, text=True, timeout=60, **kw)


def _start_as(user, args, cwd):
    proc = subprocess.Popen(
        args, user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline().startswith("ready"), proc.stderr.read()
    return proc


def _stop(proc) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


def _attach(pid: int, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=REPO)
    env.pop("GILTRACE", None)
    return subprocess.run(
        [sys.executable, "-m", "giltrace", "attach", str(pid)] + list(args),
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _static_python() -> str:
    """A CPython executable with the runtime inside (no libpython): Debian's /usr/bin/python3.X."""
    from giltrace.attach import elf

    for cand in sorted(glob.glob("/usr/bin/python3.[0-9]*")):
        if not os.path.isfile(cand) or os.path.islink(cand) or "-" in os.path.basename(cand):
            continue
        fd = os.open(cand, os.O_RDONLY)
        try:
            if "Py_Version" in elf.open_elf(fd).symbols(["Py_Version"]):
                return cand
        except elf.ElfError:
            continue
        finally:
            os.close(fd)
    pytest.skip("no statically linked CPython 3.11+ in /usr/bin (Debian and Ubuntu have one)")


SYSCONFIG_HOOK = '''
import os as _os
with open(%r, "a") as _f:
    _f.write("uid=%%d\\n" %% _os.getuid())
'''


def test_a_static_python_is_read_not_run(other_user):
    """The old python_of() ran /proc/PID/exe -I -S -c 'import sysconfig ...' for a
    static interpreter: the owner's sysconfig.py beside their copy of it ran as root.
    Now the version comes from the ELF file and nothing of the target's runs."""
    from giltrace.attach.target import inspect

    static = _static_python()
    minor = os.path.basename(static)[len("python") :]  # "3.11"
    home = _home_of(other_user)
    try:
        bindir, libdir = os.path.join(home, "bin"), os.path.join(home, "lib", "python" + minor)
        os.makedirs(bindir)
        os.makedirs(libdir)
        planted = os.path.join(bindir, "python3")
        shutil.copy2(static, planted)
        marker = os.path.join(home, "ran-as")
        stdlib = "/usr/lib/python" + minor
        for name in os.listdir(stdlib):  # the real standard library, but for one doctored module
            if name != "sysconfig.py":
                os.symlink(os.path.join(stdlib, name), os.path.join(libdir, name))
        with open(os.path.join(stdlib, "sysconfig.py")) as src, open(os.path.join(libdir, "sysconfig.py"), "w") as dst:
            dst.write(src.read() + SYSCONFIG_HOOK % marker)
        for root, dirs, files in os.walk(home):
            for n in dirs + files:
                os.lchown(os.path.join(root, n), other_user.pw_uid, other_user.pw_gid)
        probe = _run_as(other_user, [planted, "-I", "-S", "-c", "import sysconfig"])
        if not os.path.exists(marker):
            pytest.skip("the doctored sysconfig.py beside the copied interpreter is not picked up here: %s" % probe.stderr.strip())
        target = _start_as(other_user, [planted, "-c", "import time; print('ready', flush=True); time.sleep(60)"], home)
        try:
            with open(marker) as f:
                before = f.read()
            t = inspect(target.pid)
            assert t.version == tuple(int(x) for x in minor.split(".")) and t.abiflags == ""
            assert t.uid == other_user.pw_uid
            with open(marker) as f:
                after = f.read()
            assert after == before and "uid=0\n" not in after, after
        finally:
            _stop(target)
    finally:
        shutil.rmtree(home, ignore_errors=True)


# The owner's own program, named python3: run with the arguments an attacher
# would use to ask it its version (-I -S -c ...), it writes who ran it.
PLANTED_C = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-c") == 0) {
            FILE *f = fopen(MARKER, "a");
            if (f) { fprintf(f, "uid=%d\n", (int)getuid()); fclose(f); }
            return 0;
        }
    printf("ready\n");
    fflush(stdout);
    sleep(60);
    return 0;
}
"""


def test_a_planted_python3_never_runs(other_user):
    """Not a CPython at all, only named like one: the attach says so and runs nothing."""
    from giltrace.attach.target import AttachError, inspect

    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler to build the planted program")
    home = _home_of(other_user)
    try:
        marker = os.path.join(home, "ran-as")
        source, planted = os.path.join(home, "planted.c"), os.path.join(home, "python3")
        with open(source, "w") as f:
            f.write(PLANTED_C.replace("MARKER", '"%s"' % marker))
        subprocess.run([cc, "-o", planted, source], check=True, capture_output=True, timeout=120)
        os.chown(planted, other_user.pw_uid, other_user.pw_gid)
        _run_as(other_user, [planted, "-c", "probe"])  # the plant works: it writes the user's uid
        with open(marker) as f:
            before = f.read()
        assert before == "uid=%d\n" % other_user.pw_uid
        target = _start_as(other_user, [planted], home)
        try:
            with pytest.raises(AttachError, match="is not a CPython process"):
                inspect(target.pid)
            res = _attach(target.pid, "--duration", "1", "-o", os.path.join(home, "never.gtr"))
            assert res.returncode != 0 and "is not a CPython process" in res.stderr, res.stderr
        finally:
            _stop(target)
        with open(marker) as f:
            assert f.read() == before
    finally:
        shutil.rmtree(home, ignore_errors=True)


# A target that puts a link to root's secret in place of the trace as soon as
# the trace file appears in giltrace's private directory (a link planted
# before it appears only makes the target's own tracer refuse to start).
PLANTER = r'''
import glob, os, sys, threading, time
secret, tmp = sys.argv[1], sys.argv[2]
def plant():
    while True:
        for d in glob.glob(os.path.join(tmp, "giltrace-attach-%d-*" % os.getpid())):
            p = os.path.join(d, "trace.gtr")
            try:
                if os.path.exists(p) and not os.path.islink(p):
                    os.symlink(secret, p + ".new")
                    os.rename(p + ".new", p)
            except OSError:
                pass
        time.sleep(0.0005)
def burn():
    while True:
        sum(range(1000))
threading.Thread(target=plant, name="planter", daemon=True).start()
threading.Thread(target=burn, name="burner", daemon=True).start()
print("ready", flush=True)
for _ in range(6000):
    time.sleep(0.01)  # a safe point now and then (the attach waits for one)
'''


@needs_injector
def test_a_link_planted_for_the_trace_is_never_followed(other_user, tmp_path):
    """Root once copied the planted link's target (/etc/shadow) into the -o file.
    Now the CLI reads the trace through the descriptor the agent sends, made from
    the tracer's own descriptor: the trace is the real one, the secret nowhere."""
    import giltrace

    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET\n" * 100)
    os.chmod(str(secret), 0o600)
    home = _home_of(other_user)
    try:
        script = os.path.join(home, "planter.py")
        with open(script, "w") as f:
            f.write(PLANTER)
        target = _start_as(other_user, [python_for(other_user), script, str(secret), tempfile.gettempdir()], home)
        try:
            out = str(tmp_path / "out.gtr")
            res = _attach(target.pid, "--duration", "1.5", "-o", out)
            assert res.returncode == 0, res.stderr
            with open(out, "rb") as f:
                assert b"TOP-SECRET" not in f.read()
            st = os.lstat(out)
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0
            assert "burner" in set(giltrace.load(out).threads()["name"])
            assert target.poll() is None
        finally:
            _stop(target)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    assert glob.glob(os.path.join(tempfile.gettempdir(), "giltrace-attach-%d-*" % target.pid)) == []


ESC = "\x1b]0;owned\x07\x1b[2J"


def burner(name: str) -> str:
    """A target's source: a thread called ``name`` that computes, the main thread
    sleeping in short steps (a safe point now and then: the attach waits for one)."""
    return (
        r'''
import threading, time
def burn():
    while True:
        sum(range(1000))
threading.Thread(target=burn, name=%r, daemon=True).start()
print("ready", flush=True)
for _ in range(6000):
    time.sleep(0.01)
'''
        % name
    )


ESCAPING_THREAD = burner("evil" + ESC)  # a thread whose name is terminal escapes

# A fake giltrace already imported, whose file name is terminal escapes: the agent's error quotes it.
FAKE_GILTRACE = r'''
import sys, threading, time, types
m = types.ModuleType("giltrace")
m.__file__ = "/tmp/%s/giltrace/__init__.py"
sys.modules["giltrace"] = m
def burn():
    while True:
        sum(range(1000))
threading.Thread(target=burn, daemon=True).start()
print("ready", flush=True)
for _ in range(6000):
    time.sleep(0.01)  # a safe point now and then (the attach waits for one)
''' % ESC.encode("unicode_escape").decode()


def _start_mine(source: str, cwd: str):
    proc = subprocess.Popen([sys.executable, "-c", source], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("ready"), proc.stderr.read()
    return proc


@needs_injector
def test_escape_sequences_in_a_thread_name_reach_no_terminal(tmp_path):
    target = _start_mine(ESCAPING_THREAD, str(tmp_path))
    try:
        out = str(tmp_path / "esc.gtr")
        res = _attach(target.pid, "--duration", "1", "-o", out)
        assert res.returncode == 0, res.stderr
    finally:
        _stop(target)
    env = dict(os.environ, PYTHONPATH=REPO)
    summary = subprocess.run([sys.executable, "-m", "giltrace", "summary", out], capture_output=True, text=True, timeout=120, env=env)
    assert summary.returncode == 0, summary.stderr
    assert "\x1b" not in summary.stdout and "\x07" not in summary.stdout
    assert "evil\\x1b]0;owned\\x07\\x1b[2J" in summary.stdout
    # giltrace top's table, as a terminal would get it (rich adds its own escapes for styles only)
    import io

    from rich.console import Console

    from giltrace.live import LiveTrace
    from giltrace.render.top import render

    live = LiveTrace(out, keep_s=60)
    live.poll()
    screen = io.StringIO()
    Console(file=screen, force_terminal=True, width=200).print(render(live.snapshot(60), title="t", folded=False))
    assert ESC not in screen.getvalue() and "\x07" not in screen.getvalue()
    assert "evil\\x1b]0;owned\\x07\\x1b[2J" in screen.getvalue()


@needs_injector
def test_escape_sequences_in_an_agent_error_reach_no_terminal(tmp_path):
    target = _start_mine(FAKE_GILTRACE, str(tmp_path))
    try:
        res = _attach(target.pid, "--duration", "1", "-o", str(tmp_path / "never.gtr"))
        assert target.poll() is None
    finally:
        _stop(target)
    assert res.returncode != 0
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "another giltrace imported" in lines[0] and "\\x1b]0;owned\\x07" in lines[0], res.stderr


@pytest.mark.parametrize(
    "line",
    [
        b'stopped {"events_written": Infinity, "events_lost": NaN, "chunks": 5}\n',
        b"stopped [1, 2]\n",
        b"error " + b"[" * 50000 + b"\n",  # json's recursion limit
        b"x" * (1 << 17),  # no end of line
        b'error {"message": "\\u001b[2Jgone", "stats": [1]}\n',
    ],
    ids=["infinity", "not-an-object", "deep", "endless", "escapes"],
)
def test_what_the_agent_sends_is_checked(line):
    """The agent runs in the target: its lines are the owner's to forge. Each
    gives statistics of plain integers or one escaped line, never a traceback."""
    import socket

    from giltrace.attach.session import Session
    from giltrace.attach.target import AttachError

    ours, theirs = socket.socketpair()
    session = Session(12345)
    session._conn = ours
    try:
        theirs.sendall(line)
        try:
            stats = session.stop()
            assert all(type(v) is int for v in stats.values()), stats
            assert stats in ({}, {"chunks": 5})
        except AttachError as exc:
            text = str(exc)
            assert "\n" not in text and "\x1b" not in text and len(text) < 1000, text[:200]
    finally:
        theirs.close()
        session.close()


def _interpreters():
    found = []
    for version in ("2.7.18", "3.8.18", "3.9.18", "3.10.13", "3.11.7", "3.12.1", "3.13.0"):
        short = version.rsplit(".", 1)[0]
        path = os.path.expanduser("~/.pyenv/versions/%s/bin/python%s" % (version, short))
        found.append(pytest.param(path, tuple(int(x) for x in short.split(".")), id=short))
    found.append(pytest.param("/usr/bin/python3.11", (3, 11), id="debian-3.11-static"))
    return found


@pytest.mark.parametrize("python,version", _interpreters())
def test_the_version_is_read_from_the_runtime_file(python, version):
    """libpython's or a static executable's ELF symbols, with nothing run (pyenv's shared builds, Debian's static one)."""
    from giltrace.attach.target import python_of

    if not os.access(python, os.X_OK):
        pytest.skip("%s is not installed" % python)
    proc = subprocess.Popen(
        [python, "-c", "import time; print('ready'); import sys; sys.stdout.flush(); time.sleep(60)"], stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout.readline().strip() == b"ready"
        found, abiflags, exe = python_of(proc.pid)
        assert found == version and abiflags == "" and os.path.realpath(python) == exe
    finally:
        proc.kill()
        proc.wait()
