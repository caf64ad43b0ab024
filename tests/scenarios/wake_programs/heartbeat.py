"""A heartbeat thread (threading.Event.wait(0.01)) beside a thread running a
regular expression over text in a loop (the re engine, in C, keeps the GIL
for ~2 ms a call); the heartbeat times how late each beat is."""

import json
import re
import sys
import threading
import time

TEXT = "lorem ipsum dolor sit amet 12345 consectetur " * 1500
WORD = re.compile(r"(\w+)\s+(\d+)")


def scan(stop):
    while not stop.is_set():
        WORD.findall(TEXT)  # LINE_REGEX


def heartbeat(stop, tick, lates):
    while not stop.is_set():
        t = time.perf_counter()
        tick.wait(0.010)  # LINE_BEAT
        lates.append(time.perf_counter() - t - 0.010)


stop, tick, lates = threading.Event(), threading.Event(), []
ts = [
    threading.Thread(target=scan, args=(stop,), name="scan"),
    threading.Thread(target=heartbeat, args=(stop, tick, lates), name="heartbeat"),
]
for t in ts:
    t.start()
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
stop.set()
for t in ts:
    t.join()
lates.sort()
print(json.dumps({"late_p50_ms": 1e3 * lates[len(lates) // 2], "beats": len(lates)}))
