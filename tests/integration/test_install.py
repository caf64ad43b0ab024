"""`pip install .` (a real wheel, not the editable install the tests run from)
builds the extension and ships the autostart .pth."""

import os
import subprocess
import sys
import zipfile

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
