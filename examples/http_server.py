"""A threaded HTTP server (standard library) serving small requests, with an
optional background thread doing pure-Python CPU work beside it.

    python examples/http_server.py --port 8321 --seconds 6 [--cpu]

Prints "ready" once listening; serves until --seconds have passed.
"""

import argparse
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"x" * 512


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stalls between small writes
    wbufsize = 1 << 16  # headers and body leave in one send (flushed per request)

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):  # keep stdout quiet
        pass


def crunch(stop):
    """Pure-Python CPU work: it never releases the GIL by itself."""
    total = 0
    while not stop.is_set():
        for i in range(10000):
            total += i * i % 7


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8321)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--cpu", action="store_true", help="run the CPU-bound background thread")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    stop = threading.Event()
    if args.cpu:
        threading.Thread(target=crunch, args=(stop,), name="cruncher", daemon=True).start()
    threading.Timer(args.seconds, server.shutdown).start()
    print("ready", flush=True)
    server.serve_forever(poll_interval=0.05)
    stop.set()
    server.server_close()


if __name__ == "__main__":
    main()
