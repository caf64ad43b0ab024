"""A ThreadingHTTPServer serving small static files; a client process GETs
one every 50 ms (healthy: nothing competes for the GIL)."""

import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading

CLIENT = r'''
import json, sys, time, urllib.request
port, n = int(sys.argv[1]), int(sys.argv[2]); rtts = []
for i in range(n):
    t = time.perf_counter(); urllib.request.urlopen("http://127.0.0.1:%d/f%d.txt" % (port, i % 5)).read()
    rtts.append(time.perf_counter() - t); time.sleep(0.05)
rtts.sort(); print(json.dumps({"rtt_p50_ms": 1e3 * rtts[len(rtts)//2]}))
'''


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


root = tempfile.mkdtemp()
for i in range(5):
    with open(os.path.join(root, "f%d.txt" % i), "w") as f:
        f.write("hello %d\n" % i * 100)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=root))
t = threading.Thread(target=server.serve_forever, name="server")
t.start()
out = subprocess.run(
    [sys.executable, "-c", CLIENT, str(server.server_address[1]), sys.argv[1] if len(sys.argv) > 1 else "40"],
    capture_output=True,
    text=True,
).stdout
server.shutdown()
t.join()
print(out.strip())
