"""`pip install .` (a real wheel, not the editable install the tests run from)
builds the extension and ships the autostart .pth."""

import os
import subprocess
import sys
import zipfile

import pytest

from ..conftest import REPO


def test_wheel_builds_installs_and_traces(native, tmp_path):
    wheels = tmp_path / "wheels"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", REPO, "-w", str(wheels)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    (wheel,) = wheels.glob("giltrace-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "giltrace-autostart.pth" in names
    assert any(n.startswith("giltrace/_native") and n.endswith(".so") for n in names)
    assert "giltrace/libgiltrace_oldgil.so" in names  # the 2.7 recorder: a wheel has no csrc/ to build it from
    assert not any(n.startswith("csrc/") for n in names)
    site = tmp_path / "site"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    code = (
        "import giltrace, threading\n"
        "assert giltrace.__file__.startswith(%r), giltrace.__file__\n"
        "with giltrace.trace() as tr:\n"
        "    t = threading.Thread(target=sum, args=([1] * 100000,)); t.start(); t.join()\n"
        "print(len(tr.result.events) > 0)\n"
    ) % str(site)
    env = dict(os.environ, PYTHONPATH=str(site))
    res = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout == "True\n"


@pytest.mark.slow  # a second wheel build (~30 s); the 2.7 recorder is tested from the tree in tests/native/test_oldgil.py
def test_installed_wheel_traces_python27(native, tmp_path, python27):
    """`giltrace run --python 2.7` from a real install: the recorder the wheel ships, no source tree."""
    py27 = python27
    wheels = tmp_path / "wheels"
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", REPO, "-w", str(wheels)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    site = tmp_path / "site"
    (wheel,) = wheels.glob("giltrace-*.whl")
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    prog = tmp_path / "two.py"
    prog.write_text(
        "import threading\n"
        "def spin():\n"
        "    n = 300000\n"
        "    while n: n -= 1\n"
        "ts = [threading.Thread(target=spin) for _ in range(2)]\n"
        "for t in ts: t.start()\n"
        "for t in ts: t.join()\n"
        "print('done')\n"
    )
    out = tmp_path / "t.gtr"
    env = dict(os.environ, PYTHONPATH=str(site), XDG_CACHE_HOME=str(tmp_path / "cache"))  # nothing built on the fly
    code = "import sys, giltrace.cli; sys.exit(giltrace.cli.main())"
    res = subprocess.run(
        [sys.executable, "-c", code, "run", "-q", "--python", py27, "-o", str(out), "--", str(prog)],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout == "done\n"
    assert not (tmp_path / "cache").exists()
    res = subprocess.run(
        [sys.executable, "-c", code, "summary", str(out)], cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Thread-1" in res.stdout and "Thread-2" in res.stdout
