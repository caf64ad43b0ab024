"""A socketserver.TCPServer (not threading: a selectors accept loop) in its own
thread beside a pure-Python CPU thread; a client process makes 20 requests/s.

python tcp_accept.py [REQUESTS [POLL_S]]  (POLL_S 0.05: it polls near the client's pace)"""

import socketserver
import subprocess
import sys
import threading

CLIENT = r'''
import json, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
rtts = []
for i in range(n):
    t = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"hi\n"); s.recv(64)
    rtts.append(time.perf_counter() - t); time.sleep(0.05)
rtts.sort(); print(json.dumps({"rtt_p50_ms": 1e3 * rtts[len(rtts)//2], "rtt_p99_ms": 1e3 * rtts[int(0.99 * (len(rtts)-1))]}))
'''


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(self.rfile.readline())


def crunch(stop):
    n = 0
    while not stop.is_set():
        n += 1  # LINE_CRUNCH


server = socketserver.TCPServer(("127.0.0.1", 0), Handler)
stop = threading.Event()
ts = [
    threading.Thread(target=crunch, args=(stop,), name="crunch"),
    threading.Thread(target=server.serve_forever, args=(float(sys.argv[2]) if len(sys.argv) > 2 else 0.5,), name="server"),
]
for t in ts:
    t.start()
out = subprocess.run(
    [sys.executable, "-c", CLIENT, str(server.server_address[1]), sys.argv[1] if len(sys.argv) > 1 else "40"],
    capture_output=True,
    text=True,
).stdout
stop.set()
server.shutdown()
for t in ts:
    t.join()
print(out.strip())
