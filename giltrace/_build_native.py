"""cffi builder for ``giltrace._native`` (out-of-line API mode).

``setup.py`` names this file in ``cffi_modules``.  The C core lives in
``csrc/``; ``csrc/giltrace_api.h`` is both the cdef and the C header, so the
two cannot drift apart.  The extension reads the GIL's internal struct, so it
is compiled against the running interpreter's internal headers with
``Py_BUILD_CORE_MODULE`` and outside the limited API (docs/how-it-works.md,
"Measured facts").
"""

from __future__ import annotations

import os
import sysconfig

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")
SOURCES = ["events.c", "writer.c", "encode.c", "control.c", "metrics.c", "clock.c", "hooks.c", "gilstate.c", "locations.c", "testhelpers.c"]


def _api_header() -> str:
    with open(os.path.join(CSRC, "giltrace_api.h")) as f:
        return f.read()


ffibuilder = FFI()
ffibuilder.cdef(_api_header())
ffibuilder.set_source(
    "giltrace._native",
    '#include "gt_internal.h"\n',
    sources=[os.path.relpath(os.path.join(CSRC, s)) for s in SOURCES],
    include_dirs=[CSRC, sysconfig.get_paths()["include"]],
    define_macros=[("Py_BUILD_CORE_MODULE", "1"), ("_CFFI_NO_LIMITED_API", None), ("_GNU_SOURCE", None)],
    extra_compile_args=["-O2", "-std=gnu11", "-fvisibility=hidden", "-Wall", "-Wno-unused-function"],
    libraries=["dl", "pthread"],
    py_limited_api=False,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
