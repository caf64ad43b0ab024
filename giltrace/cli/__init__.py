"""The ``giltrace`` command line: ``main(argv) -> int``, one module per subcommand.

Each subcommand module defines ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``.  Errors meant for the user are raised as
:class:`giltrace.errors.UsageError` (or another ``GiltraceError``) and printed
as one line on stderr with a non-zero exit status.  A closed stdout
(``giltrace summary t.gtr | head``) ends a command quietly with status 141;
nothing else is caught.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
from typing import List, Optional

from ..errors import GiltraceError

# Module names under giltrace.cli, in the order shown by --help.
SUBCOMMANDS = ["run", "attach", "top", "summary", "timeline", "export", "report", "demo", "bench", "metrics"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line (no usage dump) and exits 2."""

    def error(self, message: str) -> "None":  # type: ignore[override]
        sys.stderr.write("giltrace: error: %s\n" % message)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(prog="giltrace", description="Who is waiting for the GIL, for how long, and because of whom.")
    parser.add_argument("--version", action="version", version="giltrace " + __version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in SUBCOMMANDS:
        module = importlib.import_module("giltrace.cli." + name)  # a broken command must show, not vanish
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    try:
        try:
            args = _parse(parser, list(sys.argv[1:] if argv is None else argv))
        except SystemExit:  # --help, --version, a usage error: flush while a closed pipe can still be caught
            sys.stdout.flush()
            raise
    except BrokenPipeError:
        return _stdout_closed()
    if not getattr(args, "_module", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    if args._module.NAME == "run":
        # The program runs in this process (giltrace/cli/run.py): what a closed
        # pipe does to it is its own business, exactly as without giltrace.
        return _run(args)
    try:
        status = _run(args)
        sys.stdout.flush()  # a reader that went away shows here, not at interpreter exit
        return status
    except BrokenPipeError:
        return _stdout_closed()


def _parse(parser: argparse.ArgumentParser, argv: List[str]) -> argparse.Namespace:
    program: List[str] = []
    if argv and argv[0] == "run":  # the program's own arguments are not ours to parse
        from .run import split_argv

        own, program = split_argv(argv[1:])
        argv = ["run"] + own
    args = parser.parse_args(argv)
    args.program = program + list(getattr(args, "argv", None) or [])
    return args


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args._module.run(args) or 0)
    except GiltraceError as exc:
        from ..textsafe import printable

        sys.stderr.write("giltrace: error: %s\n" % printable(exc))  # messages can quote the traced program's text
        return exc.exit_code


EXIT_SIGPIPE = 128 + int(signal.SIGPIPE)  # what a shell reports for a tool killed by SIGPIPE (141)


def _stdout_closed() -> int:
    """The reader of our output went away (``giltrace summary t.gtr | head``):
    stop quietly, as Unix tools do.  Python ignores SIGPIPE and raises
    BrokenPipeError instead; pointing stdout at /dev/null keeps the
    interpreter's final flush from reporting it again ("Exception ignored")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # a stdout without a file descriptor (tests' capture)
        pass
    return EXIT_SIGPIPE
