/* gilstate.c -- where the GIL lives in this interpreter.
 *
 * The only file that needs CPython's internal headers (built with
 * Py_BUILD_CORE_MODULE).  The struct _gil_runtime_state layout is identical
 * on 3.9-3.13; only the way to reach it changed (DESIGN.md section 2):
 *   3.9-3.11  _PyRuntime.ceval.gil       (one GIL per process)
 *   3.12+     interp->ceval.gil          (a pointer; we trace the main interpreter's)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>

#include "gt_internal.h"

#if PY_VERSION_HEX >= 0x03090000 && !defined(Py_GIL_DISABLED)
#  include "internal/pycore_runtime.h"
#  include "internal/pycore_interp.h"
#  define GT_SUPPORTED 1
#endif

int gt_locate_gil(gt_gil *out, char *err, size_t errlen)
{
#if defined(Py_GIL_DISABLED)
    snprintf(err, errlen, "this is a free-threaded CPython build: it has no GIL to trace");
    return -1;
#elif !defined(GT_SUPPORTED)
    snprintf(err, errlen, "CPython %d.%d is too old: giltrace needs 3.9 or newer",
             PY_MAJOR_VERSION, PY_MINOR_VERSION);
    return -1;
#else
    struct _gil_runtime_state *gil;
#  if PY_VERSION_HEX < 0x030C0000
    gil = &_PyRuntime.ceval.gil;
#  else
    PyInterpreterState *interp = PyInterpreterState_Main();
    gil = interp ? interp->ceval.gil : NULL;
#  endif
    if (gil == NULL || *(volatile int *)&gil->locked < 0) {
        snprintf(err, errlen, "the interpreter's GIL is not created yet");
        return -1;
    }
    out->mutex = &gil->mutex;
    out->cond = &gil->cond;
    out->switch_cond = &gil->switch_cond;
    out->locked = (volatile int *)&gil->locked;
    out->switch_number = (volatile unsigned long *)&gil->switch_number;
    out->interval_us = (volatile unsigned long *)&gil->interval;
    return 0;
#endif
}
