"""An asyncio TCP echo server (the event loop in MainThread) that runs 0.3 s
of pure Python in ``run_in_executor`` back to back, with 50 ms pauses; a
client process sends a 16-byte echo every 10 ms and times each round trip.

    python echo_executor.py [--seconds 2.5]

Prints the client's JSON: {"rtt_p50_ms", "rtt_p90_ms", "echoes"}.
"""

import argparse
import asyncio
import subprocess
import sys

CLIENT = r"""
import json, socket, sys, time
port, seconds = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
rtts, end = [], time.monotonic() + seconds
while time.monotonic() < end:
    t = time.perf_counter(); s.sendall(b"0123456789abcdef"); got = b""
    while len(got) < 16:
        got += s.recv(64)
    rtts.append(1e3 * (time.perf_counter() - t)); time.sleep(0.01)
rtts.sort(); n = len(rtts)
print(json.dumps({"rtt_p50_ms": rtts[n // 2], "rtt_p90_ms": rtts[int(0.9 * (n - 1))], "echoes": n}))
"""


def crunch(n: int) -> int:
    x = 0
    for i in range(n): x = (x * 31 + i) % 1000003  # noqa: E701  # fmt: skip  # LINE_CRUNCH
    return x


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        data = await reader.read(64)  # LINE_READ
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def main(seconds: float) -> None:
    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENT, str(port), str(seconds), stdout=subprocess.PIPE)
    loop = asyncio.get_running_loop()
    done = asyncio.ensure_future(client.communicate())
    while not done.done():
        await loop.run_in_executor(None, crunch, 1_500_000)  # ~0.3 s of Python on these VMs
        await asyncio.sleep(0.05)
    out, _ = await done
    server.close()
    await server.wait_closed()
    print(out.decode().strip())


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=2.5)
    asyncio.run(main(ap.parse_args().seconds))
