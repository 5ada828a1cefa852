/* tcp_connect.c - the pure rules of a CONNECT request (see tcp_connect.h). */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include "proto/tcp/tcp_connect.h"

int al_tcp_authority_split(al_str_t a, al_tcp_authority_t *out)
{
    memset(out, 0, sizeof *out);
    if (!a.p || !a.len)
        return AL_ERR;
    const char *end = a.p + a.len, *colon;
    if (a.p[0] == '[') {
        const char *rb = memchr(a.p, ']', a.len);
        if (!rb || rb + 1 >= end || rb[1] != ':')
            return AL_ERR;
        out->host = (al_str_t){a.p + 1, (size_t)(rb - a.p - 1)};
        out->ip6 = true;
        colon = rb + 1;
    } else {
        colon = memchr(a.p, ':', a.len);
        if (!colon || memchr(colon + 1, ':', (size_t)(end - colon - 1)))
            return AL_ERR;
        out->host = (al_str_t){a.p, (size_t)(colon - a.p)};
    }
    if (!out->host.len || out->host.len > AL_TCP_HOST_MAX)
        return AL_ERR;
    size_t plen = (size_t)(end - colon - 1);
    if (plen == 0 || plen > 5)
        return AL_ERR;
    int port = 0;
    for (const char *c = colon + 1; c < end; c++) {
        if (*c < '0' || *c > '9')
            return AL_ERR;
        port = port * 10 + (*c - '0');
    }
    if (port < 1 || port > 65535)
        return AL_ERR;
    out->port = port;
    return AL_OK;
}

/* inet_pton on a view. False when it is not an address of that family. */
static bool parse_ip(int af, al_str_t h, void *dst)
{
    char buf[AL_TCP_HOST_MAX + 1];
    if (h.len >= sizeof buf)
        return false;
    memcpy(buf, h.p, h.len);
    buf[h.len] = 0;
    return inet_pton(af, buf, dst) == 1;
}

static bool same_host(const al_tcp_authority_t *r, const al_tcp_authority_t *c)
{
    if (r->ip6 != c->ip6)
        return false;
    if (r->ip6) {
        struct in6_addr x, y;
        return parse_ip(AF_INET6, r->host, &x) && parse_ip(AF_INET6, c->host, &y) &&
               !memcmp(&x, &y, sizeof x);
    }
    struct in_addr x, y;
    bool rx = parse_ip(AF_INET, r->host, &x), cy = parse_ip(AF_INET, c->host, &y);
    if (rx || cy)
        return rx && cy && x.s_addr == y.s_addr;
    return r->host.len == c->host.len && !strncasecmp(r->host.p, c->host.p, r->host.len);
}

int al_tcp_upstream_match(al_str_t req, const char *const *list, size_t n)
{
    al_tcp_authority_t r, c;
    if (al_tcp_authority_split(req, &r) != AL_OK)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!list[i] || al_tcp_authority_split(al_str_c(list[i]), &c) != AL_OK)
            continue;
        if (c.port == r.port && same_host(&r, &c))
            return (int)i;
    }
    return -1;
}

static bool b64token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int al_tcp_bearer(al_str_t v, al_str_t *tok)
{
    if (v.len < 6 || strncasecmp(v.p, "bearer", 6) || (v.len > 6 && v.p[6] != ' '))
        return 1;
    size_t i = 6;
    while (i < v.len && v.p[i] == ' ')
        i++;
    if (i == 6 || i == v.len)
        return -1;
    size_t start = i;
    while (i < v.len && b64token_char(v.p[i]))
        i++;
    if (i == start)
        return -1;
    while (i < v.len && v.p[i] == '=')
        i++;
    if (i != v.len)
        return -1;
    *tok = (al_str_t){v.p + start, v.len - start};
    return 0;
}
