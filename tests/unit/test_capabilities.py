"""The host-capability probes (tests/capabilities.py): a missing tool is a
skip reason that names it, each probe runs once, and `busy_share` sees load."""

import os
import subprocess
import sys

from .. import capabilities


def test_a_missing_tool_is_a_reason_naming_the_capability(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    capabilities.tmux.cache_clear()
    try:
        found, reason = capabilities.probe("tmux")
    finally:
        capabilities.tmux.cache_clear()
    assert found is None and reason == "needs tmux: no tmux on PATH"


def test_a_missing_interpreter_is_named_by_its_version():
    found, reason = capabilities.probe("python1.5")
    assert found is None and reason == "needs python1.5: no CPython 1.5 (pyenv 1.5.* or python1.5 on PATH)"


def test_an_interpreter_is_probed_once_per_session(monkeypatch):
    version = "%d.%d" % sys.version_info[:2]
    capabilities.python.cache_clear()
    calls = []
    real = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    try:
        first = capabilities.probe("python" + version)
        probed = len(calls)
        assert capabilities.probe("python" + version) == first and len(calls) == probed  # cached
    finally:
        capabilities.python.cache_clear()
    found, reason = first
    assert reason is None or reason.startswith("needs python%s: " % version)


def test_busy_share_sees_a_busy_cpu():
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = capabilities.busy_share(0.3)
    finally:
        burner.kill()
        burner.wait()
    # one busy process of this host's CPUs at least (minus its start-up)
    assert busy >= 0.5 / os.cpu_count(), busy
