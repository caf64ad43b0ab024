"""An asyncio TCP echo server (event loop in MainThread) beside a thread that
json.dumps a large object in a loop (the C encoder keeps the GIL ~10 ms a
call); a client process sends 20 echoes/s."""

import asyncio
import json
import sys
import threading

CLIENT = r'''
import json, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); rtts = []
for i in range(n):
    t = time.perf_counter(); s.sendall(b"x" * 32); s.recv(64)
    rtts.append(time.perf_counter() - t); time.sleep(0.05)
rtts.sort(); print(json.dumps({"rtt_p50_ms": 1e3 * rtts[len(rtts)//2], "rtt_p99_ms": 1e3 * rtts[int(0.99 * (len(rtts)-1))]}))
'''
DOC = [{"id": i, "name": "item-%d" % i, "tags": ["a", "b", "c"], "score": i * 0.5} for i in range(15000)]


def dump(stop):
    while not stop.is_set():
        json.dumps(DOC)  # LINE_DUMPS


async def echo(reader, writer):
    while data := await reader.read(64):
        writer.write(data)
    writer.close()


async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    n = sys.argv[1] if len(sys.argv) > 1 else "40"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, str(port), n, stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    server.close()
    return out.decode().strip()


stop = threading.Event()
t = threading.Thread(target=dump, args=(stop,), name="dumper")
t.start()
out = asyncio.run(main())
stop.set()
t.join()
print(out)
