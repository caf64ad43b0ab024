"""Four threads each running short child processes with subprocess.run: healthy."""

import subprocess
import sys
import threading


def runner(n):
    for _ in range(n):
        subprocess.run([sys.executable, "-c", "pass"], capture_output=True)


n = int(sys.argv[1]) if len(sys.argv) > 1 else 5
ts = [threading.Thread(target=runner, args=(n,), name="runner-%d" % i) for i in range(4)]
for t in ts:
    t.start()
for t in ts:
    t.join()
