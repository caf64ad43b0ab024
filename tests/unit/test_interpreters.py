"""The table of known CPython versions (giltrace/interpreters.py) and what reads it."""

import ast
import os
import runpy
import subprocess


from giltrace import _binding, interpreters
from giltrace.bench.interpreters import SUPPORTED, Interpreter

PATH = interpreters.__file__


def test_every_minor_version_from_27_to_313_is_listed_once():
    versions = [v for v, _, _ in interpreters.VERSIONS]
    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert versions[0] == (2, 7) and versions[-1] == (3, 13)
    assert all(gil in interpreters.GIL_KINDS for _, gil, _ in interpreters.VERSIONS)
    assert interpreters.gil_kind((2, 7)) == "old" and interpreters.gil_kind((3, 12, 1)) == "new"
    assert interpreters.gil_kind((3, 14)) is None


def test_what_the_binding_setup_and_bench_read():
    assert _binding.SUPPORTED == interpreters.traceable_range() == ((3, 9), (3, 13))
    assert SUPPORTED == "CPython 2.7-3.13"
    assert interpreters.refusal((3, 8, 18), "3.8.18") == "CPython 3.8.18 is too old: giltrace needs 3.9 to 3.13"
    assert interpreters.refusal((3, 14), "3.14.0") == "CPython 3.14.0 is not supported yet: giltrace knows the GIL of 3.9 to 3.13"
    assert interpreters.refusal((3, 11), "3.11.7") is None
    assert interpreters.untraced_note((3, 8)) == "tracing needs CPython 2.7 or 3.9-3.13; this is 3.8"
    assert interpreters.untraced_note((2, 7)) is None and interpreters.gil_kind((2, 7)) == "old"  # the ctypes starter
    assert interpreters.traceable_range("old") == ((2, 7), (2, 7))
    assert interpreters.untraced_note((3, 10)) is None
    py = Interpreter(path="p", version="3.8.18", implementation="CPython", gil_enabled=True, switching="", label="3.8")
    assert not py.traceable
    setup = os.path.join(os.path.dirname(os.path.dirname(PATH)), "setup.py")
    assert "interpreters.py" in open(setup).read()  # setup.py reads the same table (by path)


def test_it_imports_nothing_so_start_up_stays_cheap():
    tree = ast.parse(open(PATH).read())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert runpy.run_path(PATH)["is_traceable"]((3, 9))


def test_python27_can_load_it(python27):
    python = python27
    out = subprocess.run(
        [python, "-c", "import imp; m = imp.load_source('t', %r); print(m.untraced_note((3, 6)))" % PATH],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.strip() == "tracing needs CPython 2.7 or 3.9-3.13; this is 3.6", out.stderr
