"""ccbench-style latency: a thread timing small round trips (2 ms sleeps)
beside two CPU-bound threads.  Prints the latency thread's median overshoot.

    python latency.py [--seconds 2] [--switch-interval S]
"""

import argparse
import statistics
import sys
import threading
import time


def spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        x = (x * 31 + 7) % 1000003  # LINE_SPIN


def latency(stop: threading.Event, out: list) -> None:
    while not stop.is_set():
        t0 = time.perf_counter()
        time.sleep(0.002)  # LINE_SLEEP
        out.append(time.perf_counter() - t0 - 0.002)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--switch-interval", type=float)
    args = ap.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    stop, lat = threading.Event(), []
    threads = [threading.Thread(target=spin, args=(stop,), name="cpu-%d" % i) for i in range(2)]
    threads.append(threading.Thread(target=latency, args=(stop, lat), name="latency"))
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()
    print("latency overshoot p50 %.2f ms over %d round trips" % (1e3 * statistics.median(lat), len(lat)))


if __name__ == "__main__":
    main()
