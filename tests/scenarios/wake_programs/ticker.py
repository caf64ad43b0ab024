"""A ticker that sleeps 10 ms beside a pure-Python CPU thread."""

import sys
import threading
import time
import json


def crunch(stop):
    n = 0
    while not stop.is_set():
        n += 1  # LINE_CRUNCH


def ticker(stop, lates):
    while not stop.is_set():
        t = time.perf_counter()
        time.sleep(0.010)  # LINE_TICK
        lates.append(time.perf_counter() - t - 0.010)


stop, lates = threading.Event(), []
ts = [threading.Thread(target=crunch, args=(stop,), name="crunch"), threading.Thread(target=ticker, args=(stop, lates), name="ticker")]
for t in ts:
    t.start()
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 1.5)
stop.set()
for t in ts:
    t.join()
lates.sort()
print(json.dumps({"late_p50_ms": 1e3 * lates[len(lates) // 2], "ticks": len(lates)}))
