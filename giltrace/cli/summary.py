"""``giltrace summary FILE``: the per-thread table of a trace."""
from __future__ import annotations

import argparse
import warnings

NAME = "summary"
HELP = "print the per-thread GIL table of a trace file"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", help="a .gtr file written by giltrace")


def run(args: argparse.Namespace) -> int:
    from ..render.text import summary
    from ..model import IncompleteTraceWarning, load

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteTraceWarning)  # summary prints it itself
        trace = load(args.trace)
    print(summary(trace))
    children = trace.children()
    if children:
        from ..render.text import processes

        print()
        print("Processes (each has its own GIL; summarise one with: giltrace summary FILE):")
        print(processes(trace, children))
    return 0
