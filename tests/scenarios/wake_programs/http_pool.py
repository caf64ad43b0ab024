"""Healthy: a pool of 8 threads doing HTTP GETs against a slow local server (50 ms per answer, in another process)."""

import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor

SERVER = r'''
import sys, time
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        time.sleep(0.05); body = b"x" * 2000
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H); print(s.server_address[1], flush=True); s.serve_forever()
'''
srv = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
port = int(srv.stdout.readline())


def get(i):
    with urllib.request.urlopen("http://127.0.0.1:%d/%d" % (port, i)) as r:
        return len(r.read())  # LINE_GET


try:
    with ThreadPoolExecutor(8) as ex:
        print(sum(ex.map(get, range(160))))
finally:
    srv.kill()
    srv.wait()
