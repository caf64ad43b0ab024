/* giltrace_api.h -- the one contract between the C core and Python.
 *
 * This file is read twice: by cffi's cdef() (so it must stay plain
 * declarations: no #include, no #if, no function-like macros) and by the C
 * sources.  Everything Python may call is here; everything else is static.
 *
 * On-disk records (gt_event, gt_sample) are written verbatim, little-endian,
 * and documented in docs/file-format.md.  Change them only together with
 * FORMAT_VERSION in giltrace/fileformat.py.
 */

/* Event kinds. */
#define GT_EV_WAIT                                                                                                     \
    1                   /* began waiting (time = entry into the GIL mutex;
                                 arg = code location id of the innermost frame outside
                                 library code, 0 if unknown or off) */
#define GT_EV_ACQUIRE 2 /* took the GIL (arg = ns since the take began) */
#define GT_EV_RELEASE 3 /* dropped the GIL (arg = code location id, 0 if unknown or off) */
#define GT_EV_DROP_REQUEST                                                                                             \
    4 /* a waiter timed out and asked the holder to switch
                                 (arg = holder tid, 0 if unknown) */

/* Flags on GT_EV_ACQUIRE. */
#define GT_FLAG_SWITCHED     1 /* the holder changed: the interpreter bumped switch_number */
#define GT_FLAG_CONTENDED    2 /* the thread blocked on the GIL's condition variable */
#define GT_FLAG_WAIT_UNKNOWN 4 /* the take began before the trace: arg is 0 */
#define GT_FLAG_SAME_HOLDER  8 /* old GIL (2.7): re-taken by the thread that released it last */

/* gt_start() return codes (0 = started). */
#define GT_ERR_FAILED      -1 /* resources: memory, threads */
#define GT_ERR_UNSUPPORTED -2 /* this interpreter's GIL cannot be found or hooked */
#define GT_ERR_RUNNING     -3 /* a trace is already running in this process */

/* Chunks: u32 magic | u16 kind | u16 0 | u32 count | u32 payload_len | u32 crc32 | payload
   (giltrace/layout.py declares the same for Python; a test compares them). */
#define GT_CHUNK_MAGIC       0x4B4E4843 /* "CHNK" read as a little-endian u32 */
#define GT_CHUNK_HEADER_SIZE 20

/* Chunk kinds written by C (Python writes the header, START and THREADS, and the
   FOOTER unless the process ends without running Python: then C writes it). */
#define GT_CHUNK_EVENTS    1
#define GT_CHUNK_SAMPLES   2
#define GT_CHUNK_FOOTER    5
#define GT_CHUNK_LOCATIONS 6 /* records: u32 id, i32 line, u16 file_len, u16 name_len, file, name */
#define GT_CHUNK_OS_NAMES  7 /* records of 20 bytes: u32 tid, char name[16] (NUL-padded) */
#define GT_CHUNK_CPU       8 /* gt_cpu_sample records (cpu_state on) */
#define GT_CHUNK_PY_NAMES  9 /* gt_py_name records: Python's thread names, learnt as threads start */

typedef struct {
    uint64_t time_ns; /* CLOCK_MONOTONIC */
    uint64_t arg;
    uint32_t tid; /* OS thread id (gettid) */
    uint8_t kind;
    uint8_t flags;
    uint16_t reserved; /* in memory: trace generation; on disk: 0 */
} gt_event;            /* 24 bytes */

typedef struct {
    uint64_t time_ns;
    uint64_t switch_number;
    uint32_t holder_tid; /* last thread seen acquiring, 0 if none/unknown */
    uint16_t waiters;    /* threads blocked in take_gil right now */
    uint8_t locked;
    uint8_t drop_request; /* a drop request is pending */
} gt_sample;              /* 24 bytes */

/* CPU state beside GIL state (cpu_state on): each thread's scheduler
   counters from /proc/self/task/TID/schedstat, and the cgroup's throttling. */
typedef struct {
    uint64_t time_ns;
    uint64_t run_ns;  /* thread: time on a CPU; cgroup (tid 0): time throttled */
    uint64_t wait_ns; /* thread: time runnable, waiting for a CPU; cgroup: throttled periods */
    uint32_t tid;     /* 0: the cgroup's cpu.stat */
    uint32_t reserved;
} gt_cpu_sample; /* 32 bytes */

typedef struct {
    int fd;                       /* open, writable trace file; C appends chunks */
    uint32_t buffer_events;       /* ring capacity in events (rounded up to 2^k) */
    uint64_t sample_period_ns;    /* sampler period; 0 disables the sampler */
    uint64_t flush_period_ns;     /* how often the writer drains the ring */
    int locations;                /* record code locations at releases and waits */
    const char *library_prefixes; /* newline-separated file prefixes of library code: a wait is
                                     attributed to the innermost frame outside them */
    int finalize_on_signals;      /* SIGTERM/SIGHUP with their default action finish the file first */
    int cpu_state;                /* sample threads' scheduler counters every sample_period_ns */
    const char *cgroup_cpu_stat;  /* the process's cgroup cpu.stat file, NULL if none */
    const char *path;             /* the trace file's absolute path, to reopen it if the program closes
                                     `fd` (NULL: never reopened); C writes to its own copy of `fd` */
} gt_config;

typedef struct {
    uint64_t start_ns;
    uint64_t stop_ns;
    uint64_t switch_number_start;
    uint64_t switch_number_stop;
    uint64_t events_written;
    uint64_t events_lost;
    uint64_t samples_written;
    uint64_t chunks_written;
    uint64_t interval_us; /* switch interval at start */
    uint32_t buffer_events;
    int write_errno;         /* first write(2) error, 0 if none */
    uint64_t locations_lost; /* location lookups that found the table full */
    uint32_t fd_reopened;    /* times the program closed or replaced the trace's descriptor and C reopened the file */
    int fd_lost;             /* ... and could not: writing stopped there (write_errno EBADF) */
} gt_stats;

typedef struct {
    const char *name;
    void *slot;    /* GOT slot address, NULL if not found */
    void *current; /* what the slot holds now */
    void *hook;    /* our hook */
    void *real;    /* the function calls reach when not traced */
} gt_got_entry;

/* Metrics mode (csrc/metrics.c): per-thread counters only, no ring, no thread. */
#define GT_METRICS_BUCKETS                                                                                             \
    30                        /* blocking waits by duration: 29 upper bounds, 1 us .. 10 s
                                  (4 per decade), and +Inf */
#define GT_METRICS_SLOTS 1024 /* threads counted one by one; the last slot takes the rest */

typedef struct {
    uint32_t tid;        /* 0 in the shared overflow slot */
    uint32_t state;      /* 0 free, 1 live, 2 exited (kept until read once) */
    uint64_t wait_ticks; /* every take, blocking or not */
    uint64_t hold_ticks;
    uint64_t acquires;
    uint64_t waits;         /* takes that had to block */
    uint64_t drop_requests; /* raised while it held the GIL: forced switches */
    uint64_t hist[GT_METRICS_BUCKETS];
} gt_metrics_thread;

typedef struct {
    uint64_t start_ns; /* CLOCK_MONOTONIC, when the metrics started */
    uint64_t now_ns;
    double ns_per_tick;
    uint64_t contended_ticks;  /* time during which some thread waited (blocking) */
    uint64_t overflow_threads; /* threads that found every slot taken */
    uint64_t alerts_lost;
} gt_metrics_totals;

typedef struct {
    uint64_t time_ns; /* when it was noticed, since the metrics started */
    uint64_t duration_ns;
    uint32_t kind;      /* 1: a wait over the threshold; 2: a hold over it while others waited */
    uint32_t tid;       /* the waiter (1) or the holder (2) */
    uint32_t other_tid; /* (1) the thread that held the GIL last before the waiter got it */
    int32_t line;       /* (2) the holder's code location, 0 if unknown */
    char file[256];
    char function[128];
} gt_metrics_alert;

/* Control API: rare calls (each cffi call releases the GIL). */
int gt_start(const gt_config *cfg, char *err, size_t errlen);
int gt_stop(gt_stats *out);
/* The trace file's chunks from Python: written to C's own descriptor once it
   is checked to still be the file's (how-it-works.md, "The program's own
   descriptors"); 0 or an errno.  gt_trace_close() closes it after gt_stop. */
int gt_trace_write(const char *buf, size_t len);
void gt_trace_close(void);
int gt_trace_fd(void); /* C's descriptor of the trace file now, -1 if none: to read it, never to write or close */
int gt_running(void);
int gt_metrics_start(uint64_t alert_ns, char *err, size_t errlen); /* alert_ns 0: no alerts */
int gt_metrics_stop(void);
int gt_metrics_running(void);
int gt_metrics_read(gt_metrics_thread *out, int max, gt_metrics_totals *totals); /* exited threads: freed once read */
int gt_metrics_alerts(gt_metrics_alert *out, int max);
int gt_metrics_exited(void); /* exited threads whose counters wait for a reader */
uint64_t gt_metrics_bound_ns(int bucket);
/* Set (a plain store through a pointer from ffi.addressof: no GIL release) by Python's before-fork hook: the
   writer, paused by every fork(), comes back at the parent's next GIL
   transition instead of inside fork() (how-it-works.md, "Fork"). */
extern int gt_fork_from_python;
/* Python's name of each thread it starts, handed to the writer without any
   file I/O (or GIL release) on the program's thread: Python writes a record at
   gt_py_names[stored % GT_PY_NAMES_MAX] and bumps gt_py_names_stored (plain
   stores, under the GIL) while stored - gt_py_names_written < GT_PY_NAMES_MAX;
   the next GIL release publishes them to the writer (how-it-works.md, "Start-up"). */
#define GT_PY_NAMES_MAX  1024
#define GT_PY_NAME_BYTES 124
typedef struct {
    uint32_t tid;
    char name[124]; /* UTF-8, NUL-padded, cut at 123 bytes */
} gt_py_name;       /* 128 bytes */
extern gt_py_name gt_py_names[1024];
extern uint32_t gt_py_names_stored;  /* Python's plain stores */
extern uint32_t gt_py_names_written; /* the writer's (release-stored): the slots below it are free again */
int gt_sample_now(gt_sample *out);
int gt_stats_now(gt_stats *out);
int gt_hook_target(char *buf, size_t n);
int gt_got_entries(gt_got_entry *out, int n);
int gt_clock_is_tsc(void); /* event time stamps come from the TSC (else clock_gettime) */
uint32_t gt_crc32(uint32_t crc, const unsigned char *buf, size_t len);

/* Test-only helpers: deterministic GIL behaviour from C. */
void gt_test_hold_gil_ns(uint64_t ns);
void gt_test_hold_gil_ns_timed(uint64_t ns, uint64_t *t4); /* + stamps around Ensure/Release */
void gt_test_noop(void);
uint32_t gt_test_c_thread(uint64_t ns);           /* a named C thread taking the GIL via PyGILState_Ensure */
uint32_t gt_test_c_thread_call(void (*fn)(void)); /* a named C thread calling fn (a cffi callback) */
uint64_t gt_test_spin_ns(uint64_t ns);            /* returns the CLOCK_MONOTONIC time it stopped */
