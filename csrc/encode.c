/* encode.c -- the trace file's chunks, as the writer thread writes them:
 * events (ticks turned into ns), samples, code locations, OS thread names,
 * and the footer when C ends the trace.  The layout is docs/file-format.md;
 * the chunk header's constants are in giltrace_api.h, giltrace/layout.py
 * declares the same for Python (a test compares them).
 */
#ifndef _GNU_SOURCE
#    define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "recorder.h"

static uint32_t os_names_written;

void gt_encode_reset(void)
{
    os_names_written = 0;
}

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
    const uint32_t (*t)[256] = (const uint32_t (*)[256])crc_tables;
    crc = ~crc;
    while (len >= 8) { /* little-endian word at a time */
        uint32_t lo, hi;
        memcpy(&lo, buf, 4);
        memcpy(&hi, buf + 4, 4);
        lo ^= crc;
        crc = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][hi & 0xFF] ^
              t[2][(hi >> 8) & 0xFF] ^ t[1][(hi >> 16) & 0xFF] ^ t[0][hi >> 24];
        buf += 8;
        len -= 8;
    }
    while (len--)
        crc = t[0][(crc ^ *buf++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}
static void put_u16(unsigned char *p, uint16_t v)
{
    memcpy(p, &v, 2);
}

/* payload must sit right after GT_CHUNK_HEADER_SIZE bytes of room at `buf`. */
void gt_write_chunk(unsigned char *buf, uint16_t kind, uint32_t count, uint32_t payload_len)
{
    if (gt_rec.write_errno) {
        if (kind == GT_CHUNK_EVENTS)
            gt_rec.write_lost += count;
        return;
    }
    put_u32(buf, GT_CHUNK_MAGIC);
    put_u16(buf + 4, kind);
    put_u16(buf + 6, 0);
    put_u32(buf + 8, count);
    put_u32(buf + 12, payload_len);
    put_u32(buf + 16, gt_crc32(0, buf + GT_CHUNK_HEADER_SIZE, payload_len));
    int err = gt_trace_write((const char *)buf, GT_CHUNK_HEADER_SIZE + (size_t)payload_len);
    if (err) {
        gt_rec.write_errno = err;
        if (kind == GT_CHUNK_EVENTS)
            gt_rec.write_lost += count;
        return;
    }
    gt_rec.chunks_written++;
    if (kind == GT_CHUNK_EVENTS)
        gt_rec.events_written += count;
    else if (kind == GT_CHUNK_SAMPLES)
        gt_rec.samples_written += count;
}

void gt_drain_events(void)
{
    uint64_t head = gt_rec.head;
    uint64_t tail = __atomic_load_n(&gt_rec.tail, __ATOMIC_ACQUIRE);
    gt_event *out = (gt_event *)(gt_rec.chunk + GT_CHUNK_HEADER_SIZE);
    while (head != tail) {
        uint32_t n = 0;
        while (head != tail && n < GT_CHUNK_EVENTS_MAX) {
            gt_event e = gt_rec.ring[head & gt_rec.mask];
            head++;
            if (e.reserved != (uint16_t)gt_rec.gen)
                continue;
            e.reserved = 0;
            e.time_ns = gt_ticks_to_ns(e.time_ns); /* ticks in the ring, ns in the file */
            if (e.kind == GT_EV_ACQUIRE)
                e.arg = gt_tick_span_to_ns(e.arg);
            out[n++] = e;
        }
        __atomic_store_n(&gt_rec.head, head, __ATOMIC_RELEASE);
        if (n)
            gt_write_chunk(gt_rec.chunk, GT_CHUNK_EVENTS, n, n * (uint32_t)sizeof(gt_event));
    }
}

void gt_drain_os_names(void)
{
    uint32_t last = __atomic_load_n(&gt_os_names_published, __ATOMIC_ACQUIRE);
    if (last <= os_names_written)
        return;
    uint32_t count = last - os_names_written;
    memcpy(gt_rec.chunk + GT_CHUNK_HEADER_SIZE, &gt_os_names[os_names_written], count * sizeof(gt_os_name));
    gt_write_chunk(gt_rec.chunk, GT_CHUNK_OS_NAMES, count, count * (uint32_t)sizeof(gt_os_name));
    os_names_written = last;
}

void gt_drain_py_names(void)
{
    uint32_t last = __atomic_load_n(&gt_py_names_published, __ATOMIC_ACQUIRE);
    uint32_t done = gt_py_names_written;
    uint32_t max = (GT_CHUNK_EVENTS_MAX * sizeof(gt_event)) / sizeof(gt_py_name);
    while (done != last) {
        uint32_t count = last - done, slot = done % GT_PY_NAMES_MAX;
        if (count > GT_PY_NAMES_MAX - slot) /* up to the ring's end; the rest next round */
            count = GT_PY_NAMES_MAX - slot;
        if (count > max)
            count = max;
        memcpy(gt_rec.chunk + GT_CHUNK_HEADER_SIZE, &gt_py_names[slot], count * sizeof(gt_py_name));
        gt_write_chunk(gt_rec.chunk, GT_CHUNK_PY_NAMES, count, count * (uint32_t)sizeof(gt_py_name));
        done += count;
        __atomic_store_n(&gt_py_names_written, done, __ATOMIC_RELEASE); /* Python may reuse those slots */
    }
}

void gt_drain_locations(void)
{
    uint32_t count;
    size_t cap = GT_CHUNK_EVENTS_MAX * sizeof(gt_event);
    size_t n;
    while ((n = gt_locations_take(gt_rec.chunk + GT_CHUNK_HEADER_SIZE, cap, &count)) > 0)
        gt_write_chunk(gt_rec.chunk, GT_CHUNK_LOCATIONS, count, (uint32_t)n);
}

void gt_flush_samples(void)
{
    if (!gt_rec.nsamples)
        return;
    memcpy(gt_rec.chunk + GT_CHUNK_HEADER_SIZE, gt_rec.samples, gt_rec.nsamples * sizeof(gt_sample));
    gt_write_chunk(gt_rec.chunk, GT_CHUNK_SAMPLES, (uint32_t)gt_rec.nsamples,
                   (uint32_t)(gt_rec.nsamples * sizeof(gt_sample)));
    gt_rec.nsamples = 0;
}

void gt_flush_cpu_samples(void)
{
    if (!gt_rec.ncpu)
        return;
    memcpy(gt_rec.chunk + GT_CHUNK_HEADER_SIZE, gt_rec.cpu_samples, gt_rec.ncpu * sizeof(gt_cpu_sample));
    gt_write_chunk(gt_rec.chunk, GT_CHUNK_CPU, (uint32_t)gt_rec.ncpu, (uint32_t)(gt_rec.ncpu * sizeof(gt_cpu_sample)));
    gt_rec.ncpu = 0;
}

/* The trace's end, as seen from C: when no Python code is left to write the
 * footer (the last thread exited without exit(), or a terminating signal). */
void gt_write_footer(const char *ended_by)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    gt_stats st;
    char *json = (char *)gt_rec.chunk + GT_CHUNK_HEADER_SIZE;
    gt_fill_stats(&st);
    int len = snprintf(
        json, 4096,
        "{\"ended_by\": \"%s\", \"events_lost\": %llu, \"events_written\": %llu, \"fd_reopened\": %u, "
        "\"locations_lost\": %llu, "
        "\"samples_written\": %llu, \"start_ns\": %llu, \"stop_ns\": %llu, \"stop_time_unix\": %.6f, "
        "\"switch_interval_s\": %.6f, \"switch_number_start\": %llu, \"switch_number_stop\": %llu, \"write_errno\": "
        "%d}",
        ended_by, (unsigned long long)st.events_lost, (unsigned long long)st.events_written, st.fd_reopened,
        (unsigned long long)st.locations_lost, (unsigned long long)st.samples_written, (unsigned long long)st.start_ns,
        (unsigned long long)st.stop_ns, (double)wall.tv_sec + wall.tv_nsec / 1e9, st.interval_us / 1e6,
        (unsigned long long)st.switch_number_start, (unsigned long long)st.switch_number_stop, st.write_errno);
    if (len > 0 && len < 4096)
        gt_write_chunk(gt_rec.chunk, GT_CHUNK_FOOTER, 1, (uint32_t)len);
}

void gt_drain_all(void)
{
    gt_clock_refine();
    gt_drain_locations(); /* before the events that refer to them */
    gt_drain_os_names();
    gt_drain_py_names();
    gt_drain_events();
    gt_flush_samples();
    gt_flush_cpu_samples();
}
