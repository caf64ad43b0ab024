import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
