"""``giltrace report TRACE [-o report.html]``: a self-contained HTML report."""
from __future__ import annotations

import argparse
import os
import warnings

from ..errors import UsageError

NAME = "report"
HELP = "write a self-contained HTML report (tables, timeline, wait latencies, blame matrix)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a .gtr trace file")
    p.add_argument("-o", "--output", metavar="FILE", help="HTML file (default: SOURCE.html); PNGs are written beside it")


def run(args: argparse.Namespace) -> int:
    if os.path.isdir(args.source):
        raise UsageError("%s is a directory: reports of `giltrace bench` output directories are not available yet" % args.source)
    output = args.output or os.path.splitext(args.source)[0] + ".html"
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise UsageError("cannot write %s: directory %s does not exist" % (output, out_dir))
    from ..model import IncompleteTraceWarning, load
    from ..render.html import trace_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteTraceWarning)
        trace = load(args.source)
    for path in trace_report(trace, output):
        print("wrote %s" % path)
    return 0
