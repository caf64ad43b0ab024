"""A UDP ping handler beside a pure-Python CPU thread; a client process sends 20 pings/s."""

import socket
import subprocess
import sys
import threading

CLIENT = r'''
import json, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
rtts = []
for i in range(n):
    t = time.perf_counter(); s.sendto(b"ping", ("127.0.0.1", port)); s.recvfrom(64)
    rtts.append(time.perf_counter() - t); time.sleep(0.05)
rtts.sort(); print(json.dumps({"rtt_p50_ms": 1e3 * rtts[len(rtts)//2], "rtt_p99_ms": 1e3 * rtts[int(0.99 * (len(rtts)-1))]}))
'''


def crunch(stop):
    n = 0
    while not stop.is_set():
        n += 1  # LINE_CRUNCH


def handler(sock):
    while True:
        data, addr = sock.recvfrom(64)  # LINE_RECV
        if data == b"stop":
            return
        sock.sendto(b"pong", addr)


sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
port = sock.getsockname()[1]
stop = threading.Event()
ts = [threading.Thread(target=crunch, args=(stop,), name="crunch"), threading.Thread(target=handler, args=(sock,), name="ping-handler")]
for t in ts:
    t.start()
out = subprocess.run(
    [sys.executable, "-c", CLIENT, str(port), sys.argv[1] if len(sys.argv) > 1 else "40"], capture_output=True, text=True
).stdout
stop.set()
socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"stop", ("127.0.0.1", port))
for t in ts:
    t.join()
print(out.strip())
