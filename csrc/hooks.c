/* hooks.c -- GOT patching of the pthread calls made by the interpreter.
 *
 * The GIL's take/drop code calls pthread_mutex_lock/unlock,
 * pthread_cond_timedwait and pthread_cond_signal through the PLT of the object that defines
 * PyEval_SaveThread (libpythonX.Y.so, or the executable when libpython is
 * linked statically).  The old GIL kind (2.7, built with GT_GIL_OLD) hooks
 * sem_wait, sem_trywait and sem_post the same way (oldgil.c).  We point those GOT slots at our hooks for the duration
 * of a trace and put them back at stop (docs/how-it-works.md).
 *
 * Rules learnt the hard way:
 *  - never call the saved value if it is the lazy-binding PLT stub: the
 *    dynamic linker would write libc's address back and silently unhook us;
 *    resolve the real symbol (with the version the interpreter binds) instead;
 *  - full RELRO: mprotect around the write and restore the protection;
 *  - store with one aligned 8-byte atomic write; threads may be mid-call;
 *  - unpatch only a slot that still holds our hook (else someone chained on
 *    top of us: leave it, our hook then passes straight through);
 *  - this module is never unloaded, so threads still inside a hook are safe.
 */
#ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "gt_internal.h"

typedef struct {
    const char *name;
    const char *version; /* preferred symbol version (glibc keeps two for cond) */
    void *hook;
    void **real;
    void **slot; /* GOT slot in the interpreter object */
    void *saved; /* what the slot held before we patched it */
} hook_def;

#ifdef GT_GIL_OLD
/* The old GIL kind (2.7): its semaphore calls, hooked in oldgil.c. */
#    include "oldgil.h"

static hook_def hooks[] = {
    {"sem_wait", NULL, (void *)gt_old_sem_wait, (void **)&gt_old_real_sem_wait, NULL, NULL},
    {"sem_trywait", NULL, (void *)gt_old_sem_trywait, (void **)&gt_old_real_sem_trywait, NULL, NULL},
    {"sem_post", NULL, (void *)gt_old_sem_post, (void **)&gt_old_real_sem_post, NULL, NULL},
};
#    define N_HOOKS (sizeof(hooks) / sizeof(hooks[0]))

/* The library is loaded into a running 2.7 process (ctypes): the
 * interpreter is whatever object defines PyEval_SaveThread there. */
static const void *interpreter_needle(void)
{
    return dlsym(RTLD_DEFAULT, "PyEval_SaveThread");
}
#else
struct _ts;
extern struct _ts *PyEval_SaveThread(void); /* lives in the interpreter object */

static int (*real_mutex_lock)(pthread_mutex_t *);
static int (*real_mutex_unlock)(pthread_mutex_t *);
static int (*real_cond_timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
static int (*real_cond_signal)(pthread_cond_t *);

static int hook_mutex_lock(pthread_mutex_t *m)
{
    gt_on_mutex_lock(m);
    return real_mutex_lock(m);
}

static int hook_mutex_unlock(pthread_mutex_t *m)
{
    gt_on_mutex_unlock(m);
    return real_mutex_unlock(m);
}

static int hook_cond_timedwait(pthread_cond_t *c, pthread_mutex_t *m, const struct timespec *abstime)
{
    unsigned long saved_switch = 0;
    gt_on_cond_timedwait_enter(c, &saved_switch);
    int rc = real_cond_timedwait(c, m, abstime);
    gt_on_cond_timedwait_exit(c, rc, saved_switch);
    return rc;
}

static int hook_cond_signal(pthread_cond_t *c)
{
    gt_on_cond_signal(c);
    return real_cond_signal(c);
}

static hook_def hooks[] = {
    {"pthread_mutex_lock", NULL, (void *)hook_mutex_lock, (void **)&real_mutex_lock, NULL, NULL},
    {"pthread_mutex_unlock", NULL, (void *)hook_mutex_unlock, (void **)&real_mutex_unlock, NULL, NULL},
    {"pthread_cond_timedwait", "GLIBC_2.3.2", (void *)hook_cond_timedwait, (void **)&real_cond_timedwait, NULL, NULL},
    {"pthread_cond_signal", "GLIBC_2.3.2", (void *)hook_cond_signal, (void **)&real_cond_signal, NULL, NULL},
};
#    define N_HOOKS (sizeof(hooks) / sizeof(hooks[0]))

static const void *interpreter_needle(void)
{
    return (const void *)&PyEval_SaveThread;
}
#endif

/* The interpreter object: found by the address of one of its functions. */
typedef struct {
    const void *needle;
    ElfW(Addr) base;
    const ElfW(Phdr) * phdr;
    ElfW(Half) phnum;
    uintptr_t lo, hi; /* extent of its PT_LOAD segments */
    char name[512];
    int found;
} object_info;

static int find_object_cb(struct dl_phdr_info *info, size_t size, void *data)
{
    (void)size;
    object_info *obj = data;
    uintptr_t lo = UINTPTR_MAX, hi = 0;
    int contains = 0;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t start = info->dlpi_addr + ph->p_vaddr, end = start + ph->p_memsz;
        if (start < lo)
            lo = start;
        if (end > hi)
            hi = end;
        if ((uintptr_t)obj->needle >= start && (uintptr_t)obj->needle < end)
            contains = 1;
    }
    if (!contains)
        return 0;
    obj->base = info->dlpi_addr;
    obj->phdr = info->dlpi_phdr;
    obj->phnum = info->dlpi_phnum;
    obj->lo = lo;
    obj->hi = hi;
    snprintf(obj->name, sizeof(obj->name), "%s", info->dlpi_name ? info->dlpi_name : "");
    obj->found = 1;
    return 1;
}

static object_info target;

int gt_hook_target(char *buf, size_t n)
{
    if (!target.found)
        return -1;
    if (target.name[0])
        snprintf(buf, n, "%s", target.name);
    else if (readlink("/proc/self/exe", buf, n - 1) > 0)
        buf[n - 1] = '\0';
    else
        snprintf(buf, n, "<main program>");
    return 0;
}

static void *resolve_real(const hook_def *h)
{
    void *fn = NULL;
#ifdef __GLIBC__
    if (h->version)
        fn = dlvsym(RTLD_DEFAULT, h->name, h->version);
#endif
    if (!fn)
        fn = dlsym(RTLD_DEFAULT, h->name);
    return fn;
}

static uintptr_t dyn_ptr(ElfW(Addr) base, ElfW(Addr) value)
{
    /* glibc relocates .dynamic pointers in place on most ports; not all. */
    return (base && value < base) ? base + value : value;
}

static int slot_in_relro(void **slot, uintptr_t *page_lo, size_t *len)
{
    long pagesz = sysconf(_SC_PAGESIZE);
    for (ElfW(Half) i = 0; i < target.phnum; i++) {
        const ElfW(Phdr) *ph = &target.phdr[i];
        if (ph->p_type != PT_GNU_RELRO)
            continue;
        uintptr_t start = target.base + ph->p_vaddr, end = start + ph->p_memsz;
        if ((uintptr_t)slot >= start && (uintptr_t)slot < end) {
            *page_lo = (uintptr_t)slot & ~(uintptr_t)(pagesz - 1);
            *len = (size_t)pagesz;
            return 1;
        }
    }
    return 0;
}

static int write_slot(void **slot, void *value)
{
    uintptr_t page = 0;
    size_t len = 0;
    int relro = slot_in_relro(slot, &page, &len);
    if (relro && mprotect((void *)page, len, PROT_READ | PROT_WRITE) != 0)
        return -1;
    __atomic_store_n(slot, value, __ATOMIC_SEQ_CST);
    if (relro)
        mprotect((void *)page, len, PROT_READ);
    return 0;
}

/* Find the GOT slots of our hooked symbols (PLT and GLOB_DAT relocations). */
static void find_slots(void)
{
    const ElfW(Dyn) *dyn = NULL;
    for (ElfW(Half) i = 0; i < target.phnum; i++)
        if (target.phdr[i].p_type == PT_DYNAMIC)
            dyn = (const ElfW(Dyn) *)(target.base + target.phdr[i].p_vaddr);
    if (!dyn)
        return;
    const ElfW(Sym) *symtab = NULL;
    const char *strtab = NULL;
    uintptr_t jmprel = 0, rela = 0;
    size_t jmprel_sz = 0, rela_sz = 0;
    for (; dyn->d_tag != DT_NULL; dyn++) {
        switch (dyn->d_tag) {
        case DT_SYMTAB:
            symtab = (const ElfW(Sym) *)dyn_ptr(target.base, dyn->d_un.d_ptr);
            break;
        case DT_STRTAB:
            strtab = (const char *)dyn_ptr(target.base, dyn->d_un.d_ptr);
            break;
        case DT_JMPREL:
            jmprel = dyn_ptr(target.base, dyn->d_un.d_ptr);
            break;
        case DT_PLTRELSZ:
            jmprel_sz = dyn->d_un.d_val;
            break;
        case DT_RELA:
            rela = dyn_ptr(target.base, dyn->d_un.d_ptr);
            break;
        case DT_RELASZ:
            rela_sz = dyn->d_un.d_val;
            break;
        }
    }
    if (!symtab || !strtab)
        return;
    const uintptr_t tables[2] = {jmprel, rela};
    const size_t sizes[2] = {jmprel_sz, rela_sz};
    for (int t = 0; t < 2; t++) {
        const ElfW(Rela) *r = (const ElfW(Rela) *)tables[t];
        size_t count = r ? sizes[t] / sizeof(ElfW(Rela)) : 0;
        for (size_t k = 0; k < count; k++) {
            unsigned long type = ELF64_R_TYPE(r[k].r_info);
#if defined(__x86_64__)
            if (type != R_X86_64_JUMP_SLOT && type != R_X86_64_GLOB_DAT)
                continue;
#elif defined(__aarch64__)
            if (type != R_AARCH64_JUMP_SLOT && type != R_AARCH64_GLOB_DAT)
                continue;
#else
            (void)type;
#endif
            const char *name = strtab + symtab[ELF64_R_SYM(r[k].r_info)].st_name;
            for (size_t h = 0; h < N_HOOKS; h++)
                if (!hooks[h].slot && strcmp(name, hooks[h].name) == 0)
                    hooks[h].slot = (void **)(target.base + r[k].r_offset);
        }
    }
}

static int installed;

int gt_hooks_install(char *err, size_t errlen)
{
    if (installed)
        return 0;
    if (!target.found) {
        target.needle = interpreter_needle();
        if (target.needle)
            dl_iterate_phdr(find_object_cb, &target);
        if (!target.found) {
            snprintf(err, errlen, "cannot find the object that holds the interpreter");
            return -1;
        }
        find_slots();
    }
    for (size_t h = 0; h < N_HOOKS; h++) {
        if (!hooks[h].slot) {
            snprintf(err, errlen, "the interpreter does not call %s through its GOT; cannot hook the GIL",
                     hooks[h].name);
            return -1;
        }
        void *resolved = resolve_real(&hooks[h]);
        if (!resolved) {
            snprintf(err, errlen, "cannot resolve %s", hooks[h].name);
            return -1;
        }
    }
    for (size_t h = 0; h < N_HOOKS; h++) {
        void *current = __atomic_load_n(hooks[h].slot, __ATOMIC_SEQ_CST);
        if (current == hooks[h].hook)
            continue; /* still ours from an earlier trace that could not unpatch */
        /* A slot that points back into the object is the lazy PLT stub. */
        int is_stub = (uintptr_t)current >= target.lo && (uintptr_t)current < target.hi;
        void *real = is_stub ? resolve_real(&hooks[h]) : current;
        __atomic_store_n(hooks[h].real, real, __ATOMIC_SEQ_CST);
        hooks[h].saved = real;
        if (write_slot(hooks[h].slot, hooks[h].hook) != 0) {
            snprintf(err, errlen, "cannot make the GOT writable: %s", strerror(errno));
            gt_hooks_uninstall();
            return -1;
        }
    }
    installed = 1;
    return 0;
}

void gt_hooks_uninstall(void)
{
    for (size_t h = 0; h < N_HOOKS; h++) {
        if (!hooks[h].slot || !hooks[h].saved)
            continue;
        if (__atomic_load_n(hooks[h].slot, __ATOMIC_SEQ_CST) == hooks[h].hook)
            write_slot(hooks[h].slot, hooks[h].saved);
    }
    installed = 0;
}

int gt_got_entries(gt_got_entry *out, int n)
{
    int k = 0;
    for (size_t h = 0; h < N_HOOKS && k < n; h++, k++) {
        out[k].name = hooks[h].name;
        out[k].slot = (void *)hooks[h].slot;
        out[k].current = hooks[h].slot ? __atomic_load_n(hooks[h].slot, __ATOMIC_SEQ_CST) : NULL;
        out[k].hook = hooks[h].hook;
        out[k].real = resolve_real(&hooks[h]);
    }
    return k;
}
