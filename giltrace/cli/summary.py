"""``giltrace summary FILE [--start S --end S] [--format text|json]``: the
per-thread table and the diagnosis of a trace (or of a window of it)."""

from __future__ import annotations

import argparse
import json

from ..errors import UsageError

NAME = "summary"
HELP = "print the per-thread GIL table and the diagnosis of a trace file (text or JSON)"


def add_window_arguments(p: argparse.ArgumentParser) -> None:
    """--start/--end, shared by summary, report and timeline."""
    p.add_argument("--start", type=float, metavar="S", help="window start, seconds from the trace start")
    p.add_argument("--end", type=float, metavar="S", help="window end, seconds from the trace start")


def windowed(trace, start, end):
    """The trace restricted to --start/--end (the trace itself without them); UsageError on an empty window."""
    if start is None and end is None:
        return trace
    if (start is not None and start < 0) or (end is not None and end <= 0):
        raise UsageError("--start and --end are seconds from the trace start: %s, %s" % (start, end))
    try:
        return trace.window(start, end)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", help="a .gtr file written by giltrace")
    add_window_arguments(p)
    p.add_argument(
        "--format",
        choices=["text", "json"],
        default="text",
        help="text (default), or json: the diagnosis as documented in docs/api.md (for scripts and CI gates)",
    )


def run(args: argparse.Namespace) -> int:
    from ..render.text import summary
    from ..model import load

    whole = load(args.trace, warn=False)  # summary prints the warning itself
    trace = windowed(whole, args.start, args.end)
    if args.format == "json":
        from ..diagnosis import SCHEMA

        out = (
            trace.diagnose().to_dict()
            if len(trace.events)
            else {"schema": SCHEMA, "trace": trace.path, "findings": [], "episodes": [], "threads": [], "window_s": list(trace.window_s)}
        )
        out["complete"] = bool(whole.meta.get("complete", True))
        print(json.dumps(out, indent=2))
        return 0
    print(_printable_lines(summary(trace)))
    children = whole.children() if trace is whole else []
    if children:
        from ..render.text import processes

        print()
        print("Processes (each has its own GIL; summarise one with: giltrace summary FILE):")
        print(processes(trace, children))
    return 0


def _printable_lines(text: str) -> str:
    """The summary names the program's threads: their control characters escaped, line by line."""
    from ..textsafe import printable

    return "\n".join(printable(line) for line in text.split("\n"))
