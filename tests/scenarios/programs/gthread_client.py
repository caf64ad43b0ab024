"""gthread_app's client: 6 threads, each a new connection per request for
``seconds``; every 10th request is /slow.  Prints the fast requests' latency.

    python gthread_client.py PORT SECONDS
"""

import http.client
import json
import sys
import threading
import time

port, seconds = int(sys.argv[1]), float(sys.argv[2])
fast, lock = [], threading.Lock()


def loop(k: int) -> None:
    i, end = k, time.monotonic() + seconds
    while time.monotonic() < end:
        path = "/slow" if i % 10 == 0 else "/fast"
        t = time.perf_counter()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)  # a connection per request: both workers accept
        c.request("GET", path, headers={"Connection": "close"})
        c.getresponse().read()
        c.close()
        if path == "/fast":
            with lock:
                fast.append(1e3 * (time.perf_counter() - t))
        i += 1
        time.sleep(0.01)


threads = [threading.Thread(target=loop, args=(k,)) for k in range(6)]
for t in threads:
    t.start()
for t in threads:
    t.join()
fast.sort()
n = len(fast)
print(json.dumps({"fast_p50_ms": fast[n // 2], "fast_p90_ms": fast[int(0.9 * (n - 1))], "requests": n}))
