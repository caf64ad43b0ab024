"""The CPython interpreters pyenv has here (tests skip the missing ones)."""

from __future__ import annotations

import os
import shutil
import subprocess

PYENV = os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv"))


def pyenv_interpreter(minor: int) -> "str | None":
    """The newest pyenv CPython 3.<minor>.x, or None."""
    root = os.path.join(PYENV, "versions")
    found = sorted(
        (v for v in (os.listdir(root) if os.path.isdir(root) else []) if v.startswith("3.%d." % minor) and v.replace(".", "").isdigit()),
        key=lambda v: tuple(int(x) for x in v.split(".")),
    )
    return os.path.join(root, found[-1], "bin", "python") if found else None


def python27() -> "str | None":
    """pyenv's 2.7.18, else a python2.7 on PATH that really is 2.7 (a pyenv shim may not run)."""
    root = os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv"))
    for path in (os.path.join(root, "versions", "2.7.18", "bin", "python"), shutil.which("python2.7")):
        if path and os.path.exists(path):
            try:
                out = subprocess.run(
                    [path, "-c", "import sys; print(sys.version_info[:2] == (2, 7))"], capture_output=True, text=True, timeout=30
                )
            except OSError:
                continue
            if out.stdout.strip() == "True":
                return path
    return None
