"""``giltrace demo``: the convoy effect, traced, in a few seconds.

One I/O thread writes and reads back a small file in a loop, releasing the
GIL around every system call; two CPU-bound threads count down beside it.
The trace shows the I/O thread waiting about one switch interval to win the
GIL back after nearly every operation.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time

NAME = "demo"
HELP = "trace a small CPU + I/O thread demo and print what the GIL did"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FILE", default="giltrace-demo.gtr", help="trace file (default: giltrace-demo.gtr)")
    p.add_argument("--seconds", type=float, default=2.0, help="how long the threads run (default 2)")
    p.add_argument("--cpu-threads", type=int, default=2, help="CPU-bound threads beside the I/O thread (default 2)")


def _cpu(stop: threading.Event) -> None:
    while not stop.is_set():
        n = 20000
        while n:
            n -= 1


def _io(stop: threading.Event, ops: list) -> None:
    block = b"x" * 4096
    with tempfile.TemporaryFile() as f:
        fd = f.fileno()
        while not stop.is_set():
            os.pwrite(fd, block, 0)
            os.pread(fd, len(block), 0)
            ops[0] += 1


def run(args: argparse.Namespace) -> int:
    from ..errors import UsageError
    from ..render.text import summary
    from ..tracer import Tracer

    if args.seconds < 0.7 or args.cpu_threads < 0:
        raise UsageError("--seconds must be at least 0.7 and --cpu-threads >= 0")

    def phase(cpu_threads: int, tracer=None) -> float:
        stop, ops = threading.Event(), [0]
        threads = [threading.Thread(target=_io, args=(stop, ops), name="io")]
        threads += [threading.Thread(target=_cpu, args=(stop,), name="cpu-%d" % i) for i in range(cpu_threads)]
        if tracer:
            tracer.start()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads:
            t.join()
        return ops[0] / args.seconds

    alone = phase(0)
    tracer = Tracer(args.output)
    beside = phase(args.cpu_threads, tracer)
    trace = tracer.stop()
    print(summary(trace))
    th = trace.threads()
    io = th[th["name"] == "io"].iloc[0]
    print()
    print("I/O thread: %.0f operations/s alone, %.0f/s beside %d CPU thread(s)." % (alone, beside, args.cpu_threads))
    if io["waits"]:
        print(
            "It waited for the GIL %d times, %.2f ms on average (switch interval %.1f ms): %.0f%% of its time."
            % (io["waits"], 1e3 * io["mean_wait_s"], 1e3 * trace.meta["switch_interval_s"], 100 * io["wait_share"])
        )
    import matplotlib

    matplotlib.use("Agg")
    from ..render.timeline import plot_timeline

    image = os.path.splitext(args.output)[0] + ".png"
    fig, _ = plot_timeline(trace, start_s=0.5, end_s=0.6)  # 100 ms: a few switch intervals
    fig.savefig(image)
    print("Trace written to %s, timeline of 0.5-0.6 s in %s." % (args.output, image))
    print(
        "Next: giltrace summary %s; giltrace report %s; giltrace timeline %s --start 0 --end 0.05" % (args.output, args.output, args.output)
    )
    return 0
