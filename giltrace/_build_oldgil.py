"""Build the old-GIL recorder: the C core as a plain shared library for CPython 2.7.

2.7 can neither build nor import today's cffi package, so the 3.x host
compiles the same C core (csrc/) with ``gcc -shared`` and the old GIL kind
(csrc/oldgil.c instead of csrc/gilstate.c, ``-DGT_GIL_OLD``): no Python
header at all.  A 2.7 process loads it with ``ctypes`` through the 2/3
starter giltrace/oldgil.py (docs/how-it-works.md, "The old GIL (2.7)").

From a source tree (or an editable install), built on first use into a
cache folder keyed by a hash of the sources, so a changed C core is rebuilt
and a concurrent build never replaces a library another process has loaded
(it renames a finished file into place).  A wheel has no csrc/: setup.py
builds the library into the package (``giltrace/libgiltrace_oldgil.so``) as
it builds the wheel, and that copy is used.
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
OLD_KIND = ["oldgil.c", "frames27.c"]  # the old GIL kind, and 2.7's frame layout for code locations
SHIPPED = os.path.join(HERE, "libgiltrace_oldgil.so")  # in a wheel; setup.py puts it there
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
    """The old-GIL library for the current sources, built if missing (or the
    one a wheel ships, where there are no sources)."""
    if not os.path.isdir(CSRC):
        if os.path.exists(SHIPPED):
            return SHIPPED
        raise BuildError(
            "this giltrace was installed without its 2.7 recorder (no C compiler at install time?) and has no csrc/ to build it"
        )
    out = os.path.join(cache_dir(), "libgiltrace_oldgil-%s.so" % _digest(sources()))
    if os.path.exists(out) or not build:
        return out
    os.makedirs(cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".oldgil-", suffix=".so", dir=cache_dir())
    os.close(fd)
    try:
        compile_library(tmp, cc)
        os.replace(tmp, out)  # atomic: a loaded library is never overwritten in place
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return out


def compile_library(out: str, cc: Optional[str] = None) -> None:
    """Compile csrc/ into the old-GIL library at `out` (BuildError: one line)."""
    compiler = cc or os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if not compiler:
        raise BuildError("no C compiler (gcc/cc) found: cannot build the 2.7 recorder")
    cmd = [compiler] + CFLAGS + ["-I", CSRC] + [os.path.join(CSRC, s) for s in sources()] + ["-o", out, "-ldl", "-lpthread"]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:  # CC names no program
        raise BuildError("cannot build the 2.7 recorder: cannot run %s: %s" % (compiler, exc.strerror or exc)) from None
    if done.returncode != 0:
        lines = [l for l in done.stderr.splitlines() if "error" in l] or done.stderr.splitlines() or ["exit status %d" % done.returncode]
        raise BuildError("cannot build the 2.7 recorder: %s" % lines[0].strip())


if __name__ == "__main__":
    print(library_path())
