"""Healthy: four threads multiplying 300x300 matrices with numpy (BLAS
releases the GIL around each product) for a given time.

    python numpy_pool.py [--seconds 2]
"""

import argparse
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np


def work(seconds: float) -> int:
    a = np.random.default_rng(0).random((300, 300))
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        a = a @ a  # LINE_MATMUL
        a /= np.abs(a).max()
        n += 1
    return n


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.0)
    s = ap.parse_args().seconds
    with ThreadPoolExecutor(4) as ex:
        print(sum(ex.map(work, [s] * 4)), "products")
