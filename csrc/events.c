/* events.c -- the hooks' side for the condition-variable GIL (3.2+): turns
 * the GIL's pthread calls into events (the ring and per-thread state: recorder.h).
 *
 * Why the ring needs no atomic read-modify-write: every event is emitted
 * from a hook that runs with the GIL's own mutex held (take_gil holds it from
 * its first lock to its last unlock; drop_gil signals under it; a
 * pthread_cond_timedwait returns with it).  Producers are therefore
 * serialised by the interpreter itself, and start/stop flip the `active`
 * flag under the same mutex, so no event straddles a start or a stop.  The
 * only concurrency is one producer at a time against the one writer thread:
 * a single-producer/single-consumer ring with acquire/release indices
 * (recorder.h).
 *
 * Hook-side rules: no Python API, no allocation, no locks of our own, no
 * syscalls except one gettid and one prctl per thread per trace; time stamps
 * from clock.c (the TSC or the vDSO clock).
 */
#ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#endif
#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "recorder.h"

gt_os_name gt_os_names[GT_OS_NAMES_MAX];
uint32_t gt_os_names_published;
gt_py_name gt_py_names[GT_PY_NAMES_MAX];
uint32_t gt_py_names_stored;
uint32_t gt_py_names_written;
uint32_t gt_py_names_published;

GT_TLS gt_thread gt_self;

void gt_forget_this_thread(void) /* in a forked child: the tid changed */
{
    gt_self.tid = 0;
    gt_self.gen = 0;
}

void gt_mark_this_thread(void) /* the thread that starts a trace: see control.c, on_thread_exit */
{
    pthread_setspecific(gt_rec.exit_key, (void *)1);
}

/* Called with the GIL's lock held (one producer at a time). */
void gt_record_os_name(gt_thread *t)
{
    t->named = 1;
    uint32_t n = gt_os_names_published;
    if (n >= GT_OS_NAMES_MAX)
        return;
    gt_os_names[n].tid = t->tid;
    memset(gt_os_names[n].name, 0, sizeof(gt_os_names[n].name));
    prctl(PR_GET_NAME, gt_os_names[n].name, 0, 0, 0); /* one syscall per thread per trace */
    __atomic_store_n(&gt_os_names_published, n + 1, __ATOMIC_RELEASE);
}

/* Both a trace (`active`, its generation) and the metrics mode (metrics.c)
 * feed on the same hooks; `session` is non-zero while either is on, and a
 * thread's state is reset when it first runs into a new session. */
static inline uint32_t session(void)
{
    return __atomic_load_n(&gt_rec.session, __ATOMIC_RELAXED);
}
static inline uint32_t tracing(void)
{
    return __atomic_load_n(&gt_rec.active, __ATOMIC_RELAXED);
}

void gt_on_mutex_lock(pthread_mutex_t *m)
{
    if (m != gt_rec.gil.mutex)
        return;
    uint32_t ses = session();
    if (!ses)
        return;
    /* The wait starts here: time blocked on the mutex counts (how-it-works.md,
     * "Where a wait begins").  drop_gil locks it too: no stamp needed there. */
    gt_thread *t = gt_this_thread(ses);
    if (!t->holding)
        t->lock_tick = gt_ticks();
}

void gt_on_cond_timedwait_enter(pthread_cond_t *c, unsigned long *saved_switch)
{
    if (c != gt_rec.gil.cond)
        return;
    uint32_t ses = session();
    if (!ses)
        return;
    gt_thread *t = gt_this_thread(ses);
    *saved_switch = *gt_rec.gil.switch_number;
    if (__builtin_expect(__atomic_load_n(&gt_rec.resume_pending, __ATOMIC_RELAXED), 0))
        gt_resume_from_hook();
    if (!t->waiting) {
        if (!t->lock_tick) /* took the mutex before the session started */
            t->lock_tick = gt_rec.session_tick;
        t->waiting = 1;
        if (gt_rec.waiters++ == 0)
            gt_rec.contention_since = t->lock_tick; /* someone waits from here on */
        uint32_t gen = tracing();
        if (gen) {
            uint64_t began = t->lock_tick > gt_rec.start_tick ? t->lock_tick : gt_rec.start_tick;
            gt_emit(GT_EV_WAIT, 0, began, gt_rec.cfg.locations ? gt_user_location_here() : 0, t->tid, gen);
        }
    }
}

void gt_on_cond_timedwait_exit(pthread_cond_t *c, int rc, unsigned long saved_switch)
{
    if (c != gt_rec.gil.cond)
        return;
    uint32_t ses = session();
    if (!ses || gt_self.gen != ses)
        return;
    /* The interpreter's own rule for raising a drop request. */
    if (rc == ETIMEDOUT && *gt_rec.gil.locked && *gt_rec.gil.switch_number == saved_switch) {
        gt_rec.drop_pending = 1;
        uint32_t gen = tracing();
        if (gen)
            gt_emit(GT_EV_DROP_REQUEST, 0, gt_ticks(), gt_rec.holder_tid, gt_self.tid, gen);
        if (gt_rec.holder_metrics)
            gt_rec.holder_metrics->drop_requests++;
    }
}

void gt_on_cond_signal(pthread_cond_t *c)
{
    if (c != gt_rec.gil.switch_cond && c != gt_rec.gil.cond)
        return;
    uint32_t ses = session();
    if (!ses)
        return;
    if (__builtin_expect(__atomic_load_n(&gt_rec.resume_pending, __ATOMIC_RELAXED), 0))
        gt_resume_from_hook();
    gt_thread *t = gt_this_thread(ses);
    if (c == gt_rec.gil.cond) { /* drop_gil: locked is 0 now */
        uint64_t now = gt_ticks();
        gt_metrics_on_release(t, now);
        t->lock_tick = 0;
        t->holding = 0;
        gt_rec.holder_tid = 0;
        gt_rec.holder_metrics = NULL;
        uint32_t gen = tracing();
        if (gen) {
            if (!t->named)
                gt_record_os_name(t);
            gt_publish_py_names();
            gt_emit(GT_EV_RELEASE, 0, now, gt_rec.cfg.locations ? gt_location_here() : 0, t->tid, gen);
        }
        return;
    }
    /* take_gil signals switch_cond once it holds the GIL; its bookkeeping
     * goes on until it unlocks the GIL's mutex, where the ACQUIRE is
     * stamped (gt_on_mutex_unlock), so that a wait spans take_gil as a
     * whole, as a probe on its entry and return would see it. */
    uint8_t flags = 0;
    unsigned long sw = *gt_rec.gil.switch_number;
    if (sw != gt_rec.last_switch) {
        flags |= GT_FLAG_SWITCHED;
        gt_rec.last_switch = sw;
    }
    if (t->waiting) {
        flags |= GT_FLAG_CONTENDED;
        t->waiting = 0;
        if (gt_rec.waiters > 0)
            gt_rec.waiters--;
    }
    t->acquired = 1;
    t->holding = 1;
    t->acquire_flags = flags;
    gt_rec.holder_tid = t->tid;
    gt_rec.drop_pending = 0;
}

void gt_on_mutex_unlock(pthread_mutex_t *m)
{
    if (m != gt_rec.gil.mutex)
        return;
    uint32_t ses = session();
    if (!ses || gt_self.gen != ses || !gt_self.acquired)
        return;
    gt_thread *t = &gt_self;
    uint8_t flags = t->acquire_flags;
    uint64_t began = t->lock_tick ? t->lock_tick : gt_rec.session_tick;
    t->acquired = 0;
    t->lock_tick = 0;
    /* The ACQUIRE's slot is written before the stamp: after a hand-off its
     * cache lines were last written on another CPU, and those misses belong
     * to the take, not to the hold (how-it-works.md, "What a probe on
     * take_gil measures"). */
    uint32_t gen = tracing();
    gt_event *e = NULL;
    if (gen) {
        if (!t->named)
            gt_record_os_name(t);
        if (!(e = gt_slot(0)))
            gt_count_lost(1);
        else
            gt_fill(e, GT_EV_ACQUIRE, 0, 0, 0, t->tid, gen);
    }
    uint64_t now = gt_ticks();
    if ((flags & GT_FLAG_CONTENDED) && gt_rec.waiters == 0) /* nobody waits any more */
        gt_rec.contended_ticks += now - gt_rec.contention_since;
    gt_metrics_on_acquire(t, began, now, flags);
    if (e) {
        if (began < gt_rec.start_tick) { /* the take began before the trace */
            began = gt_rec.start_tick;
            flags |= GT_FLAG_WAIT_UNKNOWN;
        }
        e->flags = flags;
        e->time_ns = now;
        e->arg = now > began ? now - began : 0;
        gt_publish(1);
    }
}
