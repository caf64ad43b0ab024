"""``giltrace report TRACE_OR_DIR [-o report.html]``: a self-contained HTML report
of one trace, or of a ``giltrace bench --trace`` output directory."""
from __future__ import annotations

import argparse
import os
import warnings

from ..errors import UsageError
from .summary import add_window_arguments, windowed

NAME = "report"
HELP = "write a self-contained HTML report (tables, timeline, wait latencies, blame matrix)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="a .gtr trace file, or a giltrace bench output directory")
    p.add_argument("-o", "--output", metavar="FILE", help="HTML file (default: SOURCE.html); PNGs are written beside it")
    add_window_arguments(p)


def run(args: argparse.Namespace) -> int:
    if os.path.isdir(args.source):
        output = args.output or os.path.join(args.source, "report.html")
    else:
        output = args.output or os.path.splitext(args.source)[0] + ".html"
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise UsageError("cannot write %s: directory %s does not exist" % (output, out_dir))
    if os.path.isdir(args.source):
        if args.start is not None or args.end is not None:
            raise UsageError("--start/--end apply to one trace, not to a bench directory")
        from ..render.bench_report import bench_report

        for path in bench_report(args.source, output):
            print("wrote %s" % path)
        return 0
    from ..model import IncompleteTraceWarning, load
    from ..render.html import trace_report

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteTraceWarning)
        trace = windowed(load(args.source), args.start, args.end)
    for path in trace_report(trace, output):
        print("wrote %s" % path)
    return 0
