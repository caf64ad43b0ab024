"""A standard-library ThreadingHTTPServer whose /report endpoint renders in
pure Python, loaded by a client process that asks for /report only during a
storm in the middle of the run (calm before and after).

    python storm_http.py OUT.json [client options]
"""

import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def render_report(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7  # LINE_RENDER
    return total


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        body = str(render_report(150_000)).encode() if self.path == "/report" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="acceptor", daemon=True).start()
    client = subprocess.run(
        [sys.executable, os.path.join(HERE, "http_client.py"), str(server.server_address[1])] + sys.argv[1:], timeout=60
    )
    server.shutdown()
    server.server_close()
    sys.exit(client.returncode)


if __name__ == "__main__":
    main()
