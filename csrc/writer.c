/* writer.c -- the one native thread of a trace: it drains the ring into
 * the file, samples a holder that keeps the GIL too long, and notices when
 * it is the last thread of its process.  Signals are blocked in it and it
 * never touches Python.
 */
#ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "recorder.h"

void gt_read_sample(gt_sample *s, uint64_t now)
{
    s->time_ns = now;
    s->switch_number = *gt_rec.gil.switch_number;
    s->holder_tid = __atomic_load_n(&gt_rec.holder_tid, __ATOMIC_RELAXED);
    int w = __atomic_load_n(&gt_rec.waiters, __ATOMIC_RELAXED);
    s->waiters = (uint16_t)(w < 0 ? 0 : w > 65535 ? 65535 : w);
    s->locked = *gt_rec.gil.locked > 0;
    s->drop_request = (uint8_t)__atomic_load_n(&gt_rec.drop_pending, __ATOMIC_RELAXED);
}

/* The writer sleeps on a futex, not on a descriptor: a program that closes
 * every descriptor (daemonising) could otherwise have its own file written
 * to, or read from, by a wake-up (how-it-works.md, "The program's own
 * descriptors"). */
static uint32_t wake_seen; /* the writer's last view of wake_seq */

void gt_wake_writer(void) /* async-signal-safe */
{
    __atomic_add_fetch(&gt_rec.wake_seq, 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &gt_rec.wake_seq, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Sleep until `deadline_ns` (CLOCK_MONOTONIC) or a wake-up. */
static void sleep_until(uint64_t deadline_ns)
{
    uint64_t now = gt_clock_ns();
    uint32_t seq = __atomic_load_n(&gt_rec.wake_seq, __ATOMIC_ACQUIRE);
    if (deadline_ns <= now || seq != wake_seen) {
        wake_seen = seq;
        return;
    }
    uint64_t ns = deadline_ns - now;
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    syscall(SYS_futex, &gt_rec.wake_seq, FUTEX_WAIT_PRIVATE, seq, &ts, NULL, 0);
    wake_seen = __atomic_load_n(&gt_rec.wake_seq, __ATOMIC_ACQUIRE);
}

/* ------------------------------------------------------- the trace file -- */

/* Giltrace's descriptors go high, where a program's own open() calls rarely
 * land; the identity check below is what guarantees it never writes to a
 * descriptor it did not open. */
static int move_high(int fd)
{
    struct rlimit rl;
    long floor = 960;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur - 64 < floor)
        floor = (long)rl.rlim_cur - 64;
    if (floor <= fd)
        return fd;
    int high = fcntl(fd, F_DUPFD_CLOEXEC, (int)floor);
    if (high < 0)
        return fd;
    close(fd);
    return high;
}

static int same_file(int fd)
{
    struct stat st;
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_dev == gt_rec.fd_dev &&
           st.st_ino == gt_rec.fd_ino;
}

int gt_trace_adopt(int fd, const char *path)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return errno;
    int own = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (own < 0)
        return errno;
    pthread_mutex_lock(&gt_rec.fd_lock);
    gt_rec.fd = move_high(own);
    gt_rec.fd_dev = st.st_dev;
    gt_rec.fd_ino = st.st_ino;
    gt_rec.fd_reopened = 0;
    gt_rec.fd_lost = 0;
    snprintf(gt_rec.path, sizeof(gt_rec.path), "%s", path && path[0] == '/' ? path : "");
    pthread_mutex_unlock(&gt_rec.fd_lock);
    return 0;
}

/* The descriptor is no longer the trace file's (closed, or another file
 * under its number): never write or close it; reopen the file by its path,
 * if it is still that file (same device and inode), and append from there.
 * `fd_lock` held. */
static int reopen_trace(void)
{
    gt_rec.fd = -1;
    if (!gt_rec.path[0])
        return -1;
    int fd = open(gt_rec.path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (!same_file(fd)) {
        close(fd);
        return -1;
    }
    gt_rec.fd = move_high(fd);
    gt_rec.fd_reopened++;
    return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int gt_trace_write(const char *buf, size_t len)
{
    int err = 0;
    pthread_mutex_lock(&gt_rec.fd_lock);
    if (gt_rec.fd_lost || (!same_file(gt_rec.fd) && reopen_trace() != 0)) {
        gt_rec.fd_lost = 1;
        err = EBADF;
    } else {
        err = write_all(gt_rec.fd, (const unsigned char *)buf, len);
    }
    pthread_mutex_unlock(&gt_rec.fd_lock);
    return err;
}

void gt_trace_close(void)
{
    pthread_mutex_lock(&gt_rec.fd_lock);
    if (same_file(gt_rec.fd)) /* only our own: the number may be the program's now */
        close(gt_rec.fd);
    gt_rec.fd = -1;
    pthread_mutex_unlock(&gt_rec.fd_lock);
}

int gt_trace_fd(void)
{
    pthread_mutex_lock(&gt_rec.fd_lock);
    int fd = same_file(gt_rec.fd) ? gt_rec.fd : -1;
    pthread_mutex_unlock(&gt_rec.fd_lock);
    return fd;
}

void gt_trace_forget(void)
{
    pthread_mutex_init(&gt_rec.fd_lock, NULL); /* another thread may have held it at the fork */
    gt_trace_close();
}

/* The process's thread count and whether its leader (the thread whose tid is
 * the pid) has exited, from /proc/self/stat; -1 if unreadable. */
int gt_process_threads(int *leader_zombie)
{
    char buf[1024];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* the command name may hold spaces and ')' */
    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    *leader_zombie = *p == 'Z';
    for (int field = 3; field < 20; field++) { /* num_threads is field 20 */
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    return atoi(p);
}

/* Threads of this process still running, other than the caller and the
 * writer (a zombie leader is still counted by the kernel). */
int gt_others_alive(int caller_is_writer)
{
    int zombie = 0;
    int n = gt_process_threads(&zombie);
    if (n < 0)
        return 1; /* can't tell: assume someone is */
    n -= caller_is_writer ? 1 : 2;
    if (zombie && (caller_is_writer || (pid_t)syscall(SYS_gettid) != getpid()))
        n--;
    return n;
}

/* Stop producing events (no Python thread can be inside a hook afterwards
 * when the GIL's mutex is taken; in a signal handler it is not). */
void gt_deactivate(int lock_gil)
{
    if (lock_gil)
        pthread_mutex_lock(gt_rec.gil.mutex); /* our own PLT: straight to libc */
    gt_rec.switch_stop = *gt_rec.gil.switch_number;
    gt_rec.stop_ns = gt_clock_ns();
    __atomic_store_n(&gt_rec.active, 0, __ATOMIC_SEQ_CST);
    if (lock_gil)
        pthread_mutex_unlock(gt_rec.gil.mutex);
}

/* ----------------------------------------------------------- CPU state -- */

static int read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, cap - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return (int)n;
}

static uint64_t field_after(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

/* One row per thread seen in this trace (its scheduler counters: time on a
 * CPU, time runnable but waiting for one) and one for the cgroup's
 * throttling; how-it-works.md, "CPU state". */
static void sample_cpu_state(uint64_t now)
{
    static uint8_t gone[GT_OS_NAMES_MAX];
    static uint32_t gen_seen;
    if (gen_seen != gt_rec.gen) {
        memset(gone, 0, sizeof(gone));
        gen_seen = gt_rec.gen;
    }
    char path[64], buf[256];
    uint32_t n = __atomic_load_n(&gt_os_names_published, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n && gt_rec.ncpu < GT_CPU_SAMPLES_MAX; i++) {
        if (gone[i])
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%u/schedstat", gt_os_names[i].tid);
        if (read_small_file(path, buf, sizeof(buf)) < 0) {
            gone[i] = 1; /* exited: its last row stands */
            continue;
        }
        gt_cpu_sample *c = &gt_rec.cpu_samples[gt_rec.ncpu++];
        char *end;
        c->time_ns = now;
        c->tid = gt_os_names[i].tid;
        c->reserved = 0;
        c->run_ns = strtoull(buf, &end, 10);
        c->wait_ns = strtoull(end, NULL, 10);
    }
    const char *stat = gt_rec.cfg.cgroup_cpu_stat;
    if (stat && gt_rec.ncpu < GT_CPU_SAMPLES_MAX) {
        char text[1024];
        if (read_small_file(stat, text, sizeof(text)) > 0) {
            gt_cpu_sample *c = &gt_rec.cpu_samples[gt_rec.ncpu++];
            c->time_ns = now;
            c->tid = 0;
            c->reserved = 0;
            /* v2: throttled_usec; v1: throttled_time in ns */
            c->run_ns = strstr(text, "throttled_usec") ? 1000 * field_after(text, "throttled_usec ")
                                                       : field_after(text, "throttled_time ");
            c->wait_ns = field_after(text, "nr_throttled ");
        }
    }
}

/* Each wake-up of a sleeping thread costs ~15 us of CPU in these VMs, so a
 * thread waking every 1 ms costs ~1.6 % of a core however little it does,
 * taken from the program's own threads when they keep the CPUs busy.  The
 * events already say who holds the GIL at every instant; a sample adds only
 * what they cannot say yet: that a holder has kept the GIL past the switch
 * interval while someone waits (C code that never checks for drop requests).
 * So the writer polls every POLL_NS, records samples at the configured period
 * only while the holder is stuck like that, and polls every IDLE_POLL_NS
 * after IDLE_WAKES polls with nobody waiting and no new event
 * (how-it-works.md, "The sampler"). */
#define POLL_NS      20000000ull
#define IDLE_POLL_NS 100000000ull
#define IDLE_WAKES   10

static void *writer_main(void *arg)
{
    (void)arg;
    const uint64_t sample_period = gt_rec.cfg.sample_period_ns;
    const uint64_t flush_period = gt_rec.cfg.flush_period_ns;
    uint64_t now = gt_clock_ns();
    uint64_t next_poll = now + POLL_NS, next_flush = now + flush_period;
    uint64_t last_tail = 0, last_switch = *gt_rec.gil.switch_number, switch_seen = now;
    int idle_wakes = 0;
    wake_seen = __atomic_load_n(&gt_rec.wake_seq, __ATOMIC_ACQUIRE);
    if (gt_rec.cfg.cpu_state) { /* the counters' baseline: the threads' CPU time from the start on */
        sample_cpu_state(now);
        next_poll = now + sample_period;
    }

    while (!__atomic_load_n(&gt_rec.stop_requested, __ATOMIC_ACQUIRE) &&
           !__atomic_load_n(&gt_rec.terminating, __ATOMIC_ACQUIRE)) {
        uint64_t wake = next_flush;
        if (sample_period && next_poll < wake)
            wake = next_poll;
        sleep_until(wake);
        if (__atomic_load_n(&gt_rec.stop_requested, __ATOMIC_ACQUIRE) ||
            __atomic_load_n(&gt_rec.terminating, __ATOMIC_ACQUIRE))
            break;

        now = gt_clock_ns();
        uint64_t tail = __atomic_load_n(&gt_rec.tail, __ATOMIC_ACQUIRE);
        if (sample_period && now >= next_poll) {
            gt_sample s;
            gt_read_sample(&s, now);
            if (s.switch_number != last_switch) {
                last_switch = s.switch_number;
                switch_seen = now;
            }
            uint64_t interval_ns = (uint64_t)*gt_rec.gil.interval_us * 1000;
            int stuck = s.waiters && s.locked && now - switch_seen >= interval_ns;
            if (stuck)
                gt_rec.samples[gt_rec.nsamples++] = s;
            int idle = !s.waiters && tail == last_tail;
            idle_wakes = idle ? idle_wakes + 1 : 0;
            uint64_t period = stuck ? sample_period : idle_wakes >= IDLE_WAKES ? IDLE_POLL_NS : POLL_NS;
            if (!stuck && period < sample_period)
                period = sample_period;
            if (gt_rec.cfg.cpu_state) { /* asked for: every sample period, whatever the GIL does */
                sample_cpu_state(now);
                period = sample_period;
            }
            next_poll = now + period;
        }
        last_tail = tail;
        if (now >= next_flush || tail - gt_rec.head > (gt_rec.mask + 1) / 4 || gt_rec.nsamples == GT_SAMPLES_MAX ||
            gt_rec.ncpu + GT_OS_NAMES_MAX / 4 > GT_CPU_SAMPLES_MAX) {
            gt_drain_all();
            next_flush = now + flush_period;
            /* Every other thread has gone without exit() (e.g. a child forked
             * from a thread whose thread returned): the writer alone must not
             * keep the process alive.  Finish the file and end the process as
             * the last thread's exit would have: exit(0). */
            if (gt_others_alive(1) == 0 && !__atomic_load_n(&gt_rec.stop_requested, __ATOMIC_ACQUIRE)) {
                gt_deactivate(0);
                gt_drain_all();
                gt_write_footer("last-thread");
                exit(0);
            }
        }
    }
    if (gt_rec.cfg.cpu_state) /* and up to the end, not to the last period's sample */
        sample_cpu_state(gt_clock_ns());
    gt_drain_all();
    if (__atomic_load_n(&gt_rec.terminating, __ATOMIC_ACQUIRE)) {
        gt_write_footer("signal");
        __atomic_store_n(&gt_rec.finalised, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

int gt_start_writer(void)
{
    /* The writer must never run Python signal handlers' C side: block all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int perr = pthread_create(&gt_rec.writer, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!perr) /* so that top, py-spy and /proc/PID/task show whose it is */
        pthread_setname_np(gt_rec.writer, "giltrace-writer");
    return perr;
}

void gt_join_writer(int how)
{
    __atomic_store_n(&gt_rec.stop_requested, how, __ATOMIC_RELEASE);
    gt_wake_writer();
    pthread_join(gt_rec.writer, NULL);
    __atomic_store_n(&gt_rec.stop_requested, GT_STOP_NONE, __ATOMIC_RELEASE);
}
