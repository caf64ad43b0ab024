"""``giltrace bench``'s text tables in the study's layout, from a bench view
(giltrace/bench/view.py: the aggregated table and each workload's axes).

The wall-clock table per workload copies the study: rows grouped by cores
then N, columns serial / thread / procs in seconds; with several
interpreters their columns sit side by side under a header row.  Cells
that can't be taken at face value carry a mark and a footnote:
``!`` the run was flagged (see ``spread``: not pinned, not spread, CPUs
shared or stolen), ``ERR`` every run failed.  Pure functions: table
DataFrame (or view) in, string out.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Dict, List, Sequence, Tuple, Union

import pandas as pd

if TYPE_CHECKING:  # the data interface only; nothing of the bench runs here
    from ..bench.view import BenchView

MIN_WIDTH = 8  # the study's column width, borders excluded

# A body line: a list of cell texts, a rule (None), or a spanning line
# (the leading cell texts, then one text across the remaining columns).
Line = Union[List[str], None, Tuple[List[str], str]]


def _cell(text: str, width: int, align: str) -> str:
    if align == "key":  # the study's cores column: "     1  "
        return " " + text.rjust(width - 3) + "  "
    if align == "right":  # "      N "
        return text.rjust(width - 1) + " "
    if align == "num":  # "   3.52 "
        return " " + text.rjust(width - 2) + " "
    return " " + text.ljust(width - 1)


def _widen(widths: List[int], first: int, last: int, needed: int) -> None:
    """Widen columns first..last-1 evenly until, with their inner borders,
    they span at least ``needed`` characters."""
    span = sum(widths[first:last]) + (last - first - 1)
    for i in range(max(0, needed - span)):
        widths[last - 1 - i % (last - first)] += 1


def box(header: Sequence[Line], body: Sequence[Line], aligns: Sequence[str], groups: Sequence[str] = (), lead: int = 0) -> str:
    """An ASCII box table; column widths fit the widest text (at least 8).

    ``groups``: names for a top header line, each spanning an equal share of
    the columns after the first ``lead`` ones (one interpreter's columns).
    """
    widths = [MIN_WIDTH] * len(aligns)
    for is_header, lines in ((True, header), (False, body)):
        for line in lines:
            if isinstance(line, list):
                for i, text in enumerate(line):
                    # a space each side; the cores column's values keep two on the right
                    pad = 3 if aligns[i] == "key" and not is_header else 2
                    widths[i] = max(widths[i], len(text) + pad)
    for line in body:
        if isinstance(line, tuple):  # a spanning text wider than its columns widens them
            _widen(widths, len(line[0]), len(widths), len(line[1]) + 2)
    per_group = (len(widths) - lead) // len(groups) if groups else 0
    for g, name in enumerate(groups):
        _widen(widths, lead + g * per_group, lead + (g + 1) * per_group, len(name) + 2)
    rule = "+" + "+".join("-" * w for w in widths) + "+"

    def spanning(text: str, first: int, last: int) -> str:
        span = sum(widths[first:last]) + (last - first - 1)
        return " " + text.ljust(span - 1)

    def render(line: Line, header_row: bool) -> str:
        if line is None:
            return rule
        if isinstance(line, tuple):
            lead_texts, text = line
            cells = [_cell(t, widths[i], aligns[i]) for i, t in enumerate(lead_texts)]
            return "|" + "|".join(cells + [spanning(text, len(lead_texts), len(widths))]) + "|"
        cells = [_cell(t, widths[i], "left" if header_row and aligns[i] in ("num", "key") else aligns[i]) for i, t in enumerate(line)]
        return "|" + "|".join(cells) + "|"

    out = [rule]
    if groups:
        parts = [" " * w for w in widths[:lead]]
        parts += [spanning(name, lead + g * per_group, lead + (g + 1) * per_group) for g, name in enumerate(groups)]
        out.append("|" + "|".join(parts) + "|")
    out += [render(line, True) for line in header]
    out.append(rule)
    out += [render(line, False) for line in body]
    if body and body[-1] is not None:
        out.append(rule)
    return "\n".join(out)


class Footnotes:
    """Footnotes under a table, each text once, in order."""

    def __init__(self) -> None:
        self.lines: List[str] = []

    def add(self, text: str) -> None:
        if text and text not in self.lines:
            self.lines.append(text)

    def render(self) -> str:
        return "\n".join(self.lines)


def _seconds(row: Any, show_range: bool) -> str:
    text = "%.2f" % row.wall_median
    if show_range and row.runs > 1:
        text += " (%.2f-%.2f)" % (row.wall_min, row.wall_max)
    return text


def _where(row: Any, python_count: int) -> str:
    where = "cores %d, N %d, %s" % (row.cores, row.n, row.mode)
    return where + (", python %s" % row.python if python_count > 1 else "")


def _index(table: pd.DataFrame, workload: str) -> Dict[tuple, Any]:
    rows = table[table["workload"] == workload]
    return {(r.python, int(r.cores), int(r.n), r.mode): r for r in rows.itertuples(index=False)}


def _mark(row: Any, notes: Footnotes, python_count: int, show_range: bool) -> str:
    """One cell's text, adding its footnotes."""
    if row is None:
        return ""
    if row.status == "failed":
        notes.add("ERR  %s: %s" % (_where(row, python_count), row.reason))
        return "ERR"
    if row.status != "ok":
        return "--"
    text = _seconds(row, show_range)
    if row.flagged:
        notes.add("!    %s: %s (%d of %d runs)" % (_where(row, python_count), row.flag, row.flagged, row.runs))
        text += "!"
    elif row.failed:
        notes.add("     %s: %d of %d runs failed: %s" % (_where(row, python_count), row.failed, row.failed + row.runs, row.reason))
    if isinstance(row.notes, str) and row.notes:
        notes.add("     %s" % row.notes)
    if isinstance(row.trace_note, str) and row.trace_note:
        notes.add("     %s%s" % ("python %s: " % row.python if python_count > 1 else "", row.trace_note))
    return text


def grid_table(
    table: pd.DataFrame,
    workload: str,
    pythons: Sequence[str],
    cores: Sequence[int],
    ns: Sequence[int],
    modes: Sequence[str],
    show_range: bool = False,
) -> str:
    """The study's wall-clock table for one grid workload, with footnotes."""
    cells = _index(table, workload)
    notes = Footnotes()
    header: List[Line] = [["cores", "N"] + list(modes) * len(pythons), ["", ""] + ["sec"] * len(modes) * len(pythons)]
    aligns = ["key", "right"] + ["num"] * len(modes) * len(pythons)
    body: List[Line] = []
    for c in cores:
        group = [cells.get((py, c, n, m)) for py in pythons for n in ns for m in modes]
        present = [r for r in group if r is not None]
        if present and all(r.status == "unavailable" for r in present):
            body += [([str(c)], str(present[0].reason)), None]
            continue
        for i, n in enumerate(ns):
            texts = [_mark(cells.get((py, c, n, m)), notes, len(pythons), show_range) for py in pythons for m in modes]
            body.append([str(c) if i == 0 else "", str(n)] + texts)
        body.append(None)
    # With several interpreters, a header line above names each one's columns.
    groups = ["python " + p for p in pythons] if len(pythons) > 1 else []
    text = box(header, body, aligns, groups=groups, lead=2)
    return text + ("\n" + notes.render() if notes.lines else "")


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return fmt % value


def sig(value: Any, digits: int = 3) -> str:
    """A positive number to ``digits`` significant digits, without exponent."""
    if value is None or pd.isna(value):
        return ""
    if value == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return "%.*f" % (decimals, value)


def contention_table(
    table: pd.DataFrame, workload: str, pythons: Sequence[str], cores: Sequence[int], ns: Sequence[int], modes: Sequence[str]
) -> str:
    """Per-cell GIL figures of a traced grid workload ('' if none traced)."""
    cells = _index(table, workload)
    header: List[Line] = [
        ["python", "cores", "N", "mode", "sec", "GIL wait", "switches", "drop", "io reacq", "io reacq", "io reacq"],
        ["", "", "", "", "", "%", "per s", "requests", "p50 us", "p99 us", "max us"],
    ]
    aligns = ["left", "key", "right", "left"] + ["num"] * 7
    body: List[Line] = []
    notes = Footnotes()
    for py in pythons:
        for c in cores:
            for n in ns:
                for m in modes:
                    r = cells.get((py, c, n, m))
                    if r is None or r.status != "ok" or not r.traced:
                        continue
                    body.append(
                        [
                            py,
                            str(c),
                            str(n),
                            m,
                            "%.2f" % r.wall_median,
                            _num(None if r.gil_wait_share is None else 100 * r.gil_wait_share, "%.1f"),
                            _num(r.switches_per_s, "%.0f"),
                            _num(r.drop_requests, "%.0f"),
                            sig(r.io_reacq_p50_us),
                            sig(r.io_reacq_p99_us),
                            sig(r.io_reacq_max_us),
                        ]
                    )
                    if isinstance(r.trace_note, str) and r.trace_note:
                        notes.add("python %s, cores %d, N %d, %s: %s" % (py, c, n, m, r.trace_note))
            if body and body[-1] is not None:
                body.append(None)
    if not body:
        return ""
    return box(header, body, aligns) + ("\n" + notes.render() if notes.lines else "")


def _competitors_label(k: int, mode: str) -> str:
    if mode == "alone" or k == 0:
        return "none"
    if mode == "thread":
        return "%d thread%s" % (k, "" if k == 1 else "s")
    return "%d process%s" % (k, "" if k == 1 else "es")


def latency_table(
    table: pd.DataFrame, workload: str, pythons: Sequence[str], cores: Sequence[int], rows: Sequence[Tuple[int, str]], traced: bool = False
) -> str:
    """The convoy experiment's table: the I/O thread's latency per cell.

    ``rows``: (K competitors, mode) in row order (bench/view.py latency_rows).
    """
    cells = _index(table, workload)
    columns = ["python", "cores", "competitors", "p50 ms", "p99 ms", "mean ms", "ops/s", "cpu Mit/s"]
    if traced:
        columns.append("io GIL wait %")
    aligns = ["left", "key", "left"] + ["num"] * (len(columns) - 3)
    body: List[Line] = []
    notes = Footnotes()
    for py in pythons:
        py_shown = False
        for c in cores:
            found = [(k, m, cells.get((py, c, k, m))) for k, m in rows]
            found = [(k, m, r) for k, m, r in found if r is not None]
            if not found:
                continue
            lead = [py if not py_shown else "", str(c)]
            py_shown = True
            if all(r.status == "unavailable" for _, _, r in found):
                body += [(lead, str(found[0][2].reason)), None]
                continue
            for k, m, r in found:
                label = _competitors_label(k, m)
                line = lead + [label]
                lead = ["", ""]
                if r.status != "ok":
                    notes.add("ERR  python %s, cores %d, %s: %s" % (py, c, label, r.reason))
                    body.append(line + ["ERR"] + [""] * (len(columns) - 4))
                    continue
                if r.flagged:
                    notes.add("!    python %s, cores %d, %s: %s" % (py, c, label, r.flag))
                    line[-1] += " !"
                line += [
                    sig(r.lat_p50_ms),
                    sig(r.lat_p99_ms),
                    sig(r.lat_mean_ms),
                    _num(r.ops_per_s, "%.0f"),
                    _num(None if k == 0 else r.competitor_iters_per_s / 1e6, "%.1f"),
                ]
                if traced:
                    line.append(_num(None if r.io_wait_share is None else 100 * r.io_wait_share, "%.1f"))
                    if isinstance(r.trace_note, str) and r.trace_note:
                        notes.add("     python %s: %s" % (py, r.trace_note))
                body.append(line)
            body.append(None)
    return box([columns], body, aligns) + ("\n" + notes.render() if notes.lines else "")


def machine_lines(machine: Dict[str, Any]) -> List[str]:
    """A few lines for the top of the printed results, from results.json's
    "machine" (bench/machine.py describe())."""
    fs = machine["scratch_filesystem"]
    return [
        "machine: %s, %s logical CPUs (usable: %s)%s, %s %s"
        % (
            machine["cpu_model"],
            machine["logical_cpus"],
            machine["usable_cpus"],
            ", virtual machine" if machine["virtual_machine"] else "",
            machine["system"],
            machine["kernel"],
        ),
        "load average at start: %s; scratch files in %s (%s)"
        % (" ".join("%.2f" % x for x in machine["load_average_at_start"]), machine["scratch_dir"], fs["type"]),
    ] + ["python %s: %s (%s)" % (i["label"], i["path"], i["switching"]) for i in machine["interpreters"]]


def render_text(view: "BenchView", show_range: bool = False) -> str:
    """All tables of a bench run, as ``giltrace bench`` prints them."""
    table, labels = view.table, view.pythons
    out = machine_lines(view.machine) + [""]
    runs = "%d run%s" % (view.repeat, "" if view.repeat == 1 else "s")
    for s in view.sections:
        if s.latency:
            out += [
                "%s; medians of %s" % (s.heading, runs),
                latency_table(table, s.workload, labels, s.cores, s.latency_rows, traced=view.traced),
                "",
            ]
            continue
        runs_note = "seconds, median of %s" % runs
        if show_range and view.repeat > 1:
            runs_note += " (min-max)"
        out += ["%s; %s" % (s.heading, runs_note), grid_table(table, s.workload, labels, s.cores, s.ns, s.modes, show_range), ""]
        if view.traced:
            figures = contention_table(table, s.workload, labels, s.cores, s.ns, s.modes)
            if figures:
                out += ["%s: GIL contention per cell (medians)" % s.workload, figures, ""]
    return "\n".join(out).rstrip() + "\n"
