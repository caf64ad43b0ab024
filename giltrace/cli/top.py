"""``giltrace top --pid PID`` / ``giltrace top -- script.py args``: a live,
refreshing per-thread view of the GIL, in the habit of ``py-spy top``.

With ``--pid`` it attaches (giltrace/attach/) and detaches when you quit;
with a command it runs it under ``giltrace run`` (its output goes to a log,
shown when you quit) and stops it when you quit.  Either way the screen
tails the trace file (giltrace/live.py) and redraws it every ``--interval``
seconds: wait %, hold %, waits/s, reacquisition p50/p99 over the last
``--window`` seconds, who holds the GIL now and the top culprit line.
Keys: ``q`` quits, ``g`` folds / unfolds thread groups.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable

from ..errors import GiltraceError, UsageError

NAME = "top"
HELP = "live per-thread GIL view of a running process (--pid PID) or of a command (-- script.py args)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pid", type=int, help="attach to this running CPython process")
    p.add_argument("--window", type=float, default=5.0, metavar="S", help="seconds the figures cover (default 5)")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between refreshes (default 1)")
    p.add_argument("--unfold", action="store_true", help="start with one row per thread (g toggles)")
    p.add_argument("--iterations", type=int, metavar="N", help="quit after N refreshes (for scripts)")
    p.add_argument("-o", "--output", metavar="FILE", help="also keep the trace in FILE when quitting")
    p.add_argument("--attach-timeout", type=float, default=5.0, metavar="S", help="as for giltrace attach (default 5)")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- script.py [args] (or -- -m module [args])")


class _Keys:
    """Single key presses from a terminal (cbreak mode), restored on exit; nothing without a TTY."""

    def __init__(self) -> None:
        self.fd = sys.stdin.fileno() if sys.stdin and sys.stdin.isatty() else None
        self._saved = None

    def __enter__(self) -> "_Keys":
        if self.fd is not None:
            import termios
            import tty

            self._saved = termios.tcgetattr(self.fd)
            tty.setcbreak(self.fd)
        return self

    def __exit__(self, *exc) -> None:
        if self._saved is not None:
            import termios

            termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)

    def read(self, timeout: float) -> str:
        if self.fd is None:
            time.sleep(timeout)
            return ""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 16).decode(errors="replace") if ready else ""


def run(args: argparse.Namespace) -> int:
    command = list(args.command or [])
    if command and command[0] == "--":
        command = command[1:]
    if (args.pid is None) == (not command):
        raise UsageError("give either --pid PID or a command after -- (giltrace top -- script.py args)")
    if args.window <= 0 or args.interval <= 0:
        raise UsageError("--window and --interval must be > 0")
    if args.output:
        from .attach import check_output

        check_output(args.output)
    if args.pid is not None:
        return _top_of_pid(args)
    return _top_of_command(args, command)


def _top_of_pid(args: argparse.Namespace) -> int:
    from ..attach.session import Session, TargetExited, stop_signals_interrupt

    session = Session(args.pid, attach_timeout_s=args.attach_timeout)
    with stop_signals_interrupt(), session:
        title = "giltrace top: process %d (CPython %s)" % (args.pid, session.target.version_text)
        if not session.interrupted:  # Ctrl-C while attaching: detach at once
            _loop(args, session.trace_path, title, session.running)
        message = "detached from process %d" % args.pid
        try:
            stats = session.stop()
            message += " (%d GIL events traced)" % stats.get("events_written", 0)
        except TargetExited as exc:
            message = str(exc)
        if args.output:
            session.save(args.output)
            message += "; trace in %s" % args.output
    sys.stderr.write("giltrace: %s\n" % message)
    return 0


def _top_of_command(args: argparse.Namespace, command: list) -> int:
    folder = tempfile.mkdtemp(prefix="giltrace-top-")
    trace = os.path.join(folder, "trace.gtr")
    log_path = os.path.join(folder, "output.log")
    try:
        with open(log_path, "wb") as log:
            child = subprocess.Popen(
                [sys.executable, "-m", "giltrace", "run", "-q", "-o", trace] + command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        shown = [os.path.basename(command[0])] + command[1:]
        title = "giltrace top: %s (pid %d)" % (" ".join(shown), child.pid)
        try:
            _loop(args, trace, title, lambda: child.poll() is None)
        finally:
            status = _end(child)
        if args.output and os.path.exists(trace):
            from ..safefiles import open_new

            with open(trace, "rb") as src, open_new(args.output) as dst:
                shutil.copyfileobj(src, dst)
        with open(log_path, "rb") as f:
            tail = f.read()[-4000:].decode(errors="replace")
        if tail:
            sys.stderr.write(tail if tail.endswith("\n") else tail + "\n")
        sys.stderr.write("giltrace: the program %s (status %s)\n" % ("was stopped" if status < 0 else "ended", status))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def _end(child: subprocess.Popen) -> int:
    """Stop the program as Ctrl-C would (its trace is finalised at exit), then harder."""
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(2)
        except subprocess.TimeoutExpired:
            child.terminate()
            try:
                child.wait(5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
    return child.returncode


def _loop(args: argparse.Namespace, path: str, title: str, alive: Callable[[], bool]) -> None:
    """Redraw until q, Ctrl-C, --iterations, or the traced program goes away."""
    from rich.console import Console
    from rich.live import Live

    from ..live import LiveTrace
    from ..render.top import render

    live_trace = LiveTrace(path, keep_s=max(30.0, 2 * args.window))
    folded = not args.unfold
    console = Console(stderr=False)
    n = 0
    status = ""
    with _Keys() as keys, Live(console=console, auto_refresh=False, screen=console.is_terminal, transient=False) as live:
        try:
            while True:
                try:
                    live_trace.poll()
                except GiltraceError as exc:
                    status = str(exc)
                live.update(render(live_trace.snapshot(args.window), title=title, folded=folded, status=status), refresh=True)
                n += 1 if live_trace.start else 0  # --iterations counts refreshes of a running trace
                if args.iterations is not None and n >= args.iterations:
                    return
                if not alive():
                    status = "the program has ended; q quits"
                    if keys.fd is None:
                        return
                deadline = time.monotonic() + args.interval
                while time.monotonic() < deadline:
                    key = keys.read(max(0.0, deadline - time.monotonic()))
                    if "q" in key.lower():
                        return
                    if "g" in key.lower():
                        folded = not folded
                        live.update(render(live_trace.snapshot(args.window), title=title, folded=folded, status=status), refresh=True)
        except KeyboardInterrupt:
            return
