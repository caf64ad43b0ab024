"""CPU lists in the kernel's cpulist format ('0-2,5'), both ways.

One formatter for everything that prints CPU sets: the bench's tables and
pinning, and the trace summaries; and where this process's CPU quota is
counted (its cgroup's cpu.stat), for both recorders.  Plain Python 2.7
syntax without module-level imports, because the bench's workload child and
the 2.7 starter read it by path on any interpreter
(giltrace/bench/workloads/shared.py, giltrace/oldgil.py).
"""


def format_cpus(cpus, empty=""):
    # type: (Iterable[int], str) -> str
    """[0, 1, 2, 5] -> '0-2,5'; ``empty`` for no CPUs at all."""
    ordered = sorted(set(cpus))
    ranges = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        ranges.append(str(ordered[i]) if i == j else "%d-%d" % (ordered[i], ordered[j]))
        i = j + 1
    return ",".join(ranges) or empty


def parse_cpu_list(text):
    # type: (str) -> List[int]
    """'0-2,5' -> [0, 1, 2, 5]."""
    cpus = []
    for part in text.strip().split(","):
        if not part:
            continue
        if "-" in part:
            first, last = part.split("-")
            cpus.extend(range(int(first), int(last) + 1))
        else:
            cpus.append(int(part))
    return sorted(set(cpus))


def cgroup_cpu_stat_path():
    """The ``cpu.stat`` of this process's CPU cgroup (v2, or v1's ``cpu``
    controller), where its throttling is counted; None if there is none."""
    import os

    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except (IOError, OSError):
        return None
    candidates = []
    for line in lines:
        _, controllers, rel = line.split(":", 2)
        if "cpu" in controllers.split(","):
            candidates.append(os.path.join("/sys/fs/cgroup", controllers, rel.lstrip("/"), "cpu.stat"))
            candidates.append(os.path.join("/sys/fs/cgroup/cpu,cpuacct", rel.lstrip("/"), "cpu.stat"))
        elif controllers == "":
            candidates.append(os.path.join("/sys/fs/cgroup", rel.lstrip("/"), "cpu.stat"))
            candidates.append(os.path.join("/sys/fs/cgroup/unified", rel.lstrip("/"), "cpu.stat"))
    for path in candidates:
        try:
            with open(path) as f:
                if "throttled" in f.read():
                    return path
        except (IOError, OSError):
            continue
    return None
