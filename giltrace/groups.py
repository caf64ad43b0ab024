"""Thread groups: the threads of one pool or one kind of worker, recognised
by their names (``ThreadPoolExecutor-0_3``, ``Thread-7 (process_request_thread)``,
``ledger_2``, ``polars-1``, ``waitress-0``).

A group is named after what its members share -- the name with the trailing
number replaced by ``*`` -- and exists only when at least two threads share
it; a thread alone keeps its own name and has no group.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Dict, Mapping, Optional

# "Thread-7 (process_request_thread)": threading's default name with the target's name
_TARGET = re.compile(r"^(?P<stem>.*?)-\d+ \((?P<target>[^()]*)\)$")
# a trailing number with an optional separator: "pool_3", "polars-1", "worker 2", "cpu7"
_NUMBERED = re.compile(r"^(?P<stem>.*?[^\d])(?P<sep>[-_ .]?)\d+$")


def group_key(name: str) -> Optional[str]:
    """The group a thread's name would put it in, or None if it has no number."""
    m = _TARGET.match(name)
    if m:
        return "%s-* (%s)" % (m["stem"], m["target"])
    m = _NUMBERED.match(name)
    if m:
        return "%s%s*" % (m["stem"], m["sep"])
    return None


def thread_groups(names: Mapping[int, str]) -> Dict[int, Optional[str]]:
    """tid -> group name, or None for a thread whose name no other thread shares."""
    keys = {tid: group_key(name) for tid, name in names.items()}
    counts = Counter(k for k in keys.values() if k)
    return {tid: (k if k and counts[k] >= 2 else None) for tid, k in keys.items()}
