/* testhelpers.c -- deterministic GIL behaviour for tests and benchmarks.
 *
 * cffi releases the GIL around every call into this module, so each call is
 * itself one GIL release + one reacquisition by the calling thread. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <sys/syscall.h>
#include <unistd.h>

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

/* A thread created in C, named at the OS level, that takes the GIL with
 * PyGILState_Ensure (as C extensions' own threads do), holds it `ns`, and
 * ends; joined before returning.  Returns its tid. */
static void *c_thread_main(void *arg)
{
    uint64_t ns = *(uint64_t *)arg;
    pthread_setname_np(pthread_self(), "gt-cthread");
    PyGILState_STATE st = PyGILState_Ensure();
    gt_test_spin_ns(ns);
    PyGILState_Release(st);
    *(uint64_t *)arg = (uint64_t)syscall(SYS_gettid);
    return NULL;
}

uint32_t gt_test_c_thread(uint64_t ns)
{
    pthread_t th;
    uint64_t arg = ns;
    if (pthread_create(&th, NULL, c_thread_main, &arg) != 0)
        return 0;
    pthread_join(th, NULL);
    return (uint32_t)arg;
}

/* A thread started in C (named "gt-cthread") that calls `fn`: a cffi
 * callback, i.e. Python code run by a thread Python never started. */
static void *c_thread_call_main(void *arg)
{
    void (*fn)(void) = *(void (**)(void))arg;
    pthread_setname_np(pthread_self(), "gt-cthread");
    fn();
    *(uint64_t *)arg = (uint64_t)syscall(SYS_gettid);
    return NULL;
}

uint32_t gt_test_c_thread_call(void (*fn)(void))
{
    pthread_t th;
    union {
        void (*fn)(void);
        uint64_t tid;
    } arg;
    arg.fn = fn;
    if (pthread_create(&th, NULL, c_thread_call_main, &arg) != 0)
        return 0;
    pthread_join(th, NULL);
    return (uint32_t)arg.tid;
}

/* gt_test_hold_gil_ns, with CLOCK_MONOTONIC stamps around each step:
 * t[0] before PyGILState_Ensure, t[1] after it, t[2] before
 * PyGILState_Release, t[3] after it.  The trace's hold must start in
 * [t0, t1] and end in [t2, t3], however the threads were scheduled. */
void gt_test_hold_gil_ns_timed(uint64_t ns, uint64_t *t)
{
    t[0] = gt_clock_ns();
    PyGILState_STATE st = PyGILState_Ensure();
    t[1] = gt_clock_ns();
    gt_test_spin_ns(ns);
    t[2] = gt_clock_ns();
    PyGILState_Release(st);
    t[3] = gt_clock_ns();
}
