"""The machine a grid ran on, saved with its results.

Everything that explains why these numbers differ from another machine's:
CPU model, CPUs usable, whether it is a VM, the kernel, the interpreters and
how they switch threads, the load when we started, and where scratch files
live (fsync on tmpfs costs nothing, so the disk-bound flavour needs a disk).
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .interpreters import Interpreter
from ..cpus import format_cpus
from .pinning import usable_cpus


def _cpuinfo_field(text: str, name: str) -> Optional[str]:
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def filesystem_of(path: str, mounts_text: Optional[str] = None) -> Dict[str, str]:
    """The mount point and type of the filesystem holding ``path``."""
    mounts_text = _read("/proc/mounts") if mounts_text is None else mounts_text
    real = os.path.realpath(path)
    best = {"mount": "?", "type": "?"}
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1]
        inside = real == mount or real.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best["mount"].replace("?", "")):
            best = {"mount": mount, "type": parts[2]}
    return best


def describe(pythons: Sequence[Interpreter], tmpdir: Optional[str]) -> Dict[str, Any]:
    import tempfile

    cpuinfo = _read("/proc/cpuinfo")
    flags = (_cpuinfo_field(cpuinfo, "flags") or "").split()
    meminfo = _cpuinfo_field(_read("/proc/meminfo"), "MemTotal")
    scratch = tmpdir or tempfile.gettempdir()
    interpreters: List[Dict[str, Any]] = [
        {"label": p.label, "version": p.version, "path": p.path, "gil_enabled": p.gil_enabled, "switching": p.switching} for p in pythons
    ]
    try:
        from .. import __version__ as giltrace_version
    except ImportError:
        giltrace_version = None
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "cpu_model": _cpuinfo_field(cpuinfo, "model name") or platform.processor() or "?",
        "logical_cpus": os.cpu_count(),
        "usable_cpus": format_cpus(usable_cpus()),
        "virtual_machine": "hypervisor" in flags,
        "memory": meminfo,
        "system": platform.system(),
        "kernel": platform.release(),
        "arch": platform.machine(),
        "load_average_at_start": list(os.getloadavg()),
        "scratch_dir": scratch,
        "scratch_filesystem": filesystem_of(scratch),
        "interpreters": interpreters,
        "runner_python": sys.version.split()[0],
        "giltrace_version": giltrace_version,
    }


# What a report's first line shows: (label, the key describe() writes it under).
HEADLINE = (("date", "date_utc"), ("cpu_model", "cpu_model"), ("usable_cpus", "usable_cpus"), ("kernel", "kernel"))


def headline(machine: Dict[str, Any]) -> List[Tuple[str, str]]:
    """(label, value) of the HEADLINE facts that ``machine`` (describe()'s dict) has."""
    return [(label, str(machine[key])) for label, key in HEADLINE if key in machine]
