"""A worker woken by queue.get() for each item a reader thread takes from a
pipe fed by a producer process (20 items/s, stamped with time.monotonic()),
beside a pure-Python CPU thread; the worker measures each item's delay from
the reader's hand-off (its own wait behind the CPU thread) and from the producer."""

import json
import os
import queue
import subprocess
import sys
import threading
import time

PRODUCER = r'''
import os, sys, time
fd, n = int(sys.argv[1]), int(sys.argv[2])
for i in range(n):
    os.write(fd, b"%020.9f" % time.monotonic()); time.sleep(0.05)
'''


def crunch(stop):
    n = 0
    while not stop.is_set():
        n += 1  # LINE_CRUNCH


def reader(fd, q):
    while True:
        msg = os.read(fd, 20)  # LINE_READ
        q.put((msg, time.monotonic()))
        if not msg:
            return


def worker(q, delays):
    while True:
        msg, handed = q.get()  # LINE_GET
        if not msg:
            return
        now = time.monotonic()
        delays.append((now - handed, now - float(msg)))


r, w = os.pipe()
q, stop, delays = queue.Queue(), threading.Event(), []
ts = [threading.Thread(target=crunch, args=(stop,), name="crunch"), threading.Thread(target=reader, args=(r, q), name="reader")]
wt = threading.Thread(target=worker, args=(q, delays), name="worker")
for t in ts + [wt]:
    t.start()
subprocess.run([sys.executable, "-c", PRODUCER, str(w), sys.argv[1] if len(sys.argv) > 1 else "40"], pass_fds=(w,))
os.close(w)
wt.join()
stop.set()
for t in ts:
    t.join()
hand = sorted(d[0] for d in delays)
total = sorted(d[1] for d in delays)
print(json.dumps({"handoff_p50_ms": 1e3 * hand[len(hand) // 2], "delay_p50_ms": 1e3 * total[len(total) // 2], "items": len(delays)}))
