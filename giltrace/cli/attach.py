"""``giltrace attach PID [-o FILE] [--duration S]``: trace a running CPython
process, then leave it as it was (docs/how-it-works.md, "Attaching")."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import UsageError
from ..safefiles import check_unshared, existing_regular

NAME = "attach"
HELP = "trace a CPython process that is already running (by PID), until Ctrl-C or --duration"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pid", type=int, help="process id of the running CPython program")
    p.add_argument("-o", "--output", metavar="FILE", help="trace file to write (default: ./<name>.<pid>.gtr)")
    p.add_argument("--duration", type=float, metavar="S", help="stop after S seconds (default: at Ctrl-C)")
    p.add_argument(
        "--attach-timeout",
        type=float,
        default=5.0,
        metavar="S",
        help="how long to wait for a thread of the target to reach a safe point (default 5)",
    )
    p.add_argument("--sample-period-ms", type=float, default=5.0, help="as for giltrace run (default 5)")
    p.add_argument("--buffer-events", type=int, default=1 << 19, help="event ring capacity (default 524288)")
    p.add_argument("--no-locations", action="store_true", help="don't record code locations")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("-v", "--verbose", action="store_true", help="also say how long the target was stopped")


def default_output(pid: int) -> str:
    try:
        with open("/proc/%d/comm" % pid) as f:
            name = f.read().strip() or "process"
    except OSError:
        name = "process"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return "%s.%d.gtr" % (safe, pid)


def check_output(output: str) -> None:
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise UsageError("cannot write the trace %s: directory %s does not exist" % (output, out_dir))
    st = existing_regular(output, "the trace ")  # a link, FIFO or directory: refused now, not after the tracing
    if st is not None:
        check_unshared(st, output, "the trace ")  # a hard link, another user's file in /tmp
    if not os.access(out_dir, os.W_OK) or (os.path.exists(output) and not os.access(output, os.W_OK)):
        raise UsageError("cannot write the trace %s: permission denied" % output)


def run(args: argparse.Namespace) -> int:
    from ..attach.session import Session, TargetExited, describe, describe_namespace, stop_signals_interrupt

    if args.duration is not None and args.duration <= 0:
        raise UsageError("--duration must be > 0")
    if args.sample_period_ms < 0 or args.buffer_events <= 0 or args.attach_timeout <= 0:
        raise UsageError("--sample-period-ms must be >= 0, --buffer-events and --attach-timeout > 0")
    output = args.output or default_output(args.pid)
    check_output(output)
    session = Session(
        args.pid,
        attach_timeout_s=args.attach_timeout,
        sample_period_ms=args.sample_period_ms,
        buffer_events=args.buffer_events,
        locations=not args.no_locations,
    )
    with stop_signals_interrupt(), session:
        if not args.quiet:
            until = "for %g s" % args.duration if args.duration else "until Ctrl-C"
            sys.stderr.write("giltrace: tracing process %d (CPython %s) %s\n" % (args.pid, session.target.version_text, until))
            if args.verbose:
                sys.stderr.write("giltrace: %s\n" % describe(session))
                if describe_namespace(session):
                    sys.stderr.write("giltrace: %s\n" % describe_namespace(session))
        exited = None
        try:
            if not session.interrupted:
                session.wait(args.duration)
        except KeyboardInterrupt:
            pass
        try:
            stats = session.stop()
        except TargetExited as exc:
            stats, exited = {}, exc
        session.save(output)
    if exited is not None:
        sys.stderr.write("giltrace: %s: %s\n" % (exited, output))
        return 1
    if not args.quiet:
        lost = " (%d events LOST: the ring overflowed, use --buffer-events)" % stats["events_lost"] if stats.get("events_lost") else ""
        sys.stderr.write("giltrace: %d GIL events written to %s%s\n" % (stats.get("events_written", 0), output, lost))
    return 0
