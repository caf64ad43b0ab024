"""Run by tests/compat/test_versions.py under another CPython, with only cffi
and the freshly built extension importable (no numpy/pandas): trace a contended
run, parse the file with struct, and print what was found as JSON."""

import json
import os
import struct
import sys
import threading
import time

from giltrace._native import ffi, lib

path = sys.argv[1]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
cfg = ffi.new("gt_config *", {"fd": fd, "buffer_events": 1 << 16, "sample_period_ns": 1000000, "flush_period_ns": 50000000, "locations": 1})
err = ffi.new("char[256]")
stop = threading.Event()


def cpu():
    while not stop.is_set():
        n = 5000
        while n:
            n -= 1


stamps = ffi.new("uint64_t[4]")
holder_tid = []


def c_holder():
    holder_tid.append(threading.get_native_id())
    lib.gt_test_hold_gil_ns_timed(20000000, stamps)  # the C hold, bracketed by the helper's own clock


rc = lib.gt_start(cfg, err, 256)
if rc:
    print(json.dumps({"error": ffi.string(err).decode()}))
    sys.exit(1)
threads = [threading.Thread(target=cpu) for _ in range(2)]
for t in threads:
    t.start()
h = threading.Thread(target=c_holder)
h.start()
h.join()
time.sleep(0.1)
stop.set()
for t in threads:
    t.join()
stats = ffi.new("gt_stats *")
lib.gt_stop(stats)
os.close(fd)
ents = ffi.new("gt_got_entry[4]")
n = lib.gt_got_entries(ents, 4)
restored = all(ents[i].current == ents[i].real for i in range(n))

data = open(path, "rb").read()
off, events, locations = 0, [], {}
while off < len(data):
    magic, kind, _, count, plen, crc = struct.unpack_from("<4sHHIII", data, off)
    assert magic == b"CHNK"
    if kind == 1:
        events += [struct.unpack_from("<QQIBBH", data, off + 20 + 24 * i) for i in range(count)]
    elif kind == 6:
        pos = off + 20
        for _ in range(count):
            loc_id, line, fl, nl = struct.unpack_from("<IiHH", data, pos)
            pos += 12
            locations[loc_id] = (data[pos : pos + fl].decode(), data[pos + fl : pos + fl + nl].decode(), line)
            pos += fl + nl
    off += 20 + plen

switched = sum(1 for e in events if e[3] == 2 and e[4] & 1)
per_thread = {}
for t_ns, _arg, tid, kind, _flags, _ in events:
    per_thread.setdefault(tid, []).append((t_ns, kind))
well_formed = True
holds = []
bracketed = 0
t0, t1, t2, t3 = list(stamps)
for tid, evs in per_thread.items():
    times = [t for t, _ in evs]
    well_formed &= times == sorted(times)
    last_acq = None
    for t, kind in evs:
        if kind == 2:
            last_acq = t
        elif kind == 3 and last_acq is not None:
            holds.append(t - last_acq)
            if tid == holder_tid[0] and t0 <= last_acq <= t1 and t2 <= t <= t3:
                bracketed += 1
            last_acq = None
print(
    json.dumps(
        {
            "python": sys.version.split()[0],
            "events": len(events),
            "lost": stats.events_lost,
            "switch_delta": stats.switch_number_stop - stats.switch_number_start,
            "switched": switched,
            "well_formed": well_formed,
            "longest_hold_ns": max(holds) if holds else 0,
            "c_hold_bracketed": bracketed,
            "got_restored": restored,
            # the cpu() loop, seen where the cpu threads were forced to release the GIL
            "cpu_releases_located": sum(
                1
                for e in events
                if e[3] == 3 and locations.get(e[1], ("", "", 0))[1] == "cpu" and locations[e[1]][0] == os.path.abspath(__file__)
            ),
        }
    )
)
