/* gt_internal.h -- shared between the C files of giltrace; not seen by Python. */
#ifndef GT_INTERNAL_H
#define GT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <time.h>

#include "giltrace_api.h"

/* Addresses inside the interpreter's GIL (struct _gil_runtime_state). */
typedef struct {
    pthread_mutex_t *mutex;
    pthread_cond_t *cond;
    pthread_cond_t *switch_cond;
    volatile int *locked;
    volatile unsigned long *switch_number;
    volatile unsigned long *interval_us;
} gt_gil;

/* gilstate.c: the only file that includes CPython's internal headers. */
int gt_locate_gil(gt_gil *out, char *err, size_t errlen);

/* gilstate.c: code objects, read without allocating (attribution). */
int gt_code_stack(const void **codes, int *offsets_bytes, int max);
void gt_code_file(const void *code, char *file, size_t fcap);
void gt_code_identity(const void *code, const void **file_obj, const void **name_obj, int *firstlineno);
void gt_describe_code(const void *code, int offset, char *file, size_t fcap, char *name, size_t ncap, int *line);

/* locations.c: interned (code, offset) -> id, streamed by the writer. */
uint32_t gt_location_here(void);
uint32_t gt_user_location_here(void);
void gt_locations_reset(void);
void gt_set_library_prefixes(const char *newline_separated);
size_t gt_locations_take(unsigned char *buf, size_t cap, uint32_t *count);
uint64_t gt_locations_overflow(void);

/* hooks.c: GOT patching of the object that holds the interpreter. */
int gt_hooks_install(char *err, size_t errlen);
void gt_hooks_uninstall(void);

/* recorder.c: called by the hooks. */
void gt_on_mutex_lock(pthread_mutex_t *m);
void gt_on_mutex_unlock(pthread_mutex_t *m);
void gt_on_cond_timedwait_enter(pthread_cond_t *c, unsigned long *saved_switch);
void gt_on_cond_timedwait_exit(pthread_cond_t *c, int rc, unsigned long saved_switch);
void gt_on_cond_signal(pthread_cond_t *c);

static inline uint64_t gt_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define GT_TLS __thread __attribute__((tls_model("initial-exec")))

/* clock.c: event time stamps ("ticks"): the TSC where usable, else ns. */
#if defined(__x86_64__)
#    include <x86intrin.h>
#endif
extern int gt_tsc_usable;
static inline uint64_t gt_ticks(void)
{
#if defined(__x86_64__)
    if (__builtin_expect(gt_tsc_usable, 1))
        return __rdtsc();
#endif
    return gt_clock_ns();
}
const char *gt_clock_start(void); /* at trace start: decides, reads the start pair */
uint64_t gt_clock_start_tick(void);
void gt_clock_refine(void);             /* writer: better rate from a longer baseline */
uint64_t gt_ticks_to_ns(uint64_t tick); /* CLOCK_MONOTONIC ns */
uint64_t gt_tick_span_to_ns(uint64_t ticks);
double gt_clock_ns_per_tick(void); /* the latest rate (gt_clock_refine) */

#endif
