/* oldgil.h -- the old GIL kind (CPython 2.7's semaphore GIL), between
 * oldgil.c and hooks.c in the library built with GT_GIL_OLD
 * (giltrace/_build_oldgil.py; docs/how-it-works.md, "The old GIL (2.7)").
 */
#ifndef GT_OLDGIL_H
#define GT_OLDGIL_H

#include <semaphore.h>

/* The functions the hooked calls reach when not traced (set by hooks.c). */
extern int (*gt_old_real_sem_wait)(sem_t *);
extern int (*gt_old_real_sem_trywait)(sem_t *);
extern int (*gt_old_real_sem_post)(sem_t *);

/* The hooks hooks.c writes into the interpreter's GOT. */
int gt_old_sem_wait(sem_t *s);
int gt_old_sem_trywait(sem_t *s);
int gt_old_sem_post(sem_t *s);

/* Exported to the starter (giltrace/oldgil.py, through ctypes). */
int gt_oldgil_prepare(char *err, size_t errlen);
void *gt_oldgil_semaphore(void);
const char *gt_oldgil_found_by(void);
size_t gt_oldgil_sizeof(int which);    /* 0: gt_config, 1: gt_stats */
uint64_t gt_old_locate_every_ns(void); /* a thread's releases are located at most this often */
const int *gt_old_layout(int *n);      /* frames27.c: the 2.7 struct offsets it reads, to check */

#endif
