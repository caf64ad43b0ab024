"""Programs as people run them: child processes, GILTRACE, C threads."""

import glob
import textwrap

import pytest

import giltrace

from ..conftest import run_python

MP_PROG = textwrap.dedent(
    """
    import multiprocessing as mp, sys, threading
    from concurrent.futures import ProcessPoolExecutor

    def count(n):
        while n:
            n -= 1
        return 0

    def work(n):
        ts = [threading.Thread(target=count, args=(n,), name="child-worker-%d" % i) for i in range(2)]
        for t in ts: t.start()
        for t in ts: t.join()

    if __name__ == "__main__":
        ctx = mp.get_context(sys.argv[1])
        ps = [ctx.Process(target=work, args=(200000,)) for _ in range(2)]
        for p in ps: p.start()
        for p in ps: p.join()
        with ProcessPoolExecutor(2, mp_context=ctx) as ex:
            print(sum(ex.map(count, [100000] * 4)))
        print("exit codes", [p.exitcode for p in ps])
    """
)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_run_follows_multiprocessing_children(native, tmp_path, method):
    (tmp_path / "mp.py").write_text(MP_PROG)
    res = run_python(["-m", "giltrace", "run", "--subprocesses", "-o", "m.gtr", "mp.py", method], cwd=str(tmp_path), timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "0\nexit codes [0, 0]\n"
    main = giltrace.load(str(tmp_path / "m.gtr"))
    children = main.children()
    pids = {c.meta["pid"] for c in children}
    assert main.meta["pid"] not in pids
    # 2 Process workers + 2 pool workers at least (forkserver: + the server itself)
    assert len(children) >= 4, [c.path for c in children]
    assert all(c.complete for c in children), [c.meta.get("incomplete_reason") for c in children if not c.complete]
    workers = [c for c in children if "child-worker-0" in set(c.threads()["name"])]
    assert len(workers) == 2
    assert all(c.switches() > 0 for c in workers)
    summary = run_python(["-m", "giltrace", "summary", "m.gtr"], cwd=str(tmp_path))
    assert summary.returncode == 0, summary.stderr
    assert "Processes (each has its own GIL" in summary.stdout


def test_giltrace_environment_variable(native, tmp_path):
    code = "import threading; t = threading.Thread(target=sum, args=([1] * 100000,), name='envthread'); t.start(); t.join()"
    res = run_python(code, cwd=str(tmp_path), env={"GILTRACE": str(tmp_path / "env-%p.gtr")})
    assert res.returncode == 0, res.stderr
    files = glob.glob(str(tmp_path / "env-*.gtr"))
    assert len(files) == 1
    t = giltrace.load(files[0])
    assert t.complete and "envthread" in set(t.threads()["name"])
    assert files[0].endswith("env-%d.gtr" % t.meta["pid"])


def test_giltrace_environment_variable_bad_path_does_not_break_the_program(native, tmp_path):
    res = run_python("print('still runs')", env={"GILTRACE": "/nonexistent/dir/x.gtr"})
    assert res.returncode == 0 and res.stdout == "still runs\n"
    assert "is not traced" in res.stderr


def test_c_threads_are_named(native, tmp_path):
    ffi, lib = native
    with giltrace.trace(str(tmp_path / "c.gtr")) as tr:
        tid = lib.gt_test_c_thread(2_000_000)
    assert tid
    th = tr.result.threads()
    assert th.loc[tid, "name"] == "gt-cthread"
    assert th.loc[tid, "hold_s"] >= 0.002


def test_run_under_giltrace_environment_does_not_clash(native, tmp_path):
    (tmp_path / "p.py").write_text("print('ok')\n")
    res = run_python(
        ["-m", "giltrace", "run", "-q", "-o", "x.gtr", "p.py"], cwd=str(tmp_path), env={"GILTRACE": str(tmp_path / "auto.gtr")}
    )
    assert res.returncode == 0 and res.stdout == "ok\n", res.stderr
    assert giltrace.load(str(tmp_path / "x.gtr")).complete
    assert not glob.glob(str(tmp_path / "auto*"))


FORK_TERM = textwrap.dedent(
    """
    import os, signal, threading, time
    def spin():
        n = 300000
        while n: n -= 1
    pid = os.fork()
    if pid == 0:   # a gunicorn worker: forked from MainThread, ended by SIGTERM (no Python at the end)
        threading.Thread(target=spin, name="worker-thread").start()
        spin()
        time.sleep(30)
        os._exit(0)
    time.sleep(1.0)
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    """
)


def test_forked_child_main_thread_is_named_main_thread(native, tmp_path):
    """Its Thread still has the parent's native id when the child's trace
    starts (threading's after-fork hook runs later): it is named anyway."""
    (tmp_path / "fk.py").write_text(FORK_TERM)
    res = run_python(["-m", "giltrace", "run", "-q", "--subprocesses", "-o", "f.gtr", "fk.py"], cwd=str(tmp_path), timeout=60)
    assert res.returncode == 0, res.stderr
    (child,) = giltrace.load(str(tmp_path / "f.gtr")).children()
    pid = child.meta["pid"]
    assert child.names.get(pid) == "MainThread", child.names
    assert "thread-%d" % pid not in set(child.threads()["name"])
    assert "worker-thread" in set(child.threads()["name"])
