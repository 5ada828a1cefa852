/*
 * config_value.c - what the config loader needs besides the schema:
 * positioned diagnostics, did-you-mean, and checks of addresses, JWKS URLs
 * and paths.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "core/config_int.h"

/* ---- diagnostics ------------------------------------------------------------ */

AL_PRINTF(4, 0)
static void verror(al__cfg_diag_t *d, int line, int col, const char *fmt, va_list ap)
{
    if (d->n >= AL__CFG_MAX_ERRORS) {
        d->truncated = true;
        return;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        al__cfg_err_t *v = al_realloc(d->v, d->cap * sizeof *v);
        if (!v) {
            fputs("airlock: out of memory loading the config\n", stderr);
            abort();
        }
        d->v = v;
    }
    va_list ap2;
    va_copy(ap2, ap);
    int n = fmt ? vsnprintf(NULL, 0, fmt, ap2) : -1; /* the check quiets gcc+UBSan */
    va_end(ap2);
    char *msg = al_xmalloc(n > 0 ? (size_t)n + 1 : 1);
    msg[0] = '\0';
    if (n > 0)
        vsnprintf(msg, (size_t)n + 1, fmt, ap);
    d->v[d->n] = (al__cfg_err_t){line, col, d->n, msg};
    d->n++;
}

void al__cfg_error(al__cfg_diag_t *d, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(d, line, col, fmt, ap);
    va_end(ap);
}

void al__cfg_error_at(al__cfg_diag_t *d, const al__cfg_node_t *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    verror(d, n->line, n->col, fmt, ap);
    va_end(ap);
}

static int err_cmp(const void *a, const void *b)
{
    const al__cfg_err_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

void al__cfg_diag_finish(al__cfg_diag_t *d, al_config_errors_t *errs)
{
    qsort(d->v, d->n, sizeof *d->v, err_cmp);
    size_t n = d->n + (d->truncated ? 1 : 0);
    errs->msgs = n ? al_xcalloc(n, sizeof *errs->msgs) : NULL;
    errs->n = 0;
    const char *file = d->file ? d->file : "<config>";
    al_buf_t b;
    for (size_t i = 0; i < d->n; i++) {
        al_buf_init(&b);
        al_buf_printf(&b, "%s:%d:%d: %s", file, d->v[i].line, d->v[i].col, d->v[i].msg);
        if (b.oom) {
            fputs("airlock: out of memory loading the config\n", stderr);
            abort();
        }
        errs->msgs[errs->n++] = b.p;
    }
    if (d->truncated) {
        al_buf_init(&b);
        al_buf_printf(&b, "%s: too many errors; stopped after the first %d", file,
                      AL__CFG_MAX_ERRORS);
        errs->msgs[errs->n++] = b.p ? b.p : al_xstrdup("too many errors");
    }
    al__cfg_diag_free(d);
}

void al__cfg_diag_free(al__cfg_diag_t *d)
{
    for (size_t i = 0; i < d->n; i++)
        al_free(&d->v[i].msg);
    al_free(&d->v);
    d->n = d->cap = 0;
    d->truncated = false;
}

/* ---- did-you-mean ------------------------------------------------------------ */

#define EDIT_MAX_LEN 64

size_t al__cfg_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > EDIT_MAX_LEN || lb > EDIT_MAX_LEN)
        return SIZE_MAX;
    size_t prev[EDIT_MAX_LEN + 1], cur[EDIT_MAX_LEN + 1];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            cur[j] = AL_MIN(sub, AL_MIN(del, ins));
        }
        memcpy(prev, cur, (lb + 1) * sizeof *prev);
    }
    return prev[lb];
}

void al__cfg_suggest_init(al__cfg_suggest_t *s, const char *word)
{
    *s = (al__cfg_suggest_t){.word = word, .best = NULL, .dist = SIZE_MAX};
}

void al__cfg_suggest_add(al__cfg_suggest_t *s, const char *cand)
{
    size_t limit = strlen(cand) <= 4 ? 1 : 2;
    size_t d = al__cfg_edit_distance(s->word, cand);
    if (d <= limit && d < s->dist) {
        s->dist = d;
        s->best = cand;
    }
}

/* ---- addresses ------------------------------------------------------------------ */

static bool parse_ip(int af, const char *p, size_t len, void *out)
{
    char tmp[INET6_ADDRSTRLEN + 1];
    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    return inet_pton(af, tmp, out) == 1;
}

/* True when all len bytes of p are in set (p need not be NUL-terminated). */
static bool all_in(const char *p, size_t len, const char *set)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] == '\0' || !strchr(set, p[i]))
            return false;
    return true;
}

static bool is_hostname_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-';
}

/* An IPv4 address, or an RFC 1123 §2.1 hostname: labels of 1-63 letters,
 * digits and '-', not starting or ending with '-', 253 bytes at most. */
static bool valid_host(const char *h, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    if (all_in(h, len, "0123456789.")) {
        struct in_addr a;
        return parse_ip(AF_INET, h, len, &a);
    }
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        if (h[i] == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!is_hostname_char(h[i]) || (label == 0 && h[i] == '-') || ++label > 63)
            return false;
    }
    return label > 0 && h[len - 1] != '-';
}

static bool valid_ipv6(const char *h, size_t len)
{
    struct in6_addr a;
    return parse_ip(AF_INET6, h, len, &a);
}

/* Decimal 1-65535 filling p..p+len exactly. */
static bool valid_port(const char *p, size_t len)
{
    if (len == 0 || len > 5 || !all_in(p, len, "0123456789"))
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++)
        v = v * 10 + (unsigned long)(p[i] - '0');
    return v >= 1 && v <= 65535;
}

bool al__cfg_is_loopback(const char *host, size_t len)
{
    if (len == 9 && strncasecmp(host, "localhost", 9) == 0)
        return true;
    struct in_addr a4;
    if (all_in(host, len, "0123456789.") && parse_ip(AF_INET, host, len, &a4))
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    if (parse_ip(AF_INET6, host, len, &a6))
        return memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
    return false;
}

/* Splits "host[:port]" / "[v6][:port]" of len bytes. Returns NULL or the
 * problem; *host excludes brackets; *port is NULL when absent. */
static const char *split_hostport(const char *s, size_t len, const char **host,
                                  size_t *hlen, const char **port, size_t *plen)
{
    const char *end = s + len, *rest;
    *port = NULL;
    *plen = 0;
    if (len && s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (!rb)
            return "has an unclosed '['; write an IPv6 address as [::1]:7480";
        *host = s + 1;
        *hlen = (size_t)(rb - *host);
        if (!valid_ipv6(*host, *hlen))
            return "has an invalid IPv6 address between the brackets";
        rest = rb + 1;
        if (rest < end && *rest != ':')
            return "has text after ']'; write [IPv6]:port";
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon && memchr(colon + 1, ':', (size_t)(end - colon - 1)))
            return "looks like an IPv6 address without brackets; write it as [::1]:7480";
        *host = s;
        *hlen = colon ? (size_t)(colon - s) : len;
        if (*hlen == 0)
            return "has no host; write host:port, e.g. 127.0.0.1:7480";
        if (!valid_host(*host, *hlen))
            return "has an invalid host; use an IPv4 address, an [IPv6] address in "
                   "brackets or a hostname";
        rest = colon ? colon : end;
    }
    if (rest < end) {
        *port = rest + 1;
        *plen = (size_t)(end - rest - 1);
        if (!valid_port(*port, *plen))
            return "has an invalid port; use a number from 1 to 65535";
    }
    return NULL;
}

const char *al__cfg_check_hostport(const char *s)
{
    const char *host, *port;
    size_t hlen, plen;
    const char *err = split_hostport(s, strlen(s), &host, &hlen, &port, &plen);
    if (err)
        return err;
    if (!port)
        return "has no port; write host:port, e.g. 127.0.0.1:7480 or [::1]:7480";
    return NULL;
}

const char *al__cfg_check_jwks_uri(const char *s)
{
    bool https = strncasecmp(s, "https://", 8) == 0;
    if (!https && strncasecmp(s, "http://", 7) != 0)
        return "must be an https:// URL, e.g. https://login.example.com/discovery/keys";
    for (const char *c = s; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return "must not contain spaces or control characters; percent-encode them";
    const char *auth = s + (https ? 8 : 7);
    size_t alen = strcspn(auth, "/?#");
    if (memchr(auth, '@', alen))
        return "must not carry credentials (user@host); JWKS endpoints are public";
    const char *host, *port;
    size_t hlen, plen;
    const char *err = split_hostport(auth, alen, &host, &hlen, &port, &plen);
    if (err)
        return err;
    if (!https && !al__cfg_is_loopback(host, hlen))
        return "must use https (http is allowed only for loopback)";
    return NULL;
}

/* ---- paths ------------------------------------------------------------------------- */

/* Lexical normalization of an absolute path: "/a/./b//../c" -> "/a/c". */
static char *normalize(const char *abs)
{
    size_t n = strlen(abs);
    char *out = al_xmalloc(n + 2);
    size_t o = 0;
    const char *p = abs;
    while (*p) {
        while (*p == '/')
            p++;
        size_t seg = strcspn(p, "/");
        if (seg == 0 || (seg == 1 && p[0] == '.')) {
            /* skip */
        } else if (seg == 2 && p[0] == '.' && p[1] == '.') {
            while (o > 0 && out[o - 1] != '/')
                o--;
            if (o > 0)
                o--; /* the slash before the dropped segment */
        } else {
            out[o++] = '/';
            memcpy(out + o, p, seg);
            o += seg;
        }
        p += seg;
    }
    if (o == 0)
        out[o++] = '/';
    out[o] = '\0';
    return out;
}

char *al__cfg_path_resolve(const char *base, const char *p)
{
    if (p[0] == '/')
        return normalize(p);
    al_buf_t b;
    al_buf_init(&b);
    al_buf_printf(&b, "%s/%s", base, p);
    if (b.oom) {
        fputs("airlock: out of memory loading the config\n", stderr);
        abort();
    }
    char *r = normalize(b.p);
    al_buf_free(&b);
    return r;
}

char *al__cfg_base_dir(const char *file)
{
    const char *slash = strrchr(file, '/');
    char *dir = slash ? al_xstrndup(file, slash == file ? 1 : (size_t)(slash - file))
                      : al_xstrdup(".");
    if (dir[0] == '/') {
        char *r = normalize(dir);
        al_free(&dir);
        return r;
    }
    char *cwd = getcwd(NULL, 0);
    if (!cwd) {
        int e = errno;
        al_free(&dir);
        errno = e;
        return NULL;
    }
    char *r = al__cfg_path_resolve(cwd, dir);
    al_free(&cwd);
    al_free(&dir);
    return r;
}
