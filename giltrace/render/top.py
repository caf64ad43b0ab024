"""``giltrace top``'s screen: a :class:`giltrace.live.Snapshot` in, a rich
renderable out.  Thread groups (giltrace/groups.py) can be folded into one
row each, as ``htop`` folds a process's threads."""

from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from ..groups import thread_groups
from ..live import Snapshot, ThreadRow, _pct
from ..textsafe import printable


def fold_groups(snap: Snapshot) -> List[ThreadRow]:
    """One row per thread group (mean wait % / hold % of its members, summed
    waits/s, percentiles over all their waits); threads alone stay as they are."""
    groups = thread_groups({r.tid: r.name for r in snap.rows})
    members: Dict[str, List[ThreadRow]] = {}
    out: List[ThreadRow] = []
    for row in snap.rows:
        key = groups.get(row.tid)
        if key is None:
            out.append(row)
        else:
            members.setdefault(key, []).append(row)
    for key, rows in members.items():
        waits = np.concatenate([snap.waits.get(r.tid, np.empty(0, np.int64)) for r in rows])
        states = {r.state for r in rows}
        out.append(
            ThreadRow(
                rows[0].tid,
                key,
                sum(r.wait_pct for r in rows) / len(rows),
                sum(r.hold_pct for r in rows) / len(rows),
                sum(r.waits_per_s for r in rows),
                _pct(waits, 50),
                _pct(waits, 99),
                "holding" if "holding" in states else ("waiting" if "waiting" in states else ""),
                len(rows),
            )
        )
    out.sort(key=lambda r: (-r.wait_pct, -r.hold_pct, r.tid))
    return out


def _ms(v: Optional[float]) -> str:
    return "-" if v is None else "%.2f" % v


def render(snap: Snapshot, *, title: str, folded: bool, status: str = ""):
    """The whole screen: a header line, the table, who holds the GIL, the top culprit, the keys."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    rows = fold_groups(snap) if folded else snap.rows
    table = Table(expand=False, box=None, header_style="bold reverse", pad_edge=False)
    for col, just in (
        ("THREAD", "left"),
        ("TID", "right"),
        ("WAIT%", "right"),
        ("HOLD%", "right"),
        ("WAITS/S", "right"),
        ("P50 ms", "right"),
        ("P99 ms", "right"),
        ("STATE", "left"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for r in rows:
        # The program's text: escaped, and a Text so that rich reads no markup in it.
        name = Text(printable("%s x%d" % (r.name, r.members) if r.members > 1 else r.name))
        style = "bold red" if r.wait_pct >= 50 else ("yellow" if r.wait_pct >= 10 else None)
        table.add_row(
            name,
            "" if r.members > 1 else str(r.tid),
            "%.1f" % r.wait_pct,
            "%.1f" % r.hold_pct,
            "%.0f" % r.waits_per_s,
            _ms(r.p50_ms),
            _ms(r.p99_ms),
            r.state,
            style=style,
        )
    head = Text(
        "%s  last %.1f s, %d events%s" % (printable(title), snap.window_s, snap.events, "  [trace stopped]" if snap.complete else ""),
        style="bold",
    )
    holder = Text(
        printable(
            "GIL held by: %s%s" % (snap.holder or "nobody", "  at %s" % snap.holder_where if snap.holder and snap.holder_where else "")
        )
    )
    culprit = Text(
        printable(
            "Top culprit: %s"
            % (
                "%s (held the GIL during %.0f ms of others' waits)" % (snap.culprit, snap.culprit_ms)
                if snap.culprit
                else "none (no thread waited)"
            )
        )
    )
    keys = Text("q quit (detach)   g %s groups%s" % ("expand" if folded else "fold", "   " + status if status else ""), style="dim")
    return Group(head, table, Text(""), holder, culprit, keys)
