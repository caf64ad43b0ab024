"""Run a real program under ``giltrace run`` the way a user would, and read
its diagnosis back through ``giltrace summary --format json``."""

import json
import os
import socket

from ..conftest import run_python

PROGRAMS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "programs")


def program(name: str) -> str:
    return os.path.join(PROGRAMS, name)


def line_of(name: str, marker: str) -> int:
    """The line of ``program(name)`` that carries the comment ``# marker``."""
    with open(program(name)) as f:
        for i, line in enumerate(f, 1):
            if line.rstrip().endswith("# " + marker):
                return i
    raise AssertionError("no %s in %s" % (marker, name))


def traced(tmp_path, name: str, *args: str, timeout: int = 90, options=(), prefix=(), output: list = None) -> str:
    """Run programs/NAME under ``giltrace run [options]`` (after ``prefix``,
    e.g. ``taskset -c 0``); return the trace's path (``output``, if given,
    gets the program's stdout lines)."""
    out = str(tmp_path / (os.path.splitext(name)[0] + ".gtr"))
    cmd = ["-m", "giltrace", "run", "-o", out] + list(options) + [program(name)] + list(args)
    res = run_python(cmd, cwd=str(tmp_path), timeout=timeout, prefix=prefix)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    if output is not None:
        output.extend(res.stdout.splitlines())
    return out


def diagnosis(path: str, *window: str) -> dict:
    """``giltrace summary PATH --format json [--start S --end S]``."""
    res = run_python(["-m", "giltrace", "summary", path, "--format", "json"] + list(window), timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return json.loads(res.stdout, parse_constant=_not_json)


def _not_json(constant: str):
    raise AssertionError("bare %s in the diagnosis: not JSON (JSON.parse would fail)" % constant)


def problems(d: dict, kind: str = None) -> list:
    return [f for f in d["findings"] if f["problem"] and (kind is None or f["kind"] == kind)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def trace_start_ns(path: str) -> int:
    import giltrace

    return giltrace.load(path, warn=False).start_ns
