"""A writer thread woken by queue.get() for each result a pure-Python CPU
thread puts on the queue every ~20 ms (the CPU thread goes on running: the
writer waits behind it); the writer sends each result to a client process
over UDP and measures each item's delay from the put."""

import json
import queue
import socket
import subprocess
import sys
import threading
import time

CLIENT = r'''
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
while s.recv(64) != b"stop":
    pass
'''


def crunch(q, stop):
    n, last = 0, time.monotonic()
    while not stop.is_set():
        n += 1  # LINE_CRUNCH
        if n % 2000 == 0 and time.monotonic() - last >= 0.02:
            last = time.monotonic()
            q.put(last)


def writer(q, sock, port, delays):
    while True:
        stamp = q.get()  # LINE_GET
        if stamp is None:
            return
        delays.append(time.monotonic() - stamp)
        sock.sendto(b"%f" % stamp, ("127.0.0.1", port))


client = subprocess.Popen([sys.executable, "-c", CLIENT], stdout=subprocess.PIPE, text=True)
port = int(client.stdout.readline())
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
q, stop, delays = queue.Queue(), threading.Event(), []
ts = [
    threading.Thread(target=crunch, args=(q, stop), name="crunch"),
    threading.Thread(target=writer, args=(q, sock, port, delays), name="writer"),
]
for t in ts:
    t.start()
time.sleep(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
stop.set()
ts[0].join()
q.put(None)
ts[1].join()
sock.sendto(b"stop", ("127.0.0.1", port))
client.wait()
delays.sort()
print(json.dumps({"delay_p50_ms": 1e3 * delays[len(delays) // 2], "items": len(delays)}))
