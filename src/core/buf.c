/* buf.c - growable byte buffer with sticky out-of-memory state. */
#include <stdio.h>
#include <stdlib.h>

#include "core/core.h"

void al_buf_init(al_buf_t *b) { memset(b, 0, sizeof *b); }

void al_buf_free(al_buf_t *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

void al_buf_reset(al_buf_t *b)
{
    b->len = 0;
    b->oom = false;
    if (b->p)
        b->p[0] = '\0';
}

int al_buf_reserve(al_buf_t *b, size_t extra)
{
    if (b->oom)
        return AL_ERR;
    if (extra > SIZE_MAX - b->len - 1) {
        b->oom = true;
        return AL_ERR;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return AL_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return AL_ERR;
    }
    b->p = p;
    b->cap = cap;
    return AL_OK;
}

int al_buf_append(al_buf_t *b, const void *p, size_t n)
{
    if (al_buf_reserve(b, n) != AL_OK)
        return AL_ERR;
    if (n)
        memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return AL_OK;
}

int al_buf_puts(al_buf_t *b, const char *s) { return al_buf_append(b, s, strlen(s)); }

int al_buf_printf(al_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || al_buf_reserve(b, (size_t)n) != AL_OK)
        return AL_ERR;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return AL_OK;
}

/* JSON string (RFC 8259 §7): runs of characters that need no escape are
 * copied at once, escapes written in place; the space is reserved once for
 * the common case (no escapes) and grown only when an escape needs it. */
int al_buf_json_str(al_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (al_buf_reserve(b, n + 2) != AL_OK)
        return AL_ERR;
    b->p[b->len++] = '"';
    size_t run = 0; /* start of the pending run of plain characters */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        char esc[6];
        size_t el = 2;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            el = 6;
        }
        /* the run, this escape, and the rest unescaped plus the quote */
        if (al_buf_reserve(b, (i - run) + el + (n - i) + 1) != AL_OK)
            return AL_ERR;
        memcpy(b->p + b->len, s + run, i - run);
        b->len += i - run;
        memcpy(b->p + b->len, esc, el);
        b->len += el;
        run = i + 1;
    }
    if (al_buf_reserve(b, (n - run) + 1) != AL_OK)
        return AL_ERR;
    memcpy(b->p + b->len, s + run, n - run);
    b->len += n - run;
    b->p[b->len++] = '"';
    b->p[b->len] = '\0';
    return AL_OK;
}
