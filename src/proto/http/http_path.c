/* http_path.c - request path normalization for policy matching; the rules
 * are listed in http_path.h. */
#include "proto/http/http_path.h"

typedef struct out_buf {
    char *p;
    size_t cap;
    size_t len;
} out_buf_t;

static bool put(out_buf_t *o, char c)
{
    if (o->len >= o->cap)
        return false;
    o->p[o->len++] = c;
    return true;
}

static int hex_val(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 3986 §2.3 */
static bool is_unreserved(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 §3.3 pchar without '%' (handled apart) */
static bool is_pchar(uint8_t c)
{
    if (is_unreserved(c))
        return true;
    switch (c) {
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*':
    case '+': case ',': case ';': case '=': case ':': case '@':
        return true;
    default:
        return false;
    }
}

/* Why an escape decoding to v is refused, or NULL when it is acceptable. */
static const char *refused_escape(int v)
{
    if (v == '/')
        return "encoded_slash";
    if (v == '\\')
        return "encoded_backslash";
    if (v == 0)
        return "encoded_nul";
    if (v < 0x20 || v == 0x7f)
        return "encoded_ctl";
    if (v == ';')
        return "encoded_semicolon";
    return NULL;
}

/* Reads one character or escape at in[*i], appends its canonical spelling
 * to o when emit is set, and advances *i. Returns NULL or a reason code. */
static const char *take_char(const char *in, size_t len, size_t *i, out_buf_t *o, bool emit)
{
    static const char hex[] = "0123456789ABCDEF";
    uint8_t c = (uint8_t)in[*i];
    if (c == '\\')
        return "backslash";
    if (c != '%') {
        if (!is_pchar(c))
            return "bad_char";
        (*i)++;
        return !emit || put(o, (char)c) ? NULL : "too_long";
    }
    int hi = *i + 2 < len ? hex_val((uint8_t)in[*i + 1]) : -1;
    int lo = hi >= 0 ? hex_val((uint8_t)in[*i + 2]) : -1;
    if (lo < 0)
        return "bad_escape";
    int v = hi * 16 + lo;
    const char *why = refused_escape(v);
    if (why)
        return why;
    *i += 3;
    if (!emit)
        return NULL;
    if (is_unreserved((uint8_t)v)) /* RFC 3986 §6.2.2.2 */
        return put(o, (char)v) ? NULL : "too_long";
    bool ok = put(o, '%') && put(o, hex[hi]) && put(o, hex[lo]); /* §6.2.2.1 */
    return ok ? NULL : "too_long";
}

/* Drops the last "/segment" of o (RFC 3986 §5.2.4 step 2C); at the root
 * there is nothing to drop. */
static void pop_segment(out_buf_t *o)
{
    while (o->len > 0 && o->p[o->len - 1] != '/')
        o->len--;
    if (o->len > 0)
        o->len--;
}

/* Copies one segment (in[*i] is just past its '/') as "/seg" onto o, then
 * resolves it: "", "." and ".." are removed again. Sets *dir when the
 * segment leaves the path ending in a directory (trailing slash). */
static const char *take_segment(const char *in, size_t len, size_t *i, out_buf_t *o, bool *dir)
{
    size_t start = o->len;
    if (!put(o, '/'))
        return "too_long";
    bool param = false; /* rule 3: after ';' the segment is checked, not copied */
    while (*i < len && in[*i] != '/') {
        if (in[*i] == ';') {
            param = true;
            (*i)++;
            continue;
        }
        const char *why = take_char(in, len, i, o, !param);
        if (why)
            return why;
    }
    const char *s = o->p + start + 1;
    size_t n = o->len - start - 1;
    *dir = true;
    if (n == 0 || (n == 1 && s[0] == '.')) {
        o->len = start;
    } else if (n == 2 && s[0] == '.' && s[1] == '.') {
        o->len = start;
        pop_segment(o);
    } else {
        *dir = false;
    }
    return NULL;
}

int al_http_path_normalize(const char *in, size_t len, char *out, size_t cap,
                           size_t *out_len, const char **err)
{
    out_buf_t o = {out, cap, 0};
    const char *why = NULL;
    bool dir = true;
    *out_len = 0;
    *err = NULL;
    if (len > 0 && in[0] != '/')
        why = "not_absolute";
    for (size_t i = 0; !why && i < len;) {
        i++; /* the '/' */
        why = take_segment(in, len, &i, &o, &dir);
    }
    if (!why && (dir || o.len == 0) && !put(&o, '/'))
        why = "too_long";
    if (!why && !put(&o, '\0'))
        why = "too_long";
    if (why) {
        *err = why;
        return AL_ERR;
    }
    *out_len = o.len - 1;
    return AL_OK;
}

/* RFC 3986 §3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then
 * "://". Returns the offset just past "://", or 0. */
static size_t skip_scheme(al_str_t t)
{
    size_t i = 0;
    while (i < t.len) {
        char c = t.p[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        bool other = (c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.';
        if (!alpha && !(i > 0 && other))
            break;
        i++;
    }
    if (i == 0 || t.len - i < 3 || memcmp(t.p + i, "://", 3) != 0)
        return 0;
    return i + 3;
}

int al_http_target_split(al_str_t t, al_str_t *path, al_str_t *query)
{
    *path = (al_str_t){NULL, 0};
    *query = (al_str_t){NULL, 0};
    if (t.len == 0 || memchr(t.p, '#', t.len))
        return AL_ERR;
    size_t s = 0;
    if (t.p[0] != '/') {
        s = skip_scheme(t);
        if (s == 0)
            return AL_ERR;
        while (s < t.len && t.p[s] != '/' && t.p[s] != '?')
            s++;
    }
    const char *q = memchr(t.p + s, '?', t.len - s);
    size_t end = q ? (size_t)(q - t.p) : t.len;
    *path = (al_str_t){t.p + s, end - s};
    if (q)
        *query = (al_str_t){q + 1, t.len - end - 1};
    return AL_OK;
}
