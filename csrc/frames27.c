/* frames27.c -- code locations under CPython 2.7 (the old GIL's library).
 *
 * The library has no Python header (giltrace/_build_oldgil.py), so this is
 * the one file that knows 2.7's struct layouts on 64-bit Linux, the way
 * gilstate.c knows 3.x's from the headers.  The starter (giltrace/oldgil.py)
 * compares every offset below with the running interpreter's objects
 * (gt_old_layout) and turns locations on only if all agree
 * (docs/how-it-works.md, "The old GIL (2.7)").
 *
 * Called from the hooks with the GIL held (just before its sem_post, or just
 * after its sem_wait returned): no thread runs Python meanwhile, so the
 * thread states and frames read here are stable.
 */
#ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>

#include "gt_internal.h"
#include "oldgil.h"

enum {
    TS_FRAME = 16,        /* PyThreadState.frame */
    TS_THREAD_ID = 144,   /* PyThreadState.thread_id (pthread_self) */
    F_BACK = 24,          /* PyFrameObject.f_back */
    F_CODE = 32,          /* PyFrameObject.f_code */
    F_LASTI = 120,        /* PyFrameObject.f_lasti (int, bytes) */
    CO_FILENAME = 80,     /* PyCodeObject.co_filename (str) */
    CO_NAME = 88,         /* PyCodeObject.co_name (str) */
    CO_FIRSTLINENO = 96,  /* PyCodeObject.co_firstlineno (int) */
    STR_SIZE = 16,        /* PyStringObject.ob_size */
    STR_SVAL = 36,        /* PyStringObject.ob_sval */
    MAX_DEPTH_WALK = 4096 /* a cycle guard for a corrupt stack */
};

static const int layout[] = {TS_FRAME,    TS_THREAD_ID, F_BACK,         F_CODE,   F_LASTI,
                             CO_FILENAME, CO_NAME,      CO_FIRSTLINENO, STR_SIZE, STR_SVAL};

static void *(*interp_head)(void);
static void *(*thread_head)(void *);
static void *(*thread_next)(void *);
static int (*addr2line)(const void *, int);

/* The offsets above, for the starter to check; NULL when the interpreter
 * lacks a function this file calls. */
const int *gt_old_layout(int *n)
{
    interp_head = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyInterpreterState_Head");
    thread_head = (void *(*)(void *))dlsym(RTLD_DEFAULT, "PyInterpreterState_ThreadHead");
    thread_next = (void *(*)(void *))dlsym(RTLD_DEFAULT, "PyThreadState_Next");
    addr2line = (int (*)(const void *, int))dlsym(RTLD_DEFAULT, "PyCode_Addr2Line");
    *n = (int)(sizeof(layout) / sizeof(layout[0]));
    return interp_head && thread_head && thread_next && addr2line ? layout : NULL;
}

#define AT(p, off, type) (*(type *)((const char *)(p) + (off)))

/* This thread's state.  2.7 swaps it out of _PyThreadState_Current before
 * it posts the GIL's semaphore and back in after its wait, so neither hook
 * sees it there: it is looked up in the interpreter's list, every time (a
 * dying thread frees its state just before its last release; the list, read
 * with the GIL held, never holds a freed one).  Called only when a location
 * is recorded: a release somebody waits for, or a wait. */
static const void *this_tstate(void)
{
    long self = (long)pthread_self();
    if (!interp_head)
        return NULL;
    void *interp = interp_head();
    for (const void *ts = interp ? thread_head(interp) : NULL; ts; ts = thread_next((void *)ts))
        if (AT(ts, TS_THREAD_ID, long) == self)
            return ts;
    return NULL;
}

int gt_code_stack(const void **codes, int *offsets, int max)
{
    const void *ts = this_tstate();
    if (!ts)
        return 0;
    int n = 0, walked = 0;
    for (const void *f = AT(ts, TS_FRAME, const void *); f && n < max && walked < MAX_DEPTH_WALK;
         f = AT(f, F_BACK, const void *)) {
        walked++;
        codes[n] = AT(f, F_CODE, const void *);
        offsets[n] = AT(f, F_LASTI, int);
        n++;
    }
    return n;
}

void gt_code_identity(const void *code, const void **file_obj, const void **name_obj, int *firstlineno)
{
    *file_obj = AT(code, CO_FILENAME, const void *);
    *name_obj = AT(code, CO_NAME, const void *);
    *firstlineno = AT(code, CO_FIRSTLINENO, int);
}

/* A 2.7 str's bytes (file names are bytes there: copied as they are). */
static void copy_str(const void *s, char *out, size_t cap)
{
    size_t n = 0;
    if (s) {
        ptrdiff_t len = AT(s, STR_SIZE, ptrdiff_t);
        n = len > 0 ? (size_t)len : 0;
        if (n >= cap)
            n = cap - 1;
        memcpy(out, (const char *)s + STR_SVAL, n);
    }
    out[n] = '\0';
}

void gt_code_file(const void *code, char *file, size_t fcap)
{
    copy_str(AT(code, CO_FILENAME, const void *), file, fcap);
}

void gt_describe_code(const void *code, int offset, char *file, size_t fcap, char *name, size_t ncap, int *line)
{
    copy_str(AT(code, CO_FILENAME, const void *), file, fcap);
    copy_str(AT(code, CO_NAME, const void *), name, ncap);
    *line = offset >= 0 && addr2line ? addr2line(code, offset) : AT(code, CO_FIRSTLINENO, int);
}
