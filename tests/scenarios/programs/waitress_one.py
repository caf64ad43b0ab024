"""waitress with one worker thread (every request is served by the same
long-lived thread) beside a CPU-bound background thread; a client process
loads it, then the server is stopped with SIGINT (waitress shuts down on it).

    python waitress_one.py PORT OUT.json [client options]
"""

import os
import signal
import subprocess
import sys
import threading

import waitress

HERE = os.path.dirname(os.path.abspath(__file__))


def app(environ, start_response):
    body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def cruncher() -> None:
    x = 0
    while True:
        x = (x * 31 + 7) % 1000003  # LINE_CRUNCHER


client_rc = []


def drive() -> None:
    res = subprocess.run([sys.executable, os.path.join(HERE, "http_client.py")] + sys.argv[1:] + ["--slow-loops", "0"], timeout=60)
    client_rc.append(res.returncode)
    os.kill(os.getpid(), signal.SIGINT)


threading.Thread(target=cruncher, name="cruncher", daemon=True).start()
threading.Thread(target=drive, name="driver", daemon=True).start()
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=1, _quiet=True)
sys.exit(client_rc[0] if client_rc else 1)  # a client that failed fails the run
