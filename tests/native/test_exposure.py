"""Nothing exposed: the metrics endpoint listens on loopback unless a host is
named (`ss -ltn`), the metrics log refuses links and FIFOs and bad
intervals in one line, and new files are 0600 (docs/metrics.md)."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time

import pytest

import giltrace
from giltrace.monitoring import parse_interval, parse_listen
from giltrace.errors import GiltraceError

from ..conftest import REPO

pytestmark = pytest.mark.skipif(bool(giltrace.unsupported_reason()), reason=giltrace.unsupported_reason() or "")

APP = "import time\nprint('up', flush=True)\ntime.sleep(30)\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> "list[str]":
    """Local addresses listening on ``port`` (from ss -ltn, else /proc/net/tcp*)."""
    out = subprocess.run(["ss", "-ltnH", "sport = :%d" % port], capture_output=True, text=True).stdout
    return [line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()]


def serve(tmp_path, value: str, port: int) -> "list[str]":
    pytest.importorskip("prometheus_client")
    (tmp_path / "app.py").write_text(APP)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "app.py")],
        env=dict(os.environ, PYTHONPATH=REPO, GILTRACE_METRICS=value),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline() == "up\n"
        for _ in range(100):  # the server thread binds at start-up, before the program's first line
            found = listening(port)
            if found:
                return found
            time.sleep(0.05)
        return []
    finally:
        proc.kill()
        proc.wait()


def test_metrics_default_to_loopback(tmp_path):
    port = free_port()
    assert serve(tmp_path, ":%d" % port, port) == ["127.0.0.1"]


def test_metrics_on_every_interface_only_when_asked(tmp_path):
    port = free_port()
    assert serve(tmp_path, "0.0.0.0:%d" % port, port) == ["0.0.0.0"]


def test_metrics_ipv6(tmp_path):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6")
    port = free_port()
    assert serve(tmp_path, "[::1]:%d" % port, port) == ["[::1]"]


def test_parse_listen_and_interval():
    assert parse_listen(":9464") == ("127.0.0.1", 9464)
    assert parse_listen("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert parse_listen("[::]:9464") == ("::", 9464)
    assert parse_listen("[::1]:1") == ("::1", 1)
    for bad in ("::9464", "[]:9464", "x:y", ":0", ":70000", "9464", "[::]"):
        with pytest.raises(ValueError):
            parse_listen(bad)
    assert parse_interval("10") == 10.0 and parse_interval("0.001") == 0.1
    for bad in ("0", "-1", "nan", "inf", "-inf", "x", ""):
        with pytest.raises(GiltraceError):
            parse_interval(bad)


def run_app(tmp_path, env, code="print('ok')\n", timeout=30):
    (tmp_path / "app.py").write_text(code)
    return subprocess.run(
        [sys.executable, str(tmp_path / "app.py")],
        env=dict(os.environ, PYTHONPATH=REPO, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
def test_bad_metrics_interval_is_one_line_and_the_program_runs(tmp_path, value):
    r = run_app(tmp_path, {"GILTRACE_METRICS_LOG": str(tmp_path / "m.jsonl"), "GILTRACE_METRICS_INTERVAL": value})
    assert r.returncode == 0 and r.stdout == "ok\n"
    assert len(r.stderr.strip().splitlines()) == 1 and "interval" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "m.jsonl").exists()


@pytest.mark.parametrize("value", ["0", "nan", "inf", "-1"])
def test_bad_cli_interval_is_a_usage_error(tmp_path, value):
    r = subprocess.run(
        [sys.executable, "-m", "giltrace", "metrics", "--log", str(tmp_path / "m"), "--interval", value, "--", "true"],
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_metrics_log_refuses_a_planted_link_and_a_fifo(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("root only\n")
    os.symlink(secret, tmp_path / "link.jsonl")
    r = run_app(
        tmp_path,
        {"GILTRACE_METRICS_LOG": str(tmp_path / "link.jsonl"), "GILTRACE_METRICS_INTERVAL": "0.1"},
        "import time\ntime.sleep(0.4)\nprint('ok')\n",
    )
    assert r.returncode == 0 and r.stdout == "ok\n"
    assert secret.read_text() == "root only\n"
    assert "symbolic link" in r.stderr and "Traceback" not in r.stderr, r.stderr
    os.mkfifo(tmp_path / "fifo.jsonl")
    start = time.monotonic()
    r = run_app(
        tmp_path,
        {"GILTRACE_METRICS_LOG": str(tmp_path / "fifo.jsonl"), "GILTRACE_METRICS_INTERVAL": "0.1"},
        "import time\ntime.sleep(0.4)\nprint('ok')\n",
    )
    assert r.returncode == 0 and r.stdout == "ok\n" and time.monotonic() - start < 25  # never blocks at exit
    assert "regular file" in r.stderr or "No such device" in r.stderr, r.stderr


def test_metrics_log_and_traces_are_created_0600(tmp_path):
    r = run_app(tmp_path, {"GILTRACE_METRICS_LOG": str(tmp_path / "m.jsonl"), "GILTRACE": str(tmp_path / "t.gtr")})
    assert r.returncode == 0, r.stderr
    (trace,) = [p for p in tmp_path.iterdir() if p.suffix == ".gtr"]
    for p in (trace, tmp_path / "m.jsonl"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    r = run_app(tmp_path / "..", {"GILTRACE": str(tmp_path / "u.gtr"), "GILTRACE_FILE_MODE": "644"})
    (trace,) = [p for p in tmp_path.iterdir() if p.name.startswith("u.")]
    assert stat.S_IMODE(trace.stat().st_mode) == 0o644 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def giltrace_metrics(*args):
    return subprocess.run(
        [sys.executable, "-m", "giltrace", "metrics"] + list(args),
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "args, listen",
    [
        (["--port", "9464"], ":9464"),
        (["--host", "0.0.0.0", "--port", "9464"], "0.0.0.0:9464"),
        (["--host", "::", "--port", "9464"], "[::]:9464"),
        (["--port", "[::1]:9464"], "[::1]:9464"),
    ],
)
def test_metrics_cli_host(args, listen):
    r = giltrace_metrics(*args, "--", "env")
    assert r.returncode == 0, r.stderr
    assert "GILTRACE_METRICS=%s\n" % listen in r.stdout


@pytest.mark.parametrize("args", [["--host", "0.0.0.0"], ["--host", "::", "--port", "1.2.3.4:9464"], ["--port", "::9464"]])
def test_metrics_cli_host_errors(args):
    r = giltrace_metrics(*args, "--", "env")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr


@pytest.mark.parametrize("args", [["--host", "no-such-host.invalid", "--port", "9464"], ["--port", "999.1.1.1:9464"]])
def test_metrics_cli_refuses_an_unresolvable_host_before_running(args):
    """Not a warning from the program and an exit status of 0: the user asked for this endpoint."""
    r = giltrace_metrics(*args, "--", "env")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "cannot serve metrics" in r.stderr, r.stderr
    assert "GILTRACE_METRICS" not in r.stdout


def test_metrics_cli_refuses_a_planted_log_link_before_running(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(victim, tmp_path / "m.jsonl")
    r = giltrace_metrics("--log", str(tmp_path / "m.jsonl"), "--", "env")
    assert r.returncode == 2 and "symbolic link" in r.stderr and "GILTRACE_METRICS" not in r.stdout, r.stderr
    assert victim.read_text() == "precious\n"
