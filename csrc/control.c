/* control.c -- a trace's life: start and stop, and what happens to it at
 * fork, at a terminating signal and when the last thread exits without
 * exit() (docs/how-it-works.md).
 */
#ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#endif
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "recorder.h"

gt_recorder gt_rec = {
    .control = PTHREAD_MUTEX_INITIALIZER,
    .fd = -1,
    .fd_lock = PTHREAD_MUTEX_INITIALIZER,
};

void gt_fill_stats(gt_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->start_ns = gt_rec.start_ns;
    out->stop_ns = gt_rec.stop_ns;
    out->switch_number_start = gt_rec.switch_start;
    out->switch_number_stop = gt_rec.switch_stop;
    out->events_written = gt_rec.events_written;
    out->events_lost = __atomic_load_n(&gt_rec.lost, __ATOMIC_RELAXED) + gt_rec.write_lost;
    out->samples_written = gt_rec.samples_written;
    out->chunks_written = gt_rec.chunks_written;
    out->interval_us = gt_rec.have_gil ? *gt_rec.gil.interval_us : 0;
    out->buffer_events = (uint32_t)(gt_rec.mask + 1);
    out->write_errno = gt_rec.write_errno;
    out->locations_lost = gt_locations_overflow();
    out->fd_reopened = gt_rec.fd_reopened;
    out->fd_lost = gt_rec.fd_lost;
    if (gt_rec.fd_lost && !out->write_errno)
        out->write_errno = EBADF;
}

/* ---- terminating signals: SIGTERM / SIGHUP with their default action ---- */

static const int term_signals[2] = {SIGTERM, SIGHUP};

/* The default action would kill the process before Python's atexit runs:
 * have the writer finish the file first, then die of the same signal, so the
 * exit status is what it would have been (how-it-works.md, "Signals"). */
static void on_terminate(int sig)
{
    int saved = errno;
    if (gt_rec.running && !__atomic_exchange_n(&gt_rec.terminating, 1, __ATOMIC_SEQ_CST)) {
        gt_deactivate(0); /* the signal may have interrupted a thread inside take_gil */
        gt_wake_writer();
        struct timespec ms = {0, 1000000};
        for (int i = 0; i < 2000 && !__atomic_load_n(&gt_rec.finalised, __ATOMIC_ACQUIRE); i++)
            nanosleep(&ms, NULL);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig); /* pending until this handler returns and unblocks it */
    errno = saved;
}

static void install_terminate_handlers(void)
{
    for (int i = 0; i < 2; i++) {
        struct sigaction cur, ours;
        gt_rec.term_installed[i] = 0;
        if (sigaction(term_signals[i], NULL, &cur) != 0 || (cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL)
            continue; /* the program handles or ignores it: leave it alone */
        memset(&ours, 0, sizeof(ours));
        ours.sa_handler = on_terminate;
        sigfillset(&ours.sa_mask);
        ours.sa_flags = SA_RESTART;
        if (sigaction(term_signals[i], &ours, &gt_rec.old_term[i]) == 0)
            gt_rec.term_installed[i] = 1;
    }
}

static void remove_terminate_handlers(void)
{
    for (int i = 0; i < 2; i++) {
        struct sigaction cur;
        if (!gt_rec.term_installed[i])
            continue;
        gt_rec.term_installed[i] = 0;
        /* only if still ours: the program may have installed its own since */
        if (sigaction(term_signals[i], NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
            cur.sa_handler == on_terminate)
            sigaction(term_signals[i], &gt_rec.old_term[i], NULL);
    }
}

/* ------------------------------------------------------------- threads -- */

static void atfork_prepare(void);
static void atfork_parent(void);
static void atfork_child(void);
static void on_thread_exit(void *unused);

/* ------------------------------------------------------------ session -- */

/* The GOT hooks and the hooks' shared state serve a trace and the metrics
 * alike: the first to start patches the GOT and begins a session, the last
 * to stop ends it and puts the GOT back.  `control` is held. */
static int session_once(char *err, size_t errlen)
{
    static int once;
    if (!once) {
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        pthread_key_create(&gt_rec.exit_key, on_thread_exit);
        once = 1;
    }
    if (!gt_rec.have_gil) {
        if (gt_locate_gil(&gt_rec.gil, err, errlen) != 0)
            return GT_ERR_UNSUPPORTED;
        gt_rec.have_gil = 1;
    }
    return 0;
}

int gt_session_join(char *err, size_t errlen)
{
    int rc = session_once(err, errlen);
    if (rc)
        return rc;
    if (gt_rec.hook_users++ > 0)
        return 0;
    if (gt_hooks_install(err, errlen) != 0) {
        gt_rec.hook_users = 0;
        return GT_ERR_UNSUPPORTED;
    }
    static uint32_t sessions;
    if (!++sessions)
        ++sessions;
    pthread_mutex_lock(gt_rec.gil.mutex); /* our own PLT: straight to libc */
    gt_rec.last_switch = *gt_rec.gil.switch_number;
    gt_rec.holder_tid = 0;
    gt_rec.holder_metrics = NULL;
    gt_rec.drop_pending = 0;
    gt_rec.waiters = 0;
    gt_rec.contended_ticks = 0;
    gt_clock_start();
    gt_rec.session_tick = gt_clock_start_tick();
    __atomic_store_n(&gt_rec.session, sessions, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(gt_rec.gil.mutex);
    return 0;
}

void gt_session_leave(int lock_gil)
{
    if (gt_rec.hook_users <= 0 || --gt_rec.hook_users > 0)
        return;
    if (lock_gil)
        pthread_mutex_lock(gt_rec.gil.mutex);
    __atomic_store_n(&gt_rec.session, 0, __ATOMIC_SEQ_CST);
    if (lock_gil)
        pthread_mutex_unlock(gt_rec.gil.mutex);
    gt_hooks_uninstall();
}

/* Stop and finish the file from C; `gt_rec.control` is held. */
static void stop_locked(gt_stats *out, const char *ended_by)
{
    gt_deactivate(1);
    gt_session_leave(1);
    remove_terminate_handlers();
    if (gt_rec.paused)
        gt_rec.paused = gt_rec.resume_pending = 0; /* no writer thread to join: drain below */
    else
        gt_join_writer(GT_STOP_FINAL);
    gt_drain_all();
    if (ended_by) {
        gt_write_footer(ended_by);
    }
    gt_rec.running = 0; /* the descriptor stays for Python's last chunks: gt_trace_close() */
    if (out)
        gt_fill_stats(out);
}

/* A traced thread is exiting (pthread key destructor: after its Python
 * thread state is gone, before glibc counts it out).  If it is the last one
 * besides the writer, the process ends when it does, without exit() and so
 * without Python's atexit: finish the trace now.  Only the leader's exit can
 * start that situation, so other threads check only once it has happened. */
static void on_thread_exit(void *unused)
{
    (void)unused;
    gt_metrics_thread_exit(&gt_self); /* its totals stay until read once */
    if (!__atomic_load_n(&gt_rec.running, __ATOMIC_ACQUIRE))
        return;
    int leader = (pid_t)syscall(SYS_gettid) == getpid();
    if (!leader && !__atomic_load_n(&gt_rec.leader_gone, __ATOMIC_ACQUIRE))
        return;
    if (gt_others_alive(0) > 0) {
        if (leader)
            __atomic_store_n(&gt_rec.leader_gone, 1, __ATOMIC_RELEASE);
        return;
    }
    if (pthread_mutex_trylock(&gt_rec.control) != 0)
        return; /* a stop is under way */
    if (gt_rec.running)
        stop_locked(NULL, "last-thread");
    pthread_mutex_unlock(&gt_rec.control);
}

/* ---------------------------------------------------------------- fork -- */

/* The writer steps aside during fork(): a process whose only other thread
 * is ours is not "multi-threaded" (3.12+ warns at os.fork() otherwise), and
 * the child starts without it either way.  The pause happens in C, inside
 * fork(), while the forking thread keeps the GIL: releasing it there would
 * let other threads run in the middle of os.fork() (e.g. start finalising,
 * which the child would inherit).  3.12 counts the threads after fork()
 * returns, 3.13 even after the after-fork hooks, so for os.fork() the writer
 * comes back with the parent's next GIL transition (resume_pending, checked
 * by the hooks); for forks made in C (subprocess), at once. */
int gt_fork_from_python;

static void resume_writer_locked(void)
{
    if (gt_rec.paused) {
        gt_rec.paused = 0;
        if (gt_start_writer() != 0 && !gt_rec.write_errno) /* no thread: the ring fills and counts what it loses */
            gt_rec.write_errno = EAGAIN;
    }
}

/* From a hook (the GIL's mutex held): never wait for `control`, whose holder
 * may be waiting for the GIL's mutex (gt_stop); the next transition retries. */
void gt_resume_from_hook(void)
{
    if (pthread_mutex_trylock(&gt_rec.control) != 0)
        return;
    if (gt_rec.resume_pending) {
        __atomic_store_n(&gt_rec.resume_pending, 0, __ATOMIC_RELAXED);
        resume_writer_locked();
    }
    pthread_mutex_unlock(&gt_rec.control);
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&gt_rec.control); /* no start or stop while fork copies this state */
    if (gt_rec.running && !__atomic_load_n(&gt_rec.terminating, __ATOMIC_ACQUIRE)) {
        int zombie, before = gt_process_threads(&zombie);
        gt_join_writer(GT_STOP_PAUSE);
        gt_rec.paused = 1;
        /* pthread_join returns when the kernel clears the thread's tid, a
         * moment before it stops counting the thread: wait for that too. */
        for (int i = 0; before > 0 && i < 2000 && gt_process_threads(&zombie) >= before; i++)
            sched_yield();
    }
}

static void atfork_parent(void)
{
    if (gt_fork_from_python && gt_rec.paused)
        __atomic_store_n(&gt_rec.resume_pending, 1, __ATOMIC_RELAXED);
    else
        resume_writer_locked();
    gt_fork_from_python = 0;
    pthread_mutex_unlock(&gt_rec.control);
}

/* In a forked child only the forking thread survives: the writer thread is
 * gone and the file belongs to the parent.  The child runs untraced. */
static void atfork_child(void)
{
    gt_forget_this_thread();
    gt_rec.paused = 0;
    gt_rec.resume_pending = 0;
    gt_fork_from_python = 0;
    gt_rec.leader_gone = 0;
    if (gt_rec.running) {
        __atomic_store_n(&gt_rec.active, 0, __ATOMIC_SEQ_CST);
        remove_terminate_handlers();
        gt_rec.running = 0;
    }
    gt_trace_forget();   /* the parent's file: the child's copy of C's descriptor closes */
    gt_metrics_forget(); /* the parent's counters: the child starts with none */
    if (gt_rec.hook_users) {
        __atomic_store_n(&gt_rec.session, 0, __ATOMIC_SEQ_CST);
        gt_rec.hook_users = 0;
        gt_hooks_uninstall();
    }
    pthread_mutex_init(&gt_rec.control, NULL);
}

static uint64_t round_pow2(uint64_t n)
{
    uint64_t p = 1024;
    while (p < n && p < (1ull << 28))
        p <<= 1;
    return p;
}

static int prepare_buffers(uint64_t capacity, char *err, size_t errlen)
{
    if (!gt_rec.ring || gt_rec.mask + 1 != capacity) {
        free(gt_rec.ring); /* safe: producers only touch it while `active` */
        gt_rec.ring = calloc(capacity, sizeof(gt_event));
        gt_rec.mask = capacity - 1;
    }
    if (!gt_rec.chunk)
        gt_rec.chunk = malloc(GT_CHUNK_HEADER_SIZE + GT_CHUNK_EVENTS_MAX * sizeof(gt_event));
    if (!gt_rec.samples)
        gt_rec.samples = malloc(GT_SAMPLES_MAX * sizeof(gt_sample));
    if (!gt_rec.cpu_samples)
        gt_rec.cpu_samples = malloc(GT_CPU_SAMPLES_MAX * sizeof(gt_cpu_sample));
    if (!gt_rec.ring || !gt_rec.chunk || !gt_rec.samples || !gt_rec.cpu_samples) {
        free(gt_rec.ring);
        gt_rec.ring = NULL;
        snprintf(err, errlen, "cannot allocate a buffer of %llu events", (unsigned long long)capacity);
        return -1;
    }
    gt_rec.head = gt_rec.tail = 0;
    gt_rec.lost = gt_rec.write_lost = 0;
    gt_rec.events_written = gt_rec.samples_written = gt_rec.chunks_written = 0;
    gt_rec.write_errno = 0;
    gt_rec.nsamples = 0;
    gt_rec.ncpu = 0;
    gt_os_names_published = 0;
    gt_py_names_stored = gt_py_names_published = gt_py_names_written =
        0; /* Python stores none before gt_start returns */
    gt_encode_reset();
    gt_locations_reset();
    return 0;
}

int gt_start(const gt_config *cfg, char *err, size_t errlen)
{
    int rc = -1;
    pthread_mutex_lock(&gt_rec.control);
    if (gt_rec.running) {
        snprintf(err, errlen, "a trace is already running in this process");
        rc = GT_ERR_RUNNING;
        goto out;
    }
    if (cfg->fd < 0) {
        snprintf(err, errlen, "no trace file descriptor");
        goto out;
    }
    if ((rc = session_once(err, errlen)) != 0)
        goto out;
    rc = -1;
    if (prepare_buffers(round_pow2(cfg->buffer_events), err, errlen) != 0)
        goto out;
    gt_rec.cfg = *cfg;
    static char cgroup_stat[512]; /* ours: the caller's string need not outlive gt_start */
    if (cfg->cgroup_cpu_stat && cfg->cgroup_cpu_stat[0]) {
        snprintf(cgroup_stat, sizeof(cgroup_stat), "%s", cfg->cgroup_cpu_stat);
        gt_rec.cfg.cgroup_cpu_stat = cgroup_stat;
    } else {
        gt_rec.cfg.cgroup_cpu_stat = NULL;
    }
    gt_rec.cfg.path = NULL; /* the caller's: gt_trace_adopt keeps a copy */
    if (gt_rec.cfg.cpu_state && !gt_rec.cfg.sample_period_ns)
        gt_rec.cfg.sample_period_ns = 5000000; /* CPU state needs a period even with samples off */
    if (gt_rec.cfg.flush_period_ns < 1000000)
        gt_rec.cfg.flush_period_ns = 1000000;
    gt_trace_close(); /* an earlier trace's, if Python never closed it */
    int ferr = gt_trace_adopt(cfg->fd, cfg->path);
    if (ferr) {
        snprintf(err, errlen, "cannot use the trace file's descriptor: %s", strerror(ferr));
        goto out;
    }
    gt_rec.stop_requested = GT_STOP_NONE;
    gt_rec.terminating = gt_rec.finalised = gt_rec.leader_gone = 0;
    gt_set_library_prefixes(cfg->library_prefixes);
    if (gt_session_join(err, errlen) != 0) {
        gt_trace_close();
        rc = GT_ERR_UNSUPPORTED;
        goto out;
    }

    uint32_t gen = ++gt_rec.gen;
    if (!(uint16_t)gen) /* events carry the low 16 bits; 0 means "stale" */
        gen = ++gt_rec.gen;
    pthread_mutex_lock(gt_rec.gil.mutex); /* our own PLT: straight to libc */
    gt_rec.switch_start = *gt_rec.gil.switch_number;
    if (gt_rec.hook_users == 1) /* alone in the session: it began just now */
        gt_rec.last_switch = gt_rec.switch_start;
    gt_clock_start();
    gt_rec.start_tick = gt_clock_start_tick();
    gt_rec.start_ns = gt_ticks_to_ns(gt_rec.start_tick);
    gt_rec.stop_ns = 0;
    __atomic_store_n(&gt_rec.active, gen, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(gt_rec.gil.mutex);

    int perr = gt_start_writer();
    if (perr) {
        __atomic_store_n(&gt_rec.active, 0, __ATOMIC_SEQ_CST);
        gt_session_leave(1);
        gt_trace_close();
        snprintf(err, errlen, "cannot start the writer thread: %s", strerror(perr));
        goto out;
    }
    gt_mark_this_thread(); /* the starting thread too */
    if (cfg->finalize_on_signals)
        install_terminate_handlers();
    __atomic_store_n(&gt_rec.running, 1, __ATOMIC_RELEASE);
    rc = 0;
out:
    pthread_mutex_unlock(&gt_rec.control);
    return rc;
}

int gt_stop(gt_stats *out)
{
    pthread_mutex_lock(&gt_rec.control);
    if (!gt_rec.running) {
        pthread_mutex_unlock(&gt_rec.control);
        return -1;
    }
    stop_locked(out, NULL);
    pthread_mutex_unlock(&gt_rec.control);
    return 0;
}

int gt_running(void)
{
    return __atomic_load_n(&gt_rec.running, __ATOMIC_ACQUIRE);
}

int gt_stats_now(gt_stats *out)
{
    gt_fill_stats(out);
    return gt_rec.running ? 0 : -1;
}

int gt_sample_now(gt_sample *out)
{
    if (!gt_rec.have_gil) {
        char err[128];
        if (gt_locate_gil(&gt_rec.gil, err, sizeof(err)) != 0)
            return -1;
        gt_rec.have_gil = 1;
    }
    gt_read_sample(out, gt_clock_ns());
    return gt_rec.running ? 0 : 1;
}
