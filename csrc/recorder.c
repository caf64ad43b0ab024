/* recorder.c -- turns hooked pthread calls into GIL events, buffers them in a
 * ring and streams them to the trace file from one native thread that also
 * samples the GIL.
 *
 * Why the ring needs no atomic read-modify-write: every event is emitted
 * from a hook that runs with the GIL's own mutex held (take_gil holds it from
 * its first lock to its last unlock; drop_gil signals under it; a
 * pthread_cond_timedwait returns with it).  Producers are therefore
 * serialised by the interpreter itself, and start/stop flip the `active`
 * flag under the same mutex, so no event straddles a start or a stop.  The
 * only concurrency is one producer at a time against the one writer thread:
 * a single-producer/single-consumer ring with acquire/release indices.
 *
 * Hook-side rules: no Python API, no allocation, no locks of our own, no
 * syscalls except clock_gettime (vDSO) and one gettid per thread.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "gt_internal.h"

#define CHUNK_MAGIC 0x4B4E4843u  /* "CHNK" little-endian */
#define CHUNK_HEADER 20
#define CHUNK_EVENTS_MAX 16384
#define SAMPLES_MAX 4096

typedef struct {
    uint32_t gen;      /* trace generation this state belongs to */
    uint32_t tid;
    uint64_t lock_tick; /* when this thread entered pthread_mutex_lock(&gil->mutex) (clock.c ticks) */
    int holding;       /* it holds the GIL: its next lock of the mutex is drop_gil's, not a wait */
    int waiting;       /* blocked in take_gil: a WAIT event was emitted */
    int acquired;      /* took the GIL; ACQUIRE is emitted as take_gil unlocks the mutex */
    uint8_t acquire_flags;
    int named;         /* its OS name is recorded for this trace */
} thread_state;

/* OS thread names (prctl PR_GET_NAME), one per thread per trace: the names
 * of threads Python never named (C threads calling PyGILState_Ensure). */
#define OS_NAMES_MAX 4096
typedef struct {
    uint32_t tid;
    char name[16];
} os_name_t;
static os_name_t os_names[OS_NAMES_MAX];
static uint32_t os_names_published, os_names_written;

static GT_TLS thread_state t_self;

static struct {
    gt_gil gil;
    int have_gil;
    uint32_t active;        /* generation while tracing, 0 otherwise */
    uint32_t gen;
    int running;
    pthread_mutex_t control;

    /* Producer side: only touched with gil->mutex held. */
    uint64_t last_switch;
    uint32_t holder_tid;
    int drop_pending;
    int waiters;
    uint64_t lost;

    gt_event *ring;
    uint64_t mask;
    uint64_t head;          /* consumer index (release-stored by the writer) */
    uint64_t tail;          /* producer index (release-stored by producers) */

    /* Writer/sampler thread. */
    pthread_t writer;
    int wake_fd;            /* eventfd: wakes the writer (stop, pause, signal) */
    int stop_requested;     /* STOP_* below; written before a wake */
    int terminating;        /* a terminating signal arrived: finalise, then die */
    int finalised;          /* the writer wrote the footer for `terminating` */
    int paused;             /* the writer was stopped around a fork */
    int resume_pending;     /* ... and comes back at the next GIL transition */
    int leader_gone;        /* the thread-group leader exited with others alive */
    pthread_key_t exit_key; /* its destructor runs as a traced thread exits */
    struct sigaction old_term[2];
    int term_installed[2];
    int fd;
    gt_config cfg;
    uint64_t start_ns, stop_ns;
    uint64_t start_tick;    /* start_ns in clock.c ticks */
    uint64_t switch_start, switch_stop;
    uint64_t events_written, samples_written, chunks_written, write_lost;
    int write_errno;
    gt_sample *samples;
    size_t nsamples;
    unsigned char *chunk;   /* CHUNK_HEADER + CHUNK_EVENTS_MAX events */
} g = {
    .control = PTHREAD_MUTEX_INITIALIZER,
    .fd = -1,
    .wake_fd = -1,
};

enum { STOP_NONE = 0, STOP_FINAL = 1, STOP_PAUSE = 2 };

uint64_t gt_now_ns(void) { return gt_clock_ns(); }

static void resume_from_hook(void);

/* ---------------------------------------------------------------- hooks -- */

static inline thread_state *self(uint32_t gen)
{
    thread_state *t = &t_self;
    if (__builtin_expect(t->gen != gen, 0)) {
        t->gen = gen;
        t->lock_tick = 0;
        t->holding = 0;
        t->waiting = 0;
        t->acquired = 0;
        t->named = 0;
        if (!t->tid)
            t->tid = (uint32_t)syscall(SYS_gettid);
        /* so that the last traced thread to exit can finalise the trace
         * (how-it-works.md, "Processes that end without exit()") */
        pthread_setspecific(g.exit_key, (void *)1);
    }
    return t;
}

static inline void emit(uint8_t kind, uint8_t flags, uint64_t time_ns, uint64_t arg,
                        uint32_t tid, uint32_t gen)
{
    uint64_t tail = __atomic_load_n(&g.tail, __ATOMIC_RELAXED);
    uint64_t head = __atomic_load_n(&g.head, __ATOMIC_ACQUIRE);
    if (tail - head > g.mask) {
        __atomic_store_n(&g.lost, g.lost + 1, __ATOMIC_RELAXED);
        return;
    }
    gt_event *e = &g.ring[tail & g.mask];
    e->time_ns = time_ns;
    e->arg = arg;
    e->tid = tid;
    e->kind = kind;
    e->flags = flags;
    e->reserved = (uint16_t)gen;
    __atomic_store_n(&g.tail, tail + 1, __ATOMIC_RELEASE);
}

/* Called with the GIL's mutex held (one producer at a time). */
static void record_os_name(thread_state *t)
{
    t->named = 1;
    uint32_t n = os_names_published;
    if (n >= OS_NAMES_MAX)
        return;
    os_names[n].tid = t->tid;
    memset(os_names[n].name, 0, sizeof(os_names[n].name));
    prctl(PR_GET_NAME, os_names[n].name, 0, 0, 0);  /* one syscall per thread per trace */
    __atomic_store_n(&os_names_published, n + 1, __ATOMIC_RELEASE);
}

void gt_on_mutex_lock(pthread_mutex_t *m)
{
    if (m != g.gil.mutex)
        return;
    uint32_t gen = __atomic_load_n(&g.active, __ATOMIC_RELAXED);
    if (!gen)
        return;
    /* The wait starts here: time blocked on the mutex counts (how-it-works.md,
     * "Where a wait begins").  drop_gil locks it too: no stamp needed there. */
    thread_state *t = self(gen);
    if (!t->holding)
        t->lock_tick = gt_ticks();
}

void gt_on_cond_timedwait_enter(pthread_cond_t *c, unsigned long *saved_switch)
{
    if (c != g.gil.cond)
        return;
    uint32_t gen = __atomic_load_n(&g.active, __ATOMIC_RELAXED);
    if (!gen)
        return;
    thread_state *t = self(gen);
    *saved_switch = *g.gil.switch_number;
    if (__builtin_expect(__atomic_load_n(&g.resume_pending, __ATOMIC_RELAXED), 0))
        resume_from_hook();
    if (!t->waiting) {
        if (!t->lock_tick)          /* took the mutex before the trace started */
            t->lock_tick = g.start_tick;
        t->waiting = 1;
        g.waiters++;
        emit(GT_EV_WAIT, 0, t->lock_tick, g.cfg.locations ? gt_user_location_here() : 0, t->tid, gen);
    }
}

void gt_on_cond_timedwait_exit(pthread_cond_t *c, int rc, unsigned long saved_switch)
{
    if (c != g.gil.cond)
        return;
    uint32_t gen = __atomic_load_n(&g.active, __ATOMIC_RELAXED);
    if (!gen || t_self.gen != gen)
        return;
    /* The interpreter's own rule for raising a drop request. */
    if (rc == ETIMEDOUT && *g.gil.locked && *g.gil.switch_number == saved_switch) {
        g.drop_pending = 1;
        emit(GT_EV_DROP_REQUEST, 0, gt_ticks(), g.holder_tid, t_self.tid, gen);
    }
}

void gt_on_cond_signal(pthread_cond_t *c)
{
    if (c != g.gil.switch_cond && c != g.gil.cond)
        return;
    uint32_t gen = __atomic_load_n(&g.active, __ATOMIC_RELAXED);
    if (!gen)
        return;
    if (__builtin_expect(__atomic_load_n(&g.resume_pending, __ATOMIC_RELAXED), 0))
        resume_from_hook();
    thread_state *t = self(gen);
    if (!t->named)
        record_os_name(t);
    if (c == g.gil.cond) {            /* drop_gil: locked is 0 now */
        t->lock_tick = 0;
        t->holding = 0;
        g.holder_tid = 0;
        uint64_t now = gt_ticks();
        emit(GT_EV_RELEASE, 0, now, g.cfg.locations ? gt_location_here() : 0, t->tid, gen);
        return;
    }
    /* take_gil signals switch_cond once it holds the GIL; its bookkeeping
     * goes on until it unlocks the GIL's mutex, where the ACQUIRE is
     * stamped (gt_on_mutex_unlock), so that a wait spans take_gil as a
     * whole, as a probe on its entry and return would see it. */
    uint8_t flags = 0;
    unsigned long sw = *g.gil.switch_number;
    if (sw != g.last_switch) {
        flags |= GT_FLAG_SWITCHED;
        g.last_switch = sw;
    }
    if (t->waiting) {
        flags |= GT_FLAG_CONTENDED;
        t->waiting = 0;
        if (g.waiters > 0)
            g.waiters--;
    }
    t->acquired = 1;
    t->holding = 1;
    t->acquire_flags = flags;
    g.holder_tid = t->tid;
    g.drop_pending = 0;
}

void gt_on_mutex_unlock(pthread_mutex_t *m)
{
    if (m != g.gil.mutex)
        return;
    uint32_t gen = __atomic_load_n(&g.active, __ATOMIC_RELAXED);
    if (!gen || t_self.gen != gen || !t_self.acquired)
        return;
    thread_state *t = &t_self;
    uint64_t now = gt_ticks();
    uint8_t flags = t->acquire_flags;
    uint64_t began = t->lock_tick;
    if (!began) {                     /* the take began before the trace */
        began = g.start_tick;
        flags |= GT_FLAG_WAIT_UNKNOWN;
    }
    t->acquired = 0;
    t->lock_tick = 0;
    emit(GT_EV_ACQUIRE, flags, now, now > began ? now - began : 0, t->tid, gen);
}

/* ------------------------------------------------------------- writer -- */

/* zlib-compatible CRC-32 (slicing-by-8, ~8x the bytewise speed: the writer
 * checksums every chunk), so Python can check chunks with zlib.crc32. */
static uint32_t crc_tables[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tables[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tables[t][i] = (crc_tables[t - 1][i] >> 8) ^ crc_tables[0][crc_tables[t - 1][i] & 0xFF];
}

uint32_t gt_crc32(uint32_t crc, const unsigned char *buf, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const uint32_t(*t)[256] = (const uint32_t(*)[256])crc_tables;
    crc = ~crc;
    while (len >= 8) {  /* little-endian word at a time */
        uint32_t lo, hi;
        memcpy(&lo, buf, 4);
        memcpy(&hi, buf + 4, 4);
        lo ^= crc;
        crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^
              t[3][hi & 0xFF] ^ t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
        buf += 8;
        len -= 8;
    }
    while (len--)
        crc = t[0][(crc ^ *buf++) & 0xFF] ^ (crc >> 8);
    return ~crc;
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

static void put_u32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put_u16(unsigned char *p, uint16_t v) { memcpy(p, &v, 2); }

/* payload must sit right after CHUNK_HEADER bytes of room at `buf`. */
static void write_chunk(unsigned char *buf, uint16_t kind, uint32_t count, uint32_t payload_len)
{
    if (g.write_errno) {
        if (kind == GT_CHUNK_EVENTS)
            g.write_lost += count;
        return;
    }
    put_u32(buf, CHUNK_MAGIC);
    put_u16(buf + 4, kind);
    put_u16(buf + 6, 0);
    put_u32(buf + 8, count);
    put_u32(buf + 12, payload_len);
    put_u32(buf + 16, gt_crc32(0, buf + CHUNK_HEADER, payload_len));
    int err = write_all(g.fd, buf, CHUNK_HEADER + (size_t)payload_len);
    if (err) {
        g.write_errno = err;
        if (kind == GT_CHUNK_EVENTS)
            g.write_lost += count;
        return;
    }
    g.chunks_written++;
    if (kind == GT_CHUNK_EVENTS)
        g.events_written += count;
    else if (kind == GT_CHUNK_SAMPLES)
        g.samples_written += count;
}

static void drain_events(void)
{
    uint64_t head = g.head;
    uint64_t tail = __atomic_load_n(&g.tail, __ATOMIC_ACQUIRE);
    gt_event *out = (gt_event *)(g.chunk + CHUNK_HEADER);
    while (head != tail) {
        uint32_t n = 0;
        while (head != tail && n < CHUNK_EVENTS_MAX) {
            gt_event e = g.ring[head & g.mask];
            head++;
            if (e.reserved != (uint16_t)g.gen)
                continue;
            e.reserved = 0;
            e.time_ns = gt_ticks_to_ns(e.time_ns);  /* ticks in the ring, ns in the file */
            if (e.kind == GT_EV_ACQUIRE)
                e.arg = gt_tick_span_to_ns(e.arg);
            out[n++] = e;
        }
        __atomic_store_n(&g.head, head, __ATOMIC_RELEASE);
        if (n)
            write_chunk(g.chunk, GT_CHUNK_EVENTS, n, n * (uint32_t)sizeof(gt_event));
    }
}

static void drain_os_names(void)
{
    uint32_t last = __atomic_load_n(&os_names_published, __ATOMIC_ACQUIRE);
    if (last <= os_names_written)
        return;
    uint32_t count = last - os_names_written;
    memcpy(g.chunk + CHUNK_HEADER, &os_names[os_names_written], count * sizeof(os_name_t));
    write_chunk(g.chunk, GT_CHUNK_OS_NAMES, count, count * (uint32_t)sizeof(os_name_t));
    os_names_written = last;
}

static void drain_locations(void)
{
    uint32_t count;
    size_t cap = CHUNK_EVENTS_MAX * sizeof(gt_event);
    size_t n;
    while ((n = gt_locations_take(g.chunk + CHUNK_HEADER, cap, &count)) > 0)
        write_chunk(g.chunk, GT_CHUNK_LOCATIONS, count, (uint32_t)n);
}

static void flush_samples(void)
{
    if (!g.nsamples)
        return;
    memcpy(g.chunk + CHUNK_HEADER, g.samples, g.nsamples * sizeof(gt_sample));
    write_chunk(g.chunk, GT_CHUNK_SAMPLES, (uint32_t)g.nsamples,
                (uint32_t)(g.nsamples * sizeof(gt_sample)));
    g.nsamples = 0;
}

static void read_sample(gt_sample *s, uint64_t now)
{
    s->time_ns = now;
    s->switch_number = *g.gil.switch_number;
    s->holder_tid = __atomic_load_n(&g.holder_tid, __ATOMIC_RELAXED);
    int w = __atomic_load_n(&g.waiters, __ATOMIC_RELAXED);
    s->waiters = (uint16_t)(w < 0 ? 0 : w > 65535 ? 65535 : w);
    s->locked = *g.gil.locked > 0;
    s->drop_request = (uint8_t)__atomic_load_n(&g.drop_pending, __ATOMIC_RELAXED);
}

static void fill_stats_raw(gt_stats *out);

/* ------------------------------------------------------- waking, ending -- */

static void wake_writer(void)  /* async-signal-safe */
{
    uint64_t one = 1;
    if (g.wake_fd >= 0) {
        ssize_t r = write(g.wake_fd, &one, sizeof(one));
        (void)r;
    }
}

/* Sleep until `deadline_ns` (CLOCK_MONOTONIC) or a wake-up. */
static void sleep_until(uint64_t deadline_ns)
{
    uint64_t now = gt_clock_ns();
    if (deadline_ns <= now)
        return;
    uint64_t ns = deadline_ns - now;
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    struct pollfd p = {g.wake_fd, POLLIN, 0};
    if (ppoll(&p, 1, &ts, NULL) > 0) {
        uint64_t v;
        ssize_t r = read(g.wake_fd, &v, sizeof(v));
        (void)r;
    }
}

/* The process's thread count and whether its leader (the thread whose tid is
 * the pid) has exited, from /proc/self/stat; -1 if unreadable. */
static int process_threads(int *leader_zombie)
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
    char *p = strrchr(buf, ')');  /* the command name may hold spaces and ')' */
    if (!p || p[1] != ' ')
        return -1;
    p += 2;
    *leader_zombie = *p == 'Z';
    for (int field = 3; field < 20; field++) {  /* num_threads is field 20 */
        p = strchr(p, ' ');
        if (!p)
            return -1;
        p++;
    }
    return atoi(p);
}

/* Threads of this process still running, other than the caller and the
 * writer (a zombie leader is still counted by the kernel). */
static int others_alive(int caller_is_writer)
{
    int zombie = 0;
    int n = process_threads(&zombie);
    if (n < 0)
        return 1;  /* can't tell: assume someone is */
    n -= caller_is_writer ? 1 : 2;
    if (zombie && (caller_is_writer || (pid_t)syscall(SYS_gettid) != getpid()))
        n--;
    return n;
}

/* The trace's end, as seen from C: when no Python code is left to write the
 * footer (the last thread exited without exit(), or a terminating signal). */
static void write_footer(const char *ended_by)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    gt_stats st;
    char *json = (char *)g.chunk + CHUNK_HEADER;
    fill_stats_raw(&st);
    int len = snprintf(json, 4096,
        "{\"ended_by\": \"%s\", \"events_lost\": %llu, \"events_written\": %llu, \"locations_lost\": %llu, "
        "\"samples_written\": %llu, \"start_ns\": %llu, \"stop_ns\": %llu, \"stop_time_unix\": %.6f, "
        "\"switch_interval_s\": %.6f, \"switch_number_start\": %llu, \"switch_number_stop\": %llu, \"write_errno\": %d}",
        ended_by, (unsigned long long)st.events_lost, (unsigned long long)st.events_written,
        (unsigned long long)st.locations_lost, (unsigned long long)st.samples_written,
        (unsigned long long)st.start_ns, (unsigned long long)st.stop_ns,
        (double)wall.tv_sec + wall.tv_nsec / 1e9, st.interval_us / 1e6,
        (unsigned long long)st.switch_number_start, (unsigned long long)st.switch_number_stop, st.write_errno);
    if (len > 0 && len < 4096)
        write_chunk(g.chunk, GT_CHUNK_FOOTER, 1, (uint32_t)len);
}

/* Stop producing events (no Python thread can be inside a hook afterwards
 * when the GIL's mutex is taken; in a signal handler it is not). */
static void deactivate(int lock_gil)
{
    if (lock_gil)
        pthread_mutex_lock(g.gil.mutex);  /* our own PLT: straight to libc */
    g.switch_stop = *g.gil.switch_number;
    g.stop_ns = gt_clock_ns();
    __atomic_store_n(&g.active, 0, __ATOMIC_SEQ_CST);
    if (lock_gil)
        pthread_mutex_unlock(g.gil.mutex);
}

static void drain_all(void)
{
    gt_clock_refine();
    drain_locations();  /* before the events that refer to them */
    drain_os_names();
    drain_events();
    flush_samples();
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
#define POLL_NS 20000000ull
#define IDLE_POLL_NS 100000000ull
#define IDLE_WAKES 10

static void *writer_main(void *arg)
{
    (void)arg;
    const uint64_t sample_period = g.cfg.sample_period_ns;
    const uint64_t flush_period = g.cfg.flush_period_ns;
    uint64_t now = gt_clock_ns();
    uint64_t next_poll = now + POLL_NS, next_flush = now + flush_period;
    uint64_t last_tail = 0, last_switch = *g.gil.switch_number, switch_seen = now;
    int idle_wakes = 0;

    while (!__atomic_load_n(&g.stop_requested, __ATOMIC_ACQUIRE) && !__atomic_load_n(&g.terminating, __ATOMIC_ACQUIRE)) {
        uint64_t wake = next_flush;
        if (sample_period && next_poll < wake)
            wake = next_poll;
        sleep_until(wake);
        if (__atomic_load_n(&g.stop_requested, __ATOMIC_ACQUIRE) || __atomic_load_n(&g.terminating, __ATOMIC_ACQUIRE))
            break;

        now = gt_clock_ns();
        uint64_t tail = __atomic_load_n(&g.tail, __ATOMIC_ACQUIRE);
        if (sample_period && now >= next_poll) {
            gt_sample s;
            read_sample(&s, now);
            if (s.switch_number != last_switch) {
                last_switch = s.switch_number;
                switch_seen = now;
            }
            uint64_t interval_ns = (uint64_t)*g.gil.interval_us * 1000;
            int stuck = s.waiters && s.locked && now - switch_seen >= interval_ns;
            if (stuck)
                g.samples[g.nsamples++] = s;
            int idle = !s.waiters && tail == last_tail;
            idle_wakes = idle ? idle_wakes + 1 : 0;
            uint64_t period = stuck ? sample_period : idle_wakes >= IDLE_WAKES ? IDLE_POLL_NS : POLL_NS;
            if (!stuck && period < sample_period)
                period = sample_period;
            next_poll = now + period;
        }
        last_tail = tail;
        if (now >= next_flush || tail - g.head > (g.mask + 1) / 4 || g.nsamples == SAMPLES_MAX) {
            drain_all();
            next_flush = now + flush_period;
            /* Every other thread has gone without exit() (e.g. a child forked
             * from a thread whose thread returned): the writer alone must not
             * keep the process alive.  Finish the file and end the process as
             * the last thread's exit would have: exit(0). */
            if (others_alive(1) == 0 && !__atomic_load_n(&g.stop_requested, __ATOMIC_ACQUIRE)) {
                deactivate(0);
                drain_all();
                write_footer("last-thread");
                exit(0);
            }
        }
    }
    drain_all();
    if (__atomic_load_n(&g.terminating, __ATOMIC_ACQUIRE)) {
        write_footer("signal");
        __atomic_store_n(&g.finalised, 1, __ATOMIC_RELEASE);
    }
    return NULL;
}

static int start_writer(void)
{
    /* The writer must never run Python signal handlers' C side: block all. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int perr = pthread_create(&g.writer, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return perr;
}

static void join_writer(int how)
{
    __atomic_store_n(&g.stop_requested, how, __ATOMIC_RELEASE);
    wake_writer();
    pthread_join(g.writer, NULL);
    __atomic_store_n(&g.stop_requested, STOP_NONE, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------ control -- */

static void fill_stats_raw(gt_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->start_ns = g.start_ns;
    out->stop_ns = g.stop_ns;
    out->switch_number_start = g.switch_start;
    out->switch_number_stop = g.switch_stop;
    out->events_written = g.events_written;
    out->events_lost = __atomic_load_n(&g.lost, __ATOMIC_RELAXED) + g.write_lost;
    out->samples_written = g.samples_written;
    out->chunks_written = g.chunks_written;
    out->interval_us = g.have_gil ? *g.gil.interval_us : 0;
    out->buffer_events = (uint32_t)(g.mask + 1);
    out->write_errno = g.write_errno;
    out->locations_lost = gt_locations_overflow();
}

/* ---- terminating signals: SIGTERM / SIGHUP with their default action ---- */

static const int term_signals[2] = {SIGTERM, SIGHUP};

/* The default action would kill the process before Python's atexit runs:
 * have the writer finish the file first, then die of the same signal, so the
 * exit status is what it would have been (how-it-works.md, "Signals"). */
static void on_terminate(int sig)
{
    int saved = errno;
    if (g.running && !__atomic_exchange_n(&g.terminating, 1, __ATOMIC_SEQ_CST)) {
        deactivate(0);  /* the signal may have interrupted a thread inside take_gil */
        wake_writer();
        struct timespec ms = {0, 1000000};
        for (int i = 0; i < 2000 && !__atomic_load_n(&g.finalised, __ATOMIC_ACQUIRE); i++)
            nanosleep(&ms, NULL);
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    sigaction(sig, &dfl, NULL);
    raise(sig);  /* pending until this handler returns and unblocks it */
    errno = saved;
}

static void install_terminate_handlers(void)
{
    for (int i = 0; i < 2; i++) {
        struct sigaction cur, ours;
        g.term_installed[i] = 0;
        if (sigaction(term_signals[i], NULL, &cur) != 0 || (cur.sa_flags & SA_SIGINFO) || cur.sa_handler != SIG_DFL)
            continue;  /* the program handles or ignores it: leave it alone */
        memset(&ours, 0, sizeof(ours));
        ours.sa_handler = on_terminate;
        sigfillset(&ours.sa_mask);
        ours.sa_flags = SA_RESTART;
        if (sigaction(term_signals[i], &ours, &g.old_term[i]) == 0)
            g.term_installed[i] = 1;
    }
}

static void remove_terminate_handlers(void)
{
    for (int i = 0; i < 2; i++) {
        struct sigaction cur;
        if (!g.term_installed[i])
            continue;
        g.term_installed[i] = 0;
        /* only if still ours: the program may have installed its own since */
        if (sigaction(term_signals[i], NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) && cur.sa_handler == on_terminate)
            sigaction(term_signals[i], &g.old_term[i], NULL);
    }
}

/* ------------------------------------------------------------- threads -- */

/* Stop and finish the file from C; `g.control` is held. */
static void stop_locked(gt_stats *out, const char *ended_by)
{
    deactivate(1);
    gt_hooks_uninstall();
    remove_terminate_handlers();
    if (g.paused)
        g.paused = g.resume_pending = 0;  /* no writer thread to join: drain below */
    else
        join_writer(STOP_FINAL);
    drain_all();
    if (ended_by) {
        write_footer(ended_by);
    }
    g.running = 0;
    g.fd = -1;
    if (out)
        fill_stats_raw(out);
}

/* A traced thread is exiting (pthread key destructor: after its Python
 * thread state is gone, before glibc counts it out).  If it is the last one
 * besides the writer, the process ends when it does, without exit() and so
 * without Python's atexit: finish the trace now.  Only the leader's exit can
 * start that situation, so other threads check only once it has happened. */
static void on_thread_exit(void *unused)
{
    (void)unused;
    if (!__atomic_load_n(&g.running, __ATOMIC_ACQUIRE))
        return;
    int leader = (pid_t)syscall(SYS_gettid) == getpid();
    if (!leader && !__atomic_load_n(&g.leader_gone, __ATOMIC_ACQUIRE))
        return;
    if (others_alive(0) > 0) {
        if (leader)
            __atomic_store_n(&g.leader_gone, 1, __ATOMIC_RELEASE);
        return;
    }
    if (pthread_mutex_trylock(&g.control) != 0)
        return;  /* a stop is under way */
    if (g.running)
        stop_locked(NULL, "last-thread");
    pthread_mutex_unlock(&g.control);
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
    if (g.paused) {
        g.paused = 0;
        if (start_writer() != 0 && !g.write_errno)  /* no thread: the ring fills and counts what it loses */
            g.write_errno = EAGAIN;
    }
}

/* From a hook (the GIL's mutex held): never wait for `control`, whose holder
 * may be waiting for the GIL's mutex (gt_stop); the next transition retries. */
static void resume_from_hook(void)
{
    if (pthread_mutex_trylock(&g.control) != 0)
        return;
    if (g.resume_pending) {
        __atomic_store_n(&g.resume_pending, 0, __ATOMIC_RELAXED);
        resume_writer_locked();
    }
    pthread_mutex_unlock(&g.control);
}

static void atfork_prepare(void)
{
    pthread_mutex_lock(&g.control);  /* no start or stop while fork copies this state */
    if (g.running && !__atomic_load_n(&g.terminating, __ATOMIC_ACQUIRE)) {
        int zombie, before = process_threads(&zombie);
        join_writer(STOP_PAUSE);
        g.paused = 1;
        /* pthread_join returns when the kernel clears the thread's tid, a
         * moment before it stops counting the thread: wait for that too. */
        for (int i = 0; before > 0 && i < 2000 && process_threads(&zombie) >= before; i++)
            sched_yield();
    }
}

static void atfork_parent(void)
{
    if (gt_fork_from_python && g.paused)
        __atomic_store_n(&g.resume_pending, 1, __ATOMIC_RELAXED);
    else
        resume_writer_locked();
    gt_fork_from_python = 0;
    pthread_mutex_unlock(&g.control);
}

/* In a forked child only the forking thread survives: the writer thread is
 * gone and the file belongs to the parent.  The child runs untraced. */
static void atfork_child(void)
{
    t_self.tid = 0;
    t_self.gen = 0;
    g.paused = 0;
    g.resume_pending = 0;
    gt_fork_from_python = 0;
    g.leader_gone = 0;
    if (g.running) {
        __atomic_store_n(&g.active, 0, __ATOMIC_SEQ_CST);
        gt_hooks_uninstall();
        remove_terminate_handlers();
        g.running = 0;
        g.fd = -1;
    }
    if (g.wake_fd >= 0)  /* shared with the parent's: never wake its writer */
        close(g.wake_fd);
    g.wake_fd = -1;
    pthread_mutex_init(&g.control, NULL);
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
    if (!g.ring || g.mask + 1 != capacity) {
        free(g.ring);  /* safe: producers only touch it while `active` */
        g.ring = calloc(capacity, sizeof(gt_event));
        g.mask = capacity - 1;
    }
    if (!g.chunk)
        g.chunk = malloc(CHUNK_HEADER + CHUNK_EVENTS_MAX * sizeof(gt_event));
    if (!g.samples)
        g.samples = malloc(SAMPLES_MAX * sizeof(gt_sample));
    if (!g.ring || !g.chunk || !g.samples) {
        free(g.ring);
        g.ring = NULL;
        snprintf(err, errlen, "cannot allocate a buffer of %llu events", (unsigned long long)capacity);
        return -1;
    }
    g.head = g.tail = 0;
    g.lost = g.write_lost = 0;
    g.events_written = g.samples_written = g.chunks_written = 0;
    g.write_errno = 0;
    g.nsamples = 0;
    os_names_published = os_names_written = 0;
    gt_locations_reset();
    return 0;
}

int gt_start(const gt_config *cfg, char *err, size_t errlen)
{
    static int once;
    int rc = -1;
    pthread_mutex_lock(&g.control);
    if (!once) {
        pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
        pthread_key_create(&g.exit_key, on_thread_exit);
        once = 1;
    }
    if (g.running) {
        snprintf(err, errlen, "a trace is already running in this process");
        rc = GT_ERR_RUNNING;
        goto out;
    }
    if (cfg->fd < 0) {
        snprintf(err, errlen, "no trace file descriptor");
        goto out;
    }
    if (!g.have_gil) {
        if (gt_locate_gil(&g.gil, err, errlen) != 0) {
            rc = GT_ERR_UNSUPPORTED;
            goto out;
        }
        g.have_gil = 1;
    }
    if (g.wake_fd < 0 && (g.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        snprintf(err, errlen, "cannot create an eventfd: %s", strerror(errno));
        goto out;
    }
    if (prepare_buffers(round_pow2(cfg->buffer_events), err, errlen) != 0)
        goto out;
    g.cfg = *cfg;
    if (g.cfg.flush_period_ns < 1000000)
        g.cfg.flush_period_ns = 1000000;
    g.fd = cfg->fd;
    g.stop_requested = STOP_NONE;
    g.terminating = g.finalised = g.leader_gone = 0;
    gt_set_library_prefixes(cfg->library_prefixes);
    if (gt_hooks_install(err, errlen) != 0) {
        rc = GT_ERR_UNSUPPORTED;
        goto out;
    }

    uint32_t gen = ++g.gen;
    if (!(uint16_t)gen)  /* events carry the low 16 bits; 0 means "stale" */
        gen = ++g.gen;
    pthread_mutex_lock(g.gil.mutex);  /* our own PLT: straight to libc */
    g.switch_start = g.last_switch = *g.gil.switch_number;
    g.holder_tid = 0;
    g.drop_pending = 0;
    g.waiters = 0;
    gt_clock_start();
    g.start_tick = gt_clock_start_tick();
    g.start_ns = gt_ticks_to_ns(g.start_tick);
    g.stop_ns = 0;
    __atomic_store_n(&g.active, gen, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(g.gil.mutex);

    int perr = start_writer();
    if (perr) {
        __atomic_store_n(&g.active, 0, __ATOMIC_SEQ_CST);
        gt_hooks_uninstall();
        snprintf(err, errlen, "cannot start the writer thread: %s", strerror(perr));
        goto out;
    }
    pthread_setspecific(g.exit_key, (void *)1);  /* the starting thread too */
    if (cfg->finalize_on_signals)
        install_terminate_handlers();
    __atomic_store_n(&g.running, 1, __ATOMIC_RELEASE);
    rc = 0;
out:
    pthread_mutex_unlock(&g.control);
    return rc;
}

int gt_stop(gt_stats *out)
{
    pthread_mutex_lock(&g.control);
    if (!g.running) {
        pthread_mutex_unlock(&g.control);
        return -1;
    }
    stop_locked(out, NULL);
    pthread_mutex_unlock(&g.control);
    return 0;
}

int gt_running(void) { return __atomic_load_n(&g.running, __ATOMIC_ACQUIRE); }

int gt_stats_now(gt_stats *out)
{
    fill_stats_raw(out);
    return g.running ? 0 : -1;
}

int gt_sample_now(gt_sample *out)
{
    if (!g.have_gil) {
        char err[128];
        if (gt_locate_gil(&g.gil, err, sizeof(err)) != 0)
            return -1;
        g.have_gil = 1;
    }
    read_sample(out, gt_clock_ns());
    return g.running ? 0 : 1;
}

int gt_gil_info(uint64_t *switch_number, uint64_t *interval_us, int *locked)
{
    if (!g.have_gil) {
        char err[128];
        if (gt_locate_gil(&g.gil, err, sizeof(err)) != 0)
            return -1;
        g.have_gil = 1;
    }
    *switch_number = *g.gil.switch_number;
    *interval_us = *g.gil.interval_us;
    *locked = *g.gil.locked;
    return 0;
}
