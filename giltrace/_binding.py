"""The only importer of the cffi extension.  Everything else asks here.

Importing giltrace never fails because of the extension: an interpreter we
cannot trace gets :class:`UnsupportedInterpreter` with the reason when a trace
is started, not an ImportError at import time.
"""
from __future__ import annotations

import platform
import sys
import sysconfig
from typing import Any, Optional, Tuple

from .errors import UnsupportedInterpreter

SUPPORTED = ((3, 9), (3, 13))  # inclusive range of CPython minor versions


def unsupported_reason() -> Optional[str]:
    """Why this interpreter cannot be traced, or None if it can."""
    if not sys.platform.startswith("linux"):
        return "giltrace traces CPython on Linux only (this is %s)" % sys.platform
    if sys.implementation.name != "cpython":
        return "giltrace traces CPython only (this is %s)" % sys.implementation.name
    if sysconfig.get_config_var("Py_GIL_DISABLED"):
        return "this is a free-threaded CPython build (%s): it has no GIL to trace" % platform.python_version()
    if sys.version_info[:2] < SUPPORTED[0]:
        return "CPython %s is too old: giltrace needs 3.9 to 3.13" % platform.python_version()
    if sys.version_info[:2] > SUPPORTED[1]:
        return "CPython %s is not supported yet: giltrace knows the GIL of 3.9 to 3.13" % platform.python_version()
    try:
        from . import _native  # noqa: F401
    except ImportError as exc:
        return "the giltrace native extension is not built for this interpreter (%s); reinstall with pip" % exc
    return None


_cached: Optional[Tuple[Any, Any]] = None


def native() -> Tuple[Any, Any]:
    """(ffi, lib) of the extension, or UnsupportedInterpreter with the reason."""
    global _cached
    if _cached is None:
        reason = unsupported_reason()
        if reason:
            raise UnsupportedInterpreter(reason)
        from . import _native

        _cached = (_native.ffi, _native.lib)
    return _cached
