"""``giltrace report TRACE_OR_DIR [-o report.html]``: a self-contained HTML report
of one trace, or of a ``giltrace bench --trace`` output directory."""

from __future__ import annotations

import argparse
import os

from ..errors import UsageError
from ..safefiles import open_new
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

        doc = bench_report(args.source, output)
    else:
        from ..model import load
        from ..render.html import trace_report

        doc = trace_report(windowed(load(args.source, warn=False), args.start, args.end), output)
    for path in write_document(doc, output):
        print("wrote %s" % path)
    return 0


def write_document(doc, output: str) -> "list[str]":
    """The report and the files beside it; the paths written."""
    base = os.path.dirname(os.path.abspath(output))
    written = []
    try:
        with open_new(output, binary=False) as f:
            f.write(doc.text)
        written.append(output)
        for rel, data in doc.attachments.items():
            path = os.path.join(base, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open_new(path) as f:
                f.write(data)
            written.append(os.path.join(os.path.dirname(output), rel))
    except OSError as exc:
        raise UsageError("cannot write %s: %s" % (exc.filename or output, exc.strerror or exc)) from None
    return written
