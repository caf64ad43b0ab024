"""The only importer of the cffi extension.  Everything else asks here.

Importing giltrace never fails because of the extension: an interpreter we
cannot trace gets :class:`UnsupportedInterpreter` with the reason when a trace
is started, not an ImportError at import time.
"""

from __future__ import annotations

import sys

from . import interpreters
from .errors import UnsupportedInterpreter

SUPPORTED = interpreters.traceable_range()  # inclusive range of CPython minor versions


def in_main_interpreter() -> bool:
    """False in a sub-interpreter: only the main interpreter is traced, and a
    sub-interpreter must not touch the process's trace (its start-up runs
    the GILTRACE .pth again)."""
    import _thread

    is_main = getattr(_thread, "_is_main_interpreter", None)  # 3.12+
    if is_main is not None:
        return bool(is_main())
    had = "_xxsubinterpreters" in sys.modules  # 3.9-3.11: a small built-in module
    try:
        import _xxsubinterpreters as subinterpreters
    except ImportError:
        return True
    try:
        return subinterpreters.get_current() == subinterpreters.get_main()
    finally:
        if not had:  # leave the program's sys.modules as it was
            sys.modules.pop("_xxsubinterpreters", None)


def unsupported_reason() -> "str | None":
    """Why this interpreter cannot be traced, or None if it can."""
    version = sys.version.split()[0]
    if not sys.platform.startswith("linux"):
        return "giltrace traces CPython on Linux only (this is %s)" % sys.platform
    if sys.implementation.name != "cpython":
        return "giltrace traces CPython only (this is %s)" % sys.implementation.name
    if "t" in getattr(sys, "abiflags", ""):  # Py_GIL_DISABLED builds: python3.13t
        return "this is a free-threaded CPython build (%s): it has no GIL to trace" % version
    if not interpreters.is_traceable(sys.version_info):  # too old, or not known yet
        return interpreters.refusal(sys.version_info, version)
    if not in_main_interpreter():
        return "giltrace traces the main interpreter only; this is a sub-interpreter"
    try:
        from . import _native  # noqa: F401
    except ImportError as exc:
        return "the giltrace native extension is not built for this interpreter (%s); reinstall with pip" % exc
    return None


_cached: "tuple[object, object] | None" = None


def native() -> "tuple[Any, Any]":  # noqa: F821 (cffi FFI, lib); typing is not imported at start-up
    """(ffi, lib) of the extension, or UnsupportedInterpreter with the reason."""
    global _cached
    if _cached is None:
        reason = unsupported_reason()
        if reason:
            raise UnsupportedInterpreter(reason)
        from . import _native

        _cached = (_native.ffi, _native.lib)
    return _cached
