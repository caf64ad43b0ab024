"""Building the old-GIL recorder (giltrace/_build_oldgil.py): what goes in,
where it lands, and one-line errors when it cannot be built."""

from __future__ import annotations

import os

import pytest

from giltrace import _build_oldgil


def test_it_is_the_extensions_core_with_the_old_gil_kind_instead_of_the_new():
    files = _build_oldgil.sources()
    assert "oldgil.c" in files and "hooks.c" in files and "control.c" in files and "events.c" in files
    assert "gilstate.c" not in files and "testhelpers.c" not in files  # the only Python.h users


def test_built_once_per_source_state_into_the_cache(tmp_path, monkeypatch, c_compiler):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = _build_oldgil.library_path()
    assert path.startswith(str(tmp_path)) and os.path.exists(path)
    mtime = os.stat(path).st_mtime_ns
    assert _build_oldgil.library_path() == path and os.stat(path).st_mtime_ns == mtime  # cached, not rebuilt
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.startswith(".oldgil-")]  # no temporary left


def test_no_compiler_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with pytest.raises(_build_oldgil.BuildError, match="cannot build the 2.7 recorder: cannot run /nonexistent/cc"):
        _build_oldgil.library_path(cc="/nonexistent/cc")
    monkeypatch.setenv("PATH", str(tmp_path))  # no gcc, no cc
    monkeypatch.delenv("CC", raising=False)
    with pytest.raises(_build_oldgil.BuildError, match="no C compiler"):
        _build_oldgil.library_path()
