"""A gRPC server (one worker thread, a generic unary method on raw bytes, no
protobuf) beside a CPU-bound background thread, loaded by a client process;
the main thread sits in wait_for_termination.

    python grpc_server.py OUT.json [--seconds 2]
"""

import os
import subprocess
import sys
import threading
from concurrent import futures

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT = r'''
import grpc, json, statistics, sys, time
port, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
channel = grpc.insecure_channel("127.0.0.1:" + port)
call = channel.unary_unary("/demo.Echo/Echo")
grpc.channel_ready_future(channel).result(timeout=20)
lat, end = [], time.monotonic() + seconds
while time.monotonic() < end:
    t0 = time.perf_counter()
    call(b"ping", timeout=10)
    lat.append(time.perf_counter() - t0)
json.dump({"requests": len(lat), "p50_ms": 1e3 * statistics.median(lat)}, open(out, "w"))
'''


def echo(request: bytes, context) -> bytes:
    return request


def cruncher(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for _ in range(10000):
            x = (x * 31 + 7) % 1000003  # LINE_CRUNCHER


def main() -> None:
    out = sys.argv[1]
    seconds = sys.argv[3] if len(sys.argv) > 3 else "2"
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("demo.Echo", {"Echo": handler})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    threading.Thread(target=cruncher, args=(stop,), name="cruncher", daemon=True).start()

    def drive() -> None:
        res = subprocess.run([sys.executable, "-c", CLIENT, str(port), out, seconds], timeout=60)
        stop.set()
        server.stop(grace=None)
        if res.returncode:
            os._exit(res.returncode)

    threading.Thread(target=drive, name="driver").start()
    server.wait_for_termination()  # LINE_WAIT


if __name__ == "__main__":
    main()
