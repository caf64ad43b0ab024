"""The CPython interpreters pyenv has here (tests skip the missing ones)."""

from __future__ import annotations

import os

PYENV = os.path.expanduser(os.environ.get("PYENV_ROOT", "~/.pyenv"))


def pyenv_interpreter(minor: int) -> "str | None":
    """The newest pyenv CPython 3.<minor>.x, or None."""
    root = os.path.join(PYENV, "versions")
    found = sorted(
        (v for v in (os.listdir(root) if os.path.isdir(root) else []) if v.startswith("3.%d." % minor) and v.replace(".", "").isdigit()),
        key=lambda v: tuple(int(x) for x in v.split(".")),
    )
    return os.path.join(root, found[-1], "bin", "python") if found else None
