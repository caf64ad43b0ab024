"""``giltrace metrics [--port 9464] [--log FILE] -- command [args...]``.

Runs a command with always-on GIL metrics in every Python process it starts
from this environment (the GILTRACE_METRICS variables read by
giltrace-autostart.pth; docs/metrics.md): a Prometheus endpoint, a JSON-lines
log, or both.  The command replaces this process (exec), so its exit status
and signals are its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket

from ..autostart import METRICS_ENV, METRICS_LOG_ENV
from ..errors import GiltraceError, UsageError
from ..safefiles import check_unshared, existing_regular

NAME = "metrics"
HELP = "run a command with always-on GIL metrics (Prometheus endpoint and/or JSON-lines log)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        metavar="[HOST:]PORT",
        help="serve Prometheus metrics here (e.g. 9464: on 127.0.0.1; 0.0.0.0:9464 or [::]:9464: every interface)",
    )
    p.add_argument("--host", metavar="HOST", help="the address to serve on (default 127.0.0.1; 0.0.0.0 or :: for every interface)")
    p.add_argument("--log", metavar="FILE", help="append a JSON line of the metrics every --interval seconds")
    p.add_argument("--interval", type=float, default=10.0, help="seconds between log lines (default 10)")
    p.add_argument("--alert-ms", type=float, help="log a warning for each GIL wait, or hold while others wait, over this")
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- command [args...]", help="the command to run")


def run(args: argparse.Namespace) -> int:
    from ..monitoring import parse_interval, parse_listen

    command = [a for a in args.program] or []
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise UsageError("nothing to run: giltrace metrics --port 9464 -- python app.py")
    if not args.port and not args.log:
        raise UsageError("say where the metrics go: --port [HOST:]PORT and/or --log FILE")
    env = dict(os.environ)
    if args.host and not args.port:
        raise UsageError("--host needs --port")
    if args.port:
        listen = args.port if ":" in args.port else ":" + args.port
        if args.host:
            if listen[0] != ":":
                raise UsageError("give the host once: --host %s --port PORT, or --port HOST:PORT" % args.host)
            listen = ("[%s]" % args.host if ":" in args.host else args.host) + listen
        try:
            host, port = parse_listen(listen)
        except ValueError as exc:
            raise UsageError("--port: %s" % exc) from None
        try:  # now, in one line: in the program it would only be a warning, and no endpoint
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (OSError, UnicodeError) as exc:
            raise UsageError("cannot serve metrics on %s: %s" % (listen, getattr(exc, "strerror", None) or exc)) from None
        env[METRICS_ENV] = listen
    if args.log:
        if not os.path.isdir(os.path.dirname(os.path.abspath(args.log))):
            raise UsageError("cannot write %s: its directory does not exist" % args.log)
        st = existing_regular(args.log)  # a link, FIFO or directory: refused now, not by a warning from the program
        if st is not None:
            check_unshared(st, args.log)
        env[METRICS_LOG_ENV] = os.path.abspath(args.log)
        try:
            env["GILTRACE_METRICS_INTERVAL"] = str(parse_interval(str(args.interval)))
        except GiltraceError as exc:
            raise UsageError("--interval: %s" % exc) from None
    if args.alert_ms is not None:
        if args.alert_ms <= 0:
            raise UsageError("--alert-ms must be > 0")
        env["GILTRACE_METRICS_ALERT_MS"] = str(args.alert_ms)
    exe = shutil.which(command[0])
    if exe is None:
        raise UsageError("%s: command not found" % command[0])
    try:
        os.execve(exe, command, env)
    except OSError as exc:
        raise UsageError("cannot run %s: %s" % (command[0], exc.strerror or exc)) from None
    return 0  # not reached
