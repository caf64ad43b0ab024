"""Is the GIL's holder even running?  GIL contention told apart from a
machine with too few CPUs and from a container's CPU quota.

    python examples/cpu_state_demo.py --setup taskset [--seconds 4] [-o DIR]
    sudo python examples/cpu_state_demo.py --setup cgroup [--quota 0.3]

Runs examples/http_server.py with its CPU thread under
``giltrace run --cpu-state``, loads it from a separate, unconstrained client
process, and prints the client's latency beside the trace's diagnosis.

- ``taskset``: the server is pinned to CPU 0, and a CPU-burning process is
  pinned to the same CPU: whoever holds the GIL is often in a run queue.
- ``cgroup``: the server runs alone in a cgroup whose CPU quota is --quota
  of one CPU (``cpu.max`` on cgroup v2, ``cpu.cfs_quota_us`` on v1; needs
  root): the whole process is throttled, GIL holder included.
- ``none``: neither, for comparison.

docs/profiling.md ("Is the holder running?") shows and reads its output.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_cgroup_base():
    """(folder, is_v2) of a hierarchy with the CPU controller, or (None, False).
    v2 at /sys/fs/cgroup (unified) or /sys/fs/cgroup/unified (hybrid hosts),
    else v1's cpu controller."""
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(os.path.join(base, "cgroup.controllers")) as f:
                if "cpu" in f.read().split():
                    with open(os.path.join(base, "cgroup.subtree_control")) as f:
                        enabled = "cpu" in f.read().split()
                    if not enabled:  # children get cpu.max only once the parent hands the controller down
                        with open(os.path.join(base, "cgroup.subtree_control"), "w") as f:
                            f.write("+cpu")
                    return base, True
        except OSError:
            continue
    for base in ("/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"):
        if os.path.exists(os.path.join(base, "cpu.cfs_quota_us")):
            return base, False
    return None, False


def make_cgroup(quota):
    """A new cgroup limited to `quota` of one CPU; its folder."""
    base, v2 = cpu_cgroup_base()
    if base is None:
        raise SystemExit("no cgroup hierarchy with the cpu controller here")
    group = os.path.join(base, "giltrace-demo-%d" % os.getpid())
    os.mkdir(group)
    period = 100000
    if v2:
        with open(os.path.join(group, "cpu.max"), "w") as f:
            f.write("%d %d" % (int(quota * period), period))
    else:
        with open(os.path.join(group, "cpu.cfs_period_us"), "w") as f:
            f.write(str(period))
        with open(os.path.join(group, "cpu.cfs_quota_us"), "w") as f:
            f.write(str(int(quota * period)))
    print("cgroup %s %s, quota %.0f %% of one CPU" % ("v2" if v2 else "v1", group, 100 * quota))
    return group


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--setup", choices=("taskset", "cgroup", "none"), default="taskset")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--quota", type=float, default=0.3, help="cgroup: the share of one CPU (default 0.3)")
    ap.add_argument("--port", type=int, default=8331)
    ap.add_argument("-o", "--out", default=".")
    args = ap.parse_args()
    trace_path = os.path.join(args.out, "cpu-state-%s.gtr" % args.setup)
    server_cmd = [sys.executable, "-m", "giltrace", "run", "-q", "--cpu-state", "-o", trace_path]
    server_cmd += [os.path.join(HERE, "http_server.py"), "--cpu", "--port", str(args.port), "--seconds", str(args.seconds + 1.5)]
    burner, group = None, None
    if args.setup == "taskset":
        burner = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", "while True: pass"])
        server_cmd = ["taskset", "-c", "0"] + server_cmd
    elif args.setup == "cgroup":
        group = make_cgroup(args.quota)
        # the shell moves itself into the cgroup, then becomes the server
        server_cmd = ["sh", "-c", 'echo $$ > %s/cgroup.procs && exec "$@"' % group, "sh"] + server_cmd
    try:
        server = subprocess.Popen(server_cmd, stdout=subprocess.PIPE, text=True)
        if server.stdout.readline().strip() != "ready":
            raise SystemExit("the server did not start")
        client = subprocess.run(
            [sys.executable, os.path.join(HERE, "load_client.py"), "--port", str(args.port), "--seconds", str(args.seconds)],
            capture_output=True,
            text=True,
            check=True,
        )
        server.wait(timeout=60)
    finally:
        if burner:
            burner.kill()
            burner.wait()
        if group:
            for _ in range(50):  # the cgroup empties once the server's process is reaped
                try:
                    os.rmdir(group)
                    break
                except OSError:
                    time.sleep(0.1)
    lat = json.loads(client.stdout)
    print("client: %d requests, p50 %.2f ms, p99 %.2f ms" % (lat["requests"], lat["p50_ms"], lat["p99_ms"]))
    import giltrace
    from giltrace.render.text import summary

    print(summary(giltrace.load(trace_path)))


if __name__ == "__main__":
    main()
