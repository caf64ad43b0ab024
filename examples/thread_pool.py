"""A thread pool doing work that releases the GIL (hashlib, zlib, numpy)
versus pure-Python work, traced: the trace shows the difference in waiting.

    python examples/thread_pool.py [--workers 4] [--tasks 32] [-o DIR]
"""

import argparse
import hashlib
import os
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import giltrace

DATA = os.urandom(1 << 20)
MATRIX = np.random.default_rng(0).random((300, 300))


def hash_task(_):
    for _ in range(8):
        hashlib.sha256(DATA).digest()  # releases the GIL for buffers over 2 KiB


def zlib_task(_):
    zlib.compress(DATA[: 1 << 18], 6)  # releases the GIL while compressing


def numpy_task(_):
    for _ in range(6):
        MATRIX @ MATRIX  # BLAS without the GIL


def python_task(_):
    total = 0
    for i in range(300_000):  # bytecode: needs the GIL all along
        total += i * i % 7
    return total


TASKS = {"hashlib": hash_task, "zlib": zlib_task, "numpy": numpy_task, "pure Python": python_task}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("-o", "--out", default=".")
    args = ap.parse_args()
    print("%-12s %8s %12s %12s %14s %14s" % ("work", "wall s", "pool wait %", "pool hold %", "released %", "waits p50 ms"))
    for name, fn in TASKS.items():
        path = os.path.join(args.out, "pool-%s.gtr" % name.replace(" ", "-"))
        with ThreadPoolExecutor(args.workers, thread_name_prefix="pool") as ex:
            list(ex.map(lambda x: x, range(args.workers)))  # start the workers before tracing
            t0 = time.perf_counter()
            with giltrace.trace(path) as tr:
                list(ex.map(fn, range(args.tasks)))
            wall = time.perf_counter() - t0
        t = tr.result
        th = t.threads()
        pool = th[th["name"].str.startswith("pool")]
        life = pool["active_s"].sum()
        ev = t.events
        cont = ev[(ev["kind"] == "acquire") & ev["contended"] & ev["tid"].isin(pool.index)]["wait_ns"] / 1e6
        print(
            "%-12s %8.2f %12.1f %12.1f %14.1f %14s"
            % (
                name,
                wall,
                100 * pool["wait_s"].sum() / life,
                100 * pool["hold_s"].sum() / life,
                100 * pool["released_s"].sum() / life,
                "%.2f" % cont.median() if len(cont) else "-",
            )
        )


if __name__ == "__main__":
    main()
