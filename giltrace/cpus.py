"""CPU lists in the kernel's cpulist format ('0-2,5'), both ways.

One formatter for everything that prints CPU sets: the bench's tables and
pinning, and the trace summaries.  Plain Python 2.7 syntax without imports,
because the bench's workload child reads it by path on any interpreter
(giltrace/bench/workloads/shared.py).
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
