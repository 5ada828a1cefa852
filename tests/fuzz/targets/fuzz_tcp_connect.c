/* Fuzz target for src/proto/tcp/tcp_connect.c: CONNECT authorities against
 * an upstream list, and Proxy-Authorization bearer credentials.
 *
 * Input: lines. The first is the requested authority (also read as a
 * Proxy-Authorization value); the others are the `upstreams` list.
 *
 * Checked (abort on violation):
 *  - a match is an index into the list, and that entry names itself;
 *  - a request that names an entry splits, with the entry's port;
 *  - a bearer token is a non-empty view inside the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/tcp/tcp_connect.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_LIST 16

static void check(bool ok)
{
    if (!ok)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    check(buf != NULL);
    memcpy(buf, data, size);
    buf[size] = 0;
    char *list[MAX_LIST];
    size_t n = 0;
    char *req = buf, *nl = memchr(buf, '\n', size);
    size_t req_len = nl ? (size_t)(nl - buf) : size;
    for (char *p = nl; p && n < MAX_LIST;) {
        *p++ = 0;
        list[n++] = p;
        p = strchr(p, '\n');
    }
    al_str_t r = {req, req_len};
    int i = al_tcp_upstream_match(r, (const char *const *)list, n);
    check(i >= -1 && i < (int)n);
    if (i >= 0) {
        const char *const self[] = {list[i]};
        check(al_tcp_upstream_match(al_str_c(list[i]), self, 1) == 0);
        al_tcp_authority_t a, b;
        check(al_tcp_authority_split(r, &a) == AL_OK);
        check(al_tcp_authority_split(al_str_c(list[i]), &b) == AL_OK);
        check(a.port == b.port && a.ip6 == b.ip6);
    }
    al_str_t tok = {NULL, 0};
    if (al_tcp_bearer(r, &tok) == 0)
        check(tok.len > 0 && tok.p >= req && tok.p + tok.len <= req + req_len);
    free(buf);
    return 0;
}
