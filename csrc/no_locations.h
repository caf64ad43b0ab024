/* no_locations.h -- the code-location functions of a build that reads no
 * Python frames (2.7's recorder, csrc/oldgil.c; or an interpreter gilstate.c
 * does not know): every location is 0.  Included by exactly one .c file per
 * build, so these definitions are made once. */
#ifndef GT_NO_LOCATIONS_H
#define GT_NO_LOCATIONS_H

#include <stddef.h>

int gt_code_stack(const void **codes, int *offsets, int max)
{
    (void)codes;
    (void)offsets;
    (void)max;
    return 0;
}
void gt_code_identity(const void *code, const void **f, const void **n, int *l)
{
    (void)code;
    *f = *n = NULL;
    *l = 0;
}
void gt_describe_code(const void *c, int o, char *f, size_t fc, char *n, size_t nc, int *l)
{
    (void)c;
    (void)o;
    (void)fc;
    (void)nc;
    f[0] = n[0] = '\0';
    *l = 0;
}
void gt_code_file(const void *c, char *f, size_t fc)
{
    (void)c;
    (void)fc;
    f[0] = '\0';
}

#endif
