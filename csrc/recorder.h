/* recorder.h -- the recorder's shared state, between the files of the C core
 * that make a trace (not seen by Python):
 *
 *   events.c   the hooks' side: GIL events into the ring
 *   writer.c   the writer thread: drains, samples, notices it is alone
 *   encode.c   the file's chunks (CRC-32, events in ns, footer)
 *   control.c  start / stop, fork, terminating signals, the last thread's exit
 */
#ifndef GT_RECORDER_H
#define GT_RECORDER_H

#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gt_internal.h"

#define GT_CHUNK_EVENTS_MAX 16384 /* events per EVENTS chunk */
#define GT_SAMPLES_MAX      4096  /* samples buffered between drains */
#define GT_CPU_SAMPLES_MAX  8192  /* CPU-state samples buffered between drains */

/* OS thread names (prctl PR_GET_NAME), one per thread per trace: the names
 * of threads Python never named (C threads calling PyGILState_Ensure). */
#define GT_OS_NAMES_MAX 4096
typedef struct {
    uint32_t tid;
    char name[16];
} gt_os_name;
extern gt_os_name gt_os_names[GT_OS_NAMES_MAX];
extern uint32_t gt_os_names_published; /* release-stored by the hooks */
extern uint32_t gt_py_names_published; /* Python's names up to here are written: release-stored by the hooks */

/* At a GIL release (the GIL's mutex held): Python's names stored so far,
 * stored under the GIL before this release, are handed to the writer. */
static inline void gt_publish_py_names(void)
{
    uint32_t stored = *(volatile uint32_t *)&gt_py_names_stored;
    if (stored != gt_py_names_published)
        __atomic_store_n(&gt_py_names_published, stored, __ATOMIC_RELEASE);
}

enum { GT_STOP_NONE = 0, GT_STOP_FINAL = 1, GT_STOP_PAUSE = 2 };

typedef struct {
    gt_gil gil;
    int have_gil;
    uint32_t active; /* generation while tracing, 0 otherwise */
    uint32_t gen;
    int running;
    pthread_mutex_t control;

    uint32_t session;      /* non-zero while a trace or the metrics are on */
    uint64_t session_tick; /* when it began (clock.c ticks) */
    int hook_users;        /* the trace and/or the metrics: GOT patched while > 0 */

    /* Producer side: only touched with gil->mutex held. */
    uint64_t contention_since; /* when the current run of "someone waits" began */
    uint64_t contended_ticks;
    gt_metrics_thread *holder_metrics; /* the holder's counters (metrics mode) */
    uint32_t last_releaser;
    uint64_t last_switch;
    uint32_t holder_tid;
    int drop_pending;
    int waiters;
    uint64_t lost;
    uint64_t tail; /* producer index (release-stored by producers) */

    gt_event *ring;
    uint64_t mask;
    /* consumer index (release-stored by the writer), on its own cache line:
     * the producers' stores to `tail` must not keep invalidating it */
    uint64_t head __attribute__((aligned(64)));

    /* Writer/sampler thread. */
    pthread_t writer __attribute__((aligned(64)));
    uint32_t wake_seq;      /* bumped to wake the writer (stop, pause, signal): a futex, not a
                          descriptor the program could close or reuse */
    int stop_requested;     /* GT_STOP_*; written before a wake */
    int terminating;        /* a terminating signal arrived: finalise, then die */
    int finalised;          /* the writer wrote the footer for `terminating` */
    int paused;             /* the writer was stopped around a fork */
    int resume_pending;     /* ... and comes back at the next GIL transition */
    int leader_gone;        /* the thread-group leader exited with others alive */
    pthread_key_t exit_key; /* its destructor runs as a traced thread exits */
    struct sigaction old_term[2];
    int term_installed[2];
    /* The trace file: C's own descriptor, and the file's identity, checked
     * before each write (the program may close or dup2 over the number). */
    int fd;
    dev_t fd_dev;
    ino_t fd_ino;
    pthread_mutex_t fd_lock; /* the writer and Python's gt_trace_write */
    char path[4096];         /* to reopen the file; "" if unknown */
    uint32_t fd_reopened;
    int fd_lost;
    gt_config cfg;
    uint64_t start_ns, stop_ns;
    uint64_t start_tick; /* start_ns in clock.c ticks */
    uint64_t switch_start, switch_stop;
    uint64_t events_written, samples_written, chunks_written, write_lost;
    int write_errno;
    gt_sample *samples;
    size_t nsamples;
    gt_cpu_sample *cpu_samples;
    size_t ncpu;
    unsigned char *chunk; /* GT_CHUNK_HEADER_SIZE + GT_CHUNK_EVENTS_MAX events */
} gt_recorder;

extern gt_recorder gt_rec;

/* ------------------------------------------------ the hooks' side (events.c) */

/* Per-thread state of the hooks (initial-exec TLS: no lookup call). */
typedef struct {
    uint32_t gen; /* trace generation this state belongs to */
    uint32_t tid;
    uint64_t lock_tick; /* when this thread began to take the GIL (clock.c ticks) */
    int holding;        /* it holds the GIL: its next lock of the mutex is drop_gil's, not a wait */
    int waiting;        /* blocked in take_gil: a WAIT event was emitted */
    int acquired;       /* took the GIL; ACQUIRE is emitted as take_gil unlocks the mutex */
    uint8_t acquire_flags;
    int named;                  /* its OS name is recorded for this trace */
    uint32_t metrics_gen;       /* the metrics session its slot belongs to */
    gt_metrics_thread *metrics; /* its counters, NULL while metrics are off */
    uint64_t hold_tick;         /* when its current hold began */
    uint64_t located_tick;      /* old GIL: its last release given a location */
} gt_thread;

extern GT_TLS gt_thread gt_self;

void gt_forget_this_thread(void);
void gt_mark_this_thread(void);
void gt_record_os_name(gt_thread *t);

/* This thread's state for trace generation `gen`, reset on its first event. */
static inline gt_thread *gt_this_thread(uint32_t gen)
{
    gt_thread *t = &gt_self;
    if (__builtin_expect(t->gen != gen, 0)) {
        t->gen = gen;
        t->lock_tick = 0;
        t->holding = 0;
        t->waiting = 0;
        t->acquired = 0;
        t->named = 0;
        t->hold_tick = 0;
        t->located_tick = 0;
        if (!t->tid)
            t->tid = (uint32_t)syscall(SYS_gettid);
        /* so that the last traced thread to exit can finalise the trace
         * (how-it-works.md, "Processes that end without exit()") */
        pthread_setspecific(gt_rec.exit_key, (void *)1);
    }
    return t;
}

/* The slot `ahead` places past the ring's tail, or NULL when the ring has no
 * room for it; written freely until gt_publish moves the tail past it.  The
 * GIL's own lock serialises the producers. */
static inline gt_event *gt_slot(uint64_t ahead)
{
    uint64_t tail = __atomic_load_n(&gt_rec.tail, __ATOMIC_RELAXED) + ahead;
    uint64_t head = __atomic_load_n(&gt_rec.head, __ATOMIC_ACQUIRE);
    if (tail - head > gt_rec.mask)
        return NULL;
    return &gt_rec.ring[tail & gt_rec.mask];
}

static inline void gt_fill(gt_event *e, uint8_t kind, uint8_t flags, uint64_t ticks, uint64_t arg, uint32_t tid,
                           uint32_t gen)
{
    e->time_ns = ticks; /* ticks in the ring, ns in the file (encode.c) */
    e->arg = arg;
    e->tid = tid;
    e->kind = kind;
    e->flags = flags;
    e->reserved = (uint16_t)gen;
}

static inline void gt_publish(uint64_t n)
{
    __atomic_store_n(&gt_rec.tail, __atomic_load_n(&gt_rec.tail, __ATOMIC_RELAXED) + n, __ATOMIC_RELEASE);
}

static inline void gt_count_lost(uint64_t n)
{
    __atomic_store_n(&gt_rec.lost, gt_rec.lost + n, __ATOMIC_RELAXED);
}

/* One event into the ring. */
static inline void gt_emit(uint8_t kind, uint8_t flags, uint64_t ticks, uint64_t arg, uint32_t tid, uint32_t gen)
{
    gt_event *e = gt_slot(0);
    if (!e) {
        gt_count_lost(1);
        return;
    }
    gt_fill(e, kind, flags, ticks, arg, tid, gen);
    gt_publish(1);
}

/* ----------------------------------------------------- metrics (metrics.c) */

typedef struct {
    uint32_t gen;         /* non-zero while on */
    uint64_t alert_ticks; /* 0: no alerts */
    double ns_per_tick;   /* for the histogram, measured at start */
    uint64_t bound_ticks[GT_METRICS_BUCKETS - 1];
} gt_metrics_config;
extern gt_metrics_config gt_mcfg;

gt_metrics_thread *gt_metrics_claim(gt_thread *t);
void gt_metrics_thread_exit(gt_thread *t);
void gt_metrics_alert_hold(gt_thread *t, uint64_t now, uint64_t held);
void gt_metrics_alert_wait(gt_thread *t, uint64_t now, uint64_t waited);

static inline gt_metrics_thread *gt_metrics_of(gt_thread *t)
{
    uint32_t gen = __atomic_load_n(&gt_mcfg.gen, __ATOMIC_RELAXED);
    if (!gen)
        return NULL;
    if (__builtin_expect(t->metrics_gen != gen, 0))
        return gt_metrics_claim(t);
    return t->metrics;
}

/* At the take's end (the GIL's mutex unlocked): with the GIL's lock held. */
static inline void gt_metrics_on_acquire(gt_thread *t, uint64_t began, uint64_t now, uint8_t flags)
{
    gt_metrics_thread *m = gt_metrics_of(t);
    if (!m)
        return;
    uint64_t waited = now > began ? now - began : 0;
    m->acquires++;
    m->wait_ticks += waited;
    if (flags & GT_FLAG_CONTENDED) {
        int b = 0; /* most blocking waits are short: a linear walk ends early */
        while (b < GT_METRICS_BUCKETS - 1 && waited > gt_mcfg.bound_ticks[b])
            b++;
        m->hist[b]++;
        m->waits++;
        if (gt_mcfg.alert_ticks && waited > gt_mcfg.alert_ticks)
            gt_metrics_alert_wait(t, now, waited);
    }
    t->hold_tick = now;
    gt_rec.holder_metrics = m;
}

static inline void gt_metrics_on_release(gt_thread *t, uint64_t now)
{
    gt_metrics_thread *m = gt_metrics_of(t);
    if (!m)
        return;                    /* a trace alone: nothing of this on its hot path */
    gt_rec.last_releaser = t->tid; /* for a wait alert: who held it last */
    if (!t->hold_tick)
        return;
    uint64_t held = now - t->hold_tick;
    m->hold_ticks += held;
    t->hold_tick = 0;
    if (gt_mcfg.alert_ticks && held > gt_mcfg.alert_ticks && gt_rec.waiters > 0)
        gt_metrics_alert_hold(t, now, held);
}

/* encode.c */
void gt_encode_reset(void);
void gt_drain_py_names(void);
void gt_write_chunk(unsigned char *buf, uint16_t kind, uint32_t count, uint32_t payload_len);
void gt_drain_all(void);
void gt_write_footer(const char *ended_by);

/* writer.c */
void gt_read_sample(gt_sample *s, uint64_t now);
void gt_wake_writer(void); /* async-signal-safe */
int gt_process_threads(int *leader_zombie);
int gt_others_alive(int caller_is_writer);
void gt_deactivate(int lock_gil);
int gt_start_writer(void);
void gt_join_writer(int how);
int gt_trace_adopt(int fd, const char *path); /* C's own copy of the caller's descriptor: 0 or errno */
void gt_trace_forget(void);                   /* in a forked child: the parent's file */

/* control.c */
int gt_session_join(char *err, size_t errlen); /* `control` held */
void gt_session_leave(int lock_gil);
void gt_metrics_forget(void); /* metrics.c: in a forked child */
void gt_fill_stats(gt_stats *out);
void gt_resume_from_hook(void);

#endif
