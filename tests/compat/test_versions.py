"""The C core on every supported CPython found under pyenv (3.9-3.13):
build the extension with that interpreter and trace a contended run.
Versions that are not installed are skipped."""

import json
import os
import shutil
import subprocess

import pytest

from ..conftest import REPO


# The newest in `make test` (15-50 s each: a C build and a pip install per
# interpreter); every other one in `make test-slow`.
@pytest.mark.parametrize("minor", [pytest.param(m, marks=pytest.mark.slow) for m in (9, 10, 11, 12)] + [13])
def test_native_core_on(minor, tmp_path, python_of):
    py = python_of("3.%d" % minor)
    work = tmp_path / "src"
    shutil.copytree(os.path.join(REPO, "csrc"), str(work / "csrc"))
    (work / "giltrace").mkdir()
    shutil.copy(os.path.join(REPO, "giltrace", "_build_native.py"), str(work / "giltrace"))
    (work / "giltrace" / "__init__.py").write_text("")
    site = tmp_path / "site"
    env = dict(os.environ, PYTHONPATH=str(site) + os.pathsep + str(work), PYTHONNOUSERSITE="1")
    env.pop("PYTHONHOME", None)

    def sh(*args, **kw):
        res = subprocess.run(list(args), cwd=str(work), env=env, capture_output=True, text=True, timeout=300, **kw)
        assert res.returncode == 0, "%s\n%s" % (res.stdout[-2000:], res.stderr[-2000:])
        return res

    sh(py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", str(site), "cffi>=1.15", "setuptools")
    sh(py, "giltrace/_build_native.py")
    res = sh(py, os.path.join(REPO, "tests", "compat", "native_smoke.py"), str(tmp_path / "t.gtr"))
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["python"].startswith("3.%d." % minor)
    assert got["lost"] == 0 and got["events"] > 50
    assert got["switched"] == got["switch_delta"] > 5
    assert got["well_formed"]
    assert got["longest_hold_ns"] >= 20_000_000  # the C helper held it 20 ms ...
    assert got["c_hold_bracketed"] == 1  # ... and its hold starts inside PyGILState_Ensure, ends inside Release
    assert got["got_restored"]
    assert got["cpu_releases_located"] > 5  # frame access for this version's frame layout
