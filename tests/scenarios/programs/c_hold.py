"""A thread that runs a backtracking regular expression (C code that keeps
the GIL for tens of milliseconds without a check for drop requests) beside a
ticker that sleeps 2 ms at a time, as an I/O thread would.

    python c_hold.py [--seconds 2]
"""

import argparse
import re
import threading
import time

PATTERN = re.compile(r"(a+)+b")


def backtrack(stop: threading.Event, n: int) -> None:
    while not stop.is_set():
        PATTERN.match("a" * n)  # LINE_REGEX


def ticker(stop: threading.Event) -> None:
    while not stop.is_set():
        time.sleep(0.002)  # LINE_TICK


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    stop = threading.Event()
    threads = [
        threading.Thread(target=backtrack, args=(stop, args.n), name="regex"),
        threading.Thread(target=ticker, args=(stop,), name="ticker"),
    ]
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
