"""A consumer thread blocked in os.read on a pipe fed by a producer process
(20 messages/s, each stamped with time.monotonic(), system-wide on Linux)
beside two pure-Python CPU threads; the consumer measures each message's delay."""

import json
import os
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


def consumer(fd, delays):
    while True:
        msg = os.read(fd, 20)  # LINE_READ
        if not msg:
            return
        delays.append(time.monotonic() - float(msg))


r, w = os.pipe()
stop, delays = threading.Event(), []
ts = [threading.Thread(target=crunch, args=(stop,), name="crunch-%d" % i) for i in range(2)]
c = threading.Thread(target=consumer, args=(r, delays), name="consumer")
for t in ts + [c]:
    t.start()
n = sys.argv[1] if len(sys.argv) > 1 else "40"
subprocess.run([sys.executable, "-c", PRODUCER, str(w), n], pass_fds=(w,))
os.close(w)
c.join()
stop.set()
for t in ts:
    t.join()
delays.sort()
print(json.dumps({"delay_p50_ms": 1e3 * delays[len(delays) // 2], "messages": len(delays)}))
