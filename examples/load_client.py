"""Closed-loop load generator: C connections each send GET requests back to
back over keep-alive for --seconds; prints request latency as JSON.

    python examples/load_client.py --port 8321 --seconds 4 --connections 2
"""

import argparse
import http.client
import json
import threading
import time


def worker(port, deadline, out):
    conn = http.client.HTTPConnection("127.0.0.1", port)
    while time.monotonic() < deadline:
        t0 = time.perf_counter()
        conn.request("GET", "/")
        conn.getresponse().read()
        out.append(time.perf_counter() - t0)
    conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8321)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--connections", type=int, default=1)
    args = ap.parse_args()
    deadline = time.monotonic() + args.seconds
    lats = []
    threads = [threading.Thread(target=worker, args=(args.port, deadline, lats)) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lats.sort()

    def pick(q: float) -> float:
        return lats[min(len(lats) - 1, int(q * len(lats)))]

    print(
        json.dumps(
            {
                "requests": len(lats),
                "rps": len(lats) / args.seconds,
                "p50_ms": 1e3 * pick(0.5),
                "p99_ms": 1e3 * pick(0.99),
                "mean_ms": 1e3 * sum(lats) / len(lats),
            }
        )
    )


if __name__ == "__main__":
    main()
