"""Run every benchmark in turn (``make bench``); the accuracy check needs root and perf."""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = ["bench_overhead.py", "bench_load.py", "bench_timeline.py"]

if __name__ == "__main__":
    rc = 0
    for name in SCRIPTS + (["validate_uprobes.py"] if os.geteuid() == 0 else []):
        print("==", name, flush=True)
        rc |= subprocess.call([sys.executable, os.path.join(HERE, name)])
    sys.exit(rc)
