/* clock.c -- the time stamps of events.
 *
 * Every GIL transition takes one time stamp, so its cost is a large part of
 * the tracer's (docs/how-it-works.md, "Clock").  Where the kernel itself keeps
 * time with the TSC (clocksource "tsc": invariant and synchronised across
 * CPUs, checked at boot) and reading it is cheaper than clock_gettime, hooks
 * read the TSC directly (~14 ns here instead of ~38 ns), and the writer turns
 * ticks into CLOCK_MONOTONIC nanoseconds when it drains the ring, through a
 * (tick, ns) pair read at trace start and the rate between that pair and one
 * read just before the drain (gt_clock_refine).
 * Elsewhere ticks *are* CLOCK_MONOTONIC nanoseconds.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__x86_64__)
#    include <cpuid.h>
#endif

#include "gt_internal.h"

int gt_tsc_usable;

static struct {
    int decided;
    uint64_t ref_tick, ref_ns; /* a pair read together at trace start */
    double ns_per_tick;        /* measured before each drain */
} clk;

/* A (tick, ns) pair: the ns reading halfway between two around the tick,
 * from the tightest of three tries (a preemption between the reads would
 * widen one). */
static void read_pair(uint64_t *tick, uint64_t *ns)
{
    uint64_t best = UINT64_MAX;
    for (int i = 0; i < 3; i++) {
        uint64_t a = gt_clock_ns();
        uint64_t t = gt_ticks();
        uint64_t b = gt_clock_ns();
        if (b - a < best) {
            best = b - a;
            *tick = t;
            *ns = a + (b - a) / 2;
        }
    }
}

#if defined(__x86_64__)
static int kernel_uses_tsc(void)
{
    char buf[32] = {0};
    int fd = open("/sys/devices/system/clocksource/clocksource0/current_clocksource", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    return n >= 3 && strncmp(buf, "tsc", 3) == 0 && (buf[3] == '\n' || buf[3] == '\0');
}

static int invariant_tsc(void)
{
    unsigned a, b, c, d;
    if (__get_cpuid(0x80000007, &a, &b, &c, &d) && (d & (1u << 8)))
        return 1;
    /* Hypervisors often hide the CPUID bit; the kernel's flags still say. */
    FILE *f = fopen("/proc/cpuinfo", "re");
    if (!f)
        return 0;
    char line[8192];
    int ok = 0;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "flags", 5) == 0) {
            ok = strstr(line, " constant_tsc") && strstr(line, " nonstop_tsc");
            break;
        }
    fclose(f);
    return ok;
}

/* A TSC that traps to the hypervisor would cost more than the clock. */
static int tsc_is_cheap(void)
{
    uint64_t sink = 0, t0 = gt_clock_ns();
    for (int i = 0; i < 2000; i++)
        sink += __rdtsc();
    uint64_t t1 = gt_clock_ns();
    for (int i = 0; i < 2000; i++)
        sink += gt_clock_ns();
    uint64_t t2 = gt_clock_ns();
    return (t1 - t0) < (t2 - t1) + (sink & 1);
}
#endif

const char *gt_clock_start(void)
{
    if (!clk.decided) {
        clk.decided = 1;
#if defined(__x86_64__)
        if (getenv("GILTRACE_CLOCK") && strcmp(getenv("GILTRACE_CLOCK"), "monotonic") == 0)
            gt_tsc_usable = 0;
        else
            gt_tsc_usable = kernel_uses_tsc() && invariant_tsc() && tsc_is_cheap();
#endif
    }
    read_pair(&clk.ref_tick, &clk.ref_ns);
    return gt_tsc_usable ? "tsc" : "clock_gettime";
}

uint64_t gt_clock_start_tick(void)
{
    return clk.ref_tick;
}

int gt_clock_is_tsc(void)
{
    if (!clk.decided) /* decide without starting anything */
        gt_clock_start();
    return gt_tsc_usable;
}

/* Writer side, before each drain: the rate between the start pair and a
 * pair read now.  Every event drained then lies between the two pairs, so
 * its converted time errs by at most the pairs' own jitter (~tens of ns),
 * whatever the rate's error: that error is scaled by the event's distance
 * from the start, itself at most the baseline the rate was measured over. */
void gt_clock_refine(void)
{
    if (!gt_tsc_usable)
        return;
    uint64_t tick, ns;
    read_pair(&tick, &ns);
    if (ns > clk.ref_ns && tick > clk.ref_tick)
        clk.ns_per_tick = (double)(ns - clk.ref_ns) / (double)(tick - clk.ref_tick);
}

uint64_t gt_ticks_to_ns(uint64_t tick)
{
    if (!gt_tsc_usable)
        return tick;
    double d = ((double)(int64_t)(tick - clk.ref_tick)) * clk.ns_per_tick;
    return (uint64_t)((int64_t)clk.ref_ns + (int64_t)(d + (d < 0 ? -0.5 : 0.5)));
}

double gt_clock_ns_per_tick(void)
{
    return clk.ns_per_tick;
}

uint64_t gt_tick_span_to_ns(uint64_t ticks)
{
    return gt_tsc_usable ? (uint64_t)((double)ticks * clk.ns_per_tick + 0.5) : ticks;
}
