"""Healthy: 6 threads logging to one file handler: they block on the handler's lock, not on the GIL."""

import logging
import threading
import tempfile
import os

log = logging.getLogger("x")
log.propagate = False
h = logging.FileHandler(os.path.join(tempfile.mkdtemp(), "log.txt"))
log.addHandler(h)
log.setLevel(logging.INFO)


def work(i):
    for k in range(3000):
        log.info("thread %d message %d", i, k)  # LINE_LOG


ts = [threading.Thread(target=work, args=(i,), name="logger-%d" % i) for i in range(6)]
for t in ts:
    t.start()
for t in ts:
    t.join()
