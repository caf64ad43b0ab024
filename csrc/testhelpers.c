/* testhelpers.c -- deterministic GIL behaviour for tests and benchmarks.
 *
 * cffi releases the GIL around every call into this module, so each call is
 * itself one GIL release + one reacquisition by the calling thread. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "gt_internal.h"

uint64_t gt_test_spin_ns(uint64_t ns)
{
    uint64_t end = gt_clock_ns() + ns, now;
    while ((now = gt_clock_ns()) < end)
        ;
    return now;
}

/* Take the GIL, keep it for `ns` of busy CPU (like a C extension that
 * forgets to release it), give it back. */
void gt_test_hold_gil_ns(uint64_t ns)
{
    PyGILState_STATE st = PyGILState_Ensure();
    gt_test_spin_ns(ns);
    PyGILState_Release(st);
}

/* A GIL drop + take round trip and nothing else. */
void gt_test_noop(void) {}
