/* locations.c -- interned code locations for attribution.
 *
 * The release and wait hooks ask "where is this thread in Python code?";
 * the answer (code object, instruction offset) is turned into a small id
 * through a fixed-size open-addressing table.  The first time a location is
 * seen its file, function and line are copied into static storage, so the
 * trace never keeps a code object alive and never reads one after it could
 * have been freed.  Everything here runs with the GIL's mutex held (no two
 * producers at once) and never allocates.  The writer thread streams newly
 * published locations to the trace file as LOCATIONS chunks.
 */
#include <string.h>

#include "gt_internal.h"

#define SLOTS         (1u << 16)
#define MAX_LOCATIONS (SLOTS / 2) /* keep the table at most half full */
#define ARENA_BYTES   (4u << 20)
#define MAX_STR       512

typedef struct {
    const void *code;     /* NULL = empty slot */
    const void *file_obj; /* with name_obj and firstlineno: who the code object is, */
    const void *name_obj; /* so that a reused address is not mistaken for the old one */
    int offset;
    int firstlineno;
    uint32_t id;
} slot_t;

typedef struct {
    uint32_t str_off; /* file then name, in the arena */
    uint16_t file_len, name_len;
    int32_t line;
} record_t;

static slot_t slots[SLOTS];
static record_t records[MAX_LOCATIONS + 1]; /* ids start at 1; 0 = unknown */
static char arena[ARENA_BYTES];
static uint32_t arena_used;
static uint32_t published;       /* last id ready for the writer */
static uint32_t no_frame_ids[2]; /* the thread's start / end: see no_frame_location */
static uint32_t written;         /* writer side: last id written */
static uint64_t overflow;

void gt_locations_reset(void)
{
    if (published)
        memset(slots, 0, sizeof(slots));
    arena_used = 0;
    __atomic_store_n(&published, 0, __ATOMIC_RELEASE);
    written = 0;
    overflow = 0;
    no_frame_ids[0] = no_frame_ids[1] = 0;
}

uint64_t gt_locations_overflow(void)
{
    return overflow;
}

static inline uint32_t hash(const void *code, int offset)
{
    uint64_t x = (uint64_t)(uintptr_t)code ^ ((uint64_t)(uint32_t)offset << 32);
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return (uint32_t)x & (SLOTS - 1);
}

static uint32_t intern_location(const void *code, int offset, const void *file_obj, const void *name_obj, int first,
                                slot_t *slot)
{
    uint32_t id = published + 1;
    if (id > MAX_LOCATIONS || arena_used + 2 * MAX_STR > ARENA_BYTES) {
        overflow++;
        return 0;
    }
    char file[MAX_STR], name[MAX_STR];
    int line = 0;
    gt_describe_code(code, offset, file, sizeof(file), name, sizeof(name), &line);
    size_t fl = strlen(file), nl = strlen(name);
    record_t *r = &records[id];
    r->str_off = arena_used;
    r->file_len = (uint16_t)fl;
    r->name_len = (uint16_t)nl;
    r->line = line;
    memcpy(arena + arena_used, file, fl);
    memcpy(arena + arena_used + fl, name, nl);
    arena_used += (uint32_t)(fl + nl);
    slot->file_obj = file_obj;
    slot->name_obj = name_obj;
    slot->offset = offset;
    slot->firstlineno = first;
    slot->id = id;
    slot->code = code;
    __atomic_store_n(&published, id, __ATOMIC_RELEASE);
    return id;
}

static uint32_t location_of(const void *code, int offset)
{
    const void *file_obj, *name_obj;
    int first;
    gt_code_identity(code, &file_obj, &name_obj, &first);
    uint32_t h = hash(code, offset);
    for (uint32_t probe = 0; probe < SLOTS; probe++) {
        slot_t *s = &slots[(h + probe) & (SLOTS - 1)];
        if (s->code == NULL)
            return intern_location(code, offset, file_obj, name_obj, first, s);
        if (s->code == code && s->offset == offset && s->file_obj == file_obj && s->name_obj == name_obj &&
            s->firstlineno == first)
            return s->id;
    }
    overflow++;
    return 0;
}

/* A thread with no Python frame takes the GIL before its first frame (a new
 * thread's bootstrap, a C thread's PyGILState_Ensure) and lets it go after
 * its last (its thread state being deleted).  Those get a location of their
 * own, "<thread>:0", not 0 ("?"): in a server that starts a thread per
 * request they were 7-17 % of the waits (docs/how-it-works.md, "Where a wait begins"). */
static uint32_t no_frame_location(int end)
{
    if (no_frame_ids[end])
        return no_frame_ids[end];
    static const char file[] = "<thread>";
    const char *name = end ? "end: no Python frame left" : "start: no Python frame yet";
    size_t fl = sizeof(file) - 1, nl = strlen(name);
    uint32_t id = published + 1;
    if (id > MAX_LOCATIONS || arena_used + fl + nl > ARENA_BYTES) {
        overflow++;
        return 0;
    }
    record_t *r = &records[id];
    r->str_off = arena_used;
    r->file_len = (uint16_t)fl;
    r->name_len = (uint16_t)nl;
    r->line = 0;
    memcpy(arena + arena_used, file, fl);
    memcpy(arena + arena_used + fl, name, nl);
    arena_used += (uint32_t)(fl + nl);
    no_frame_ids[end] = id;
    __atomic_store_n(&published, id, __ATOMIC_RELEASE);
    return id;
}

/* Where this thread is: its innermost Python frame (hot path: every release). */
uint32_t gt_location_here(void)
{
    const void *code;
    int offset;
    if (gt_code_stack(&code, &offset, 1) != 1)
        return no_frame_location(1); /* releases without a frame: the thread's end */
    return location_of(code, offset);
}

/* Library code (stdlib, site-packages, giltrace): file-name prefixes set at
 * start.  A direct-mapped cache keeps the verdict per code object, checked
 * against its file-name object as addresses are reused. */
#define MAX_PREFIXES 16
#define LIB_CACHE    4096
static char prefix_buf[4096];
static const char *prefixes[MAX_PREFIXES];
static size_t prefix_len[MAX_PREFIXES];
static int nprefixes;
static struct {
    const void *code, *file_obj;
    int library;
} lib_cache[LIB_CACHE];

void gt_set_library_prefixes(const char *text)
{
    memset(lib_cache, 0, sizeof(lib_cache));
    nprefixes = 0;
    if (!text)
        return;
    strncpy(prefix_buf, text, sizeof(prefix_buf) - 1);
    prefix_buf[sizeof(prefix_buf) - 1] = '\0';
    for (char *p = prefix_buf; *p && nprefixes < MAX_PREFIXES;) {
        char *nl = strchr(p, '\n');
        if (nl)
            *nl = '\0';
        if (*p) {
            prefixes[nprefixes] = p;
            prefix_len[nprefixes++] = strlen(p);
        }
        if (!nl)
            break;
        p = nl + 1;
    }
}

static int is_library(const void *code)
{
    const void *file_obj, *name_obj;
    int first;
    gt_code_identity(code, &file_obj, &name_obj, &first);
    uint32_t h = (uint32_t)(((uintptr_t)code >> 4) ^ ((uintptr_t)code >> 16)) & (LIB_CACHE - 1);
    if (lib_cache[h].code == code && lib_cache[h].file_obj == file_obj)
        return lib_cache[h].library;
    char file[MAX_STR];
    gt_code_file(code, file, sizeof(file));
    int library = file[0] == '<'; /* <frozen ...>, <string> */
    for (int i = 0; i < nprefixes && !library; i++)
        library = strncmp(file, prefixes[i], prefix_len[i]) == 0;
    lib_cache[h].code = code;
    lib_cache[h].file_obj = file_obj;
    lib_cache[h].library = library;
    return library;
}

/* The innermost frame of the program's own code (outside the library
 * prefixes): the line that called the GIL-releasing operation, even when
 * that went through the standard library.  Falls back to the innermost
 * frame.  Called on the contended path only (when a thread starts to wait). */
uint32_t gt_user_location_here(void)
{
    const void *codes[64];
    int offsets[64];
    int n = gt_code_stack(codes, offsets, 64);
    if (n == 0)
        return no_frame_location(0); /* waits without a frame: the thread's start */
    for (int i = 0; i < n; i++)
        if (!is_library(codes[i]))
            return location_of(codes[i], offsets[i]);
    return location_of(codes[0], offsets[0]);
}

/* Writer side: serialise locations published since the last call as
 * records [u32 id][i32 line][u16 file_len][u16 name_len][file][name]. */
size_t gt_locations_take(unsigned char *buf, size_t cap, uint32_t *count)
{
    uint32_t last = __atomic_load_n(&published, __ATOMIC_ACQUIRE);
    size_t n = 0;
    *count = 0;
    while (written < last) {
        uint32_t id = written + 1;
        const record_t *r = &records[id];
        size_t need = 12 + (size_t)r->file_len + r->name_len;
        if (n + need > cap)
            break;
        uint16_t fl = r->file_len, nl = r->name_len;
        memcpy(buf + n, &id, 4);
        memcpy(buf + n + 4, &r->line, 4);
        memcpy(buf + n + 8, &fl, 2);
        memcpy(buf + n + 10, &nl, 2);
        memcpy(buf + n + 12, arena + r->str_off, (size_t)fl + nl);
        n += need;
        written = id;
        (*count)++;
    }
    return n;
}
