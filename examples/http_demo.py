"""Why does the server's latency jump when a background thread crunches
numbers?  Runs examples/http_server.py under `giltrace run`, without and
with its CPU thread, loads it from a separate (untraced) client process, and
puts the client's latency next to what the trace says.

    python examples/http_demo.py [--seconds 4] [-o DIR]
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def run_case(cpu, port, seconds, out_dir):
    trace_path = os.path.join(out_dir, "http-%s.gtr" % ("cpu" if cpu else "alone"))
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "giltrace",
            "run",
            "-q",
            "-o",
            trace_path,
            os.path.join(HERE, "http_server.py"),
            "--port",
            str(port),
            "--seconds",
            str(seconds + 1.5),
        ]
        + (["--cpu"] if cpu else []),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout.readline().strip() == "ready"
    client = subprocess.run(
        [sys.executable, os.path.join(HERE, "load_client.py"), "--port", str(port), "--seconds", str(seconds)],
        capture_output=True,
        text=True,
        check=True,
    )
    server.wait(timeout=60)
    return json.loads(client.stdout), trace_path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("-o", "--out", default=".")
    args = ap.parse_args()
    import giltrace

    rows = []
    for i, cpu in enumerate((False, True)):
        client, path = run_case(cpu, 8321 + i, args.seconds, args.out)
        t = giltrace.load(path)
        th = t.threads()
        handlers = th[th["name"].str.startswith("Thread-")]  # ThreadingHTTPServer: one thread per connection
        waits = t.events[(t.events["kind"] == "acquire") & t.events["tid"].isin(handlers.index)]
        per_request_waits = len(waits) / max(client["requests"], 1)
        wait_per_request_ms = 1e3 * handlers["wait_s"].sum() / max(client["requests"], 1)
        contended = waits[waits["contended"]]["wait_ns"] / 1e6
        rows.append((cpu, client, wait_per_request_ms, per_request_waits, contended, t))
    print(
        "%-22s %10s %10s %10s %12s %14s %16s"
        % ("server", "requests/s", "p50 ms", "p99 ms", "GIL takes/req", "GIL wait/req ms", "reacq p50/p99 ms")
    )
    for cpu, c, w, n, cont, _t in rows:
        print(
            "%-22s %10.0f %10.3f %10.3f %12.1f %14.3f %16s"
            % (
                "with CPU thread" if cpu else "alone",
                c["rps"],
                c["p50_ms"],
                c["p99_ms"],
                n,
                w,
                "%.2f / %.2f" % (cont.quantile(0.5), cont.quantile(0.99)) if len(cont) else "-",
            )
        )
    (_, alone, _, _, _, _), (_, busy, wait_busy, _, _, _) = rows
    print()
    print(
        "The CPU thread added %.3f ms to the median request (%.3f -> %.3f ms); the trace shows each request's "
        "thread waiting %.3f ms for the GIL on average." % (busy["p50_ms"] - alone["p50_ms"], alone["p50_ms"], busy["p50_ms"], wait_busy)
    )
    cpu_trace = rows[1][5]
    print()
    print("giltrace summary %s (diagnosis):" % cpu_trace.path)
    for line in cpu_trace.diagnose().suggestions:
        print("  " + line)


if __name__ == "__main__":
    main()
