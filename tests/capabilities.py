"""What this host can do, probed once per test session.

A test that needs a host capability asks for it here -- through its fixture
or ``@pytest.mark.needs("name")`` (tests/conftest.py) -- instead of checking
PATH, pyenv or /proc itself.  A missing capability skips the test with one
reason per capability (``needs <name>: <why>``), the same words in every test,
so ``pytest -rs`` groups them; nothing fails because the host lacks a tool.

Each probe runs at most once per session (``functools.lru_cache``) and
returns the thing found (a path, a folder, True) or raises ``Missing``.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, Tuple

PYENV = os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv"))


class Missing(Exception):
    """The host lacks the capability; the message says what is missing."""


def _run(argv, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Missing("%s: %s" % (os.path.basename(str(argv[0])), exc.__class__.__name__)) from None


def _which(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise Missing("no %s on PATH" % " or ".join(names))


# -- interpreters ------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def python(version: str) -> str:
    """The newest CPython ``version`` ('2.7', '3.8') under pyenv, else
    ``python<version>`` on PATH -- one that runs and really is that version
    (a pyenv shim for a missing version does not)."""
    found = sorted(
        glob.glob(os.path.join(PYENV, "versions", version + ".*", "bin", "python")),
        key=lambda p: tuple(int(x) for x in p.split(os.sep)[-3].split(".") if x.isdigit()),
    )
    want = tuple(int(x) for x in version.split("."))
    for path in list(reversed(found)) + [shutil.which("python" + version)]:
        if not path or not os.path.exists(path):
            continue
        try:
            out = _run([path, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], timeout=30)
        except Missing:
            continue
        if tuple(int(x) for x in out.stdout.strip().split(".") if x.isdigit()) == want:
            return path
    raise Missing("no CPython %s (pyenv %s.* or python%s on PATH)" % (version, version, version))


def python27() -> str:
    return python("2.7")


# -- tools -------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def c_compiler() -> str:
    return _which("gcc", "cc")


@functools.lru_cache(maxsize=None)
def taskset() -> str:
    path = _which("taskset")
    if _run([path, "-c", str(min(os.sched_getaffinity(0))), "true"]).returncode != 0:
        raise Missing("taskset cannot pin a process here")
    return path


@functools.lru_cache(maxsize=None)
def tmux() -> str:
    path = _which("tmux")
    if _run([path, "-V"]).returncode != 0:
        raise Missing("tmux -V fails")
    return path


@functools.lru_cache(maxsize=None)
def chromium() -> str:
    path = _which("chromium", "chromium-browser", "google-chrome", "chrome")
    if _run([path, "--headless", "--version"]).returncode != 0:
        raise Missing("%s --version fails" % path)
    return path


@functools.lru_cache(maxsize=None)
def gdb_calls() -> str:
    """gdb that can attach to a sibling process and make it run a call.
    Fails on hosts whose ptrace policy forbids it, and where gdb cannot
    restore the registers around the call ("Couldn't write extended state
    status", seen on some Intel hosts)."""
    gdb = _which("gdb")
    child = subprocess.Popen([sys.executable, "-c", "import sys, time; print(1, flush=True); time.sleep(120)"], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # the child is up
        res = _run([gdb, "-nx", "-batch", "-iex", "set auto-load off", "-p", str(child.pid), "-ex", "call (int)getpid()"], timeout=90)
    finally:
        child.kill()
        child.wait()
    out = res.stdout + res.stderr
    if "= %d" % child.pid not in out:
        if "Couldn't write extended state status" in out:
            raise Missing("gdb cannot make inferior calls on this host (Couldn't write extended state status)")
        if "ptrace" in out.lower() and "not permitted" in out.lower():
            raise Missing("ptrace of a sibling process is not permitted (kernel.yama.ptrace_scope)")
        last = [line for line in out.splitlines() if line.strip()][-1:] or ["no output"]
        raise Missing("gdb could not call getpid() in a child: %s" % last[0][:120])
    return gdb


@functools.lru_cache(maxsize=None)
def perf_uprobes() -> str:
    """perf that can place a uprobe on the interpreter and record it (root,
    tracefs, a kernel with uprobes)."""
    perf = _which("perf")
    exe = os.path.realpath(sys.executable)
    event = "giltrace_cap:p%d" % os.getpid()
    add = _run([perf, "probe", "-q", "-x", exe, "--add", "%s=main" % event])
    if add.returncode != 0:
        raise Missing("perf probe cannot add a uprobe: %s" % (add.stderr.strip().splitlines() or ["?"])[-1][:120])
    try:
        with tempfile.TemporaryDirectory() as tmp:
            rec = _run([perf, "record", "-q", "-e", event, "-o", os.path.join(tmp, "p.data"), "--", exe, "-c", "pass"])
        if rec.returncode != 0:
            raise Missing("perf record of a uprobe fails: %s" % (rec.stderr.strip().splitlines() or ["?"])[-1][:120])
    finally:
        _run([perf, "probe", "-q", "--del", event])
    return perf


@functools.lru_cache(maxsize=None)
def unshare() -> str:
    """New namespaces for a child (user, or pid + mount as root)."""
    path = _which("unshare")
    for argv in ([path, "--user", "--map-root-user", "true"], [path, "--pid", "--fork", "--mount-proc", "true"]):
        if _run(argv).returncode == 0:
            return path
    raise Missing("unshare cannot create namespaces here")


# -- cgroups -----------------------------------------------------------------


def _try_child_group(base: str) -> None:
    group = os.path.join(base, "giltrace-capability-%d" % os.getpid())
    try:
        os.mkdir(group)
        os.rmdir(group)
    except OSError as exc:
        raise Missing("cannot create a cgroup under %s (%s)" % (base, exc.strerror)) from None


@functools.lru_cache(maxsize=None)
def cgroup_v2() -> str:
    """A writable cgroup v2 hierarchy with the cpu controller (unified, or
    hybrid's /sys/fs/cgroup/unified); its folder."""
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(os.path.join(base, "cgroup.controllers")) as f:
                if "cpu" not in f.read().split():
                    continue
        except OSError:
            continue
        _try_child_group(base)
        return base
    raise Missing("no cgroup v2 hierarchy with the cpu controller")


@functools.lru_cache(maxsize=None)
def cgroup_v1() -> str:
    """A writable cgroup v1 cpu hierarchy (cfs quota); its folder."""
    for base in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        if os.path.exists(os.path.join(base, "cpu.cfs_quota_us")):
            _try_child_group(base)
            return base
    raise Missing("no cgroup v1 cpu hierarchy")


@functools.lru_cache(maxsize=None)
def cgroup_cpu() -> str:
    """Either of the above: a CPU quota can be set on a new cgroup."""
    reasons = []
    for probe in (cgroup_v2, cgroup_v1):
        try:
            return probe()
        except Missing as exc:
            reasons.append(str(exc))
    raise Missing("; ".join(reasons))


PROBES: Dict[str, Callable[[], object]] = {
    "python27": python27,
    "c_compiler": c_compiler,
    "taskset": taskset,
    "tmux": tmux,
    "chromium": chromium,
    "gdb_calls": gdb_calls,
    "perf_uprobes": perf_uprobes,
    "unshare": unshare,
    "cgroup_v2": cgroup_v2,
    "cgroup_v1": cgroup_v1,
    "cgroup_cpu": cgroup_cpu,
}


def probe(name: str) -> Tuple[object, "str | None"]:
    """(what was found, None) or (None, the skip reason).  ``python3.8``
    style names ask for that interpreter."""
    fn = functools.partial(python, name[len("python") :]) if name.startswith("python") and name != "python27" else PROBES[name]
    try:
        return fn(), None
    except Missing as exc:
        return None, "needs %s: %s" % (name, exc)


# -- a quiet machine ---------------------------------------------------------


def _cpu_times() -> Tuple[int, int]:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields[:8]), idle


def busy_share(seconds: float = 0.5) -> float:
    """The share of all CPUs that something else kept busy over ``seconds``
    (this process sleeps meanwhile): 0.0 idle .. 1.0 every CPU busy."""
    total0, idle0 = _cpu_times()
    time.sleep(seconds)
    total1, idle1 = _cpu_times()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)
