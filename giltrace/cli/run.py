"""``giltrace run [-o FILE] script.py [args...]`` / ``giltrace run -m module [args...]``.

Runs the program as ``python script.py args`` would -- same ``sys.argv``,
``sys.path[0]``, ``__main__``, output and exit status -- with a GIL trace of
the whole process.  The trace stops at interpreter exit, after Python has
joined the program's non-daemon threads, so their activity is included.
"""

from __future__ import annotations

import argparse
import atexit
import os
import runpy
import sys
from typing import List, Tuple

from ..autostart import ENV
from ..errors import UsageError

NAME = "run"
HELP = "run a Python program under a GIL trace"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", metavar="FILE", help="trace file to write (default: ./<program>.gtr)")
    p.add_argument("-m", dest="module", metavar="MODULE", help="run a library module as a script, like python -m")
    p.add_argument("-q", "--quiet", action="store_true", help="don't print where the trace went")
    p.add_argument(
        "--subprocesses",
        action="store_true",
        help="also trace child processes (multiprocessing fork/spawn/forkserver, ProcessPoolExecutor, "
        "any python started with this environment): one file each, FILE with .<pid> before the extension",
    )
    p.add_argument(
        "--sample-period-ms",
        type=float,
        default=5.0,
        help="period of GIL samples while a holder keeps the GIL past the switch interval (0 disables; default 5)",
    )
    p.add_argument("--buffer-events", type=int, default=1 << 19, help="event ring capacity (default 524288)")
    p.add_argument("--no-locations", action="store_true", help="don't record code locations (saves ~6 ns per GIL release)")
    p.add_argument(
        "--cpu-state",
        action="store_true",
        help="also sample each thread's scheduler counters and the cgroup's throttling every sample period: "
        "was the holder running? (docs/how-it-works.md, CPU state)",
    )
    p.add_argument(
        "--python",
        metavar="PATH",
        help="run the program under this interpreter instead (CPython 2.7, through the old-GIL recorder, "
        "or 3.9-3.13 with giltrace importable)",
    )
    p.add_argument(
        "--switch-interval",
        metavar="S",
        help="sys.setswitchinterval(S) before the program's first line (seconds, 1e-06 to 3600, e.g. 0.001): check a "
        "finding's predicted effect by rerunning; this process and the children it forks",
    )
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="script.py [args...]", help="the program and its arguments")


# Our options that take a value; everything from the script (or after -m MODULE) on belongs to the program.
_VALUED = {"-o", "--output", "--sample-period-ms", "--buffer-events", "--python", "--switch-interval"}


def split_argv(argv: List[str]) -> Tuple[List[str], List[str]]:
    """Split ``run``'s arguments into ours and the program's, the way python
    does: ``giltrace run -m pkg --help`` passes --help to pkg."""
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            return argv[:i], argv[i + 1 :]
        if tok == "-m":
            return argv[: i + 2], argv[i + 2 :]
        if tok.startswith("-m") and len(tok) > 2 and not tok.startswith("--"):
            return argv[: i + 1], argv[i + 1 :]
        if not tok.startswith("-") or tok == "-":
            return argv[:i], argv[i:]
        i += 2 if tok in _VALUED else 1
    return argv, []


def _check(args: argparse.Namespace) -> str:
    if not args.module and not args.program:
        raise UsageError("nothing to run: give a script (giltrace run script.py) or a module (giltrace run -m module)")
    if args.sample_period_ms < 0:
        raise UsageError("--sample-period-ms must be >= 0")
    if args.buffer_events <= 0:
        raise UsageError("--buffer-events must be > 0")
    if args.switch_interval is not None:
        args.switch_interval = switch_interval(args.switch_interval)
        if getattr(args, "python", None):
            raise UsageError("--switch-interval is not supported with --python: set it in the program (sys.setswitchinterval)")
    if args.module:
        stem = args.module.rsplit(".", 1)[-1]
    else:
        script = args.program[0]
        if not os.path.exists(script):
            raise UsageError("can't open file %r: no such file" % script)
        if os.path.isdir(script) and not os.path.exists(os.path.join(script, "__main__.py")):
            raise UsageError("%r is a directory without a __main__.py" % script)
        stem = os.path.splitext(os.path.basename(os.path.abspath(script)))[0]
    output = args.output or stem + ".gtr"
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        raise UsageError("cannot write the trace %s: directory %s does not exist" % (output, out_dir))
    if os.path.islink(output):
        raise UsageError("refusing to write the trace %s: it is a symbolic link" % output)
    if os.path.isdir(output):
        raise UsageError("cannot write the trace %s: it is a directory" % output)
    if os.path.lexists(output) and not os.path.isfile(output):
        raise UsageError("refusing to write the trace %s: it is not a regular file" % output)
    if not args.module and os.path.isfile(output) and os.path.samefile(output, args.program[0]):
        raise UsageError("refusing to write the trace over the program's own script %s" % output)
    if not os.access(out_dir, os.W_OK) or (os.path.exists(output) and not os.access(output, os.W_OK)):
        raise UsageError("cannot write the trace %s: permission denied" % output)
    return output


MIN_SWITCH_INTERVAL_S, MAX_SWITCH_INTERVAL_S = 1e-6, 3600.0


def switch_interval(text: str) -> float:
    """--switch-interval's value: seconds, a positive finite number."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value < float("inf")):
        raise UsageError("--switch-interval must be a positive number of seconds (e.g. 0.001), not %r" % text)
    # The interpreter keeps whole microseconds: below 1 us, or huge, it silently becomes 0.
    if not MIN_SWITCH_INTERVAL_S <= value <= MAX_SWITCH_INTERVAL_S:
        raise UsageError(
            "--switch-interval must be between %g and %g seconds, not %r" % (MIN_SWITCH_INTERVAL_S, MAX_SWITCH_INTERVAL_S, text)
        )
    return value


def _report(tracer, quiet: bool) -> None:
    def report() -> None:
        if quiet or not tracer.stats:
            return
        s = tracer.stats
        if s.get("write_errno"):  # the tracer has said why in one line already (a full disk...)
            lost = " (%d events could not be written)" % s["events_lost"] if s["events_lost"] else ""
        else:
            lost = " (%d events LOST: the ring overflowed, use --buffer-events)" % s["events_lost"] if s["events_lost"] else ""
        children = ""
        if tracer.follow_children:
            import glob

            n = len(glob.glob(tracer.follow_children.replace("%p", "*")))
            children = ", and %d child process trace%s (%s)" % (
                n,
                "" if n == 1 else "s",
                os.path.basename(tracer.follow_children).replace("%p", "*"),
            )
        sys.stderr.write("giltrace: %d GIL events written to %s%s%s\n" % (s["events_written"], tracer.path, lost, children))

    # atexit is LIFO: registered before the trace starts (and registers its
    # own exit hook), this runs after the trace has been finalised.
    atexit.register(report)


def _program_frames(tb, entry: str = ""):
    """Drop the leading frames of giltrace, runpy and the ``giltrace``
    launcher script (``entry``) so the traceback reads as python's own."""
    ours = (os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.path.splitext(runpy.__file__)[0], "<frozen runpy>")
    if entry:
        ours += (entry,)
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(ours):
        tb = tb.tb_next
    return tb


def run(args: argparse.Namespace) -> int:
    output = _check(args)
    if getattr(args, "python", None):  # another interpreter traces itself (giltrace/oldgil_run.py)
        from .. import oldgil_run

        options = oldgil_run.Options(
            buffer_events=args.buffer_events,
            sample_period_ms=args.sample_period_ms,
            locations=not args.no_locations,
            cpu_state=args.cpu_state,
            subprocesses=args.subprocesses,
            quiet=args.quiet,
        )
        return oldgil_run.run(args.python, output, list(args.program), args.module, options)
    from ..tracer import Tracer, active

    stray = active()
    if stray is not None:  # GILTRACE was set: this launcher traced itself at start-up; the program's trace replaces it
        stray.stop(load=False)
        os.unlink(stray.path)

    argv: List[str] = list(args.program)
    launcher = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    follow = None
    if args.subprocesses:
        stem, ext = os.path.splitext(os.path.abspath(output))
        follow = stem + ".%p" + (ext or ".gtr")
        os.environ[ENV] = follow  # spawned interpreters start their own trace (giltrace-autostart.pth)
    tracer = Tracer(
        output,
        sample_period_ms=args.sample_period_ms,
        buffer_events=args.buffer_events,
        locations=not args.no_locations,
        follow_children=follow,
        cpu_state=args.cpu_state,
    )
    _report(tracer, args.quiet)

    if args.module:
        sys.argv = [args.module] + argv  # runpy replaces argv[0] with the module's path
        sys.path[0] = os.getcwd()
    else:
        sys.argv = argv  # as given, like python's; __file__ is absolute (below), like python's since 3.9
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))

    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)  # before the trace starts: its header records it
    tracer.start()  # stopped by the tracer's atexit hook, after threads are joined
    _trim_tracebacks(launcher)
    # Exceptions, SystemExit and KeyboardInterrupt propagate to the
    # interpreter, which handles them exactly as for `python script.py`.
    if args.module:
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        _run_script(argv[0])
    return 0


def _run_script(path: str) -> None:
    """Run a script as ``python path`` does: its module is ``__main__`` with
    an absolute ``__file__`` (and code file name, so tracebacks show it),
    while ``sys.argv[0]`` stays as given.  runpy.run_path would set both to
    the same string.  Directories and zip files go through runpy."""
    if not os.path.isfile(path) or path.endswith((".pyc", ".pyz", ".zip")):
        runpy.run_path(path, run_name="__main__")
        return
    import types

    full = os.path.abspath(path)
    with open(full, "rb") as f:  # bytes: compile() honours a coding cookie
        code = compile(f.read(), full, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__file__ = full
    main.__cached__ = None
    main.__builtins__ = __builtins__
    import importlib.machinery

    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", full)
    sys.modules["__main__"] = main
    exec(code, main.__dict__)


def _trim_tracebacks(launcher: str) -> None:
    """Print uncaught exceptions without giltrace's and runpy's frames."""
    original = sys.excepthook

    def excepthook(exc_type, exc, tb):
        tb = _program_frames(tb, launcher)
        if exc is not None:
            exc = exc.with_traceback(tb)
        original(exc_type, exc, tb)

    sys.excepthook = excepthook
