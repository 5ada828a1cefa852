/* Fuzz target for src/proto/http: the HTTP/1.1 parser (request and
 * response mode) and the path normalizer.
 *
 * Input: one control byte, then the stream.
 *   bit 0     0 = request mode, 1 = response mode
 *   bits 1-2  response mode: the request method (GET, HEAD, CONNECT, POST)
 *   bit 3     small limits (to reach the limit paths)
 *   bit 4     request mode: tunnel (1) or resume (0) after CONNECT/upgrade
 *   bits 5-7  chunk size for the second run: 1, 2, 3, 5, 7, 11, 16, 64
 *
 * Checked (abort on violation):
 *  - every consumed count and view stays inside the input;
 *  - feeding the stream whole or in chunks gives the same transcript
 *    (events, heads, decoded bodies, errors and their positions);
 *  - path normalization is idempotent, both on each request-target's path
 *    and on the raw input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http/http_parser.h"
#include "proto/http/http_path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define HDRS_CAP 128

static void check(bool ok)
{
    if (!ok)
        abort();
}

/* Normalizes in twice; the second pass must give the same bytes. */
static void check_path(const char *in, size_t len, al_buf_t *t)
{
    char *out = malloc(len + 2), *again = malloc(len + 3);
    check(out && again);
    size_t n = 0, n2 = 0;
    const char *err = NULL;
    if (al_http_path_normalize(in, len, out, len + 2, &n, &err) == AL_OK) {
        check(err == NULL && n <= len + 1 && out[n] == '\0' && out[0] == '/');
        check(al_http_path_normalize(out, n, again, n + 2, &n2, &err) == AL_OK);
        check(n2 == n && memcmp(out, again, n) == 0);
        if (t) {
            al_buf_puts(t, " path=");
            al_buf_append(t, out, n);
        }
    } else {
        check(err != NULL && n == 0);
        if (t) {
            al_buf_puts(t, " path!");
            al_buf_puts(t, err);
        }
    }
    free(out);
    free(again);
}

typedef struct run {
    uint8_t ctl;
    al_http_parser_t st;
    al_http_header_t hdrs[HDRS_CAP];
    uint8_t *acc;
    size_t alen;
    al_buf_t t;
    bool need_method;
} run_t;

static void set_method(run_t *r)
{
    static const char *const methods[] = {"GET", "HEAD", "CONNECT", "POST"};
    if (r->st.mode == AL_HTTP_RESPONSE && r->need_method) {
        al_http_parser_set_request(&r->st, al_str_c(methods[(r->ctl >> 1) & 3]));
        r->need_method = false;
    }
}

static void record_head(run_t *r, const al_http_msg_t *m, size_t n)
{
    const al_http_head_t *h = &m->head;
    check(h->raw.p == (const char *)r->acc && h->raw.len == n);
    check(h->nheaders <= HDRS_CAP);
    if (h->status >= 200 || h->status == 101) /* a final response: the next needs a method */
        r->need_method = true;
    al_buf_printf(&r->t, "H %d %d %d cl=%lld %d%d%d%d%d%d%d%d", h->version, h->status, h->form,
                  (long long)h->content_length, h->chunked, h->has_body, h->close_delimited,
                  h->keep_alive, h->upgrade, h->expect_continue, h->tunnel, m->done);
    al_buf_append(&r->t, h->method.p ? h->method.p : "", h->method.len);
    al_buf_puts(&r->t, " ");
    al_buf_append(&r->t, h->target.p ? h->target.p : "", h->target.len);
    for (size_t i = 0; i < h->nheaders; i++) {
        const al_http_header_t *f = &h->headers[i];
        check(f->name.p >= h->raw.p && f->name.p + f->name.len <= h->raw.p + h->raw.len);
        check(f->value.p >= h->raw.p && f->value.p + f->value.len <= h->raw.p + h->raw.len);
        al_buf_printf(&r->t, " %zu:%zu", f->name.len, f->value.len);
    }
    al_str_t path, query;
    if (h->target.len && al_http_target_split(h->target, &path, &query) == AL_OK)
        check_path(path.p, path.len, &r->t);
    al_buf_puts(&r->t, "\n");
}

static void record(run_t *r, const al_http_msg_t *m, size_t n)
{
    const char *base = (const char *)r->acc;
    if (m->event == AL_HTTP_EV_HEAD) {
        record_head(r, m, n);
        return;
    }
    check(m->event == AL_HTTP_EV_BODY || m->event == AL_HTTP_EV_END ||
          m->event == AL_HTTP_EV_TUNNEL);
    check(m->body.len <= n);
    check(m->body.len == 0 || (m->body.p >= base && m->body.p + m->body.len <= base + n));
    /* body bytes join up: chunk boundaries are not part of the transcript */
    al_buf_append(&r->t, m->body.p ? m->body.p : "", m->body.len);
    if (m->event == AL_HTTP_EV_END) {
        check(m->done);
        al_buf_puts(&r->t, "|END\n");
    }
}

/* Parses what the buffer holds; false once the parser failed. */
static bool drain(run_t *r)
{
    while (r->alen > 0) {
        al_http_msg_t m;
        set_method(r);
        ssize_t n = al_http_parse(&r->st, r->acc, r->alen, &m);
        if (n < 0) {
            check(n == AL_ERR && r->st.err != AL_HTTP_OK);
            al_buf_printf(&r->t, "ERR %s@%llu\n", al_http_err_str(r->st.err),
                          (unsigned long long)r->st.err_pos);
            return false;
        }
        if (n == 0)
            return true;
        check((size_t)n <= r->alen);
        record(r, &m, (size_t)n);
        memmove(r->acc, r->acc + n, r->alen - (size_t)n);
        r->alen -= (size_t)n;
        if (r->st.state == AL_HTTP_S_HOLD) {
            int rc = (r->ctl & 0x10) ? al_http_parser_tunnel(&r->st) : al_http_parser_resume(&r->st);
            check(rc == AL_OK);
        }
    }
    return true;
}

static char *run(uint8_t ctl, const uint8_t *in, size_t len, size_t step)
{
    static const al_http_limits_t small = {.max_start_line = 40, .max_head = 200, .max_headers = 4};
    run_t *r = calloc(1, sizeof *r);
    check(r != NULL);
    r->ctl = ctl;
    r->need_method = true;
    r->acc = malloc(len + 1);
    check(r->acc != NULL);
    al_buf_init(&r->t);
    al_http_parser_init(&r->st, (ctl & 1) ? AL_HTTP_RESPONSE : AL_HTTP_REQUEST,
                        (ctl & 8) ? &small : NULL, r->hdrs, HDRS_CAP);
    bool ok = true;
    for (size_t off = 0; ok && off < len;) {
        size_t n = AL_MIN(step, len - off);
        memcpy(r->acc + r->alen, in + off, n);
        r->alen += n;
        off += n;
        ok = drain(r);
    }
    if (ok) {
        al_http_msg_t m;
        if (al_http_parser_eof(&r->st, &m) == AL_OK)
            al_buf_printf(&r->t, "EOF %d\n", m.event);
        else
            al_buf_printf(&r->t, "ERR %s@%llu\n", al_http_err_str(r->st.err),
                          (unsigned long long)r->st.err_pos);
    }
    check(!r->t.oom);
    char *t = al_strndup(r->t.p ? r->t.p : "", r->t.len);
    check(t != NULL);
    al_buf_free(&r->t);
    free(r->acc);
    free(r);
    return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t steps[] = {1, 2, 3, 5, 7, 11, 16, 64};
    if (size < 1 || size > 1 << 16)
        return 0;
    uint8_t ctl = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    char *whole = run(ctl, in, len, len ? len : 1);
    char *chunked = run(ctl, in, len, steps[ctl >> 5]);
    check(strcmp(whole, chunked) == 0);
    free(whole);
    free(chunked);

    check_path((const char *)in, len, NULL);
    return 0;
}
