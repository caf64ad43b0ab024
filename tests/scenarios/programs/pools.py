"""Two thread pools at once: one runs pure-Python tasks (they take turns on
the GIL), the other hashes large buffers with hashlib (which releases the
GIL).  The main thread only waits for the results.

    python pools.py [--tasks 24]
"""

import argparse
import hashlib
import os
from concurrent.futures import ThreadPoolExecutor

DATA = os.urandom(16 << 20)


def python_task(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7  # LINE_PYTHON
    return total


def hash_task(_: int) -> bytes:
    return hashlib.sha256(DATA).digest()  # releases the GIL over buffers > 2 KiB


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=64)
    args = ap.parse_args()
    with ThreadPoolExecutor(4) as py, ThreadPoolExecutor(4, thread_name_prefix="hasher") as hp:
        hashed = hp.map(hash_task, range(args.tasks))
        list(py.map(python_task, [250_000] * args.tasks))
        list(hashed)


if __name__ == "__main__":
    main()
