/* alloc.c - checked and startup allocators, secure wipe, constant-time eq. */
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

void *al_malloc(size_t n) { return malloc(n ? n : 1); }

void *al_calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    return calloc(count ? count : 1, size ? size : 1);
}

void *al_realloc(void *p, size_t n) { return realloc(p, n ? n : 1); }

char *al_strndup(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (!d)
        return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static void *oom_check(void *p)
{
    if (!p) {
        fputs("airlock: out of memory at startup\n", stderr);
        abort();
    }
    return p;
}

void *al_xmalloc(size_t n) { return oom_check(al_malloc(n)); }
void *al_xcalloc(size_t count, size_t size) { return oom_check(al_calloc(count, size)); }
char *al_xstrdup(const char *s) { return oom_check(al_strndup(s, strlen(s))); }
char *al_xstrndup(const char *s, size_t n) { return oom_check(al_strndup(s, n)); }

void al__free(void **pp)
{
    free(*pp);
    *pp = NULL;
}

void al_wipe(void *p, size_t n)
{
    volatile unsigned char *v = p;
    while (n--)
        *v++ = 0;
}

bool al_ct_eq(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= x[i] ^ y[i];
    return d == 0;
}
