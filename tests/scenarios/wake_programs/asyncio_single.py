"""A single-threaded asyncio echo server; a client process sends 20 echoes/s: healthy."""

import asyncio
import sys

CLIENT = r'''
import json, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); rtts = []
for i in range(n):
    t = time.perf_counter(); s.sendall(b"x" * 32); s.recv(64)
    rtts.append(time.perf_counter() - t); time.sleep(0.05)
rtts.sort(); print(json.dumps({"rtt_p50_ms": 1e3 * rtts[len(rtts)//2]}))
'''


async def echo(reader, writer):
    while data := await reader.read(64):
        writer.write(data)
        sum(range(500))
    writer.close()


async def main():
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, str(port), sys.argv[1] if len(sys.argv) > 1 else "40", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    server.close()
    return out.decode().strip()


print(asyncio.run(main()))
