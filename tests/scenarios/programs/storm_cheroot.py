"""cheroot (CherryPy's WSGI server, 4 worker threads) with the same /report
endpoint as storm_http.py, loaded by the same client process: fast requests
all along, /report only during a storm in the middle.

    python storm_cheroot.py OUT.json [client options]
"""

import os
import subprocess
import sys
import threading

from cheroot import wsgi

from storm_http import render_report

HERE = os.path.dirname(os.path.abspath(__file__))


def app(environ, start_response):
    body = str(render_report(150_000)).encode() if environ["PATH_INFO"] == "/report" else b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def main() -> None:
    server = wsgi.Server(("127.0.0.1", 0), app, numthreads=4)
    server.prepare()
    threading.Thread(target=server.serve, name="cheroot-serve", daemon=True).start()
    port = server.bind_addr[1]
    client = subprocess.run([sys.executable, os.path.join(HERE, "http_client.py"), str(port)] + sys.argv[1:], timeout=60)
    server.stop()
    sys.exit(client.returncode)


if __name__ == "__main__":
    main()
