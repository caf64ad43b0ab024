"""A load client in its own process (untraced): fast requests all along and,
between --calm and --calm + --storm seconds, --slow-loops loops hitting the
slow path too.  Writes what it saw as JSON: the storm's CLOCK_MONOTONIC
bounds (the trace's clock) and the fast requests' latencies per phase.

    python http_client.py PORT OUT.json [--calm 1.2] [--storm 2.0] [--slow-loops 3]
"""

import argparse
import http.client
import json
import statistics
import threading
import time


def get(port: int, path: str) -> float:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    conn.getresponse().read()
    conn.close()
    return time.perf_counter() - t0


def wait_for_server(port: int, timeout: float = 20.0) -> None:
    """The server may still be starting (waitress binds in the traced process's main thread)."""
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("out")
    ap.add_argument("--calm", type=float, default=1.2)
    ap.add_argument("--storm", type=float, default=2.0)
    ap.add_argument("--slow-loops", type=int, default=3)
    ap.add_argument("--slow-path", default="/report")
    args = ap.parse_args()
    wait_for_server(args.port)
    t_start = time.monotonic()
    storm = threading.Event()
    done = threading.Event()

    def slow_loop() -> None:
        storm.wait()
        while not done.is_set():
            get(args.port, args.slow_path)

    slow = [threading.Thread(target=slow_loop) for _ in range(args.slow_loops)]
    for t in slow:
        t.start()
    phases = {"calm": [], "storm": [], "after": []}
    bounds = {}
    phase = "calm"
    end = t_start + 2 * args.calm + args.storm
    while time.monotonic() < end:
        now = time.monotonic()
        if phase == "calm" and now >= t_start + args.calm:
            phase = "storm"
            bounds["storm_start_ns"] = time.monotonic_ns()
            storm.set()
        elif phase == "storm" and now >= t_start + args.calm + args.storm:
            done.set()
            bounds["storm_end_ns"] = time.monotonic_ns()
            phase = "after"
        phases[phase].append(get(args.port, "/fast"))
        time.sleep(0.002)
    done.set()
    storm.set()
    for t in slow:
        t.join()
    out = dict(bounds)
    for name, lat in phases.items():
        out["fast_%s_n" % name] = len(lat)
        out["fast_%s_p50_ms" % name] = 1e3 * statistics.median(lat) if lat else None
    with open(args.out, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
