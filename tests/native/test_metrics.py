"""The metrics mode (giltrace.monitor / giltrace.metrics): counters against a
full trace recorded at the same time, histograms, alerts, thread churn, and
a real HTTP server scraped by a real Prometheus client."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request

import pytest

import giltrace

from ..conftest import REPO, quiet_or_skip


def spin(stop):
    while not stop.is_set():
        pass


def io_loop(stop, path):
    with open(path, "wb") as f:
        while not stop.is_set():
            f.write(b"x" * 64)
            f.flush()
            os.fsync(f.fileno()) if False else os.stat(path)


def test_counters_equal_a_trace_recorded_at_the_same_time(native, tmp_path):
    with giltrace.monitor() as mon:
        stop = threading.Event()
        workers = [threading.Thread(target=spin, args=(stop,), name="cpu-%d" % i) for i in range(2)]
        workers.append(threading.Thread(target=io_loop, args=(stop, str(tmp_path / "io.bin")), name="io"))
        with giltrace.trace(str(tmp_path / "t.gtr")) as tr:
            for w in workers:
                w.start()
            time.sleep(0.6)
            stop.set()
            for w in workers:
                w.join()
        m = mon.read()
    trace = tr.result
    by_name = {g.group: g for g in m.groups}
    th = trace.threads().set_index("name")
    for name in ("io", "cpu-0", "cpu-1"):
        assert name in th.index
    cpu = th.loc[["cpu-0", "cpu-1"]]
    # Both saw the same transitions: the workers lived inside the trace, and
    # exited before the reading, so they are folded into their groups.
    # (join() returns a moment before the OS thread has gone: exited or not yet)
    assert by_name["cpu-*"].exited + by_name["cpu-*"].threads == 2 and by_name["io"].exited + by_name["io"].threads == 1
    assert by_name["cpu-*"].acquires == int(cpu["acquires"].sum())
    assert by_name["io"].acquires == int(th.loc["io", "acquires"])
    assert by_name["cpu-*"].waits == int(cpu["waits"].sum())
    assert by_name["io"].waits == int(th.loc["io", "waits"])
    # Times: the same time stamps, converted to seconds by two routes.
    for group, rows in (("cpu-*", cpu), ("io", th.loc[["io"]])):
        assert by_name[group].wait_s == pytest.approx(rows["wait_s"].sum(), rel=1e-3, abs=20e-6)
        assert by_name[group].hold_s == pytest.approx(rows["hold_s"].sum(), rel=1e-3, abs=20e-6)
    drops = trace.events[trace.events["kind"] == "drop_request"]
    cpu_tids = set(cpu["tid"]) if "tid" in cpu else set(trace.threads()[trace.threads()["name"].str.startswith("cpu-")].index)
    assert by_name["cpu-*"].drop_requests == int(drops["holder_tid"].isin(cpu_tids).sum())
    assert by_name["cpu-*"].waits >= 5  # the two CPU threads did take turns (~120 idle, 33 beside two CPU burners)
    # Every blocking wait is in the histogram, once.
    for g in m.groups:
        assert sum(g.histogram) == g.waits
    assert sum(m.total.histogram) == m.total.waits
    # The CPU threads' blocking waits are switch intervals: p50 in the 5 ms
    # bucket; on a busy machine the holder may be off its CPU when asked to
    # drop it, and the waits grow (mean 21 ms beside two CPU burners).
    p50 = by_name["cpu-*"].wait_quantile(0.5)
    assert p50 >= 0.003
    quiet_or_skip(p50 <= 0.0100, "the CPU threads' p50 wait in the switch interval's bucket: %.1f ms" % (1e3 * p50))
    assert 0.2 < m.contention <= 1.0


def test_metrics_alone_cost_no_thread_and_survive_start_stop(native):
    before = {t.native_id for t in threading.enumerate()}
    tasks_before = set(os.listdir("/proc/self/task"))
    for _ in range(50):
        with giltrace.monitor():
            sum(range(1000))
    assert set(os.listdir("/proc/self/task")) == tasks_before  # no thread of ours, no alert poller
    assert {t.native_id for t in threading.enumerate()} == before
    with pytest.raises(giltrace.GiltraceError, match="no GIL metrics"):
        giltrace.metrics()


def test_the_alert_fires_once_per_long_hold_with_the_culprit(native):
    ffi, lib = native
    got = []

    def holder():
        lib.gt_test_hold_gil_ns(80_000_000)  # C that keeps the GIL 80 ms

    with giltrace.monitor(alert_ms=40, on_alert=got.append):
        h = threading.Thread(target=holder, name="c-holder")
        h.start()
        time.sleep(0.01)  # wakes up behind the holder: waits ~70 ms
        h.join()
        time.sleep(0.3)  # the poller delivers
    holds = [a for a in got if a.kind == "hold"]
    waits = [a for a in got if a.kind == "wait"]
    assert len(holds) == 1 and len(waits) == 1, got
    assert holds[0].thread == "c-holder" and 0.075 < holds[0].duration_s < 0.2
    assert holds[0].location.startswith(__file__ + ":") and holds[0].location.endswith(".holder)")
    assert waits[0].thread == "MainThread" and waits[0].other == "c-holder" and 0.04 < waits[0].duration_s < 0.2


CHURN = textwrap.dedent("""
    import json, sys, threading, giltrace
    def rss_kb():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    mon = giltrace.monitor() if sys.argv[1] == "on" else None
    sizes = []
    for batch in range(4):
        threads = [threading.Thread(target=sum, args=((1, 2),), name="churn-%d" % i) for i in range(2500)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        del threads
        sizes.append(rss_kb())
    out = {"growth_kb": sizes[-1] - sizes[0]}
    if mon is not None:
        m = mon.read()
        churn = {g.group: g for g in m.groups}["churn-*"]
        out.update(exited=churn.exited, acquires=churn.acquires, overflow=sum(t.acquires for t in m.threads if not t.tid))
        mon.stop()
    print(json.dumps(out))
    """)


def test_ten_thousand_threads_keep_memory_flat(native):
    """Threads that exit are folded into their group, their slots reused:
    memory grows no more than without the metrics (paired, same process shape)."""
    out = {}
    for mode in ("off", "on"):
        res = subprocess.run(
            [sys.executable, "-c", CHURN, mode], env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=120
        )
        assert res.returncode == 0, res.stderr
        out[mode] = json.loads(res.stdout)
    on = out["on"]
    assert on["exited"] == 10000 and on["acquires"] >= 10000 and on["overflow"] == 0
    assert on["growth_kb"] - out["off"]["growth_kb"] < 2000, out


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SERVER = textwrap.dedent("""
    import http.server, socketserver, sys, threading, time
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path == "/cpu":
                n = 0
                for i in range(400000):
                    n += i
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
        def log_message(self, *args):
            pass
    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
    server = Server(("127.0.0.1", int(sys.argv[1])), Handler)
    print("ready", flush=True)
    server.serve_forever()
    """)


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("giltrace_gil_wait_seconds_total{") and "process_request_thread" in line:
            out["request_wait"] = float(line.rsplit(" ", 1)[1])
        if line.startswith("giltrace_gil_contended_seconds_total "):
            out["contended"] = float(line.rsplit(" ", 1)[1])
    return out


def test_a_real_server_exposes_its_request_threads_waiting(native, tmp_path):
    pytest.importorskip("prometheus_client")
    app_port, metrics_port = free_port(), free_port()
    script = tmp_path / "server.py"
    script.write_text(SERVER)
    env = dict(os.environ, PYTHONPATH=REPO, GILTRACE_METRICS="127.0.0.1:%d" % metrics_port)
    proc = subprocess.Popen([sys.executable, str(script), str(app_port)], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"

        def hit(path, n, concurrency):
            def worker(k):
                for _ in range(k):
                    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (app_port, path), timeout=30) as r:
                        assert r.read() == b"ok"

            ts = [threading.Thread(target=worker, args=(n // concurrency,)) for _ in range(concurrency)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()

        hit("/fast", 20, 2)
        calm = scrape(metrics_port)
        hit("/fast", 20, 2)
        still_calm = scrape(metrics_port)
        hit("/cpu", 24, 6)  # pure-Python handlers in 6 threads at once: they queue for the GIL
        stormy = scrape(metrics_port)
        # Expected: the request threads' waiting barely moves under light
        # traffic and jumps by tenths of a second while CPU-bound requests overlap.
        assert still_calm["request_wait"] - calm["request_wait"] < 0.05
        assert stormy["request_wait"] - still_calm["request_wait"] > 0.1
        assert stormy["contended"] > still_calm["contended"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_giltrace_metrics_cli_logs_json_lines_and_keeps_the_exit_status(native, tmp_path):
    log = tmp_path / "m.jsonl"
    code = (
        "import threading, time\n"
        "def spin(t):\n    e = time.time() + t\n    while time.time() < e: pass\n"
        "ts = [threading.Thread(target=spin, args=(0.6,), name='cpu-%d' % i) for i in range(2)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\nraise SystemExit(3)\n"
    )
    script = tmp_path / "app.py"
    script.write_text(code)
    res = subprocess.run(
        [sys.executable, "-m", "giltrace", "metrics", "--log", str(log), "--interval", "0.2", "--", sys.executable, str(script)],
        env=dict(os.environ, PYTHONPATH=REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 3, res.stderr
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(lines) >= 2
    last = lines[-1]
    groups = {g["group"]: g for g in last["groups"]}
    assert groups["cpu-*"]["waits"] >= 3 and 0 < last["contention"] <= 1  # took turns (7 seen beside two CPU burners)
    assert set(last) >= {"elapsed_s", "contended_s", "contention", "total", "groups", "time_unix", "pid"}


def test_bad_metrics_arguments_are_one_line_errors(tmp_path):
    for args in (
        ["metrics", "--", "true"],
        ["metrics", "--port", "x:y", "--", "true"],
        ["metrics", "--port", "9464"],
        ["metrics", "--port", "9464", "--", "no-such-command-here"],
    ):
        res = subprocess.run(
            [sys.executable, "-m", "giltrace"] + args, env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=30
        )
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)


def test_otel_bridge_reports_the_groups(native):
    sdk = pytest.importorskip("opentelemetry.sdk.metrics")
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = sdk.MeterProvider(metric_readers=[reader])
    with giltrace.monitor():
        giltrace.metrics.otel_register(provider.get_meter("giltrace-test"))
        stop = threading.Event()
        ts = [threading.Thread(target=spin, args=(stop,), name="cpu-%d" % i) for i in range(2)]
        for t in ts:
            t.start()
        time.sleep(0.2)
        stop.set()
        for t in ts:
            t.join()
        data = reader.get_metrics_data()
    points = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:
                    points[(metric.name, dict(p.attributes).get("thread_group"))] = p.value
    assert points[("giltrace.gil.waits", "cpu-*")] > 5
    assert 0 < points[("giltrace.gil.contention", None)] <= 1
