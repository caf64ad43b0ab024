/* oldgil.c -- the old GIL kind: CPython 2.7's semaphore GIL.
 *
 * Built only into the plain shared library that a 2.7 process loads with
 * ctypes (giltrace/_build_oldgil.py, -DGT_GIL_OLD); it replaces gilstate.c
 * there, so that library needs no Python header at all.  The rest of the
 * C core (ring, writer, chunks, start/stop, fork, signals) is the same code
 * as the 3.x extension's (docs/how-it-works.md, "The old GIL (2.7)").
 *
 * 2.7's GIL is `interpreter_lock` (Python/ceval.c), a PyThread lock: on
 * glibc a malloc'ed sem_t.  A thread takes it with sem_wait (retried on
 * EINTR; sem_trywait when not blocking) and drops it with sem_post; the
 * holder drops and at once re-requests it every check interval of ticks.
 * hooks.c points the interpreter's GOT entries for those three calls at the
 * hooks below, which act only on the GIL's own semaphore.
 *
 * Why the ring still needs no lock: every event is emitted by the thread
 * that holds the GIL (after its sem_wait returned, or before its sem_post),
 * so the semaphore serialises the producers as the mutex does for the new
 * GIL.  A WAIT is therefore emitted once the wait is over, stamped with the
 * time it began (the reader sorts events by time, stably).  The starter
 * calls gt_start/gt_stop with the GIL held (ctypes.PyDLL), so `active`
 * changes between two events, never in the middle of one thread's.
 */
#ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "oldgil.h"
#include "recorder.h"

int (*gt_old_real_sem_wait)(sem_t *);
int (*gt_old_real_sem_trywait)(sem_t *);
int (*gt_old_real_sem_post)(sem_t *);

static sem_t *gil_sem; /* the GIL's semaphore, NULL until found */
static const char *found_by = "";
static pthread_mutex_t start_mutex = PTHREAD_MUTEX_INITIALIZER; /* stands in for the GIL's mutex in control.c */
static volatile int locked;                                     /* the GIL is held (for the sampler) */
static volatile unsigned long handoffs; /* acquisitions by another thread than the last holder */
/* No switch interval here; the sampler's "holder stuck" bound (writer.c). */
static volatile unsigned long stuck_after_us = 5000;

/* Only touched by the GIL's holder (or by prepare, with the GIL held). */
static uint32_t last_holder; /* the thread that took the GIL last, 0 unknown */
static uint32_t starter_tid; /* held the GIL as the trace started */
static uint64_t last_release_tick;

/* Probe (locating without a symbol table): the semaphore a known release posts. */
static volatile int probing;
static uint32_t probe_tid;
static sem_t *probe_seen;

static uint32_t this_tid(void)
{
    return (uint32_t)syscall(SYS_gettid);
}

/* ------------------------------------------------------------ the hooks -- */

#define LOCATE_EVERY_NS 50000 /* giltrace/oldgil.py writes it into the header */

/* LOCATE_EVERY_NS in clock ticks, from the trace's start pair and now (the
 * writer's refined rate may not exist yet); fixed once the trace has run a
 * millisecond. */
static uint64_t locate_every_ticks(void)
{
    static uint64_t ticks;
    if (ticks)
        return ticks;
    if (!gt_tsc_usable)
        return ticks = LOCATE_EVERY_NS;
    uint64_t dt = gt_ticks() - gt_rec.start_tick, dns = gt_clock_ns() - gt_rec.start_ns;
    if (dt == 0 || dns == 0)
        return LOCATE_EVERY_NS;
    uint64_t every = (uint64_t)((double)LOCATE_EVERY_NS * (double)dt / (double)dns) + 1;
    if (dns >= 1000000)
        ticks = every;
    return every;
}

uint64_t gt_old_locate_every_ns(void)
{
    return LOCATE_EVERY_NS;
}

/* This thread now holds the GIL, having asked for it at t->lock_tick.
 *
 * The ACQUIRE is stamped last, after the bookkeeping and with its ring slots
 * already written: after a hand-off those cache lines were last written on
 * another CPU, and the misses belong to the take, not to the hold that
 * follows (docs/how-it-works.md, "What a probe on take_gil measures"). */
static void took_gil(gt_thread *t, uint32_t gen)
{
    int waited = t->waiting;
    if (waited) {
        t->waiting = 0;
        __atomic_sub_fetch(&gt_rec.waiters, 1, __ATOMIC_RELAXED);
    }
    if (__atomic_load_n(&gt_rec.active, __ATOMIC_RELAXED) != gen)
        return; /* the trace stopped while this thread waited */
    if (!t->named)
        gt_record_os_name(t);
    uint8_t flags = waited ? GT_FLAG_CONTENDED : 0;
    if (last_holder != t->tid) {
        flags |= GT_FLAG_SWITCHED;
        handoffs++;
    } else {
        flags |= GT_FLAG_SAME_HOLDER;
    }
    last_holder = t->tid;
    gt_rec.holder_tid = t->tid;
    locked = 1;
    t->holding = 1;
    uint64_t began = t->lock_tick;
    t->lock_tick = 0;
    gt_event *wait = waited ? gt_slot(0) : NULL;
    gt_event *acquire = gt_slot(waited);
    if (wait)
        gt_fill(wait, GT_EV_WAIT, 0, began, 0, t->tid, gen);
    else if (waited)
        gt_count_lost(1);
    if (!acquire) {
        gt_publish(wait != NULL);
        gt_count_lost(1);
        return;
    }
    gt_fill(acquire, GT_EV_ACQUIRE, flags, 0, 0, t->tid, gen);
    uint64_t now = gt_ticks();
    if (!began)
        began = now;
    acquire->time_ns = now;
    acquire->arg = now > began ? now - began : 0;
    if (wait && gt_rec.cfg.locations)
        wait->arg = gt_user_location_here(); /* its frames did not move while it waited */
    gt_publish(1 + waited);
}

int gt_old_sem_wait(sem_t *s)
{
    uint32_t gen;
    if (s != gil_sem || !(gen = __atomic_load_n(&gt_rec.active, __ATOMIC_RELAXED)))
        return gt_old_real_sem_wait(s);
    if (__builtin_expect(__atomic_load_n(&gt_rec.resume_pending, __ATOMIC_RELAXED), 0))
        gt_resume_from_hook();
    gt_thread *t = gt_this_thread(gen);
    if (!t->waiting) /* not a retry after EINTR: the take begins now */
        t->lock_tick = gt_ticks();
    /* Free now?  Then nobody waited; else this thread blocks (contended). */
    if (gt_old_real_sem_trywait(s) == 0) {
        took_gil(t, gen);
        return 0;
    }
    if (!t->waiting) {
        t->waiting = 1;
        __atomic_add_fetch(&gt_rec.waiters, 1, __ATOMIC_RELAXED);
    }
    int rc = gt_old_real_sem_wait(s);
    if (rc == 0)
        took_gil(t, gen);
    return rc; /* EINTR: PyThread_acquire_lock calls again */
}

int gt_old_sem_trywait(sem_t *s)
{
    uint32_t gen;
    if (s != gil_sem || !(gen = __atomic_load_n(&gt_rec.active, __ATOMIC_RELAXED)))
        return gt_old_real_sem_trywait(s);
    int rc = gt_old_real_sem_trywait(s);
    if (rc == 0) {
        gt_thread *t = gt_this_thread(gen);
        if (!t->waiting)
            t->lock_tick = 0; /* no wait: stamped at the take */
        took_gil(t, gen);
    }
    return rc;
}

int gt_old_sem_post(sem_t *s)
{
    if (__builtin_expect(probing, 0) && this_tid() == probe_tid)
        probe_seen = s;
    uint32_t gen;
    if (s == gil_sem && (gen = __atomic_load_n(&gt_rec.active, __ATOMIC_RELAXED))) {
        gt_thread *t = gt_this_thread(gen);
        if (!t->named)
            gt_record_os_name(t);
        if (!t->holding && t->tid != starter_tid) {
            /* It was already blocked in sem_wait when the trace started
             * (hooks.c patched the GOT after its call): it took the GIL at
             * the last release, as far as anyone can tell. */
            uint64_t at = last_release_tick ? last_release_tick : gt_rec.start_tick;
            gt_emit(GT_EV_ACQUIRE, GT_FLAG_WAIT_UNKNOWN | GT_FLAG_SWITCHED, at, 0, t->tid, gen);
            handoffs++;
        }
        uint64_t now = gt_ticks();
        t->holding = 0;
        last_holder = t->tid;
        last_release_tick = now;
        gt_rec.holder_tid = 0;
        locked = 0;
        /* Where it let go, for blame: only when somebody waits, and at most
         * once per LOCATE_EVERY_NS per thread (2.7 lets go ~10^6 times a
         * second; the reader gives the releases between the thread's last
         * located one: layout "release_location_period_ns"). */
        uint32_t where = 0;
        if (gt_rec.cfg.locations && __atomic_load_n(&gt_rec.waiters, __ATOMIC_RELAXED) > 0 &&
            now - t->located_tick >= locate_every_ticks()) {
            where = gt_location_here();
            t->located_tick = now;
        }
        gt_emit(GT_EV_RELEASE, 0, now, where, t->tid, gen);
    }
    return gt_old_real_sem_post(s);
}

/* ------------------------------------------------- locating the semaphore -- */

/* `name`'s address in the object mapped at `l_addr` from file `path`, from
 * its ELF symbol table (.symtab: `interpreter_lock` is static, so it is in
 * no dynamic symbol table); 0 if the file has none or lacks the symbol. */
static uintptr_t symtab_lookup(const char *path, ElfW(Addr) l_addr, const char *name)
{
    uintptr_t found = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ElfW(Ehdr) eh;
    ElfW(Shdr) *sh = NULL;
    ElfW(Sym) *syms = NULL;
    char *strs = NULL;
    if (pread(fd, &eh, sizeof(eh), 0) != (ssize_t)sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
        eh.e_shentsize != sizeof(ElfW(Shdr)) || eh.e_shnum == 0)
        goto out;
    size_t shsz = (size_t)eh.e_shnum * sizeof(ElfW(Shdr));
    if (!(sh = malloc(shsz)) || pread(fd, sh, shsz, (off_t)eh.e_shoff) != (ssize_t)shsz)
        goto out;
    for (int i = 0; i < eh.e_shnum && !found; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= eh.e_shnum)
            continue;
        const ElfW(Shdr) *st = &sh[sh[i].sh_link];
        syms = malloc(sh[i].sh_size);
        strs = malloc(st->sh_size + 1);
        if (!syms || !strs || pread(fd, syms, sh[i].sh_size, (off_t)sh[i].sh_offset) != (ssize_t)sh[i].sh_size ||
            pread(fd, strs, st->sh_size, (off_t)st->sh_offset) != (ssize_t)st->sh_size)
            goto out;
        strs[st->sh_size] = '\0';
        for (size_t k = 0; k < sh[i].sh_size / sizeof(ElfW(Sym)); k++) {
            if (ELF64_ST_TYPE(syms[k].st_info) == STT_OBJECT && syms[k].st_name < st->sh_size &&
                strcmp(strs + syms[k].st_name, name) == 0 && syms[k].st_size == sizeof(void *)) {
                found = l_addr + syms[k].st_value;
                break;
            }
        }
        free(syms);
        free(strs);
        syms = NULL;
        strs = NULL;
    }
out:
    free(sh);
    free(syms);
    free(strs);
    close(fd);
    return found;
}

/* By the symbol table of the object that defines PyEval_SaveThread. */
static sem_t *locate_by_symbol(void *save_thread)
{
    Dl_info info;
    struct link_map *map = NULL;
    if (!dladdr1(save_thread, &info, (void **)&map, RTLD_DL_LINKMAP) || !map)
        return NULL;
    char path[4096];
    if (map->l_name && map->l_name[0])
        snprintf(path, sizeof(path), "%s", map->l_name);
    else { /* the main program */
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        if (n <= 0)
            return NULL;
        path[n] = '\0';
    }
    uintptr_t var = symtab_lookup(path, map->l_addr, "interpreter_lock");
    return var ? *(sem_t *volatile *)var : NULL;
}

/* By observation: the semaphore that PyEval_SaveThread posts as this
 * thread (which holds the GIL) releases it.  Needs the hooks in place. */
static sem_t *locate_by_probe(void *save_thread, char *err, size_t errlen)
{
    void *(*save)(void) = (void *(*)(void))save_thread;
    void (*restore)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "PyEval_RestoreThread");
    if (!restore || gt_hooks_install(err, errlen) != 0)
        return NULL;
    probe_tid = this_tid();
    probe_seen = NULL;
    __atomic_store_n(&probing, 1, __ATOMIC_SEQ_CST);
    void *ts = save();
    restore(ts);
    __atomic_store_n(&probing, 0, __ATOMIC_SEQ_CST);
    return probe_seen;
}

/* Called by the starter before each gt_start, with the GIL held (PyDLL):
 * find the GIL's semaphore again (2.7 makes a new one in a forked child)
 * and note who holds it. */
int gt_oldgil_prepare(char *err, size_t errlen)
{
    void *save_thread = dlsym(RTLD_DEFAULT, "PyEval_SaveThread");
    if (!save_thread) {
        snprintf(err, errlen, "this process has no CPython interpreter (no PyEval_SaveThread)");
        return GT_ERR_UNSUPPORTED;
    }
    const char *how = getenv("GILTRACE_OLDGIL_LOCATE"); /* "probe": skip the symbol table (tests) */
    sem_t *s = NULL;
    found_by = "";
    if (!how || strcmp(how, "probe") != 0) {
        s = locate_by_symbol(save_thread);
        found_by = "symbol interpreter_lock";
    }
    if (!s) {
        s = locate_by_probe(save_thread, err, errlen);
        found_by = "probe of PyEval_SaveThread";
    }
    int value = -1;
    if (!s || sem_getvalue(s, &value) != 0 || value != 0) {
        /* The caller holds the GIL: its semaphore must read 0. */
        snprintf(err, errlen,
                 "cannot find the GIL's semaphore in this interpreter (no interpreter_lock symbol, "
                 "and no GIL release was seen; is this CPython 2.7 with threads initialised?)");
        found_by = "";
        return GT_ERR_UNSUPPORTED;
    }
    gil_sem = s;
    starter_tid = last_holder = this_tid();
    last_release_tick = 0;
    locked = 1;
    return 0;
}

void *gt_oldgil_semaphore(void)
{
    return gil_sem;
}

/* The starter declares gt_config and gt_stats with ctypes, padded: it
 * checks these so that fields added to the contract never overrun it. */
size_t gt_oldgil_sizeof(int which)
{
    return which == 0 ? sizeof(gt_config) : which == 1 ? sizeof(gt_stats) : 0;
}
const char *gt_oldgil_found_by(void)
{
    return found_by;
}

/* control.c and writer.c read these through gt_rec.gil: the stand-ins of
 * the new GIL's fields. */
int gt_locate_gil(gt_gil *out, char *err, size_t errlen)
{
    if (!gil_sem) {
        snprintf(err, errlen, "the old GIL is not located: call gt_oldgil_prepare first");
        return -1;
    }
    memset(out, 0, sizeof(*out));
    out->mutex = &start_mutex;
    out->locked = &locked;
    out->switch_number = &handoffs;
    out->interval_us = &stuck_after_us;
    return 0;
}

/* No code locations on 2.7 (its frames are not read): location 0. */
