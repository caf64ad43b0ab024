"""The work itself: the study's counting loop and a real file I/O loop.

One I/O *operation* writes a block at the start of the worker's own file and
reads it back: ``lseek, write, [fsync,] lseek, read``.  Every one of those
calls releases the GIL and takes it again afterwards, so one operation is
four GIL reacquisitions (five with fsync).  The same calls are used on every
interpreter (2.7 has no pread/pwrite), so per-operation costs compare.
"""

from __future__ import absolute_import, division, print_function

import os


def count(load):
    """The study's CPU workload, verbatim: pure bytecode, never releases the GIL
    on its own (only when the interpreter asks the thread to switch)."""
    while load > 0:
        load -= 1


class BlockFile(object):
    """A worker's own scratch file, written and read back one block at a time."""

    def __init__(self, path, block, sync):
        self.block = b"x" * block
        self.size = block
        self.sync = sync
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def close(self):
        os.close(self.fd)

    def operation(self):
        fd = self.fd
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, self.block)
        if self.sync:
            os.fsync(fd)  # wait for the disk: the thread sleeps without the GIL
        os.lseek(fd, 0, os.SEEK_SET)
        if len(os.read(fd, self.size)) != self.size:
            raise IOError("short read from the scratch file")

    def run(self, ops):
        """``ops`` operations back to back."""
        operation = self.operation
        while ops > 0:
            operation()
            ops -= 1

    def run_timed(self, duration, clock):
        """Operations back to back for ``duration`` seconds; the latency of each."""
        operation = self.operation
        latencies = []
        record = latencies.append
        deadline = clock() + duration
        now = clock()
        while now < deadline:
            operation()
            done = clock()
            record(done - now)
            now = done
        return latencies


def io_loop(path, ops, block, sync):
    """The I/O workload: ``ops`` write-and-read-back operations on ``path``."""
    f = BlockFile(path, block, sync)
    try:
        f.run(ops)
    finally:
        f.close()


def spin(chunk, stopped):
    """A CPU-bound competitor: count in chunks until ``stopped()``.
    Returns how many iterations it did (a measure of the CPU it got)."""
    done = 0
    while not stopped():
        count(chunk)
        done += chunk
    return done
