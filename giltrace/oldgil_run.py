"""``giltrace run --python PATH script.py``: trace a program under another interpreter.

A CPython 2.7 (the old GIL) runs the script through the 2/3 starter
giltrace/oldgil.py with the recorder library built here
(giltrace/_build_oldgil.py); a 3.9-3.13 interpreter runs ``giltrace run``
itself, with this source tree on its path.  Either way the trace file is
the same format, read by this (3.x) host.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List, NamedTuple, Optional, Tuple

from . import interpreters
from .errors import UsageError

HERE = os.path.dirname(os.path.abspath(__file__))


def probe(python: str) -> Tuple[Tuple[int, int], str]:
    """(major, minor) and implementation of ``python``, or a UsageError."""
    try:
        out = subprocess.run(
            [
                python,
                "-c",
                "import sys, platform; print('%d %d %s' % (sys.version_info[0], sys.version_info[1], platform.python_implementation()))",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except OSError as exc:
        raise UsageError("cannot run --python %s: %s" % (python, exc.strerror or exc)) from None
    parts = out.stdout.split()
    if out.returncode != 0 or len(parts) != 3:
        raise UsageError("--python %s is not a Python interpreter that runs" % python)
    return (int(parts[0]), int(parts[1])), parts[2]


class Options(NamedTuple):
    """``giltrace run``'s trace options, passed on to the other interpreter."""

    buffer_events: int
    sample_period_ms: float
    locations: bool
    cpu_state: bool
    subprocesses: bool
    quiet: bool

    def flags(self) -> List[str]:
        """The trace's own flags, spelled the same for ``giltrace run`` and giltrace/oldgil.py."""
        out = ["--buffer-events", str(self.buffer_events), "--sample-period-ms", repr(self.sample_period_ms)]
        if not self.locations:
            out.append("--no-locations")
        if self.cpu_state:
            out.append("--cpu-state")
        return out


def command(python: str, output: str, program: List[str], module: Optional[str], options: Options) -> List[str]:
    """The command line that runs ``program`` traced under ``python``."""
    version, impl = probe(python)
    kind = interpreters.gil_kind(version)
    if impl != "CPython" or not interpreters.is_traceable(version):
        raise UsageError(
            "--python %s is %s %d.%d: giltrace traces CPython 2.7 or %s"
            % (python, impl, version[0], version[1], interpreters.span_text(*interpreters.traceable_range()))
        )
    if kind == "old":
        if module:
            raise UsageError("-m MODULE is not supported under --python for 2.7: give the script's path")
        if options.subprocesses:
            raise UsageError("--subprocesses is not supported under --python for 2.7: trace each 2.7 process itself")
        from . import _build_oldgil

        try:
            lib = _build_oldgil.library_path()
        except _build_oldgil.BuildError as exc:
            raise UsageError(str(exc)) from None
        return [python, os.path.join(HERE, "oldgil.py"), "--lib", lib, "--output", output] + options.flags() + ["--"] + program
    ours = ["-o", output] + options.flags() + (["--subprocesses"] if options.subprocesses else []) + (["-q"] if options.quiet else [])
    target = ["-m", module] if module else ["--"]
    return [python, "-m", "giltrace", "run"] + ours + target + program


def run(python: str, output: str, program: List[str], module: Optional[str], options: Options) -> int:
    """Run it; the program's exit status."""
    cmd = command(python, output, program, module, options)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(HERE), env.get("PYTHONPATH")) if p)
    rc = subprocess.call(cmd, env=env)
    if not options.quiet and cmd[1].endswith("oldgil.py") and os.path.exists(output):
        from . import fileformat

        try:
            raw = fileformat.read(output)
            lost = raw.footer.get("events_lost") or 0
            sys.stderr.write(
                "giltrace: %d GIL events written to %s%s\n"
                % (len(raw.events), output, " (%d events LOST: use --buffer-events)" % lost if lost else "")
            )
        except Exception as exc:  # the program may have died mid-trace: say so, keep its status
            sys.stderr.write("giltrace: the trace %s is incomplete: %s\n" % (output, exc))
    return rc
