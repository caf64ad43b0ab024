"""bench -o DIR planted with a symbolic link to an empty directory: refused
before the bench runs, not a NotADirectoryError traceback after it
(giltrace/bench/output.py)."""

from __future__ import annotations

import os

import pytest

from giltrace.bench.output import check_output_dir
from giltrace.errors import UsageError


def test_a_link_to_an_empty_directory_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    os.symlink(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(UsageError, match="symbolic link"):
        check_output_dir(str(tmp_path / "out"))
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(UsageError, match="symbolic link"):
        check_output_dir(str(tmp_path / "dangling"))


def test_a_fresh_or_empty_directory_is_accepted(tmp_path):
    check_output_dir(str(tmp_path / "new"))
    (tmp_path / "empty").mkdir()
    check_output_dir(str(tmp_path / "empty"))
