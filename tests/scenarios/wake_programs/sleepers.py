"""Eight threads that mostly sleep (10 ms) and do a little Python work: healthy."""

import sys
import threading
import time


def sleeper(stop):
    while not stop.is_set():
        time.sleep(0.010)
        sum(range(2000))


stop = threading.Event()
ts = [threading.Thread(target=sleeper, args=(stop,), name="sleeper-%d" % i) for i in range(8)]
for t in ts:
    t.start()
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
stop.set()
for t in ts:
    t.join()
