"""Build the old-GIL recorder: the C core as a plain shared library for CPython 2.7.

2.7 can neither build nor import today's cffi package, so the 3.x host
compiles the same C core (csrc/) with ``gcc -shared`` and the old GIL kind
(csrc/oldgil.c instead of csrc/gilstate.c, ``-DGT_GIL_OLD``): no Python
header at all.  A 2.7 process loads it with ``ctypes`` through the 2/3
starter giltrace/oldgil.py (docs/how-it-works.md, "The old GIL (2.7)").

Built on first use into a cache folder keyed by a hash of the sources, so a
changed C core is rebuilt and a concurrent build never replaces a library
another process has loaded (it renames a finished file into place).
"""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import subprocess
import tempfile
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")
# The 3.x extension's files that are not the new GIL kind's (or test helpers).
NOT_SHARED = {"gilstate.c", "testhelpers.c"}
OLD_KIND = ["oldgil.c"]
CFLAGS = ["-shared", "-fPIC", "-O2", "-std=gnu11", "-Wall", "-Wno-unused-function", "-D_GNU_SOURCE", "-DGT_GIL_OLD"]


class BuildError(RuntimeError):
    """The library could not be built (no compiler, no sources): one line."""


def sources() -> List[str]:
    """The C files of the old-GIL library: the extension's SOURCES
    (giltrace/_build_native.py, read without importing cffi) minus the new
    GIL kind, plus the old one."""
    with open(os.path.join(HERE, "_build_native.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "SOURCES" for t in node.targets):
            native = ast.literal_eval(node.value)
            return [s for s in native if s not in NOT_SHARED] + OLD_KIND
    raise BuildError("giltrace/_build_native.py has no SOURCES list")


def _digest(files: List[str]) -> str:
    h = hashlib.sha256(" ".join(CFLAGS).encode())
    for name in sorted(os.listdir(CSRC)):
        if name.endswith((".c", ".h")) and (name in files or name.endswith(".h")):
            with open(os.path.join(CSRC, name), "rb") as f:
                h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:16]


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "giltrace")


def library_path(build: bool = True, cc: Optional[str] = None) -> str:
    """The old-GIL library for the current sources, built if missing."""
    if not os.path.isdir(CSRC):
        raise BuildError("the C sources (csrc/) are not installed beside giltrace: cannot build the 2.7 recorder")
    files = sources()
    out = os.path.join(cache_dir(), "libgiltrace_oldgil-%s.so" % _digest(files))
    if os.path.exists(out) or not build:
        return out
    compiler = cc or os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not compiler:
        raise BuildError("no C compiler (gcc/cc) found: cannot build the 2.7 recorder")
    os.makedirs(cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".oldgil-", suffix=".so", dir=cache_dir())
    os.close(fd)
    cmd = [compiler] + CFLAGS + ["-I", CSRC] + [os.path.join(CSRC, s) for s in files] + ["-o", tmp, "-ldl", "-lpthread"]
    try:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as exc:  # CC names no program
            raise BuildError("cannot build the 2.7 recorder: cannot run %s: %s" % (compiler, exc.strerror or exc)) from None
        if done.returncode != 0:
            lines = (
                [l for l in done.stderr.splitlines() if "error" in l] or done.stderr.splitlines() or ["exit status %d" % done.returncode]
            )
            raise BuildError("cannot build the 2.7 recorder: %s" % lines[0].strip())
        os.replace(tmp, out)  # atomic: a loaded library is never overwritten in place
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


if __name__ == "__main__":
    print(library_path())
