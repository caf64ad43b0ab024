"""``giltrace timeline TRACE [-o out.png|.svg|.pdf] [--start S --end S] [--threads a,b]``."""

from __future__ import annotations

import argparse
import os

from ..errors import UsageError
from .summary import add_window_arguments

NAME = "timeline"
HELP = "draw the GIL timeline of a trace (PNG, SVG or PDF)"
FORMATS = (".png", ".svg", ".pdf")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", help="a .gtr file")
    p.add_argument("-o", "--output", metavar="FILE", help="image to write: .png, .svg or .pdf (default: TRACE.png)")
    add_window_arguments(p)
    p.add_argument("--threads", metavar="A,B", help="only these threads (names or tids, comma-separated)")
    p.add_argument("--width", type=int, default=1600, metavar="PX", help="image width in pixels (default 1600)")


def run(args: argparse.Namespace) -> int:
    output = args.output or os.path.splitext(args.trace)[0] + ".png"
    if os.path.splitext(output)[1].lower() not in FORMATS:
        raise UsageError("unknown image format %r: use one of %s" % (output, ", ".join(FORMATS)))
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise UsageError("cannot write %s: directory %s does not exist" % (output, out_dir))
    if args.width < 200:
        raise UsageError("--width must be at least 200 pixels")

    import matplotlib

    matplotlib.use("Agg")
    from ..model import load
    from ..render.timeline import choose_window, plot_timeline

    trace = load(args.trace, warn=False)
    threads = [t.strip() for t in args.threads.split(",") if t.strip()] if args.threads else None
    try:
        w = choose_window(trace, args.start, args.end)
        fig, _ = plot_timeline(trace, window=w, threads=threads, width_px=args.width)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from ..safefiles import open_new

    try:
        with open_new(output) as f:
            fig.savefig(f, format=os.path.splitext(output)[1].lower()[1:])
    except OSError as exc:
        raise UsageError("cannot write %s: %s" % (output, exc.strerror or exc)) from None
    print("wrote %s (%.3f-%.3f s: %s)" % (output, (w.start_ns - trace.start_ns) / 1e9, (w.end_ns - trace.start_ns) / 1e9, w.reason))
    episodes = trace.episodes()
    if episodes:
        print(
            "episodes of abnormal GIL waiting (draw one with --start/--end): %s"
            % ", ".join("%.2f-%.2f s" % ((e.start_ns - trace.start_ns) / 1e9, (e.end_ns - trace.start_ns) / 1e9) for e in episodes)
        )
    return 0
