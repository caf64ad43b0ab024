"""A 10 ms ticker thread beside a main thread that sorts a million floats
three times (sorted() is C code that keeps the GIL ~0.3 s each time).  The
ticker notes how late each tick ran.

    python sorted_ticker.py [--n 1000000] [--rounds 3]

Prints {"late_max_ms", "late_p50_ms", "ticks"}: the ticker's own view.
"""

import argparse
import json
import random
import threading
import time


def ticker(stop: threading.Event, late: list) -> None:
    due = time.monotonic()
    while not stop.is_set():
        due += 0.01
        time.sleep(max(0.0, due - time.monotonic()))  # LINE_TICK
        now = time.monotonic()
        late.append(now - due)
        if now > due + 0.01:
            due = now  # skip the ticks missed, as a timer would


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    data = [random.random() for _ in range(args.n)]
    stop, late = threading.Event(), []
    t = threading.Thread(target=ticker, args=(stop, late), name="ticker")
    t.start()
    for _ in range(args.rounds):
        time.sleep(0.2)
        sorted(data)  # LINE_SORT
    time.sleep(0.2)
    stop.set()
    t.join()
    late.sort()
    print(json.dumps({"late_max_ms": 1e3 * late[-1], "late_p50_ms": 1e3 * late[len(late) // 2], "ticks": len(late)}))


if __name__ == "__main__":
    main()
