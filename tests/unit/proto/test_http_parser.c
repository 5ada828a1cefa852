/* Unit tests of src/proto/http/http_parser.c.
 *
 * Every message goes through a driver that plays the caller: it keeps the
 * unconsumed bytes in its own buffer, appends new input, and writes what
 * the parser reports into a transcript. Each case is checked against an
 * exact transcript with the whole input at once, then again split at every
 * byte offset and fed byte by byte: the transcript must not change. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "proto/http/http_parser.h"

#define HDRS_CAP 128

typedef struct opts {
    al_http_mode_t mode;
    const char *methods;            /* response mode: one request method per line */
    const al_http_limits_t *limits; /* NULL = defaults */
} opts_t;

static const opts_t REQ = {AL_HTTP_REQUEST, NULL, NULL};

typedef struct driver {
    const opts_t *o;
    al_http_parser_t st;
    al_http_header_t hdrs[HDRS_CAP];
    uint8_t *acc;
    size_t alen;
    al_buf_t t;      /* transcript */
    al_buf_t body;   /* body bytes of the current message */
    al_buf_t tunnel; /* tunnel bytes */
    size_t raw;      /* bytes consumed by the current message */
    const char *next_method;
    bool need_method;
} driver_t;

static void put_str(al_buf_t *b, al_str_t s)
{
    assert_int_equal(al_buf_append(b, s.p ? s.p : "", s.len), AL_OK);
}

static void record_head(driver_t *d, const al_http_msg_t *m)
{
    const al_http_head_t *h = &m->head;
    al_buf_t *t = &d->t;
    static const char *forms[] = {"-", "origin", "absolute", "authority", "asterisk"};
    al_buf_puts(t, "HEAD ");
    if (d->o->mode == AL_HTTP_REQUEST) {
        put_str(t, h->method);
        al_buf_puts(t, " ");
        put_str(t, h->target);
        al_buf_printf(t, " %d %s host=", h->version, forms[h->form]);
        put_str(t, h->host);
        al_buf_puts(t, " auth=");
        put_str(t, h->authority);
    } else {
        al_buf_printf(t, "%d ", h->status);
        put_str(t, h->reason);
        al_buf_printf(t, " %d", h->version);
    }
    al_buf_printf(t, " cl=%lld f=%s%s%s%s%s%s%s%s", (long long)h->content_length,
                  h->chunked ? "c" : "", h->has_body ? "b" : "", h->close_delimited ? "d" : "",
                  h->keep_alive ? "k" : "", h->upgrade ? "u" : "", h->expect_continue ? "e" : "",
                  h->tunnel ? "t" : "", m->done ? "!" : "");
    for (size_t i = 0; i < h->nheaders; i++) {
        al_buf_puts(t, " [");
        put_str(t, h->headers[i].name);
        al_buf_puts(t, "=");
        put_str(t, h->headers[i].value);
        al_buf_puts(t, "]");
    }
    /* the head view covers exactly the consumed bytes */
    assert_ptr_equal(h->raw.p, (const char *)d->acc);
}

static void record_end(driver_t *d)
{
    al_buf_puts(&d->t, "END ");
    put_str(&d->t, (al_str_t){d->body.p, d->body.len});
    al_buf_printf(&d->t, " raw=%zu\n", d->raw);
    al_buf_reset(&d->body);
    d->raw = 0;
}

static void record(driver_t *d, const al_http_msg_t *m, size_t n)
{
    d->raw += n;
    switch (m->event) {
    case AL_HTTP_EV_HEAD:
        record_head(d, m);
        assert_int_equal(m->head.raw.len, n);
        if (m->head.status >= 200 || m->head.status == 101)
            d->need_method = true;
        if (m->done)
            al_buf_printf(&d->t, " raw=%zu", d->raw);
        d->raw = 0;
        al_buf_puts(&d->t, "\n");
        break;
    case AL_HTTP_EV_BODY:
    case AL_HTTP_EV_END:
        assert_true(m->body.len <= n);
        put_str(&d->body, m->body);
        if (m->event == AL_HTTP_EV_END) {
            assert_true(m->done);
            record_end(d);
        }
        break;
    case AL_HTTP_EV_TUNNEL:
        assert_int_equal(m->body.len, n);
        put_str(&d->tunnel, m->body);
        break;
    default:
        fail_msg("consumed %zu bytes without an event", n);
    }
}

static void set_method(driver_t *d)
{
    if (d->o->mode != AL_HTTP_RESPONSE || !d->need_method || !d->next_method || !*d->next_method)
        return;
    const char *e = strchr(d->next_method, '\n');
    size_t n = e ? (size_t)(e - d->next_method) : strlen(d->next_method);
    al_http_parser_set_request(&d->st, (al_str_t){d->next_method, n});
    d->next_method += n + (e ? 1 : 0);
    d->need_method = false;
}

static void record_err(driver_t *d)
{
    al_buf_printf(&d->t, "ERR %s@%llu\n", al_http_err_str(d->st.err),
                  (unsigned long long)d->st.err_pos);
}

/* Parses what the buffer holds; false once the parser failed. */
static bool drain(driver_t *d)
{
    while (d->alen > 0) {
        al_http_msg_t m;
        set_method(d);
        ssize_t n = al_http_parse(&d->st, d->acc, d->alen, &m);
        if (n < 0) {
            record_err(d);
            return false;
        }
        if (n == 0)
            return true;
        assert_true((size_t)n <= d->alen);
        record(d, &m, (size_t)n);
        memmove(d->acc, d->acc + n, d->alen - (size_t)n);
        d->alen -= (size_t)n;
    }
    return true;
}

static void finish(driver_t *d)
{
    al_http_msg_t m;
    if (al_http_parser_eof(&d->st, &m) != AL_OK) {
        record_err(d);
        return;
    }
    if (m.event == AL_HTTP_EV_END)
        record_end(d);
    else
        assert_int_equal(m.event, AL_HTTP_EV_NONE);
    if (d->tunnel.len) {
        al_buf_puts(&d->t, "TUNNEL ");
        put_str(&d->t, (al_str_t){d->tunnel.p, d->tunnel.len});
        al_buf_puts(&d->t, "\n");
    }
    al_buf_puts(&d->t, "EOF\n");
}

/* Runs in over chunks ending at cuts[0..ncuts) and at len; returns the
 * transcript (caller frees). */
static char *run(const opts_t *o, const char *in, size_t len, const size_t *cuts, size_t ncuts)
{
    driver_t *d = calloc(1, sizeof *d);
    assert_non_null(d);
    d->o = o;
    d->next_method = o->methods;
    d->need_method = true;
    al_http_parser_init(&d->st, o->mode, o->limits, d->hdrs, HDRS_CAP);
    d->acc = malloc(len + 1);
    assert_non_null(d->acc);
    al_buf_init(&d->t);
    al_buf_init(&d->body);
    al_buf_init(&d->tunnel);
    size_t prev = 0;
    bool ok = true;
    for (size_t k = 0; ok && k <= ncuts; k++) {
        size_t end = k < ncuts ? cuts[k] : len;
        memcpy(d->acc + d->alen, in + prev, end - prev);
        d->alen += end - prev;
        prev = end;
        ok = drain(d);
    }
    if (ok)
        finish(d);
    char *t = al_xstrndup(d->t.p ? d->t.p : "", d->t.len);
    al_buf_free(&d->t);
    al_buf_free(&d->body);
    al_buf_free(&d->tunnel);
    free(d->acc);
    free(d);
    return t;
}

/* Whole, split at every offset, byte by byte: same transcript. Returns the
 * whole-input transcript. */
static char *run_all_splits(const opts_t *o, const char *in, size_t len)
{
    char *whole = run(o, in, len, NULL, 0);
    for (size_t k = 1; k < len; k++) {
        char *s = run(o, in, len, &k, 1);
        if (strcmp(s, whole) != 0)
            fail_msg("split at %zu differs:\n%s\nvs whole:\n%s", k, s, whole);
        free(s);
    }
    if (len > 1) {
        size_t *cuts = calloc(len, sizeof *cuts);
        assert_non_null(cuts);
        for (size_t k = 1; k < len; k++)
            cuts[k - 1] = k;
        char *s = run(o, in, len, cuts, len - 1);
        if (strcmp(s, whole) != 0)
            fail_msg("byte by byte differs:\n%s\nvs whole:\n%s", s, whole);
        free(s);
        free(cuts);
    }
    return whole;
}

static void check_o(const opts_t *o, const char *in, const char *expected)
{
    char *got = run_all_splits(o, in, strlen(in));
    assert_string_equal(got, expected);
    free(got);
}

static void check(const char *in, const char *expected) { check_o(&REQ, in, expected); }

/* The input is refused with code; pos (-1: any) is the stream offset. */
static void check_err_o(const opts_t *o, const char *in, const char *code, long pos)
{
    char *got = run_all_splits(o, in, strlen(in));
    char want[128];
    if (pos >= 0)
        snprintf(want, sizeof want, "ERR %s@%ld\n", code, pos);
    else
        snprintf(want, sizeof want, "ERR %s@", code);
    const char *e = strstr(got, "ERR ");
    if (!e || strncmp(e, want, strlen(want)) != 0)
        fail_msg("want %s, got:\n%s", want, got);
    free(got);
}

static void check_err(const char *in, const char *code, long pos) { check_err_o(&REQ, in, code, pos); }

#define H "Host: a\r\n"

/* ---- valid requests --------------------------------------------------- */

static void test_simple_get(void **s)
{
    check("GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
          "HEAD GET /x?y=1 11 origin host=example.com auth=example.com cl=-1 f=k! "
          "[Host=example.com] [Accept=*/*] raw=55\nEOF\n");
}

static void test_post_content_length(void **s)
{
    check("POST /api HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhello",
          "HEAD POST /api 11 origin host=a auth=a cl=5 f=bk [Host=a] [Content-Length=5]\n"
          "END hello raw=5\nEOF\n");
}

static void test_chunked_with_trailers(void **s)
{
    check("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n"
          "5\r\nhello\r\n00A\r\n, world!!!\r\n0\r\nX-Sum: 1\r\nX-Other:  two \r\n\r\n",
          "HEAD POST / 11 origin host=a auth=a cl=-1 f=cbk [Host=a] [Transfer-Encoding=chunked]\n"
          "END hello, world!!! raw=58\nEOF\n");
}

static void test_chunked_uppercase_no_trailers(void **s)
{
    check("POST / HTTP/1.1\r\n" H "TRANSFER-ENCODING: ChUnKeD\r\n\r\n"
          "0000000000000003\r\nabc\r\nF\r\n0123456789abcde\r\n0\r\n\r\n",
          "HEAD POST / 11 origin host=a auth=a cl=-1 f=cbk [Host=a] [TRANSFER-ENCODING=ChUnKeD]\n"
          "END abc0123456789abcde raw=48\nEOF\n");
}

static void test_te_tab_ows_is_valid(void **s)
{
    /* "Transfer-Encoding:\tchunked": HTAB is OWS (RFC 9112 §5.1), not obfuscation */
    check("POST / HTTP/1.1\r\n" H "Transfer-Encoding:\tchunked\t\r\n\r\n1\r\nz\r\n0\r\n\r\n",
          "HEAD POST / 11 origin host=a auth=a cl=-1 f=cbk [Host=a] [Transfer-Encoding=chunked]\n"
          "END z raw=11\nEOF\n");
}

static void test_value_trim_and_obs_text(void **s)
{
    check("GET / HTTP/1.1\r\n" H "X-A:   a  b \t\r\nX-Empty:\r\nX-Utf8: caf\xc3\xa9\r\n\r\n",
          "HEAD GET / 11 origin host=a auth=a cl=-1 f=k! [Host=a] [X-A=a  b] [X-Empty=] "
          "[X-Utf8=caf\xc3\xa9] raw=67\nEOF\n");
}

static void test_http10(void **s)
{
    check("GET / HTTP/1.0\r\n\r\n", "HEAD GET / 10 origin host= auth= cl=-1 f=! raw=18\nEOF\n");
    check("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
          "HEAD GET / 10 origin host= auth= cl=-1 f=k! [Connection=Keep-Alive] raw=42\nEOF\n");
}

static void test_connection_close_and_expect(void **s)
{
    check("PUT /f HTTP/1.1\r\n" H "Connection: foo, close\r\nExpect: 100-Continue\r\n"
          "Content-Length: 2\r\n\r\nhi",
          "HEAD PUT /f 11 origin host=a auth=a cl=2 f=be [Host=a] [Connection=foo, close] "
          "[Expect=100-Continue] [Content-Length=2]\nEND hi raw=2\nEOF\n");
}

static void test_content_length_zero_and_leading_zeros(void **s)
{
    check("POST / HTTP/1.1\r\n" H "Content-Length: 0\r\n\r\n",
          "HEAD POST / 11 origin host=a auth=a cl=0 f=k! [Host=a] [Content-Length=0] raw=47\nEOF\n");
    check("POST / HTTP/1.1\r\n" H "Content-Length: 007\r\n\r\n1234567",
          "HEAD POST / 11 origin host=a auth=a cl=7 f=bk [Host=a] [Content-Length=007]\n"
          "END 1234567 raw=7\nEOF\n");
}

static void test_pipelining(void **s)
{
    check("GET /1 HTTP/1.1\r\n" H "\r\n"
          "POST /2 HTTP/1.1\r\n" H "Content-Length: 3\r\n\r\nabc"
          "POST /3 HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n"
          "GET /4 HTTP/1.1\r\n" H "\r\n",
          "HEAD GET /1 11 origin host=a auth=a cl=-1 f=k! [Host=a] raw=28\n"
          "HEAD POST /2 11 origin host=a auth=a cl=3 f=bk [Host=a] [Content-Length=3]\n"
          "END abc raw=3\n"
          "HEAD POST /3 11 origin host=a auth=a cl=-1 f=cbk [Host=a] [Transfer-Encoding=chunked]\n"
          "END xy raw=12\n"
          "HEAD GET /4 11 origin host=a auth=a cl=-1 f=k! [Host=a] raw=28\nEOF\n");
}

static void test_target_forms(void **s)
{
    check("OPTIONS * HTTP/1.1\r\n" H "\r\n",
          "HEAD OPTIONS * 11 asterisk host=a auth=a cl=-1 f=k! [Host=a] raw=31\nEOF\n");
    check("GET http://Example.com:8080/p?q HTTP/1.1\r\nHost: example.COM:8080\r\n\r\n",
          "HEAD GET http://Example.com:8080/p?q 11 absolute host=example.COM:8080 "
          "auth=Example.com:8080 cl=-1 f=k! [Host=example.COM:8080] raw=68\nEOF\n");
    check("GET https://[::1]:443 HTTP/1.0\r\n\r\n",
          "HEAD GET https://[::1]:443 10 absolute host= auth=[::1]:443 cl=-1 f=! raw=34\nEOF\n");
    check("GET /a%20b/%C3%A9;p=1?x=%2F&y=@:!$'()*+,= HTTP/1.1\r\n" H "\r\n",
          "HEAD GET /a%20b/%C3%A9;p=1?x=%2F&y=@:!$'()*+,= 11 origin host=a auth=a cl=-1 f=k! "
          "[Host=a] raw=63\nEOF\n");
}

static void test_connect_hold_tunnel_resume(void **s)
{
    const char *req = "CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal\r\n\r\n";
    check(req, "HEAD CONNECT db.internal:5432 11 authority host=db.internal "
               "auth=db.internal:5432 cl=-1 f=k! [Host=db.internal] raw=56\nEOF\n");

    /* bytes after the CONNECT head before the upstream answered */
    char buf[256];
    snprintf(buf, sizeof buf, "%sGET / HTTP/1.1\r\n\r\n", req);
    check_err(buf, "awaiting_response", 56);

    /* the caller decides: tunnel, or resume HTTP */
    al_http_header_t hdrs[8];
    al_http_parser_t st;
    al_http_msg_t m;
    al_http_parser_init(&st, AL_HTTP_REQUEST, NULL, hdrs, 8);
    assert_int_equal(al_http_parser_tunnel(&st), AL_ERR); /* not held */
    assert_int_equal(al_http_parse(&st, (const uint8_t *)req, strlen(req), &m), 56);
    assert_int_equal(m.event, AL_HTTP_EV_HEAD);
    assert_int_equal(al_http_parser_tunnel(&st), AL_OK);
    assert_int_equal(al_http_parse(&st, (const uint8_t *)"\x16\x03\x01", 3, &m), 3);
    assert_int_equal(m.event, AL_HTTP_EV_TUNNEL);
    assert_int_equal(m.body.len, 3);
    assert_int_equal(al_http_parser_eof(&st, &m), AL_OK);

    al_http_parser_reset(&st);
    assert_int_equal(al_http_parse(&st, (const uint8_t *)req, strlen(req), &m), 56);
    assert_int_equal(al_http_parser_resume(&st), AL_OK);
    const char *next = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(al_http_parse(&st, (const uint8_t *)next, strlen(next), &m), 27);
    assert_true(m.done);
    assert_int_equal(st.err, AL_HTTP_OK);
}

static void test_upgrade_request_holds(void **s)
{
    const char *req = "GET /ws HTTP/1.1\r\n" H "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Content-Length: 1\r\n\r\nxGET";
    check_err(req, "awaiting_response", 90);
    /* an HTTP/1.0 request cannot upgrade (RFC 9110 §7.8) */
    check("GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
          "HEAD GET /ws 10 origin host= auth= cl=-1 f=! [Connection=Upgrade] "
          "[Upgrade=websocket] raw=61\nEOF\n");
}

/* ---- request refusals, one reason each --------------------------------- */

static void test_cl_and_te(void **s)
{
    /* CL.TE and TE.CL classics */
    check_err("POST / HTTP/1.1\r\n" H "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
              "0\r\n\r\nG",
              "cl_and_te", 45);
    check_err("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n"
              "0\r\n\r\nG",
              "cl_and_te", 54);
}

static void test_bad_content_length(void **s)
{
    static const char *bad[] = {"abc", "+5", "-5", "", "5, 5", "5,5", "5 5", "0x5", "5.0",
                                "4611686018427387905", "99999999999999999999999"};
    char buf[256];
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\n" H "Content-Length: %s\r\n\r\n", bad[i]);
        check_err(buf, "bad_content_length", 26);
    }
    /* 2^62 is the largest accepted */
    check("POST / HTTP/1.1\r\n" H "Content-Length: 4611686018427387904\r\n\r\n",
          "HEAD POST / 11 origin host=a auth=a cl=4611686018427387904 f=bk [Host=a] "
          "[Content-Length=4611686018427387904]\nERR truncated@65\n");
}

static void test_duplicate_content_length(void **s)
{
    check_err("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
              "duplicate_content_length", 45);
    check_err("POST / HTTP/1.1\r\n" H "content-length: 4\r\nContent-Length: 5\r\n\r\nhello",
              "duplicate_content_length", 45);
}

static void test_bad_transfer_encoding(void **s)
{
    static const char *bad[] = {"gzip, chunked", "chunked, gzip", "chunked, chunked", "xchunked",
                                "chunked;q=1", "chunked;", "identity", "", "\"chunked\"",
                                "chunked,", ", chunked", "chunk", "chunked\x01"};
    char buf[256];
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        snprintf(buf, sizeof buf, "POST / HTTP/1.1\r\n" H "Transfer-Encoding: %s\r\n\r\n", bad[i]);
        check_err(buf, i == AL_ARRAY_LEN(bad) - 1 ? "bad_header_value" : "bad_transfer_encoding",
                  i == AL_ARRAY_LEN(bad) - 1 ? -1 : 26);
    }
}

static void test_duplicate_transfer_encoding(void **s)
{
    check_err("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
              "\r\n0\r\n\r\n",
              "duplicate_transfer_encoding", 54);
}

static void test_te_in_http10(void **s)
{
    check_err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "te_in_http10",
              17);
}

static void test_obs_fold(void **s)
{
    check_err("GET / HTTP/1.1\r\n" H "X: a\r\n b\r\n\r\n", "obs_fold", 31);
    check_err("GET / HTTP/1.1\r\n" H "X: a\r\n\tb\r\n\r\n", "obs_fold", 31);
    /* whitespace before the first field line (RFC 9112 §2.2) */
    check_err("GET / HTTP/1.1\r\n Host: a\r\n\r\n", "obs_fold", 16);
}

static void test_bad_header_value(void **s)
{
    /* strlen stops at NUL: feed the NUL case with its length */
    static const char nul[] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n";
    char *got = run_all_splits(&REQ, nul, sizeof nul - 1);
    assert_string_equal(got, "ERR bad_header_value@29\n");
    free(got);
    check_err("GET / HTTP/1.1\r\n" H "X: a\x7f\r\n\r\n", "bad_header_value", 29);
    check_err("GET / HTTP/1.1\r\n" H "X: a\x1b[31m\r\n\r\n", "bad_header_value", 29);
}

static void test_bare_cr_and_lf(void **s)
{
    check_err("GET / HTTP/1.1\r\n" H "X: a\rb\r\n\r\n", "bare_cr", 29);
    check_err("GET / HTTP/1.1\r\n" H "X: a\r\r\n\r\n", "bare_cr", 29);
    check_err("GET / HTTP/1.1\r\n" H "X: a\nTransfer-Encoding: chunked\r\n\r\n", "bare_lf", 29);
    check_err("GET / HTTP/1.1\n" H "\r\n", "bare_lf", 14);
    check_err("GET / HTTP/1.1\r\n" H "\n", "bare_lf", 25);
    check_err("GET / HTTP/1.1\r\n" H "\r\r\n", "bare_cr", 25);
    check_err("GET / HTTP/1\r.1\r\n" H "\r\n", "bare_cr", 12);
}

static void test_space_before_colon(void **s)
{
    check_err("POST / HTTP/1.1\r\n" H "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
              "space_before_colon", 43);
    check_err("POST / HTTP/1.1\r\n" H "Content-Length\t: 1\r\n\r\nx", "space_before_colon", 40);
}

static void test_bad_header_name(void **s)
{
    check_err("GET / HTTP/1.1\r\n" H ": x\r\n\r\n", "bad_header_name", 25);
    check_err("GET / HTTP/1.1\r\n" H "X(y): 1\r\n\r\n", "bad_header_name", 26);
    check_err("GET / HTTP/1.1\r\n" H "X\xc3\xa9: 1\r\n\r\n", "bad_header_name", 26);
    check_err("GET / HTTP/1.1\r\n" H "X/Y: 1\r\n\r\n", "bad_header_name", 26);
}

static void test_missing_colon(void **s)
{
    check_err("GET / HTTP/1.1\r\n" H "Transfer-Encoding chunked\r\n\r\n", "space_before_colon",
              42);
    check_err("GET / HTTP/1.1\r\n" H "NoColon\r\n\r\n", "missing_colon", 32);
}

static const al_http_limits_t small_limits = {.max_start_line = 32, .max_head = 80, .max_headers = 3};
static const opts_t REQ_SMALL = {AL_HTTP_REQUEST, NULL, &small_limits};

static void test_limits(void **s)
{
    /* start line: 31 bytes + CRLF = 32 fits, 33 does not */
    check_o(&REQ_SMALL, "GET /aaaaaaaaaaaaaaaa HTTP/1.1\r\n" H "\r\n",
            "HEAD GET /aaaaaaaaaaaaaaaa 11 origin host=a auth=a cl=-1 f=k! [Host=a] raw=43\nEOF\n");
    check_err_o(&REQ_SMALL, "GET /aaaaaaaaaaaaaaaaa HTTP/1.1\r\n" H "\r\n",
                "request_line_too_long", 32);
    check_err_o(&REQ_SMALL, "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "request_line_too_long",
                32);
    check_err_o(&REQ_SMALL, "GET / HTTP/1.1\r\n" H "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", "too_many_headers",
                37);
    check_err_o(&REQ_SMALL, "GET / HTTP/1.1\r\n" H "A: 1111111111111111111111111111111111111111111111111\r\n\r\n",
                "head_too_large", 80);
    check_err_o(&REQ_SMALL, "GET / HTTP/1.1\r\n" H "A: 111111111111111111111111111111111111111111111111111111111111",
                "head_too_large", 80);
    /* exactly max_head bytes is accepted */
    check_o(&REQ_SMALL, "GET / HTTP/1.1\r\n" H "A: 111111111111111111111111111111111111111111111111\r\n\r\n",
            "HEAD GET / 11 origin host=a auth=a cl=-1 f=k! [Host=a] "
            "[A=111111111111111111111111111111111111111111111111] raw=80\nEOF\n");
    /* the header array bounds the limit too */
    al_http_header_t two[2];
    al_http_parser_t st;
    al_http_msg_t m;
    al_http_parser_init(&st, AL_HTTP_REQUEST, NULL, two, 2);
    const char *req = "GET / HTTP/1.1\r\n" H "A: 1\r\nB: 2\r\n\r\n";
    assert_int_equal(al_http_parse(&st, (const uint8_t *)req, strlen(req), &m), AL_ERR);
    assert_string_equal(al_http_err_str(st.err), "too_many_headers");
}

static void test_bad_method(void **s)
{
    check_err("G@T / HTTP/1.1\r\n" H "\r\n", "bad_method", 1);
    check_err(" GET / HTTP/1.1\r\n" H "\r\n", "bad_method", 0);
    check_err("GET\t/ HTTP/1.1\r\n" H "\r\n", "bad_method", 3);
    check_err("\r\nGET / HTTP/1.1\r\n" H "\r\n", "bad_method", 0);
    check_err("G\xc3\x89T / HTTP/1.1\r\n" H "\r\n", "bad_method", 1);
}

static void test_bad_request_line(void **s)
{
    check_err("GET\r\n" H "\r\n", "bad_request_line", 3);
    check_err("GET /\r\n" H "\r\n", "bad_request_line", 5);
}

static void test_bad_version(void **s)
{
    static const char *bad[] = {"HTTP/1.2", "HTTP/2.0", "http/1.1", "HTTP/1.1 ", "HTTP/1.10",
                                "HTTP/1", "HTTP/01.1", " HTTP/1.1", "HTTP/1.1\t"};
    char buf[128];
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        snprintf(buf, sizeof buf, "GET / %s\r\nHost: a\r\n\r\n", bad[i]);
        check_err(buf, "bad_version", 6);
    }
}

static void test_bad_target(void **s)
{
    static const char *bad[] = {
        "GET  / HTTP/1.1",            /* two SP */
        "GET /a#frag HTTP/1.1",       /* fragment */
        "GET /a\x01 HTTP/1.1",        /* control */
        "GET /caf\xc3\xa9 HTTP/1.1",  /* non-ASCII */
        "GET /a\\b HTTP/1.1",         /* backslash */
        "GET /a|b HTTP/1.1",          /* not a URI character */
        "GET /a\"b HTTP/1.1",
        "GET /%zz HTTP/1.1",          /* bad escape */
        "GET /%4 HTTP/1.1",
        "GET * HTTP/1.1",             /* asterisk-form only for OPTIONS */
        "OPTIONS ** HTTP/1.1",
        "CONNECT / HTTP/1.1",         /* CONNECT needs authority-form */
        "CONNECT host HTTP/1.1",      /* ... with a port */
        "CONNECT host:99999 HTTP/1.1",
        "CONNECT user@host:443 HTTP/1.1",
        "CONNECT :443 HTTP/1.1",
        "GET host:443 HTTP/1.1",      /* authority-form only for CONNECT */
        "GET http://user@h/ HTTP/1.1",/* userinfo */
        "GET http:///x HTTP/1.1",     /* empty host */
        "GET ftp://h/ HTTP/1.1",      /* not http(s) */
        "GET http://h:x/ HTTP/1.1",
        "GET http://[zz]/ HTTP/1.1",
        "GET a/b HTTP/1.1",
    };
    char buf[128];
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        snprintf(buf, sizeof buf, "%s\r\nHost: h\r\n\r\n", bad[i]);
        check_err(buf, "bad_target", -1);
    }
    check_err("GET /a|b HTTP/1.1\r\n" H "\r\n", "bad_target", 6);
    check_err("GET /a\\b HTTP/1.1\r\n" H "\r\n", "bad_target", 6);
    check_err("GET ftp://h/ HTTP/1.1\r\n" H "\r\n", "bad_target", 4);
    /* a space inside the target leaves junk where the version should be */
    check_err("GET /a b HTTP/1.1\r\n" H "\r\n", "bad_version", 7);
}

static void test_host_rules(void **s)
{
    check_err("GET / HTTP/1.1\r\n\r\n", "missing_host", 16);
    check_err("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "duplicate_host", 25);
    check_err("GET / HTTP/1.1\r\nHost: a\r\nhOsT: a\r\n\r\n", "duplicate_host", 25);
    check_err("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", "bad_host", 16);
    check_err("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", "bad_host", 16);
    check_err("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", "bad_host", 16);
    check_err("GET / HTTP/1.1\r\nHost: a:\r\n\r\n", "bad_host", 16);
    check_err("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", "host_mismatch", 33);
    /* an empty Host is allowed (RFC 9112 §3.2) */
    check("GET / HTTP/1.1\r\nHost:\r\n\r\n",
          "HEAD GET / 11 origin host= auth= cl=-1 f=k! [Host=] raw=25\nEOF\n");
}

static void test_connect_with_body(void **s)
{
    check_err("CONNECT h:443 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
              "connect_with_body", 52);
}

static const char CHUNK_HEAD[] = "POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n";
#define CH_LEN (sizeof CHUNK_HEAD - 1) /* 54 */

static void check_chunk_err(const char *body, const char *code, long body_pos)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s%s", CHUNK_HEAD, body);
    check_err(buf, code, body_pos < 0 ? -1 : (long)CH_LEN + body_pos);
}

static void test_bad_chunk_size(void **s)
{
    check_chunk_err("0x5\r\nhello\r\n0\r\n\r\n", "bad_chunk_size", 1);
    check_chunk_err(" 5\r\nhello\r\n0\r\n\r\n", "bad_chunk_size", 0);
    check_chunk_err("5 \r\nhello\r\n0\r\n\r\n", "bad_chunk_size", 1);
    check_chunk_err("5\t\r\nhello\r\n0\r\n\r\n", "bad_chunk_size", 1);
    check_chunk_err("\r\nhello\r\n0\r\n\r\n", "bad_chunk_size", 0);
    check_chunk_err("-1\r\nhello\r\n0\r\n\r\n", "bad_chunk_size", 0);
    check_chunk_err("g\r\n", "bad_chunk_size", 0);
    check_chunk_err("+5\r\nhello\r\n", "bad_chunk_size", 0);
    /* 17 hex digits: refused before it could overflow */
    check_chunk_err("10000000000000000\r\n", "bad_chunk_size", 16);
    check_chunk_err("00000000000000005\r\nhello\r\n", "bad_chunk_size", 16);
    check_chunk_err("5\r\nhello\r\n0 \r\n\r\n", "bad_chunk_size", 11);
}

static void test_bad_chunk_ext(void **s)
{
    check_chunk_err("5;ext=1\r\nhello\r\n0\r\n\r\n", "bad_chunk_ext", 1);
    check_chunk_err("5;\r\nhello\r\n0\r\n\r\n", "bad_chunk_ext", 1);
    check_chunk_err("5\r\nhello\r\n0;x\r\n\r\n", "bad_chunk_ext", 11);
}

static void test_chunk_framing_crlf(void **s)
{
    check_chunk_err("5\r\nhelloX\r\n0\r\n\r\n", "missing_chunk_crlf", 8);
    check_chunk_err("5\r\nhello\rX0\r\n\r\n", "missing_chunk_crlf", 9);
    check_chunk_err("5\r\nhello\n0\r\n\r\n", "missing_chunk_crlf", 8);
    check_chunk_err("5\nhello\r\n0\r\n\r\n", "bare_lf", 1);
    check_chunk_err("5\rhello\r\n0\r\n\r\n", "bare_cr", 1);
    check_chunk_err("0\r\n\n", "bare_lf", 3);
    check_chunk_err("0\r\nX: 1\n\r\n", "bare_lf", 7);
}

static void test_trailers(void **s)
{
    check_chunk_err("0\r\nContent-Length: 5\r\n\r\n", "bad_trailer", 3);
    check_chunk_err("0\r\nTransfer-Encoding: chunked\r\n\r\n", "bad_trailer", 3);
    check_chunk_err("0\r\nhost: x\r\n\r\n", "bad_trailer", 3);
    check_chunk_err("0\r\nX: 1\r\n y\r\n\r\n", "obs_fold", 9);
    check_chunk_err("0\r\nX : 1\r\n\r\n", "space_before_colon", 4);
    check_chunk_err("0\r\nX: \x01\r\n\r\n", "bad_header_value", 6);
    check_chunk_err("0\r\nX: a\rb\r\n\r\n", "bare_cr", 7);

    char buf[256];
    snprintf(buf, sizeof buf, "%s0\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    check_err_o(&REQ_SMALL, buf, "too_many_headers", 77);
    snprintf(buf, sizeof buf, "%s0\r\nA: 11111111111111111111111111111111111111111111111111111111111111111111111111\r\n\r\n",
             "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n");
    check_err_o(&REQ_SMALL, buf, "trailers_too_large", 59 + 80);
}

static void test_truncated(void **s)
{
    check_err("GET / HTTP/1.1\r\nHost: a\r\n", "truncated", 25);
    check_err("POST / HTTP/1.1\r\n" H "Content-Length: 5\r\n\r\nhel", "truncated", 50);
    check_err("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
              "truncated", 66);
    check_err("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: 1",
              "truncated", -1);
}

static void test_errors_are_sticky(void **s)
{
    al_http_header_t hdrs[8];
    al_http_parser_t st;
    al_http_msg_t m;
    al_http_parser_init(&st, AL_HTTP_REQUEST, NULL, hdrs, 8);
    const char *bad = "GET / HTTP/9.9\r\n";
    assert_int_equal(al_http_parse(&st, (const uint8_t *)bad, strlen(bad), &m), AL_ERR);
    assert_string_equal(al_http_err_str(st.err), "bad_version");
    const char *good = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    assert_int_equal(al_http_parse(&st, (const uint8_t *)good, strlen(good), &m), AL_ERR);
    assert_int_equal(al_http_parser_eof(&st, &m), AL_ERR);
    al_http_parser_reset(&st);
    assert_int_equal(al_http_parse(&st, (const uint8_t *)good, strlen(good), &m), 27);
    /* input that shrinks between calls is a caller bug */
    al_http_parser_reset(&st);
    assert_int_equal(al_http_parse(&st, (const uint8_t *)good, 10, &m), 0);
    assert_int_equal(al_http_parse(&st, (const uint8_t *)good, 5, &m), AL_ERR);
    assert_string_equal(al_http_err_str(st.err), "bad_call");
    assert_string_equal(al_http_err_str(AL_HTTP__ERR_COUNT), "bad_call");
    assert_string_equal(al_http_err_str(AL_HTTP_OK), "ok");
}

static void test_smuggling_te_te(void **s)
{
    /* TE.TE: obfuscated second Transfer-Encoding lines */
    check_err("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n",
              "duplicate_transfer_encoding", 54);
    check_err("POST / HTTP/1.1\r\n" H "Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n\r\n",
              "bad_transfer_encoding", 26);
    check_err("POST / HTTP/1.1\r\n" H "Content-Length: 4\r\nTransfer-Encoding : chunked\r\n\r\n",
              "space_before_colon", 62);
    check_err("POST / HTTP/1.1\r\n" H "Content-Length: 4\r\n Transfer-Encoding: chunked\r\n\r\n",
              "obs_fold", 45);
    check_err("POST / HTTP/1.1\r\n" H "Content-Length: 4\r\nTransfer-Encoding:\x0b" "chunked\r\n\r\n",
              "bad_header_value", 63);
    check_err("POST / HTTP/1.1\r\n" H "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
              "cl_and_te", 54);
    check_err("POST / HTTP/1.1\r\n" H "Content-Length: 4\r\nX: y\nTransfer-Encoding: chunked\r\n\r\n",
              "bare_lf", 49);
}

static void test_api_guards(void **s)
{
    al_http_parser_t st;
    al_http_msg_t m;
    al_http_parser_init(&st, AL_HTTP_REQUEST, NULL, NULL, 0);
    assert_int_equal(al_http_parse(&st, NULL, 0, &m), 0);
    assert_int_equal(al_http_parse(&st, NULL, 3, &m), AL_ERR);
    assert_string_equal(al_http_err_str(st.err), "bad_call");
    /* no header array: HTTP/1.0 without fields still works */
    al_http_parser_reset(&st);
    const char *req = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(al_http_parse(&st, (const uint8_t *)req, strlen(req), &m), 18);
    assert_int_equal(m.head.nheaders, 0);
    al_http_header_t hdrs[4];
    al_http_parser_init(&st, AL_HTTP_REQUEST, NULL, hdrs, 4);
    req = "GET / HTTP/1.1\r\nHost: a\r\nX-Thing: v\r\n\r\n";
    assert_int_equal(al_http_parse(&st, (const uint8_t *)req, strlen(req), &m), 39);
    al_str_t v = al_http_head_get(&m.head, "x-thing");
    assert_true(al_str_eq_c(v, "v"));
    assert_null(al_http_head_get(&m.head, "x-nope").p);
    al_http_limits_t d = al_http_limits_default();
    assert_int_equal(d.max_start_line, 8192);
    assert_int_equal(d.max_head, 65536);
    assert_int_equal(d.max_headers, 100);
}

/* Feeding a growing buffer must not rescan: count is not observable, but
 * a 64 KiB head fed 1 byte at a time finishes quickly and correctly. */
static void test_incremental_head_is_linear(void **s)
{
    size_t n = 60000;
    char *big = malloc(n + 64);
    assert_non_null(big);
    size_t len = (size_t)snprintf(big, 64, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
    while (len < n)
        big[len++] = 'v';
    memcpy(big + len, "\r\n\r\n", 4);
    len += 4;
    al_http_header_t hdrs[4];
    al_http_parser_t st;
    al_http_msg_t m;
    al_http_parser_init(&st, AL_HTTP_REQUEST, NULL, hdrs, 4);
    ssize_t r = 0;
    for (size_t i = 1; i <= len; i++) {
        r = al_http_parse(&st, (const uint8_t *)big, i, &m);
        if (i < len)
            assert_int_equal(r, 0);
    }
    assert_int_equal(r, (ssize_t)len);
    assert_int_equal(m.head.headers[1].value.len, n - 28);
    free(big);
}

/* ---- responses --------------------------------------------------------- */

static const opts_t RESP_GET = {AL_HTTP_RESPONSE, "GET\nGET\nGET", NULL};

static void test_response_content_length(void **s)
{
    check_o(&RESP_GET, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HEAD 200 OK 11 cl=5 f=bk [Content-Length=5]\nEND hello raw=5\nEOF\n");
    /* no reason phrase, with or without its SP */
    check_o(&RESP_GET, "HTTP/1.1 404\r\nContent-Length: 0\r\n\r\nHTTP/1.0 200 \r\nContent-Length: 0\r\n\r\n",
            "HEAD 404  11 cl=0 f=k! [Content-Length=0] raw=35\n"
            "HEAD 200  10 cl=0 f=! [Content-Length=0] raw=36\nEOF\n");
}

static void test_response_head_method(void **s)
{
    const opts_t o = {AL_HTTP_RESPONSE, "HEAD\nGET", NULL};
    check_o(&o, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            "HEAD 200 OK 11 cl=5 f=k! [Content-Length=5] raw=38\n"
            "HEAD 200 OK 11 cl=2 f=bk [Content-Length=2]\nEND ok raw=2\nEOF\n");
    /* HEAD response advertising chunked: still no body */
    const opts_t o2 = {AL_HTTP_RESPONSE, "HEAD", NULL};
    check_o(&o2, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HEAD 200 OK 11 cl=-1 f=ck! [Transfer-Encoding=chunked] raw=47\nEOF\n");
}

static void test_response_204_304(void **s)
{
    check_o(&RESP_GET, "HTTP/1.1 204 No Content\r\n\r\n"
                       "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"
                       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
            "HEAD 204 No Content 11 cl=-1 f=k! raw=27\n"
            "HEAD 304 Not Modified 11 cl=10 f=k! [Content-Length=10] raw=49\n"
            "HEAD 200 OK 11 cl=1 f=bk [Content-Length=1]\nEND x raw=1\nEOF\n");
}

static void test_response_close_delimited(void **s)
{
    check_o(&RESP_GET, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this\r\n\r\nand this",
            "HEAD 200 OK 11 cl=-1 f=bd [Content-Type=text/plain]\n"
            "END all of this\r\n\r\nand this raw=23\nEOF\n");
    check_o(&RESP_GET, "HTTP/1.0 200 OK\r\n\r\n",
            "HEAD 200 OK 10 cl=-1 f=bd\nEND  raw=0\nEOF\n");
}

static void test_response_100_continue(void **s)
{
    const opts_t o = {AL_HTTP_RESPONSE, "PUT", NULL};
    check_o(&o, "HTTP/1.1 100 Continue\r\n\r\n"
                "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
            "HEAD 100 Continue 11 cl=-1 f=k! raw=25\n"
            "HEAD 103 Early Hints 11 cl=-1 f=k! [Link=</a>] raw=40\n"
            "HEAD 201 Created 11 cl=2 f=bk [Content-Length=2]\nEND ok raw=2\nEOF\n");
}

static void test_response_chunked_trailers(void **s)
{
    check_o(&RESP_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Digest\r\n\r\n"
                       "4\r\nWiki\r\n5\r\npedia\r\n0\r\nX-Digest: abc\r\n\r\n",
            "HEAD 200 OK 11 cl=-1 f=cbk [Transfer-Encoding=chunked] [Trailer=X-Digest]\n"
            "END Wikipedia raw=39\nEOF\n");
}

static void test_response_tunnels(void **s)
{
    const opts_t c = {AL_HTTP_RESPONSE, "CONNECT", NULL};
    check_o(&c, "HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01 raw tls",
            "HEAD 200 Connection Established 11 cl=-1 f=t! raw=39\nTUNNEL \x16\x03\x01 raw tls\nEOF\n");
    /* a refused CONNECT is an ordinary response */
    check_o(&c, "HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno",
            "HEAD 403 Forbidden 11 cl=2 f=bk [Content-Length=2]\nEND no raw=2\nEOF\n");
    check_o(&RESP_GET, "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x05hello",
            "HEAD 101 Switching Protocols 11 cl=-1 f=ut! [Connection=upgrade] [Upgrade=websocket] "
            "raw=77\nTUNNEL \x81\x05hello\nEOF\n");
}

static void test_response_refusals(void **s)
{
    static const char *bad[] = {"HTTP/1.1 99 x", "HTTP/1.1 600 x", "HTTP/1.1 20 OK", "HTTP/1.1 200OK",
                                "HTTP/2 200 OK", "HTTP/1.1  200 OK", "HTTP/1.1 2x0 OK", "http/1.1 200 OK",
                                "HTTP/1.1 200 O\x01K", "", "HTTP/1.1", "ICY 200 OK"};
    char buf[128];
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        snprintf(buf, sizeof buf, "%s\r\n\r\n", bad[i]);
        check_err_o(&RESP_GET, buf, "bad_status_line", -1);
    }
    check_err_o(&RESP_GET, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
                "cl_and_te", 36);
    check_err_o(&RESP_GET, "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "te_in_http10", 17);
    check_err_o(&RESP_GET, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
                "duplicate_content_length", 36);
    check_err_o(&RESP_GET, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel", "truncated", 41);
    check_err_o(&RESP_GET, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
                "bad_chunk_ext", 48);
    const opts_t small = {AL_HTTP_RESPONSE, "GET", &small_limits};
    check_err_o(&small, "HTTP/1.1 200 OKOKOKOKOKOKOKOKOKOKOKOKOKOK\r\n\r\n", "status_line_too_long", 32);
    /* no request method told: refused, the framing would be a guess */
    const opts_t none = {AL_HTTP_RESPONSE, NULL, NULL};
    check_err_o(&none, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "no_request_method", 0);
    /* one method for two responses */
    const opts_t one = {AL_HTTP_RESPONSE, "GET", NULL};
    check_o(&one, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
            "HEAD 200 OK 11 cl=0 f=k! [Content-Length=0] raw=38\nERR no_request_method@38\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_post_content_length),
        cmocka_unit_test(test_chunked_with_trailers),
        cmocka_unit_test(test_chunked_uppercase_no_trailers),
        cmocka_unit_test(test_te_tab_ows_is_valid),
        cmocka_unit_test(test_value_trim_and_obs_text),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_connection_close_and_expect),
        cmocka_unit_test(test_content_length_zero_and_leading_zeros),
        cmocka_unit_test(test_pipelining),
        cmocka_unit_test(test_target_forms),
        cmocka_unit_test(test_connect_hold_tunnel_resume),
        cmocka_unit_test(test_upgrade_request_holds),
        cmocka_unit_test(test_cl_and_te),
        cmocka_unit_test(test_bad_content_length),
        cmocka_unit_test(test_duplicate_content_length),
        cmocka_unit_test(test_bad_transfer_encoding),
        cmocka_unit_test(test_duplicate_transfer_encoding),
        cmocka_unit_test(test_te_in_http10),
        cmocka_unit_test(test_obs_fold),
        cmocka_unit_test(test_bad_header_value),
        cmocka_unit_test(test_bare_cr_and_lf),
        cmocka_unit_test(test_space_before_colon),
        cmocka_unit_test(test_bad_header_name),
        cmocka_unit_test(test_missing_colon),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_bad_method),
        cmocka_unit_test(test_bad_request_line),
        cmocka_unit_test(test_bad_version),
        cmocka_unit_test(test_bad_target),
        cmocka_unit_test(test_host_rules),
        cmocka_unit_test(test_connect_with_body),
        cmocka_unit_test(test_bad_chunk_size),
        cmocka_unit_test(test_bad_chunk_ext),
        cmocka_unit_test(test_chunk_framing_crlf),
        cmocka_unit_test(test_trailers),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_smuggling_te_te),
        cmocka_unit_test(test_api_guards),
        cmocka_unit_test(test_incremental_head_is_linear),
        cmocka_unit_test(test_response_content_length),
        cmocka_unit_test(test_response_head_method),
        cmocka_unit_test(test_response_204_304),
        cmocka_unit_test(test_response_close_delimited),
        cmocka_unit_test(test_response_100_continue),
        cmocka_unit_test(test_response_chunked_trailers),
        cmocka_unit_test(test_response_tunnels),
        cmocka_unit_test(test_response_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
