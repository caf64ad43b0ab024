"""The ``giltrace`` command line: ``main(argv) -> int``, one module per subcommand.

Each subcommand module defines ``NAME``, ``HELP``, ``add_arguments(parser)``
and ``run(args) -> int``.  Errors meant for the user are raised as
:class:`giltrace.errors.UsageError` (or another ``GiltraceError``) and printed
as one line on stderr with a non-zero exit status; nothing else is caught.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from ..errors import GiltraceError

# Module names under giltrace.cli, in the order shown by --help.
SUBCOMMANDS = ["run", "summary", "timeline", "export", "report", "demo", "bench"]

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
        try:
            module = importlib.import_module("giltrace.cli." + name)
        except ImportError:  # a subcommand module that is not part of this build
            continue
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_module=module)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    program: List[str] = []
    if argv and argv[0] == "run":  # the program's own arguments are not ours to parse
        from .run import split_argv

        own, program = split_argv(argv[1:])
        argv = ["run"] + own
    args = parser.parse_args(argv)
    args.program = program + list(getattr(args, "argv", None) or [])
    if not getattr(args, "_module", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args._module.run(args) or 0)
    except GiltraceError as exc:
        sys.stderr.write("giltrace: error: %s\n" % exc)
        return exc.exit_code
