"""``giltrace export TRACE --format chrome|csv -o FILE``."""

from __future__ import annotations

import argparse
import json
import os

from ..errors import UsageError
from ..safefiles import existing_regular, open_new

NAME = "export"
HELP = "export a trace as Chrome/Perfetto JSON or as CSV intervals"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", help="a .gtr file")
    from ..render.export import EXPORTERS

    p.add_argument(
        "--format",
        choices=list(EXPORTERS),
        default="chrome",
        help="; ".join("%s: %s" % (e.name, e.help) for e in EXPORTERS.values()) + " (default: chrome)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: TRACE.json / TRACE.csv)")
    p.add_argument(
        "--clock",
        choices=["monotonic", "epoch"],
        default="monotonic",
        help="chrome timestamps: CLOCK_MONOTONIC us (default, as VizTracer on Linux) or Unix-epoch us",
    )
    p.add_argument(
        "--merge",
        metavar="JSON",
        help="add the GIL tracks to this Chrome/VizTracer trace of the same run (its clock is detected) and write the combination",
    )


def run(args: argparse.Namespace) -> int:
    from ..render.export import EXPORTERS

    exporter = EXPORTERS[args.format]
    ext = exporter.extension
    output = args.output or os.path.splitext(args.trace)[0] + ext
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise UsageError("cannot write %s: directory %s does not exist" % (output, out_dir))
    from ..model import load

    trace = load(args.trace, warn=False)
    if args.merge and args.format != "chrome":
        raise UsageError("--merge works with --format chrome only")
    other = None
    if args.merge:
        try:
            with open(args.merge) as f:
                other = json.load(f)
        except (OSError, ValueError, RecursionError) as exc:
            raise UsageError("cannot read %s as Chrome trace JSON: %s" % (args.merge, exc)) from None
        events = other.get("traceEvents", []) if isinstance(other, dict) else other
        if not isinstance(events, list):
            raise UsageError("cannot read %s as Chrome trace JSON: no list of trace events" % args.merge)
    # Streamed into a temporary file beside the output, renamed when complete:
    # never a half-written file under the real name, nor a stray one after an error.
    tmp = "%s.%d.tmp" % (output, os.getpid())
    existing_regular(output)  # replaced by a rename below: not through a link, not a FIFO
    out = open_new(tmp, exclusive=True)  # a planted link or FIFO there is refused, and left alone
    try:
        with out as f:
            n = exporter.write(trace, f, clock=args.clock, merge=other)
        os.replace(tmp, output)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise UsageError("cannot write %s: %s" % (output, exc.strerror or exc)) from None
        raise
    print("wrote %s (%d %s)" % (output, n, exporter.records))
    return 0
