import os
import subprocess
import sys

import pytest

from . import capabilities

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- host capabilities (tests/capabilities.py): probed once, skipped by name --


def pytest_runtest_setup(item):
    for mark in item.iter_markers("needs"):
        for name in mark.args:
            need(name)


def need(name: str):
    """What the capability ``name`` found (a path, a folder), or skip the
    test naming what is missing."""
    found, reason = capabilities.probe(name)
    if reason:
        pytest.skip(reason)
    return found


def _capability_fixture(name: str):
    def fixture():
        return need(name)

    fixture.__name__ = name
    fixture.__doc__ = "The capability %r (tests/capabilities.py), or a skip that names it." % name
    return pytest.fixture(scope="session", name=name)(fixture)


for _name in capabilities.PROBES:
    globals()["_fixture_" + _name] = _capability_fixture(_name)


@pytest.fixture(scope="session")
def python_of():
    """``python_of("3.8")``: that CPython's path, or a skip naming it."""
    return lambda version: need("python" + version)


def quiet_or_skip(ok: bool, what: str) -> None:
    """A figure that only holds when the threads get the CPUs when they ask
    (a sampling rate, a wait's length): if it does not hold, measure the
    machine -- busy: skip saying so; idle: a real failure."""
    if ok:
        return
    busy = capabilities.busy_share(0.5)
    if busy > 0.33:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0].rsplit("::", 1)[-1]
        pytest.skip("needs a quiet machine: %s: %s did not hold, other processes kept %.0f %% of the CPUs busy" % (test, what, 100 * busy))
    raise AssertionError("%s (on a quiet machine: %.0f %% of the CPUs busy)" % (what, 100 * busy))


@pytest.fixture
def quiet_machine():
    """For the few properties that only hold on an idle host (e.g. a thread's
    run-queue time near 0): measure what else keeps the CPUs busy and skip,
    saying so, above a third of them -- never pass on a busy host unseen."""
    busy = capabilities.busy_share(0.5)
    if busy > 0.33:
        pytest.skip("needs a quiet machine: other processes kept %.0f %% of the CPUs busy (over 0.5 s; a third at most)" % (100 * busy))
    return busy


@pytest.fixture
def native():
    """(ffi, lib) of the extension; skip where this interpreter can't trace."""
    import giltrace

    reason = giltrace.unsupported_reason()
    if reason:
        pytest.skip(reason)
    from giltrace._binding import native as _native

    return _native()


def run_python(code_or_args, *, cwd=None, timeout=120, env=None, prefix=(), **kw):
    """Run `python -c code` (str) or `python args...` (list) with this
    interpreter, after `prefix` (e.g. `taskset -c 0`)."""
    args = [sys.executable, "-c", code_or_args] if isinstance(code_or_args, str) else [sys.executable] + list(code_or_args)
    args = list(prefix) + args
    full_env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    full_env.update(env or {})
    return subprocess.run(args, cwd=cwd, timeout=timeout, env=full_env, capture_output=True, text=True, **kw)


def trace_threads(path, workers, seconds=0.4):
    """Trace `workers` -- (target, args, name) run as target(stop, *args) --
    for `seconds`, then stop and join them; return the Trace."""
    import threading
    import time

    import giltrace

    stop = threading.Event()
    threads = [threading.Thread(target=f, args=(stop,) + tuple(args), name=name) for f, args, name in workers]
    with giltrace.trace(path) as tr:
        for t in threads:
            t.start()
        time.sleep(seconds)
        stop.set()
        for t in threads:
            t.join()
    return tr.result
