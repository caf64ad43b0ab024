/* gilstate.c -- where the GIL lives in this interpreter.
 *
 * The only file that needs CPython's internal headers (built with
 * Py_BUILD_CORE_MODULE).  The struct _gil_runtime_state layout is identical
 * on 3.9-3.13; only the way to reach it changed (docs/how-it-works.md):
 *   3.9-3.11  _PyRuntime.ceval.gil       (one GIL per process)
 *   3.12+     interp->ceval.gil          (a pointer; we trace the main interpreter's)
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdio.h>
#include <string.h>

#include "gt_internal.h"

#if PY_VERSION_HEX >= 0x03090000 && !defined(Py_GIL_DISABLED)
#    include "internal/pycore_runtime.h"
#    include "internal/pycore_interp.h"
#    if PY_VERSION_HEX >= 0x030B0000
#        include "internal/pycore_frame.h"
#    else
#        include "frameobject.h"
#    endif
#    define GT_SUPPORTED 1
#endif

int gt_locate_gil(gt_gil *out, char *err, size_t errlen)
{
#if defined(Py_GIL_DISABLED)
    snprintf(err, errlen, "this is a free-threaded CPython build: it has no GIL to trace");
    return -1;
#elif !defined(GT_SUPPORTED)
    snprintf(err, errlen, "CPython %d.%d is too old: giltrace needs 3.9 or newer", PY_MAJOR_VERSION, PY_MINOR_VERSION);
    return -1;
#else
    struct _gil_runtime_state *gil;
#    if PY_VERSION_HEX < 0x030C0000
    gil = &_PyRuntime.ceval.gil;
#    else
    PyInterpreterState *interp = PyInterpreterState_Main();
    gil = interp ? interp->ceval.gil : NULL;
#    endif
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

/* ------------------------------------------------------------------------
 * Code locations, for attribution.  Called from the release/wait hooks with
 * the GIL's mutex held: no thread can run Python meanwhile, so the calling
 * thread's frames are stable.  Nothing here allocates or calls into Python
 * beyond reading objects (PyCode_Addr2Line only walks the line table).
 */

#ifdef GT_SUPPORTED
/* This thread's Python stack, innermost first: up to `max` code objects and
 * the byte offsets of the instructions being executed.  Returns the count. */
int gt_code_stack(const void **codes, int *offsets, int max)
{
    PyThreadState *ts = PyGILState_GetThisThreadState();
    if (ts == NULL)
        return 0;
    int n = 0;
#    if PY_VERSION_HEX < 0x030B0000
    for (PyFrameObject *f = ts->frame; f && n < max; f = f->f_back, n++) {
        codes[n] = f->f_code;
#        if PY_VERSION_HEX < 0x030A0000
        offsets[n] = f->f_lasti; /* bytes on 3.9 */
#        else
        offsets[n] = f->f_lasti * (int)sizeof(_Py_CODEUNIT); /* code units on 3.10 */
#        endif
    }
#    else
#        if PY_VERSION_HEX < 0x030D0000
    _PyInterpreterFrame *f = ts->cframe ? ts->cframe->current_frame : NULL;
#        else
    _PyInterpreterFrame *f = ts->current_frame;
#        endif
    for (; f && n < max; f = f->previous) {
        if (_PyFrame_IsIncomplete(f))
            continue;
#        if PY_VERSION_HEX < 0x030D0000
        PyCodeObject *co = f->f_code;
#        else
        if (!PyCode_Check(f->f_executable))
            continue;
        PyCodeObject *co = (PyCodeObject *)f->f_executable;
#        endif
        codes[n] = co;
        offsets[n] = _PyInterpreterFrame_LASTI(f) * (int)sizeof(_Py_CODEUNIT);
        n++;
    }
#    endif
    return n;
}

/* Copy a str object into UTF-8 without allocating (code names and file
 * names are ready, canonical strings). */
static void copy_str(PyObject *s, char *out, size_t cap)
{
    size_t n = 0;
    if (s && PyUnicode_Check(s)) {
        int kind = PyUnicode_KIND(s);
        const void *data = PyUnicode_DATA(s);
        Py_ssize_t len = PyUnicode_GET_LENGTH(s);
        for (Py_ssize_t i = 0; i < len; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            unsigned char buf[4];
            size_t k;
            if (c < 0x80) {
                buf[0] = (unsigned char)c;
                k = 1;
            } else if (c < 0x800) {
                buf[0] = 0xC0 | (c >> 6);
                buf[1] = 0x80 | (c & 0x3F);
                k = 2;
            } else if (c < 0x10000) {
                buf[0] = 0xE0 | (c >> 12);
                buf[1] = 0x80 | ((c >> 6) & 0x3F);
                buf[2] = 0x80 | (c & 0x3F);
                k = 3;
            } else {
                buf[0] = 0xF0 | (c >> 18);
                buf[1] = 0x80 | ((c >> 12) & 0x3F);
                buf[2] = 0x80 | ((c >> 6) & 0x3F);
                buf[3] = 0x80 | (c & 0x3F);
                k = 4;
            }
            if (n + k >= cap)
                break;
            memcpy(out + n, buf, k);
            n += k;
        }
    }
    out[n] = '\0';
}

/* Identity of a code object beyond its address (addresses are reused). */
void gt_code_identity(const void *code, const void **file_obj, const void **name_obj, int *firstlineno)
{
    const PyCodeObject *co = code;
    *file_obj = co->co_filename;
#    if PY_VERSION_HEX >= 0x030B0000
    *name_obj = co->co_qualname;
#    else
    *name_obj = co->co_name;
#    endif
    *firstlineno = co->co_firstlineno;
}

void gt_code_file(const void *code, char *file, size_t fcap)
{
    copy_str(((const PyCodeObject *)code)->co_filename, file, fcap);
}

void gt_describe_code(const void *code, int offset, char *file, size_t fcap, char *name, size_t ncap, int *line)
{
    PyCodeObject *co = (PyCodeObject *)code;
    const void *f, *n;
    int first;
    gt_code_identity(code, &f, &n, &first);
    copy_str((PyObject *)f, file, fcap);
    copy_str((PyObject *)n, name, ncap);
    *line = offset >= 0 ? PyCode_Addr2Line(co, offset) : first;
}
#else
#    include "no_locations.h"
#endif
