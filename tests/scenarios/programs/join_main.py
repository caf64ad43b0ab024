"""The main thread starts three CPU-bound threads and only joins them.

python join_main.py [--n 3000000]
"""

import argparse
import threading


def crunch(n: int) -> None:
    total = 0
    for i in range(n):
        total += i * i % 7  # LINE_CRUNCH


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3_000_000)
    args = ap.parse_args()
    threads = [threading.Thread(target=crunch, args=(args.n,), name="crunch-%d" % i) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
