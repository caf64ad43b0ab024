/* metrics.c -- the metrics mode: the same GOT hooks, but each transition only
 * adds to its thread's counters (recorder.h, gt_metrics_on_acquire/release):
 * no ring, no writer thread, no sampler, memory fixed at start
 * (docs/metrics.md).
 *
 * Each thread takes a slot on its first transition (the GIL's lock held, so
 * one claimer at a time); when it exits (the pthread key destructor of
 * control.c) its slot is marked exited and keeps its totals until a reader
 * has copied them once, then it is free again.  Threads that find every
 * slot taken share the last one.  Readers copy counters while hooks update
 * them: each 8-byte counter is read whole, a snapshot may be a transition
 * behind.
 */
#ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "recorder.h"

gt_metrics_config gt_mcfg;

static gt_metrics_thread slots[GT_METRICS_SLOTS];
static uint32_t next_slot;
static uint64_t overflow_threads;
static uint32_t exited_unread; /* slots waiting for a reader to fold them */
static uint64_t start_ns;

/* Alerts: a small single-producer (hooks, under the GIL's lock) ring. */
#define ALERTS 256
static gt_metrics_alert alerts[ALERTS];
static uint64_t alert_head, alert_tail, alerts_lost;

/* Upper bounds of the wait histogram: 1 us x 10^(k/4), rounded to ns:
 * 1, 1.78, 3.16, 5.62, 10 us ... 10 s (Prometheus' `le` labels). */
static const uint64_t bounds_ns[GT_METRICS_BUCKETS - 1] = {
    1000ull,       1778ull,       3162ull,       5623ull,       10000ull,       17783ull,
    31623ull,      56234ull,      100000ull,     177828ull,     316228ull,      562341ull,
    1000000ull,    1778279ull,    3162278ull,    5623413ull,    10000000ull,    17782794ull,
    31622777ull,   56234133ull,   100000000ull,  177827941ull,  316227766ull,   562341325ull,
    1000000000ull, 1778279410ull, 3162277660ull, 5623413252ull, 10000000000ull,
};

uint64_t gt_metrics_bound_ns(int bucket)
{
    return (bucket >= 0 && bucket < GT_METRICS_BUCKETS - 1) ? bounds_ns[bucket] : UINT64_MAX;
}

gt_metrics_thread *gt_metrics_claim(gt_thread *t)
{
    uint32_t gen = __atomic_load_n(&gt_mcfg.gen, __ATOMIC_RELAXED);
    gt_metrics_thread *m = &slots[GT_METRICS_SLOTS - 1]; /* the shared one, unless a slot is free */
    for (uint32_t i = 0; i < GT_METRICS_SLOTS - 1; i++) {
        uint32_t k = (next_slot + i) % (GT_METRICS_SLOTS - 1);
        uint32_t free_state = 0;
        if (__atomic_load_n(&slots[k].state, __ATOMIC_ACQUIRE) == 0 &&
            __atomic_compare_exchange_n(&slots[k].state, &free_state, 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
            m = &slots[k];
            next_slot = k + 1;
            break;
        }
    }
    if (m == &slots[GT_METRICS_SLOTS - 1]) {
        overflow_threads++;
        __atomic_store_n(&m->state, 1, __ATOMIC_RELEASE);
    } else {
        m->tid = t->tid;
    }
    t->metrics = m;
    t->metrics_gen = gen;
    t->hold_tick = 0;
    return m;
}

void gt_metrics_thread_exit(gt_thread *t)
{
    gt_metrics_thread *m = t->metrics;
    if (!m || t->metrics_gen != __atomic_load_n(&gt_mcfg.gen, __ATOMIC_RELAXED))
        return;
    t->metrics = NULL;
    t->metrics_gen = 0;
    if (m != &slots[GT_METRICS_SLOTS - 1]) {
        __atomic_store_n(&m->state, 2, __ATOMIC_RELEASE);
        __atomic_add_fetch(&exited_unread, 1, __ATOMIC_RELAXED);
    }
}

int gt_metrics_exited(void)
{
    return (int)__atomic_load_n(&exited_unread, __ATOMIC_RELAXED);
}

static gt_metrics_alert *alert_slot(void)
{
    uint64_t tail = __atomic_load_n(&alert_tail, __ATOMIC_RELAXED);
    if (tail - __atomic_load_n(&alert_head, __ATOMIC_ACQUIRE) >= ALERTS) {
        alerts_lost++;
        return NULL;
    }
    gt_metrics_alert *a = &alerts[tail % ALERTS];
    memset(a, 0, sizeof(*a));
    return a;
}

static void alert_publish(void)
{
    __atomic_store_n(&alert_tail, alert_tail + 1, __ATOMIC_RELEASE);
}

static uint64_t ticks_ns(uint64_t ticks)
{
    return (uint64_t)((double)ticks * gt_mcfg.ns_per_tick);
}

/* A hold past the threshold while another thread waited: where the holder
 * let go (its innermost Python frame), looked up only on this rare path. */
void gt_metrics_alert_hold(gt_thread *t, uint64_t now, uint64_t held)
{
    gt_metrics_alert *a = alert_slot();
    if (!a)
        return;
    a->kind = 2;
    a->time_ns = gt_ticks_to_ns(now) - start_ns;
    a->duration_ns = ticks_ns(held);
    a->tid = t->tid;
    const void *code;
    int offset;
    if (gt_code_stack(&code, &offset, 1) == 1)
        gt_describe_code(code, offset, a->file, sizeof(a->file), a->function, sizeof(a->function), &a->line);
    alert_publish();
}

void gt_metrics_alert_wait(gt_thread *t, uint64_t now, uint64_t waited)
{
    gt_metrics_alert *a = alert_slot();
    if (!a)
        return;
    a->kind = 1;
    a->time_ns = gt_ticks_to_ns(now) - start_ns;
    a->duration_ns = ticks_ns(waited);
    a->tid = t->tid;
    a->other_tid = gt_rec.last_releaser;
    alert_publish();
}

/* The histogram's bounds in ticks: the rate is measured over 2 ms at start
 * (error ~1e-5, far below a bucket's width); totals are converted at read
 * time with clock.c's rate. */
static void calibrate(void)
{
    uint64_t t0 = gt_ticks(), n0 = gt_clock_ns();
    struct timespec ms = {0, 2000000};
    if (gt_tsc_usable)
        nanosleep(&ms, NULL);
    uint64_t t1 = gt_ticks(), n1 = gt_clock_ns();
    gt_mcfg.ns_per_tick = (gt_tsc_usable && t1 > t0) ? (double)(n1 - n0) / (double)(t1 - t0) : 1.0;
    for (int b = 0; b < GT_METRICS_BUCKETS - 1; b++)
        gt_mcfg.bound_ticks[b] = (uint64_t)((double)gt_metrics_bound_ns(b) / gt_mcfg.ns_per_tick);
}

int gt_metrics_start(uint64_t alert_ns, char *err, size_t errlen)
{
    int rc = 0;
    pthread_mutex_lock(&gt_rec.control);
    if (gt_mcfg.gen) {
        snprintf(err, errlen, "GIL metrics are already being collected in this process");
        rc = GT_ERR_RUNNING;
        goto out;
    }
    memset(slots, 0, sizeof(slots));
    next_slot = 0;
    overflow_threads = alerts_lost = 0;
    exited_unread = 0;
    alert_head = alert_tail = 0;
    if ((rc = gt_session_join(err, errlen)) != 0)
        goto out;
    gt_clock_start(); /* a trace running already restarts nothing: only the ref pair moves */
    calibrate();
    gt_mcfg.alert_ticks = alert_ns ? (uint64_t)((double)alert_ns / gt_mcfg.ns_per_tick) : 0;
    start_ns = gt_clock_ns();
    static uint32_t gens;
    if (!++gens)
        ++gens;
    pthread_mutex_lock(gt_rec.gil.mutex); /* threads claim slots from their next transition on */
    __atomic_store_n(&gt_mcfg.gen, gens, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(gt_rec.gil.mutex);
    gt_mark_this_thread();
out:
    pthread_mutex_unlock(&gt_rec.control);
    return rc;
}

int gt_metrics_stop(void)
{
    pthread_mutex_lock(&gt_rec.control);
    int was = gt_mcfg.gen != 0;
    if (was) {
        pthread_mutex_lock(gt_rec.gil.mutex);
        __atomic_store_n(&gt_mcfg.gen, 0, __ATOMIC_SEQ_CST);
        gt_rec.holder_metrics = NULL;
        pthread_mutex_unlock(gt_rec.gil.mutex);
        gt_session_leave(1);
    }
    pthread_mutex_unlock(&gt_rec.control);
    return was ? 0 : -1;
}

int gt_metrics_running(void)
{
    return __atomic_load_n(&gt_mcfg.gen, __ATOMIC_RELAXED) != 0;
}

void gt_metrics_forget(void)
{
    gt_mcfg.gen = 0;
}

int gt_metrics_read(gt_metrics_thread *out, int max, gt_metrics_totals *totals)
{
    int n = 0;
    gt_clock_refine();
    for (int i = 0; i < GT_METRICS_SLOTS && n < max; i++) {
        uint32_t state = __atomic_load_n(&slots[i].state, __ATOMIC_ACQUIRE);
        if (!state)
            continue;
        out[n] = slots[i];
        out[n].state = state;
        n++;
        if (state == 2) { /* exited: read once, then the slot is free again */
            memset((char *)&slots[i] + sizeof(uint32_t) * 2, 0, sizeof(slots[i]) - sizeof(uint32_t) * 2);
            slots[i].tid = 0;
            __atomic_store_n(&slots[i].state, 0, __ATOMIC_RELEASE);
            __atomic_sub_fetch(&exited_unread, 1, __ATOMIC_RELAXED);
        }
    }
    if (totals) {
        memset(totals, 0, sizeof(*totals));
        totals->start_ns = start_ns;
        totals->now_ns = gt_clock_ns();
        totals->ns_per_tick = gt_tsc_usable ? gt_clock_ns_per_tick() : 1.0;
        uint64_t contended = gt_rec.contended_ticks;
        if (gt_rec.waiters > 0) /* a run of waiting still going on */
            contended += gt_ticks() - gt_rec.contention_since;
        totals->contended_ticks = contended;
        totals->overflow_threads = overflow_threads;
        totals->alerts_lost = alerts_lost;
    }
    return n;
}

int gt_metrics_alerts(gt_metrics_alert *out, int max)
{
    int n = 0;
    uint64_t head = alert_head, tail = __atomic_load_n(&alert_tail, __ATOMIC_ACQUIRE);
    while (head != tail && n < max)
        out[n++] = alerts[head++ % ALERTS];
    __atomic_store_n(&alert_head, head, __ATOMIC_RELEASE);
    return n;
}
