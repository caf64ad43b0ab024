"""The interpreters a grid runs under: check each one runs, and label it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from typing import Dict, List, Sequence

from .. import interpreters as versions
from ..errors import UsageError

# Runs on 2.7 too: no f-strings, print as a function.
_PROBE = (
    "import json, platform, sys; "
    "print(json.dumps({'version': platform.python_version(), "
    "'implementation': platform.python_implementation(), "
    "'gil_enabled': bool(getattr(sys, '_is_gil_enabled', lambda: True)()), "
    "'switching': ('switch interval %g ms' % (sys.getswitchinterval() * 1e3) "
    "if hasattr(sys, 'getswitchinterval') else 'check interval %d ticks' % sys.getcheckinterval()), "
    "'executable': sys.executable}))"
)
# Versions the workloads are written for (they also run on newer ones).
SUPPORTED = "CPython " + versions.span_text(*versions.known_range())


@dataclass(frozen=True)
class Interpreter:
    path: str
    version: str
    implementation: str
    gil_enabled: bool
    switching: str  # how the GIL hands over: 3.x switch interval, 2.7 check interval
    label: str  # the name shown in tables: the version, made unique

    @property
    def version_tuple(self) -> tuple:
        return tuple(int(p) for p in self.version.split(".")[:2])

    @property
    def traceable(self) -> bool:
        """Whether a giltrace trace could run there at all (whether it does
        also depends on giltrace being importable; the child reports that)."""
        return self.implementation == "CPython" and versions.is_traceable(self.version_tuple)


def probe(path: str, timeout: float = 30.0) -> Dict[str, object]:
    """Run ``path`` once and return what it says about itself; UsageError if it can't."""
    resolved = shutil.which(path) if os.sep not in path else path
    if not resolved or not os.access(resolved, os.X_OK):
        raise UsageError("--python %s: not an executable file" % path)
    try:
        proc = subprocess.run([resolved, "-c", _PROBE], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UsageError("--python %s: does not run (%s)" % (path, exc)) from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["exit status %d" % proc.returncode])[-1]
        raise UsageError("--python %s: does not run (%s)" % (path, last))
    try:
        info = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise UsageError("--python %s: is not a Python interpreter" % path) from None
    info["path"] = os.path.abspath(resolved)
    return info


def check_supported(info: Dict[str, object], path: str) -> None:
    """The experiments measure CPython's GIL, and the workloads need 2.7+."""
    major_minor = tuple(int(p) for p in str(info["version"]).split(".")[:2])
    if info["implementation"] != "CPython" or major_minor < versions.known_range()[0]:
        raise UsageError(
            "--python %s: %s %s is not supported (written for %s)" % (path, info["implementation"], info["version"], SUPPORTED)
        )


def make_labels(versions: Sequence[str]) -> List[str]:
    """Versions as table labels, with '#2', '#3' added where they repeat."""
    labels: List[str] = []
    seen: Dict[str, int] = {}
    for version in versions:
        seen[version] = seen.get(version, 0) + 1
        labels.append(version if seen[version] == 1 else "%s#%d" % (version, seen[version]))
    return labels


def resolve(paths: Sequence[str]) -> List[Interpreter]:
    """The interpreters to run under (default: this one), each checked to run."""
    infos = [probe(p) for p in (paths or [sys.executable])]
    for info, path in zip(infos, paths or [sys.executable]):
        check_supported(info, path)
    labels = make_labels([str(i["version"]) + ("t" if not i["gil_enabled"] else "") for i in infos])
    return [
        Interpreter(
            path=str(i["path"]),
            version=str(i["version"]),
            implementation=str(i["implementation"]),
            gil_enabled=bool(i["gil_enabled"]),
            switching=str(i["switching"]),
            label=label,
        )
        for i, label in zip(infos, labels)
    ]
