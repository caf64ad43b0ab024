"""The giltrace modules the workloads share with the runner, loaded so that
they also work on CPython 2.7.

The child runs as a script (``python giltrace/bench/workloads/child.py``) with
this folder, not the repository, on ``sys.path``, and often on interpreters
that cannot import the giltrace package at all (its ``__init__`` is 3.8+
code).  The shared modules, giltrace/interpreters.py and giltrace/cpus.py,
are plain 2.7-compatible code without imports, so the script reads them from
their files.  Imported as a package (by the runner, the tests), it simply
imports them.
"""

from __future__ import absolute_import, division, print_function

import os
import types

GILTRACE_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(name):
    """The module giltrace.``name``, imported or read from its file."""
    if __package__:
        import importlib

        return importlib.import_module("giltrace." + name)
    path = os.path.join(GILTRACE_DIR, name + ".py")
    module = types.ModuleType("giltrace_" + name)
    module.__file__ = path
    with open(path) as f:  # exec, not imp/importlib: the same on 2.7 and 3.x, and no .pyc beside it
        code = compile(f.read(), path, "exec")
    exec(code, module.__dict__)
    return module


interpreters = load("interpreters")
cpus = load("cpus")
