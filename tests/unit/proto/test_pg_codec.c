/* Unit tests of src/proto/pg/pg_codec.c.
 *
 * Framer: a frontend and a backend capture are fed whole, split at every
 * byte offset, byte by byte and in odd chunk sizes; the transcript of
 * framed messages (and every raw view, compared with the input) must not
 * change. Parsers: valid bodies, then every strict prefix and a one-byte
 * extension, then hand-made hostile bodies. Builders: round trip through
 * framer and parsers. A last test talks to the real psql client (skipped
 * when psql is not installed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/pg/pg_codec.h"

/* ---- helpers --------------------------------------------------------------------- */

#define B(lit) (const uint8_t *)(lit), (sizeof(lit) - 1)

static void put16(al_buf_t *b, uint16_t v)
{
    uint8_t x[2] = {(uint8_t)(v >> 8), (uint8_t)v};
    al_buf_append(b, x, 2);
}

static void put32(al_buf_t *b, uint32_t v)
{
    uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
    al_buf_append(b, x, 4);
}

/* Appends a typed message with the given body. */
static void msg(al_buf_t *b, char type, const void *body, size_t n)
{
    al_buf_append(b, &type, 1);
    put32(b, (uint32_t)n + 4);
    al_buf_append(b, body, n);
}

static void msg_buf(al_buf_t *b, char type, const al_buf_t *body) { msg(b, type, body->p, body->len); }

static bool str_is(al_str_t s, const char *c) { return s.p && al_str_eq_c(s, c); }

/* ---- framing driver -------------------------------------------------------------- */

typedef struct drv {
    al_pg_framer_t f;
    al_buf_t t;            /* transcript */
    const uint8_t *base;   /* the whole stream, to check raw views against */
    size_t delivered;      /* raw bytes of the messages framed so far */
    const uint8_t *chunk;  /* the current input, to check zero-copy */
    size_t chunk_len;
    size_t zero_copy;      /* messages returned as views into the input */
    bool failed;
} drv_t;

static uint32_t fnv(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static void drv_init(drv_t *d, al_pg_dir_t dir, const al_pg_limits_t *l, const uint8_t *base)
{
    memset(d, 0, sizeof *d);
    al_pg_framer_init(&d->f, dir, l);
    al_buf_init(&d->t);
    d->base = base;
}

static void drv_free(drv_t *d)
{
    al_pg_framer_free(&d->f);
    al_buf_free(&d->t);
}

static void record(drv_t *d, const al_pg_msg_t *m)
{
    assert_memory_equal(m->raw, d->base + d->delivered, m->raw_len);
    assert_ptr_equal(m->body, m->raw + (m->type ? 5 : 4));
    assert_int_equal(m->body_len + (m->type ? 5 : 4), m->raw_len);
    assert_int_equal(al_pg_u32(m->raw + (m->type ? 1 : 0)), m->body_len + 4);
    if (m->raw >= d->chunk && m->raw < d->chunk + d->chunk_len)
        d->zero_copy++;
    d->delivered += m->raw_len;
    if (m->type)
        al_buf_printf(&d->t, "%c %zu %08x\n", m->type, m->body_len, fnv(m->body, m->body_len));
    else
        al_buf_printf(&d->t, "untyped %u %zu\n", m->code, m->body_len);
    /* play the gateway: answer the encryption request, then authenticate */
    if (m->type == 0 && (m->code == AL_PG_SSL_REQUEST_CODE || m->code == AL_PG_GSSENC_REQUEST_CODE))
        assert_int_equal(al_pg_framer_resume(&d->f), AL_OK);
    if (m->type == 'p' && d->f.dir == AL_PG_FRONTEND)
        al_pg_framer_set_authenticated(&d->f);
    if (m->type == 'R' && m->body_len == 4 && al_pg_u32(m->body) == 0)
        al_pg_framer_set_authenticated(&d->f);
}

static void drv_feed(drv_t *d, const uint8_t *p, size_t len)
{
    if (d->failed)
        return;
    d->chunk = p;
    d->chunk_len = len;
    for (;;) {
        al_pg_msg_t m;
        ssize_t n = al_pg_frame(&d->f, p, len, &m);
        if (n < 0) {
            al_buf_printf(&d->t, "ERR %s@%llu\n", al_pg_err_str(d->f.err),
                          (unsigned long long)d->f.err_pos);
            d->failed = true;
            return;
        }
        if (n == 0)
            return;
        assert_true((size_t)n <= len);
        record(d, &m);
        p += n;
        len -= (size_t)n;
    }
}

/* Feeds in chunks of step bytes and returns the transcript (caller frees),
 * with "EOF ok" / "EOF truncated" appended. */
static char *frame_all(al_pg_dir_t dir, const al_pg_limits_t *l, const uint8_t *p, size_t len,
                       size_t step, size_t *zero_copy)
{
    drv_t d;
    drv_init(&d, dir, l, p);
    for (size_t off = 0; off < len; off += step)
        drv_feed(&d, p + off, AL_MIN(step, len - off));
    if (!d.failed)
        al_buf_printf(&d.t, "EOF %s\n", al_pg_framer_eof(&d.f) == AL_OK ? "ok" : al_pg_err_str(d.f.err));
    if (zero_copy)
        *zero_copy = d.zero_copy;
    char *t = strdup(d.t.p ? d.t.p : "");
    drv_free(&d);
    return t;
}

/* Every split point, byte by byte, odd chunks: same transcript as whole. */
static char *frame_every_split(al_pg_dir_t dir, const al_pg_limits_t *l, const uint8_t *p, size_t len)
{
    char *whole = frame_all(dir, l, p, len, len ? len : 1, NULL);
    for (size_t k = 0; k <= len; k++) {
        drv_t d;
        drv_init(&d, dir, l, p);
        drv_feed(&d, p, k);
        drv_feed(&d, p + k, len - k);
        if (!d.failed)
            al_buf_printf(&d.t, "EOF %s\n",
                          al_pg_framer_eof(&d.f) == AL_OK ? "ok" : al_pg_err_str(d.f.err));
        assert_string_equal(d.t.p ? d.t.p : "", whole);
        drv_free(&d);
    }
    static const size_t steps[] = {1, 2, 3, 7, 64};
    for (size_t i = 0; i < AL_ARRAY_LEN(steps); i++) {
        char *t = frame_all(dir, l, p, len, steps[i], NULL);
        assert_string_equal(t, whole);
        free(t);
    }
    return whole;
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* ---- captures ---------------------------------------------------------------------- */

static void frontend_capture(al_buf_t *c)
{
    al_buf_t b;
    al_buf_init(&b);
    al_pg_param_t params[] = {{AL_STR("user"), AL_STR("agent")},
                              {AL_STR("database"), AL_STR("app")},
                              {AL_STR("application_name"), AL_STR("psql")}};
    assert_int_equal(al_pg_build_ssl_request(c), AL_OK);
    assert_int_equal(al_pg_build_startup(c, params, AL_ARRAY_LEN(params)), AL_OK);
    assert_int_equal(al_pg_build_password(c, "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"), AL_OK);
    assert_int_equal(al_pg_build_query(c, "SELECT 1; SELECT 2"), AL_OK);
    /* Parse "s1" with two typed parameters */
    al_buf_append(&b, B("s1\0SELECT $1::int + $2\0"));
    put16(&b, 2);
    put32(&b, 23);
    put32(&b, 0);
    msg_buf(c, 'P', &b);
    /* Bind portal "" to s1: one text format, two params (one NULL), binary results */
    al_buf_reset(&b);
    al_buf_append(&b, B("\0s1\0"));
    put16(&b, 1);
    put16(&b, 0);
    put16(&b, 2);
    put32(&b, 2);
    al_buf_append(&b, B("42"));
    put32(&b, UINT32_MAX);
    put16(&b, 1);
    put16(&b, 1);
    msg_buf(c, 'B', &b);
    msg(c, 'D', B("P\0"));
    al_buf_reset(&b);
    al_buf_append(&b, B("\0"));
    put32(&b, 0);
    msg_buf(c, 'E', &b);
    msg(c, 'H', NULL, 0);
    msg(c, 'C', B("S\0s1\0"));
    assert_int_equal(al_pg_build_sync(c), AL_OK);
    msg(c, 'd', B("1\tone\n2\ttwo\n"));
    msg(c, 'c', NULL, 0);
    msg(c, 'f', B("aborted by user\0"));
    al_buf_reset(&b);
    put32(&b, 1598);
    put16(&b, 0);
    put16(&b, 1);
    put32(&b, 3);
    al_buf_append(&b, B("abc"));
    put16(&b, 0);
    msg_buf(c, 'F', &b);
    assert_int_equal(al_pg_build_terminate(c), AL_OK);
    al_buf_free(&b);
}

static void backend_capture(al_buf_t *c)
{
    al_buf_t b;
    al_buf_init(&b);
    const char *mechs[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
    assert_int_equal(al_pg_build_auth_sasl(c, mechs, 2), AL_OK);
    assert_int_equal(al_pg_build_auth_sasl_continue(c, B("r=abc,s=QSXCR+Q6sek8bf92,i=4096")), AL_OK);
    assert_int_equal(al_pg_build_auth_sasl_final(c, B("v=abc=")), AL_OK);
    assert_int_equal(al_pg_build_auth_ok(c), AL_OK);
    assert_int_equal(al_pg_build_parameter_status(c, "server_version", "15.8"), AL_OK);
    assert_int_equal(al_pg_build_parameter_status(c, "client_encoding", "UTF8"), AL_OK);
    assert_int_equal(al_pg_build_backend_key(c, 4242, 0xdeadbeef), AL_OK);
    assert_int_equal(al_pg_build_ready(c, 'I'), AL_OK);
    /* RowDescription: id int4, ssn text */
    put16(&b, 2);
    al_buf_append(&b, B("id\0"));
    put32(&b, 16384);
    put16(&b, 1);
    put32(&b, 23);
    put16(&b, 4);
    put32(&b, UINT32_MAX);
    put16(&b, 0);
    al_buf_append(&b, B("ssn\0"));
    put32(&b, 16384);
    put16(&b, 2);
    put32(&b, 25);
    put16(&b, (uint16_t)-1);
    put32(&b, UINT32_MAX);
    put16(&b, 0);
    msg_buf(c, 'T', &b);
    for (int i = 0; i < 2; i++) {
        al_buf_reset(&b);
        put16(&b, 2);
        put32(&b, 1);
        al_buf_append(&b, i ? "2" : "1", 1);
        if (i) {
            put32(&b, UINT32_MAX);
        } else {
            put32(&b, 11);
            al_buf_append(&b, B("123-45-6789"));
        }
        msg_buf(c, 'D', &b);
    }
    msg(c, 'C', B("SELECT 2\0"));
    assert_int_equal(al_pg_build_notice(c, "WARNING", "01000", "careful", NULL, NULL), AL_OK);
    assert_int_equal(al_pg_build_error(c, "ERROR", "42601", "syntax error", "near x", "fix it"), AL_OK);
    msg(c, '1', NULL, 0);
    msg(c, '2', NULL, 0);
    al_buf_reset(&b);
    put16(&b, 1);
    put32(&b, 23);
    msg_buf(c, 't', &b);
    msg(c, 'n', NULL, 0);
    msg(c, 's', NULL, 0);
    msg(c, 'I', NULL, 0);
    msg(c, '3', NULL, 0);
    al_buf_reset(&b);
    al_buf_append(&b, B("\0"));
    put16(&b, 2);
    put16(&b, 0);
    put16(&b, 0);
    msg_buf(c, 'H', &b);
    msg(c, 'd', B("1\tx\n"));
    msg(c, 'c', NULL, 0);
    al_buf_reset(&b);
    put32(&b, 77);
    al_buf_append(&b, B("chan\0payload\0"));
    msg_buf(c, 'A', &b);
    assert_int_equal(al_pg_build_ready(c, 'T'), AL_OK);
    al_buf_free(&b);
}

static void test_frame_frontend_every_split(void **state)
{
    AL_UNUSED(state);
    al_buf_t c;
    al_buf_init(&c);
    frontend_capture(&c);
    char *t = frame_every_split(AL_PG_FRONTEND, NULL, (const uint8_t *)c.p, c.len);
    /* SSLRequest, StartupMessage, 16 typed messages, EOF */
    assert_int_equal(count_lines(t), 2 + 14 + 1);
    assert_non_null(strstr(t, "untyped 80877103 4\n"));
    assert_non_null(strstr(t, "\nEOF ok\n"));
    assert_null(strstr(t, "ERR"));
    size_t zc = 0;
    free(frame_all(AL_PG_FRONTEND, NULL, (const uint8_t *)c.p, c.len, c.len, &zc));
    assert_int_equal(zc, 16); /* all in one input: nothing copied */
    free(t);
    al_buf_free(&c);
}

static void test_frame_backend_every_split(void **state)
{
    AL_UNUSED(state);
    al_buf_t c;
    al_buf_init(&c);
    backend_capture(&c);
    char *t = frame_every_split(AL_PG_BACKEND, NULL, (const uint8_t *)c.p, c.len);
    assert_int_equal(count_lines(t), 26 + 1);
    assert_null(strstr(t, "ERR"));
    free(t);
    al_buf_free(&c);
}

/* Runs one stream whole and returns the last transcript line. */
static void expect_frame(al_pg_dir_t dir, const al_pg_limits_t *l, const uint8_t *p, size_t len,
                         const char *want)
{
    /* whole, and byte by byte: the error and its position must agree */
    char *a = frame_all(dir, l, p, len, len ? len : 1, NULL);
    char *b = frame_all(dir, l, p, len, 1, NULL);
    assert_string_equal(a, b);
    const char *last = a + strlen(a);
    if (last > a)
        last--;
    while (last > a && last[-1] != '\n')
        last--;
    if (strcmp(last, want) != 0)
        fail_msg("got %s want %s", last, want);
    free(a);
    free(b);
}

static void test_frame_lengths_and_caps(void **state)
{
    AL_UNUSED(state);
    al_buf_t c;
    al_buf_init(&c);
    /* typed length below 4 */
    expect_frame(AL_PG_BACKEND, NULL, B("R\0\0\0\x03"), "ERR bad_length@1\n");
    /* untyped length below 8, SSLRequest with a body, short CancelRequest */
    expect_frame(AL_PG_FRONTEND, NULL, B("\0\0\0\x07\0\x03\0\0"), "ERR bad_length@0\n");
    expect_frame(AL_PG_FRONTEND, NULL, B("\0\0\0\x09\x04\xd2\x16\x2f\0"), "ERR bad_length@0\n");
    expect_frame(AL_PG_FRONTEND, NULL, B("\0\0\0\x0c\x04\xd2\x16\x2e\0\0\0\1"), "ERR bad_length@0\n");
    /* other protocol versions: 2.0, 3.1, 1234.5681 */
    expect_frame(AL_PG_FRONTEND, NULL, B("\0\0\0\x09\0\x02\0\0\0"), "ERR unsupported_protocol_version@4\n");
    expect_frame(AL_PG_FRONTEND, NULL, B("\0\0\0\x09\0\x03\0\x01\0"), "ERR unsupported_protocol_version@4\n");
    expect_frame(AL_PG_FRONTEND, NULL, B("\0\0\0\x08\x04\xd2\x16\x31"), "ERR unsupported_protocol_version@4\n");
    /* startup over 10000 */
    expect_frame(AL_PG_FRONTEND, NULL, B("\0\0\x27\x11\0\x03\0\0"), "ERR too_large@0\n");
    expect_frame(AL_PG_FRONTEND, NULL, B("\0\0\x27\x10\0\x03\0\0"), "EOF truncated\n");
    /* pre-auth cap: 16 KiB; the error comes before any body byte */
    expect_frame(AL_PG_BACKEND, NULL, B("R\0\0\x40\x01"), "ERR too_large@1\n");
    expect_frame(AL_PG_BACKEND, NULL, B("R\0\0\x40\x00"), "EOF truncated\n");
    /* type checks, pre-auth message sets */
    expect_frame(AL_PG_BACKEND, NULL, B("x\0\0\0\x04"), "ERR unknown_type@0\n");
    expect_frame(AL_PG_BACKEND, NULL, B("Z\0\0\0\x05I"), "ERR unexpected_type@0\n");
    expect_frame(AL_PG_BACKEND, NULL, B("\0"), "ERR unknown_type@0\n");
    /* frontend: Query before authentication */
    al_pg_param_t u = {AL_STR("user"), AL_STR("a")};
    assert_int_equal(al_pg_build_startup(&c, &u, 1), AL_OK);
    size_t at = c.len;
    assert_int_equal(al_pg_build_query(&c, "SELECT 1"), AL_OK);
    char want[64];
    snprintf(want, sizeof want, "ERR unexpected_type@%zu\n", at);
    expect_frame(AL_PG_FRONTEND, NULL, (const uint8_t *)c.p, c.len, want);
    /* frontend: unknown type after startup */
    c.p[at] = 'R';
    snprintf(want, sizeof want, "ERR unknown_type@%zu\n", at);
    expect_frame(AL_PG_FRONTEND, NULL, (const uint8_t *)c.p, c.len, want);

    /* after authentication: 64 MiB by default, configurable, 1 GiB clamp */
    al_buf_reset(&c);
    assert_int_equal(al_pg_build_auth_ok(&c), AL_OK);
    at = c.len;
    al_buf_append(&c, B("D\x04\0\0\x01"));
    snprintf(want, sizeof want, "ERR too_large@%zu\n", at + 1);
    expect_frame(AL_PG_BACKEND, NULL, (const uint8_t *)c.p, c.len, want);
    c.p[at + 4] = 0; /* exactly 64 MiB: accepted, then truncated */
    expect_frame(AL_PG_BACKEND, NULL, (const uint8_t *)c.p, c.len, "EOF truncated\n");
    al_pg_limits_t small = {0, 64, 100};
    al_buf_reset(&c);
    assert_int_equal(al_pg_build_auth_ok(&c), AL_OK);
    static const uint8_t zeros[97];
    msg(&c, 'd', zeros, sizeof zeros);
    expect_frame(AL_PG_BACKEND, &small, (const uint8_t *)c.p, c.len, "ERR too_large@10\n");
    al_pg_limits_t huge = {UINT32_MAX, UINT32_MAX, UINT32_MAX};
    al_pg_framer_t f;
    al_pg_framer_init(&f, AL_PG_BACKEND, &huge);
    assert_int_equal(f.limits.max_message, AL_PG_HARD_MAX_MESSAGE);
    assert_int_equal(f.limits.max_startup, AL_PG_HARD_MAX_MESSAGE);
    al_pg_framer_free(&f);
    al_pg_framer_init(&f, AL_PG_BACKEND, NULL);
    assert_int_equal(f.limits.max_startup, 10000);
    assert_int_equal(f.limits.max_preauth, 16384);
    assert_int_equal(f.limits.max_message, 64u << 20);
    al_pg_framer_free(&f);
    al_buf_free(&c);
}

static void test_frame_hold_and_end(void **state)
{
    AL_UNUSED(state);
    al_buf_t c;
    al_buf_init(&c);
    al_pg_framer_t f;
    al_pg_msg_t m;
    /* SSLRequest then plaintext in the same read: refused (CVE-2021-23214) */
    al_pg_framer_init(&f, AL_PG_FRONTEND, NULL);
    assert_int_equal(al_pg_build_ssl_request(&c), AL_OK);
    al_pg_param_t u = {AL_STR("user"), AL_STR("a")};
    assert_int_equal(al_pg_build_startup(&c, &u, 1), AL_OK);
    const uint8_t *p = (const uint8_t *)c.p;
    assert_int_equal(al_pg_frame(&f, p, c.len, &m), 8);
    assert_int_equal(m.type, 0);
    assert_int_equal(m.code, AL_PG_SSL_REQUEST_CODE);
    assert_int_equal(f.state, AL_PG_FS_HOLD);
    assert_int_equal(al_pg_frame(&f, p + 8, c.len - 8, &m), AL_ERR);
    assert_int_equal(f.err, AL_PG_E_DATA_WHILE_HELD);
    assert_int_equal(f.err_pos, 8);
    /* sticky until reset */
    assert_int_equal(al_pg_frame(&f, p, 8, &m), AL_ERR);
    assert_int_equal(al_pg_framer_resume(&f), AL_ERR);
    al_pg_framer_reset(&f);
    assert_int_equal(al_pg_frame(&f, p, 8, &m), 8);
    assert_int_equal(al_pg_framer_resume(&f), AL_OK);
    assert_int_equal(al_pg_frame(&f, p + 8, c.len - 8, &m), (ssize_t)(c.len - 8));
    assert_int_equal(f.state, AL_PG_FS_TYPED);
    /* an empty call is "need more", even while held or ended */
    assert_int_equal(al_pg_frame(&f, NULL, 0, &m), 0);
    assert_int_equal(al_pg_frame(&f, NULL, 3, &m), AL_ERR);
    assert_int_equal(f.err, AL_PG_E_BAD_CALL);
    al_pg_framer_free(&f);

    /* GSSENCRequest holds too */
    al_buf_reset(&c);
    al_buf_append(&c, B("\0\0\0\x08\x04\xd2\x16\x30"));
    al_pg_framer_init(&f, AL_PG_FRONTEND, NULL);
    assert_int_equal(al_pg_frame(&f, (const uint8_t *)c.p, c.len, &m), 8);
    assert_int_equal(f.state, AL_PG_FS_HOLD);
    al_pg_framer_free(&f);

    /* nothing after CancelRequest */
    al_buf_reset(&c);
    assert_int_equal(al_pg_build_cancel_request(&c, 77, 0x01020304), AL_OK);
    al_buf_append(&c, "x", 1);
    expect_frame(AL_PG_FRONTEND, NULL, (const uint8_t *)c.p, c.len, "ERR data_after_end@16\n");
    /* nothing after Terminate */
    al_buf_reset(&c);
    assert_int_equal(al_pg_build_startup(&c, &u, 1), AL_OK);
    assert_int_equal(al_pg_build_terminate(&c), AL_OK);
    size_t at = c.len;
    assert_int_equal(al_pg_build_terminate(&c), AL_OK);
    char want[64];
    snprintf(want, sizeof want, "ERR data_after_end@%zu\n", at);
    expect_frame(AL_PG_FRONTEND, NULL, (const uint8_t *)c.p, c.len, want);
    al_buf_free(&c);
}

/* A 1 MiB DataRow in 4 KiB reads: reassembled intact, buffer released after. */
static void test_frame_large_reassembly(void **state)
{
    AL_UNUSED(state);
    al_buf_t c, b;
    al_buf_init(&c);
    al_buf_init(&b);
    size_t n = 1u << 20;
    uint8_t *val = malloc(n);
    assert_non_null(val);
    for (size_t i = 0; i < n; i++)
        val[i] = (uint8_t)(i * 131);
    put16(&b, 1);
    put32(&b, (uint32_t)n);
    al_buf_append(&b, val, n);
    assert_int_equal(al_pg_build_auth_ok(&c), AL_OK);
    msg_buf(&c, 'D', &b);
    assert_int_equal(al_pg_build_ready(&c, 'I'), AL_OK);

    al_pg_framer_t f;
    al_pg_framer_init(&f, AL_PG_BACKEND, NULL);
    const uint8_t *p = (const uint8_t *)c.p;
    size_t off = 0, got = 0;
    bool seen_row = false;
    while (off < c.len) {
        size_t len = AL_MIN((size_t)4096, c.len - off);
        while (len) {
            al_pg_msg_t m;
            ssize_t r = al_pg_frame(&f, p + off, len, &m);
            assert_true(r >= 0);
            if (r == 0) {
                off += len;
                break;
            }
            off += (size_t)r;
            len -= (size_t)r;
            got++;
            if (m.type == 'R')
                al_pg_framer_set_authenticated(&f);
            if (m.type == 'D') {
                al_pg_data_row_t row;
                assert_int_equal(al_pg_parse_data_row(m.body, m.body_len, &row), AL_PG_OK);
                al_pg_values_t it = al_pg_data_row_values(&row);
                al_pg_value_t v;
                assert_true(al_pg_values_next(&it, &v));
                assert_int_equal(v.len, n);
                assert_memory_equal(v.p, val, n);
                assert_ptr_equal(m.raw, f.buf); /* reassembled in the framer */
                assert_true(f.buf_cap >= c.len - 9 - 6);
                seen_row = true;
            }
            if (m.type == 'Z')
                assert_true(f.buf_cap <= 64 * 1024); /* big buffer released */
        }
    }
    assert_true(seen_row);
    assert_int_equal(got, 3);
    assert_int_equal(al_pg_framer_eof(&f), AL_OK);
    al_pg_framer_free(&f);
    assert_null(f.buf);

    /* a header announcing 64 MiB costs what arrived, not what it announced */
    al_pg_framer_init(&f, AL_PG_BACKEND, NULL);
    al_pg_framer_set_authenticated(&f);
    al_pg_msg_t m;
    static const uint8_t big[] = "D\x04\0\0\0\0\1\0\0\0\0";
    assert_int_equal(al_pg_frame(&f, big, sizeof big - 1, &m), 0);
    assert_true(f.buf_cap <= 256);
    for (int i = 0; i < 100; i++)
        assert_int_equal(al_pg_frame(&f, val, 1000, &m), 0);
    assert_true(f.buf_cap <= 2 * (100 * 1000 + sizeof big));
    assert_int_equal(al_pg_framer_eof(&f), AL_ERR);
    assert_int_equal(f.err, AL_PG_E_TRUNCATED);
    al_pg_framer_free(&f);
    free(val);
    al_buf_free(&b);
    al_buf_free(&c);
}

/* ---- parsers: valid ------------------------------------------------------------------- */

static void test_parse_startup(void **state)
{
    AL_UNUSED(state);
    al_pg_startup_t s;
    static const uint8_t ok[] = "\0\x03\0\0user\0agent\0database\0app\0options\0\0_pq_.x\0y\0";
    assert_int_equal(al_pg_parse_startup(ok, sizeof ok, &s), AL_PG_OK); /* sizeof: final NUL */
    assert_int_equal(s.kind, AL_PG_SK_STARTUP);
    assert_int_equal(s.nparams, 4);
    assert_true(str_is(s.user, "agent"));
    assert_true(str_is(s.database, "app"));
    assert_true(str_is(s.params[2].name, "options") && s.params[2].value.len == 0);
    assert_int_equal(s.user.p[s.user.len], '\0');
    /* no database: p stays NULL */
    static const uint8_t nodb[] = "\0\x03\0\0user\0u\0";
    assert_int_equal(al_pg_parse_startup(nodb, sizeof nodb, &s), AL_PG_OK);
    assert_null(s.database.p);

    assert_int_equal(al_pg_parse_startup(B("\x04\xd2\x16\x2f"), &s), AL_PG_OK);
    assert_int_equal(s.kind, AL_PG_SK_SSL_REQUEST);
    assert_int_equal(al_pg_parse_startup(B("\x04\xd2\x16\x30"), &s), AL_PG_OK);
    assert_int_equal(s.kind, AL_PG_SK_GSSENC_REQUEST);
    assert_int_equal(al_pg_parse_startup(B("\x04\xd2\x16\x2e\0\0\x10\x92\xde\xad\xbe\xef"), &s), AL_PG_OK);
    assert_int_equal(s.kind, AL_PG_SK_CANCEL_REQUEST);
    assert_int_equal(s.cancel_pid, 4242);
    assert_int_equal(s.cancel_key, 0xdeadbeef);

    /* hostile */
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0user\0a\0"), &s), AL_PG_E_MISSING_TERMINATOR);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0user\0a"), &s), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0user"), &s), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0"), &s), AL_PG_E_MISSING_TERMINATOR);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0\0"), &s), AL_PG_E_MISSING_USER);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0user\0\0\0"), &s), AL_PG_E_MISSING_USER);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0database\0d\0\0"), &s), AL_PG_E_MISSING_USER);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0user\0a\0\0x"), &s), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0user\0a\0user\0b\0\0"), &s), AL_PG_E_DUPLICATE_PARAM);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\0user\0a\0x\0\0x\0\0\0"), &s), AL_PG_E_DUPLICATE_PARAM);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0\x01user\0a\0\0"), &s), AL_PG_E_UNSUPPORTED_VERSION);
    assert_int_equal(al_pg_parse_startup(B("\0\x02\0\0"), &s), AL_PG_E_UNSUPPORTED_VERSION);
    assert_int_equal(al_pg_parse_startup(B("\0\x03\0"), &s), AL_PG_E_SHORT);
    assert_int_equal(al_pg_parse_startup(B("\x04\xd2\x16\x2f\0"), &s), AL_PG_E_BAD_LENGTH);
    assert_int_equal(al_pg_parse_startup(B("\x04\xd2\x16\x2e\0\0\0\1"), &s), AL_PG_E_BAD_LENGTH);

    /* 64 parameters pass, 65 do not */
    al_buf_t b;
    al_buf_init(&b);
    put32(&b, AL_PG_PROTOCOL_3_0);
    al_buf_append(&b, B("user\0u\0"));
    for (int i = 1; i < 64; i++)
        al_buf_printf(&b, "p%d%cv%c", i, 0, 0);
    al_buf_append(&b, "", 1);
    assert_int_equal(al_pg_parse_startup((const uint8_t *)b.p, b.len, &s), AL_PG_OK);
    assert_int_equal(s.nparams, 64);
    b.len--;
    al_buf_printf(&b, "p64%cv%c", 0, 0);
    al_buf_append(&b, "", 1);
    assert_int_equal(al_pg_parse_startup((const uint8_t *)b.p, b.len, &s), AL_PG_E_TOO_MANY_PARAMS);
    al_buf_free(&b);
}

static void test_parse_strings(void **state)
{
    AL_UNUSED(state);
    al_str_t s;
    assert_int_equal(al_pg_parse_query(B("SELECT 1\0"), &s), AL_PG_OK);
    assert_true(str_is(s, "SELECT 1"));
    assert_int_equal(al_pg_parse_query(B("\0"), &s), AL_PG_OK);
    assert_int_equal(s.len, 0);
    assert_int_equal(al_pg_parse_query(B("SELECT 1"), &s), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_query(NULL, 0, &s), AL_PG_E_MISSING_NUL);
    /* a NUL inside: what the gateway checks must be what the server runs */
    assert_int_equal(al_pg_parse_query(B("SELECT 1\0; DROP TABLE t\0"), &s), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_query(B("SELECT 1\0\0"), &s), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_copy_fail(B("oops\0"), &s), AL_PG_OK);
    assert_true(str_is(s, "oops"));
    assert_int_equal(al_pg_parse_password(B("secret\0"), &s), AL_PG_OK);
    assert_true(str_is(s, "secret"));
    assert_int_equal(al_pg_parse_password(B("secret"), &s), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_command_complete(B("INSERT 0 5\0"), &s), AL_PG_OK);
    assert_true(str_is(s, "INSERT 0 5"));
    assert_int_equal(al_pg_parse_empty(NULL, 0), AL_PG_OK);
    assert_int_equal(al_pg_parse_empty(B("x")), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_sasl_response(B("c=biws"), &s), AL_PG_OK);
    assert_int_equal(s.len, 6);
}

static void test_parse_extended(void **state)
{
    AL_UNUSED(state);
    al_pg_parse_msg_t p;
    al_buf_t b;
    al_buf_init(&b);
    al_buf_append(&b, B("s1\0SELECT $1\0"));
    put16(&b, 1);
    put32(&b, 25);
    assert_int_equal(al_pg_parse_parse((const uint8_t *)b.p, b.len, &p), AL_PG_OK);
    assert_true(str_is(p.statement, "s1") && str_is(p.query, "SELECT $1"));
    assert_int_equal(p.nparam_types, 1);
    assert_int_equal(al_pg_u32(p.param_types), 25);
    assert_int_equal(al_pg_parse_parse(B("\0SELECT 1\0\0\0"), &p), AL_PG_OK);
    assert_int_equal(p.statement.len, 0);
    assert_int_equal(al_pg_parse_parse(B("\0SELECT 1\0\xff\xff"), &p), AL_PG_E_BAD_COUNT);
    assert_int_equal(al_pg_parse_parse(B("\0SELECT 1\0\0\1\0\0\0"), &p), AL_PG_E_BAD_COUNT);
    assert_int_equal(al_pg_parse_parse(B("\0SELECT 1\0\0"), &p), AL_PG_E_SHORT);
    assert_int_equal(al_pg_parse_parse(B("\0SELECT 1"), &p), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_parse(B("s1"), &p), AL_PG_E_MISSING_NUL);

    /* Bind: 3 params, per-param formats, one result format */
    al_pg_bind_t bd;
    al_buf_reset(&b);
    al_buf_append(&b, B("p1\0s1\0"));
    put16(&b, 3);
    put16(&b, 0);
    put16(&b, 1);
    put16(&b, 0);
    put16(&b, 3);
    put32(&b, 3);
    al_buf_append(&b, B("abc"));
    put32(&b, UINT32_MAX);
    put32(&b, 0);
    put16(&b, 1);
    put16(&b, 1);
    assert_int_equal(al_pg_parse_bind((const uint8_t *)b.p, b.len, &bd), AL_PG_OK);
    assert_true(str_is(bd.portal, "p1") && str_is(bd.statement, "s1"));
    assert_int_equal(bd.nparams, 3);
    assert_int_equal(al_pg_bind_param_format(&bd, 1), 1);
    assert_int_equal(al_pg_bind_param_format(&bd, 2), 0);
    assert_int_equal(al_pg_bind_result_format(&bd, 0), 1);
    assert_int_equal(al_pg_bind_result_format(&bd, 9), 1);
    al_pg_values_t it = al_pg_bind_params(&bd);
    al_pg_value_t v;
    assert_true(al_pg_values_next(&it, &v) && !v.null && v.len == 3 && memcmp(v.p, "abc", 3) == 0);
    assert_true(al_pg_values_next(&it, &v) && v.null && v.p == NULL);
    assert_true(al_pg_values_next(&it, &v) && !v.null && v.len == 0);
    assert_false(al_pg_values_next(&it, &v));
    /* hostile Bind variants, each built from the valid one */
    struct {
        size_t at;
        uint8_t byte;
        al_pg_err_t want;
    } bad[] = {
        {9, 2, AL_PG_E_BAD_FORMAT},      /* parameter format code 2 */
        {34, 2, AL_PG_E_BAD_FORMAT},     /* result format code 2 */
        {19, 0x20, AL_PG_E_SHORT},       /* first value claims 32 bytes, 15 left */
        {14, 0xff, AL_PG_E_BAD_COUNT},   /* 65283 params */
        {16, 0xff, AL_PG_E_BAD_VALUE},   /* value length 0xff000003 */
        {32, 9, AL_PG_E_BAD_COUNT},      /* 9 result formats */
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(bad); i++) {
        al_buf_t x;
        al_buf_init(&x);
        al_buf_append(&x, b.p, b.len);
        x.p[bad[i].at] = (char)bad[i].byte;
        if (al_pg_parse_bind((const uint8_t *)x.p, x.len, &bd) != bad[i].want)
            fail_msg("bind variant %zu: %s", i, al_pg_err_str(al_pg_parse_bind((const uint8_t *)x.p, x.len, &bd)));
        al_buf_free(&x);
    }
    assert_int_equal(b.len, 35);
    /* 2 formats for 3 params */
    assert_int_equal(al_pg_parse_bind(B("\0\0\0\2\0\0\0\0\0\3\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\0\0"), &bd),
                     AL_PG_E_BAD_COUNT);
    /* value length -2 */
    al_buf_reset(&b);
    al_buf_append(&b, B("\0\0\0\0\0\1\xff\xff\xff\xfe\0\0"));
    assert_int_equal(al_pg_parse_bind((const uint8_t *)b.p, b.len, &bd), AL_PG_E_BAD_VALUE);
    /* one format applies to all; none = text */
    assert_int_equal(al_pg_parse_bind(B("\0\0\0\1\0\1\0\2\0\0\0\0\xff\xff\xff\xff\0\0"), &bd), AL_PG_OK);
    assert_int_equal(al_pg_bind_param_format(&bd, 1), 1);
    assert_int_equal(al_pg_bind_result_format(&bd, 0), 0);

    al_pg_execute_t e;
    assert_int_equal(al_pg_parse_execute(B("p1\0\0\0\0\x0a"), &e), AL_PG_OK);
    assert_true(str_is(e.portal, "p1") && e.max_rows == 10);
    assert_int_equal(al_pg_parse_execute(B("\0\xff\xff\xff\xff"), &e), AL_PG_OK);
    assert_int_equal(e.max_rows, -1);
    assert_int_equal(al_pg_parse_execute(B("\0\0\0\0"), &e), AL_PG_E_SHORT);

    al_pg_target_t t;
    assert_int_equal(al_pg_parse_describe(B("Ss1\0"), &t), AL_PG_OK);
    assert_true(t.kind == 'S' && str_is(t.name, "s1"));
    assert_int_equal(al_pg_parse_close(B("P\0"), &t), AL_PG_OK);
    assert_true(t.kind == 'P' && t.name.len == 0);
    assert_int_equal(al_pg_parse_describe(B("Xs1\0"), &t), AL_PG_E_BAD_VALUE);
    assert_int_equal(al_pg_parse_close(B("S"), &t), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_close(NULL, 0, &t), AL_PG_E_SHORT);

    al_pg_function_call_t fc;
    assert_int_equal(al_pg_parse_function_call(B("\0\0\x06\x3e\0\0\0\1\0\0\0\3abc\0\1"), &fc), AL_PG_OK);
    assert_int_equal(fc.function_oid, 1598);
    assert_int_equal(fc.nargs, 1);
    assert_int_equal(fc.result_format, 1);
    it = al_pg_function_args(&fc);
    assert_true(al_pg_values_next(&it, &v) && v.len == 3);
    assert_int_equal(al_pg_parse_function_call(B("\0\0\x06\x3e\0\0\0\1\0\0\0\3abc\0\2"), &fc), AL_PG_E_BAD_FORMAT);
    assert_int_equal(al_pg_parse_function_call(B("\0\0\x06\x3e\0\2\0\0\0\0\0\1\0\0\0\3abc\0\0"), &fc), AL_PG_E_BAD_COUNT);

    al_pg_sasl_initial_t si;
    assert_int_equal(al_pg_parse_sasl_initial(B("SCRAM-SHA-256\0\0\0\0\x03n,,"), &si), AL_PG_OK);
    assert_true(str_is(si.mechanism, "SCRAM-SHA-256") && si.has_data && si.data.len == 3);
    assert_int_equal(al_pg_parse_sasl_initial(B("OAUTHBEARER\0\xff\xff\xff\xff"), &si), AL_PG_OK);
    assert_false(si.has_data);
    assert_int_equal(al_pg_parse_sasl_initial(B("X\0\0\0\0\x04n,,"), &si), AL_PG_E_SHORT);
    assert_int_equal(al_pg_parse_sasl_initial(B("X\0\0\0\0\x02n,,"), &si), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_sasl_initial(B("X\0\xff\xff\xff\xfe"), &si), AL_PG_E_BAD_VALUE);
    assert_int_equal(al_pg_parse_sasl_initial(B("\0\0\0\0\0"), &si), AL_PG_E_BAD_VALUE);
    assert_int_equal(al_pg_parse_sasl_initial(B("X\0\xff\xff\xff\xff!"), &si), AL_PG_E_TRAILING);
    al_buf_free(&b);
}

static void test_parse_backend(void **state)
{
    AL_UNUSED(state);
    al_pg_authreq_t a;
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\0"), &a), AL_PG_OK);
    assert_int_equal(a.code, AL_PG_AUTHREQ_OK);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x05\1\2\3\4"), &a), AL_PG_OK);
    assert_int_equal(a.code, AL_PG_AUTHREQ_MD5);
    assert_memory_equal(a.md5_salt, "\1\2\3\4", 4);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0"), &a), AL_PG_OK);
    assert_int_equal(a.nmechs, 2);
    assert_true(str_is(a.mechs[1], "SCRAM-SHA-256"));
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x0br=x,s=y,i=1"), &a), AL_PG_OK);
    assert_true(a.code == AL_PG_AUTHREQ_SASL_CONTINUE && a.data.len == 11);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x0c"), &a), AL_PG_OK);
    assert_true(a.code == AL_PG_AUTHREQ_SASL_FINAL && a.data.len == 0);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x03"), &a), AL_PG_OK);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x07"), &a), AL_PG_OK);
    /* hostile */
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x05\1\2\3"), &a), AL_PG_E_SHORT);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x05\1\2\3\4\5"), &a), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\0\0"), &a), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x0aSCRAM-SHA-256\0"), &a), AL_PG_E_MISSING_TERMINATOR);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x0aSCRAM-SHA-256"), &a), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x0a\0"), &a), AL_PG_E_BAD_VALUE);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x0a" "a\0\0x"), &a), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x0a" "a\0b\0c\0d\0e\0f\0g\0h\0i\0\0"), &a), AL_PG_E_TOO_MANY_PARAMS);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0\x06"), &a), AL_PG_E_BAD_VALUE);
    assert_int_equal(al_pg_parse_authentication(B("\0\0\0"), &a), AL_PG_E_SHORT);

    al_pg_param_t ps;
    assert_int_equal(al_pg_parse_parameter_status(B("TimeZone\0UTC\0"), &ps), AL_PG_OK);
    assert_true(str_is(ps.name, "TimeZone") && str_is(ps.value, "UTC"));
    assert_int_equal(al_pg_parse_parameter_status(B("TimeZone\0UTC"), &ps), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_parameter_status(B("\0UTC\0"), &ps), AL_PG_E_BAD_VALUE);

    al_pg_backend_key_t k;
    assert_int_equal(al_pg_parse_backend_key(B("\0\0\x10\x92\xde\xad\xbe\xef"), &k), AL_PG_OK);
    assert_true(k.pid == 4242 && k.key == 0xdeadbeef);
    assert_int_equal(al_pg_parse_backend_key(B("\0\0\x10\x92\xde\xad\xbe"), &k), AL_PG_E_SHORT);
    assert_int_equal(al_pg_parse_backend_key(B("\0\0\x10\x92\xde\xad\xbe\xef\0"), &k), AL_PG_E_TRAILING);

    char st;
    assert_int_equal(al_pg_parse_ready(B("E"), &st), AL_PG_OK);
    assert_int_equal(st, 'E');
    assert_int_equal(al_pg_parse_ready(B("X"), &st), AL_PG_E_BAD_VALUE);
    assert_int_equal(al_pg_parse_ready(B("II"), &st), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_ready(NULL, 0, &st), AL_PG_E_SHORT);

    al_pg_row_desc_t rd;
    static const uint8_t rdesc[] = "\0\2" "id\0\0\0\x40\0\0\1\0\0\0\x17\0\4\xff\xff\xff\xff\0\0"
                                   "?column?\0" "\0\0\0\0" "\0\0" "\0\0\0\x19" "\xff\xff" "\xff\xff\xff\xff" "\0\1";
    assert_int_equal(al_pg_parse_row_desc(rdesc, sizeof rdesc - 1, &rd), AL_PG_OK);
    assert_int_equal(rd.nfields, 2);
    al_pg_fields_t fi = al_pg_row_desc_fields(&rd);
    al_pg_field_t fd;
    assert_true(al_pg_fields_next(&fi, &fd));
    assert_true(str_is(fd.name, "id") && fd.table_oid == 16384 && fd.column == 1 && fd.type_oid == 23 &&
                fd.type_size == 4 && fd.type_mod == -1 && fd.format == 0);
    assert_true(al_pg_fields_next(&fi, &fd));
    assert_true(str_is(fd.name, "?column?") && fd.table_oid == 0 && fd.type_oid == 25 &&
                fd.type_size == -1 && fd.format == 1);
    assert_false(al_pg_fields_next(&fi, &fd));
    assert_int_equal(al_pg_parse_row_desc(B("\0\0"), &rd), AL_PG_OK);
    assert_int_equal(al_pg_parse_row_desc(B("\xff\xff" "a\0"), &rd), AL_PG_E_BAD_COUNT);
    uint8_t badfmt[sizeof rdesc];
    memcpy(badfmt, rdesc, sizeof rdesc);
    badfmt[sizeof rdesc - 2] = 2;
    assert_int_equal(al_pg_parse_row_desc(badfmt, sizeof rdesc - 1, &rd), AL_PG_E_BAD_FORMAT);
    /* name without NUL swallowing the fixed part */
    assert_int_equal(al_pg_parse_row_desc(B("\0\1xxxxxxxxxxxxxxxxxxxxxxx"), &rd), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_row_desc(B("\0\1x\0" "\0\0\0\0" "\0\0" "\0\0\0\0" "\0\0" "\0\0\0\0" "\0\0" "!"), &rd),
                     AL_PG_E_TRAILING);

    al_pg_data_row_t dr;
    assert_int_equal(al_pg_parse_data_row(B("\0\3\0\0\0\1" "1\xff\xff\xff\xff\0\0\0\0"), &dr), AL_PG_OK);
    assert_int_equal(dr.ncols, 3);
    assert_int_equal(al_pg_parse_data_row(B("\0\0"), &dr), AL_PG_OK);
    assert_int_equal(al_pg_parse_data_row(B("\0\1\0\0\0\x05" "abc"), &dr), AL_PG_E_SHORT);
    assert_int_equal(al_pg_parse_data_row(B("\0\1\x7f\xff\xff\xff" "abc"), &dr), AL_PG_E_SHORT);
    assert_int_equal(al_pg_parse_data_row(B("\0\1\xff\xff\xff\xfe"), &dr), AL_PG_E_BAD_VALUE);
    assert_int_equal(al_pg_parse_data_row(B("\xff\xff\0\0\0\0"), &dr), AL_PG_E_BAD_COUNT);
    assert_int_equal(al_pg_parse_data_row(B("\0\1\0\0\0\0x"), &dr), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_data_row(B("\0"), &dr), AL_PG_E_SHORT);

    al_pg_notice_t n;
    assert_int_equal(al_pg_parse_notice(B("SERROR\0VERROR\0C42P01\0Mrelation \"x\" does not exist\0P15\0Fparse_relation.c\0L1392\0Rparser\0\0"), &n), AL_PG_OK);
    assert_true(str_is(al_pg_notice_get(&n, 'C'), "42P01"));
    assert_true(str_is(al_pg_notice_get(&n, 'P'), "15"));
    assert_true(str_is(al_pg_notice_get(&n, 'V'), "ERROR"));
    assert_null(al_pg_notice_get(&n, 'D').p);
    assert_null(al_pg_notice_get(&n, '!').p);
    assert_int_equal(n.nfields, 8);
    assert_int_equal(al_pg_parse_notice(B("\0"), &n), AL_PG_OK);
    assert_int_equal(al_pg_parse_notice(B("!odd\0Mm\0\0"), &n), AL_PG_OK); /* unknown code skipped */
    assert_true(str_is(al_pg_notice_get(&n, 'M'), "m"));
    assert_int_equal(al_pg_parse_notice(B("Mm\0"), &n), AL_PG_E_MISSING_TERMINATOR);
    assert_int_equal(al_pg_parse_notice(B("Mm"), &n), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_notice(B("Mm\0Mn\0\0"), &n), AL_PG_E_DUPLICATE_PARAM);
    assert_int_equal(al_pg_parse_notice(B("Mm\0\0x"), &n), AL_PG_E_TRAILING);
    assert_int_equal(al_pg_parse_notice(NULL, 0, &n), AL_PG_E_MISSING_TERMINATOR);

    al_pg_copy_response_t cr;
    assert_int_equal(al_pg_parse_copy_response(B("\1\0\2\0\1\0\0"), &cr), AL_PG_OK);
    assert_true(cr.format == 1 && cr.ncols == 2 && al_pg_u16(cr.col_formats) == 1);
    assert_int_equal(al_pg_parse_copy_response(B("\0\0\1\0\1"), &cr), AL_PG_E_BAD_FORMAT);
    assert_int_equal(al_pg_parse_copy_response(B("\2\0\0"), &cr), AL_PG_E_BAD_FORMAT);
    assert_int_equal(al_pg_parse_copy_response(B("\0\0\2\0\0"), &cr), AL_PG_E_BAD_COUNT);

    al_pg_notification_t no;
    assert_int_equal(al_pg_parse_notification(B("\0\0\0\x4d" "chan\0hello\0"), &no), AL_PG_OK);
    assert_true(no.pid == 77 && str_is(no.channel, "chan") && str_is(no.payload, "hello"));
    assert_int_equal(al_pg_parse_notification(B("\0\0\0\x4d" "chan\0hello"), &no), AL_PG_E_MISSING_NUL);

    al_pg_param_desc_t pd;
    assert_int_equal(al_pg_parse_param_desc(B("\0\1\0\0\0\x17"), &pd), AL_PG_OK);
    assert_int_equal(al_pg_u32(pd.types), 23);
    assert_int_equal(al_pg_parse_param_desc(B("\0\2\0\0\0\x17"), &pd), AL_PG_E_BAD_COUNT);

    al_pg_value_t v;
    assert_int_equal(al_pg_parse_function_result(B("\0\0\0\2ok"), &v), AL_PG_OK);
    assert_int_equal(v.len, 2);
    assert_int_equal(al_pg_parse_function_result(B("\xff\xff\xff\xff"), &v), AL_PG_OK);
    assert_true(v.null);
    assert_int_equal(al_pg_parse_function_result(B("\0\0\0\3ok"), &v), AL_PG_E_SHORT);

    al_pg_negotiate_t ng;
    assert_int_equal(al_pg_parse_negotiate(B("\0\0\0\0\0\0\0\1_pq_.x\0"), &ng), AL_PG_OK);
    assert_int_equal(ng.nopts, 1);
    assert_int_equal(al_pg_parse_negotiate(B("\0\0\0\0\0\0\0\2_pq_.x\0"), &ng), AL_PG_E_MISSING_NUL);
    assert_int_equal(al_pg_parse_negotiate(B("\0\0\0\0\xff\xff\xff\xff" "a\0"), &ng), AL_PG_E_BAD_COUNT);
}

/* Every strict prefix of a valid body is refused, and so is one byte more. */
typedef al_pg_err_t (*parse_fn)(const uint8_t *p, size_t n);

#define WRAP(name, type)                                                                            \
    static al_pg_err_t w_##name(const uint8_t *p, size_t n)                                        \
    {                                                                                              \
        type o;                                                                                    \
        return al_pg_parse_##name(p, n, &o);                                                       \
    }
WRAP(startup, al_pg_startup_t)
WRAP(query, al_str_t)
WRAP(parse, al_pg_parse_msg_t)
WRAP(bind, al_pg_bind_t)
WRAP(execute, al_pg_execute_t)
WRAP(describe, al_pg_target_t)
WRAP(function_call, al_pg_function_call_t)
WRAP(sasl_initial, al_pg_sasl_initial_t)
WRAP(authentication, al_pg_authreq_t)
WRAP(parameter_status, al_pg_param_t)
WRAP(backend_key, al_pg_backend_key_t)
WRAP(ready, char)
WRAP(row_desc, al_pg_row_desc_t)
WRAP(data_row, al_pg_data_row_t)
WRAP(notice, al_pg_notice_t)
WRAP(copy_response, al_pg_copy_response_t)
WRAP(notification, al_pg_notification_t)
WRAP(param_desc, al_pg_param_desc_t)
WRAP(function_result, al_pg_value_t)
WRAP(negotiate, al_pg_negotiate_t)

static void test_parse_prefixes_and_extensions(void **state)
{
    AL_UNUSED(state);
    struct {
        parse_fn fn;
        const char *body;
        size_t len;
    } cases[] = {
#define C(fn, lit) {w_##fn, lit, sizeof(lit) - 1}
        C(startup, "\0\x03\0\0user\0u\0database\0d\0\0"),
        C(startup, "\x04\xd2\x16\x2e\0\0\0\1\0\0\0\2"),
        C(query, "SELECT 1\0"),
        C(parse, "s\0SELECT $1\0\0\1\0\0\0\x17"),
        C(bind, "p\0s\0\0\1\0\1\0\1\0\0\0\2hi\0\1\0\1"),
        C(execute, "p\0\0\0\0\0"),
        C(describe, "Sname\0"),
        C(function_call, "\0\0\0\1\0\0\0\1\xff\xff\xff\xff\0\0"),
        C(sasl_initial, "SCRAM-SHA-256\0\0\0\0\2n,"),
        C(authentication, "\0\0\0\x05\1\2\3\4"),
        C(authentication, "\0\0\0\x0aSCRAM-SHA-256\0\0"),
        C(authentication, "\0\0\0\x03"),
        C(parameter_status, "a\0b\0"),
        C(backend_key, "\0\0\0\1\0\0\0\2"),
        C(ready, "I"),
        C(row_desc, "\0\1x\0\0\0\0\0\0\0\0\0\0\x19\xff\xff\xff\xff\xff\xff\0\0"),
        C(data_row, "\0\2\0\0\0\1x\xff\xff\xff\xff"),
        C(notice, "SERROR\0C42000\0Mm\0\0"),
        C(copy_response, "\1\0\1\0\1"),
        C(notification, "\0\0\0\1" "c\0p\0"),
        C(param_desc, "\0\1\0\0\0\x17"),
        C(function_result, "\0\0\0\1x"),
        C(negotiate, "\0\0\0\0\0\0\0\1_pq_.a\0"),
#undef C
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        const uint8_t *body = (const uint8_t *)cases[i].body;
        size_t len = cases[i].len;
        if (cases[i].fn(body, len) != AL_PG_OK)
            fail_msg("case %zu: valid body refused: %s", i, al_pg_err_str(cases[i].fn(body, len)));
        for (size_t k = 0; k < len; k++) {
            /* a heap copy of exactly k bytes, so ASan sees any over-read */
            uint8_t *p = malloc(k ? k : 1);
            assert_non_null(p);
            memcpy(p, body, k);
            if (cases[i].fn(p, k) == AL_PG_OK)
                fail_msg("case %zu: prefix of %zu bytes accepted", i, k);
            free(p);
        }
        uint8_t *p = malloc(len + 1);
        assert_non_null(p);
        memcpy(p, body, len);
        p[len] = 'x';
        if (cases[i].fn(p, len + 1) == AL_PG_OK)
            fail_msg("case %zu: extension accepted", i);
        free(p);
    }
}

static void test_command_rows(void **state)
{
    AL_UNUSED(state);
    struct {
        const char *tag;
        bool ok;
        uint64_t rows;
    } cases[] = {
        {"SELECT 5", true, 5},
        {"INSERT 0 5", true, 5},
        {"INSERT 16385 1", true, 1},
        {"UPDATE 0", true, 0},
        {"DELETE 12", true, 12},
        {"MERGE 3", true, 3},
        {"COPY 5", true, 5},
        {"FETCH 100", true, 100},
        {"MOVE 7", true, 7},
        {"SELECT 18446744073709551615", true, UINT64_MAX},
        {"SELECT 18446744073709551616", false, 0},
        {"BEGIN", false, 0},
        {"CREATE TABLE", false, 0},
        {"INSERT 5", false, 0},
        {"INSERT 0 5 1", false, 0},
        {"SELECT", false, 0},
        {"SELECT ", false, 0},
        {"SELECT -1", false, 0},
        {"SELECT +1", false, 0},
        {"SELECT 05", false, 0},
        {"SELECT 5 ", false, 0},
        {"SELECT  5", false, 0},
        {"select 5", false, 0},
        {"", false, 0},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        uint64_t rows = 999;
        bool ok = al_pg_command_rows(al_str_c(cases[i].tag), &rows);
        if (ok != cases[i].ok || (ok && rows != cases[i].rows))
            fail_msg("tag '%s': ok=%d rows=%llu", cases[i].tag, ok, (unsigned long long)rows);
    }
    uint64_t rows;
    assert_false(al_pg_command_rows((al_str_t){NULL, 0}, &rows));
}

/* ---- builders ------------------------------------------------------------------------ */

/* Frames exactly one message out of b (whole) and returns it. */
static al_pg_msg_t frame_one(al_pg_framer_t *f, const al_buf_t *b)
{
    al_pg_msg_t m;
    assert_int_equal(al_pg_frame(f, (const uint8_t *)b->p, b->len, &m), (ssize_t)b->len);
    return m;
}

static void test_build_roundtrip(void **state)
{
    AL_UNUSED(state);
    al_buf_t b;
    al_buf_init(&b);
    al_pg_framer_t fe, be;
    al_pg_framer_init(&fe, AL_PG_FRONTEND, NULL);
    al_pg_framer_init(&be, AL_PG_BACKEND, NULL);
    al_pg_msg_t m;

    /* frontend, startup phase */
    assert_int_equal(al_pg_build_ssl_request(&b), AL_OK);
    m = frame_one(&fe, &b);
    assert_int_equal(m.code, AL_PG_SSL_REQUEST_CODE);
    assert_int_equal(al_pg_framer_resume(&fe), AL_OK);
    al_buf_reset(&b);
    al_pg_param_t params[] = {{AL_STR("user"), AL_STR("agent")}, {AL_STR("options"), {"", 0}}};
    assert_int_equal(al_pg_build_startup(&b, params, 2), AL_OK);
    m = frame_one(&fe, &b);
    al_pg_startup_t s;
    assert_int_equal(al_pg_parse_startup(m.body, m.body_len, &s), AL_PG_OK);
    assert_true(s.nparams == 2 && str_is(s.user, "agent") && s.params[1].value.len == 0);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_password(&b, "tok"), AL_OK);
    m = frame_one(&fe, &b);
    al_str_t str;
    assert_int_equal(m.type, 'p');
    assert_int_equal(al_pg_parse_password(m.body, m.body_len, &str), AL_PG_OK);
    assert_true(str_is(str, "tok"));
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_sasl_initial(&b, "SCRAM-SHA-256", "n,,n=,r=x", 9), AL_OK);
    m = frame_one(&fe, &b);
    al_pg_sasl_initial_t si;
    assert_int_equal(al_pg_parse_sasl_initial(m.body, m.body_len, &si), AL_PG_OK);
    assert_true(si.has_data && si.data.len == 9 && memcmp(si.data.p, "n,,n=,r=x", 9) == 0);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_sasl_initial(&b, "OAUTHBEARER", NULL, 0), AL_OK);
    m = frame_one(&fe, &b);
    assert_int_equal(al_pg_parse_sasl_initial(m.body, m.body_len, &si), AL_PG_OK);
    assert_false(si.has_data);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_sasl_response(&b, "c=biws", 6), AL_OK);
    m = frame_one(&fe, &b);
    assert_true(m.type == 'p' && m.body_len == 6);
    al_pg_framer_set_authenticated(&fe);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_query(&b, "SELECT 'x'"), AL_OK);
    m = frame_one(&fe, &b);
    assert_int_equal(al_pg_parse_query(m.body, m.body_len, &str), AL_PG_OK);
    assert_true(str_is(str, "SELECT 'x'"));
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_sync(&b), AL_OK);
    m = frame_one(&fe, &b);
    assert_true(m.type == 'S' && al_pg_parse_empty(m.body, m.body_len) == AL_PG_OK);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_terminate(&b), AL_OK);
    m = frame_one(&fe, &b);
    assert_true(m.type == 'X' && m.raw_len == 5);
    assert_int_equal(fe.state, AL_PG_FS_END);
    al_pg_framer_reset(&fe);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_cancel_request(&b, -5, 0xabcdef01), AL_OK);
    m = frame_one(&fe, &b);
    assert_int_equal(al_pg_parse_startup(m.body, m.body_len, &s), AL_PG_OK);
    assert_true(s.kind == AL_PG_SK_CANCEL_REQUEST && s.cancel_pid == -5 && s.cancel_key == 0xabcdef01);

    /* backend */
    al_pg_authreq_t a;
    const char *mechs[] = {"SCRAM-SHA-256"};
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_auth_sasl(&b, mechs, 1), AL_OK);
    m = frame_one(&be, &b);
    assert_int_equal(al_pg_parse_authentication(m.body, m.body_len, &a), AL_PG_OK);
    assert_true(a.code == AL_PG_AUTHREQ_SASL && a.nmechs == 1 && str_is(a.mechs[0], "SCRAM-SHA-256"));
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_auth_sasl_continue(&b, "r=1", 3), AL_OK);
    m = frame_one(&be, &b);
    assert_int_equal(al_pg_parse_authentication(m.body, m.body_len, &a), AL_PG_OK);
    assert_true(a.code == AL_PG_AUTHREQ_SASL_CONTINUE && a.data.len == 3);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_auth_sasl_final(&b, "v=1", 3), AL_OK);
    m = frame_one(&be, &b);
    assert_int_equal(al_pg_parse_authentication(m.body, m.body_len, &a), AL_PG_OK);
    assert_true(a.code == AL_PG_AUTHREQ_SASL_FINAL && a.data.len == 3);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_auth_cleartext(&b), AL_OK);
    m = frame_one(&be, &b);
    assert_int_equal(al_pg_parse_authentication(m.body, m.body_len, &a), AL_PG_OK);
    assert_int_equal(a.code, AL_PG_AUTHREQ_CLEARTEXT);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_auth_ok(&b), AL_OK);
    m = frame_one(&be, &b);
    assert_int_equal(al_pg_parse_authentication(m.body, m.body_len, &a), AL_PG_OK);
    assert_int_equal(a.code, AL_PG_AUTHREQ_OK);
    al_pg_framer_set_authenticated(&be);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_parameter_status(&b, "is_superuser", "off"), AL_OK);
    m = frame_one(&be, &b);
    al_pg_param_t ps;
    assert_int_equal(al_pg_parse_parameter_status(m.body, m.body_len, &ps), AL_PG_OK);
    assert_true(str_is(ps.name, "is_superuser") && str_is(ps.value, "off"));
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_backend_key(&b, 31337, 7), AL_OK);
    m = frame_one(&be, &b);
    al_pg_backend_key_t k;
    assert_int_equal(al_pg_parse_backend_key(m.body, m.body_len, &k), AL_PG_OK);
    assert_true(k.pid == 31337 && k.key == 7);
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_ready(&b, 'T'), AL_OK);
    m = frame_one(&be, &b);
    char st;
    assert_int_equal(al_pg_parse_ready(m.body, m.body_len, &st), AL_PG_OK);
    assert_int_equal(st, 'T');
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_error(&b, "FATAL", "28P01", "password authentication failed", NULL, "check the token"), AL_OK);
    m = frame_one(&be, &b);
    assert_int_equal(m.type, 'E');
    al_pg_notice_t n;
    assert_int_equal(al_pg_parse_notice(m.body, m.body_len, &n), AL_PG_OK);
    assert_true(str_is(al_pg_notice_get(&n, 'S'), "FATAL") && str_is(al_pg_notice_get(&n, 'V'), "FATAL"));
    assert_true(str_is(al_pg_notice_get(&n, 'C'), "28P01"));
    assert_true(str_is(al_pg_notice_get(&n, 'M'), "password authentication failed"));
    assert_null(al_pg_notice_get(&n, 'D').p);
    assert_true(str_is(al_pg_notice_get(&n, 'H'), "check the token"));
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_notice(&b, "NOTICE", "00000", "hello", "d", NULL), AL_OK);
    m = frame_one(&be, &b);
    assert_int_equal(m.type, 'N');
    assert_int_equal(al_pg_parse_notice(m.body, m.body_len, &n), AL_PG_OK);
    assert_true(str_is(al_pg_notice_get(&n, 'D'), "d") && n.nfields == 5);

    /* invalid arguments leave the buffer as it was */
    al_buf_reset(&b);
    al_buf_puts(&b, "keep");
    assert_int_equal(al_pg_build_error(&b, "NOTICE", "28P01", "m", NULL, NULL), AL_ERR);
    assert_int_equal(al_pg_build_notice(&b, "ERROR", "28P01", "m", NULL, NULL), AL_ERR);
    assert_int_equal(al_pg_build_error(&b, "ERROR", "28p01", "m", NULL, NULL), AL_ERR);
    assert_int_equal(al_pg_build_error(&b, "ERROR", "28P0", "m", NULL, NULL), AL_ERR);
    assert_int_equal(al_pg_build_error(&b, "ERROR", "28P011", "m", NULL, NULL), AL_ERR);
    assert_int_equal(al_pg_build_error(&b, "ERROR", "28P01", NULL, NULL, NULL), AL_ERR);
    assert_int_equal(al_pg_build_ready(&b, 'X'), AL_ERR);
    assert_int_equal(al_pg_build_auth_sasl(&b, mechs, 0), AL_ERR);
    const char *empty_mech[] = {""};
    assert_int_equal(al_pg_build_auth_sasl(&b, empty_mech, 1), AL_ERR);
    assert_int_equal(al_pg_build_parameter_status(&b, "", "x"), AL_ERR);
    al_pg_param_t nouser[] = {{AL_STR("database"), AL_STR("d")}};
    assert_int_equal(al_pg_build_startup(&b, nouser, 1), AL_ERR);
    al_pg_param_t dup[] = {{AL_STR("user"), AL_STR("a")}, {AL_STR("user"), AL_STR("b")}};
    assert_int_equal(al_pg_build_startup(&b, dup, 2), AL_ERR);
    al_pg_param_t emptyuser[] = {{AL_STR("user"), {"", 0}}};
    assert_int_equal(al_pg_build_startup(&b, emptyuser, 1), AL_ERR);
    al_pg_param_t nul[] = {{AL_STR("user"), {"a\0b", 3}}};
    assert_int_equal(al_pg_build_startup(&b, nul, 1), AL_ERR);
    char *big = malloc(10001);
    assert_non_null(big);
    memset(big, 'x', 10000);
    big[10000] = 0;
    al_pg_param_t toobig[] = {{AL_STR("user"), {big, 10000}}};
    assert_int_equal(al_pg_build_startup(&b, toobig, 1), AL_ERR);
    free(big);
    assert_int_equal(al_pg_build_sasl_initial(&b, "", "x", 1), AL_ERR);
    assert_int_equal(al_pg_build_sasl_response(&b, NULL, 1), AL_ERR);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.p, "keep");

    al_pg_framer_free(&fe);
    al_pg_framer_free(&be);
    al_buf_free(&b);
}

static void test_data_row_edit(void **state)
{
    AL_UNUSED(state);
    /* id=1, ssn='123-45-6789', note=NULL, email='a@b.c' */
    static const uint8_t body[] = "\0\4" "\0\0\0\1" "1" "\0\0\0\x0b" "123-45-6789" "\xff\xff\xff\xff"
                                  "\0\0\0\x05" "a@b.c";
    al_pg_data_row_t row;
    assert_int_equal(al_pg_parse_data_row(body, sizeof body - 1, &row), AL_PG_OK);
    al_buf_t b;
    al_buf_init(&b);
    al_pg_cell_edit_t edits[] = {
        {AL_PG_CELL_KEEP, NULL, 0},
        {AL_PG_CELL_SET, "***-**-6789", 11},
        {AL_PG_CELL_SET, "was null", 8},
        {AL_PG_CELL_NULL, NULL, 0},
    };
    assert_int_equal(al_pg_build_data_row_edit(&b, &row, edits, 4), AL_OK);
    static const uint8_t want[] = "D\0\0\0\x2a\0\4" "\0\0\0\1" "1" "\0\0\0\x0b" "***-**-6789"
                                  "\0\0\0\x08" "was null" "\xff\xff\xff\xff";
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.p, want, sizeof want - 1);
    al_pg_data_row_t out;
    assert_int_equal(al_pg_parse_data_row((const uint8_t *)b.p + 5, b.len - 5, &out), AL_PG_OK);
    assert_int_equal(out.ncols, 4);

    /* fewer edits than columns: the rest is kept; an empty value; no edits */
    al_buf_reset(&b);
    al_pg_cell_edit_t one[] = {{AL_PG_CELL_SET, "", 0}};
    assert_int_equal(al_pg_build_data_row_edit(&b, &row, one, 1), AL_OK);
    assert_int_equal(al_pg_parse_data_row((const uint8_t *)b.p + 5, b.len - 5, &out), AL_PG_OK);
    al_pg_values_t it = al_pg_data_row_values(&out);
    al_pg_value_t v;
    assert_true(al_pg_values_next(&it, &v) && !v.null && v.len == 0);
    assert_true(al_pg_values_next(&it, &v) && v.len == 11 && memcmp(v.p, "123-45-6789", 11) == 0);
    assert_true(al_pg_values_next(&it, &v) && v.null);
    assert_true(al_pg_values_next(&it, &v) && v.len == 5);
    assert_false(al_pg_values_next(&it, &v));
    al_buf_reset(&b);
    assert_int_equal(al_pg_build_data_row_edit(&b, &row, NULL, 0), AL_OK);
    assert_int_equal(b.len, sizeof body - 1 + 5);
    assert_memory_equal(b.p + 5, body, sizeof body - 1);

    /* refusals leave b unchanged */
    al_buf_reset(&b);
    al_pg_cell_edit_t five[5] = {{AL_PG_CELL_KEEP, NULL, 0}};
    assert_int_equal(al_pg_build_data_row_edit(&b, &row, five, 5), AL_ERR);
    al_pg_cell_edit_t badop[] = {{(al_pg_cell_op_t)7, NULL, 0}};
    assert_int_equal(al_pg_build_data_row_edit(&b, &row, badop, 1), AL_ERR);
    al_pg_cell_edit_t nullp[] = {{AL_PG_CELL_SET, NULL, 3}};
    assert_int_equal(al_pg_build_data_row_edit(&b, &row, nullp, 1), AL_ERR);
    al_pg_cell_edit_t huge[] = {{AL_PG_CELL_SET, "x", (size_t)1 << 31}};
    assert_int_equal(al_pg_build_data_row_edit(&b, &row, huge, 1), AL_ERR);
    al_pg_cell_edit_t over[] = {{AL_PG_CELL_SET, "x", AL_PG_HARD_MAX_MESSAGE - 8}, {AL_PG_CELL_KEEP, NULL, 0}};
    assert_int_equal(al_pg_build_data_row_edit(&b, &row, over, 1), AL_ERR);
    assert_int_equal(b.len, 0);
    al_buf_free(&b);
}

/* ---- a real client: psql against a scripted server ---------------------------------- */

static bool find_psql(char *out, size_t cap)
{
    const char *cands[] = {"/usr/bin/psql", "/usr/lib/postgresql/17/bin/psql",
                           "/usr/lib/postgresql/16/bin/psql", "/usr/lib/postgresql/15/bin/psql"};
    for (size_t i = 0; i < AL_ARRAY_LEN(cands); i++)
        if (access(cands[i], X_OK) == 0) {
            snprintf(out, cap, "%s", cands[i]);
            return true;
        }
    return false;
}

/* Reads until the framer yields a message (5 s limit). Returns false on
 * EOF, timeout or framing error. */
static bool read_msg(int fd, al_pg_framer_t *f, uint8_t *buf, size_t *have, al_pg_msg_t *m)
{
    for (;;) {
        if (*have) {
            ssize_t n = al_pg_frame(f, buf, *have, m);
            if (n < 0)
                return false;
            if (n > 0) {
                /* the caller uses m before the next read: keep the bytes
                 * after the message at the front of buf */
                static uint8_t copy[65536];
                assert_true(m->raw_len <= sizeof copy);
                memcpy(copy, m->raw, m->raw_len);
                size_t rest = *have - (size_t)n;
                memmove(buf, buf + n, rest);
                *have = rest;
                size_t off = (size_t)(m->body - m->raw);
                m->raw = copy;
                m->body = copy + off;
                return true;
            }
            *have = 0;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return false;
        ssize_t r = read(fd, buf, 65536);
        if (r <= 0)
            return false;
        *have = (size_t)r;
    }
}

static bool send_all(int fd, const al_buf_t *b)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->p + off, b->len - off);
        if (w <= 0)
            return false;
        off += (size_t)w;
    }
    return true;
}

typedef struct psql_run {
    pid_t pid;
    int out_fd; /* psql's stdout+stderr */
} psql_run_t;

static bool spawn_psql(const char *psql, int port, const char *password, psql_run_t *r)
{
    int pfd[2];
    if (pipe(pfd) != 0)
        return false;
    pid_t pid = fork();
    if (pid < 0)
        return false;
    if (pid == 0) {
        char conn[256];
        snprintf(conn, sizeof conn,
                 "host=127.0.0.1 port=%d user=agent dbname=app sslmode=prefer gssencmode=disable "
                 "application_name=airlock-test connect_timeout=5",
                 port);
        dup2(pfd[1], 1);
        dup2(pfd[1], 2);
        close(pfd[0]);
        setenv("PGPASSWORD", password, 1);
        execl(psql, "psql", "-X", "-A", "-t", "-d", conn, "-c", "SELECT secret FROM t", (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    r->pid = pid;
    r->out_fd = pfd[0];
    return true;
}

static void finish_psql(psql_run_t *r, char *out, size_t cap, int *status)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = {r->out_fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            break;
        ssize_t k = read(r->out_fd, out + n, cap - 1 - n);
        if (k <= 0)
            break;
        n += (size_t)k;
    }
    out[n] = 0;
    close(r->out_fd);
    kill(r->pid, SIGKILL); /* no-op when it already exited */
    waitpid(r->pid, status, 0);
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

static int accept_timeout(int lfd)
{
    struct pollfd p = {lfd, POLLIN, 0};
    if (poll(&p, 1, 5000) <= 0)
        return -1;
    return accept(lfd, NULL, NULL);
}

/* psql connects (SSLRequest answered 'N'), sends its StartupMessage and the
 * cleartext password; the scripted server answers one query with a row our
 * DataRow rewriter masked, or refuses the password with FATAL 28P01. */
static void run_psql_session(const char *psql, bool accept_password)
{
    uint8_t *buf = malloc(65536);
    assert_non_null(buf);
    size_t have = 0;
    int port = 0;
    int lfd = listen_any(&port);
    assert_true(lfd >= 0);
    psql_run_t r;
    assert_true(spawn_psql(psql, port, "tok.en.sig", &r));
    int fd = accept_timeout(lfd);
    assert_true(fd >= 0);
    al_pg_framer_t f;
    al_pg_framer_init(&f, AL_PG_FRONTEND, NULL);
    al_pg_msg_t m;
    al_buf_t out;
    al_buf_init(&out);

    /* SSLRequest (sslmode=prefer) -> 'N', then the StartupMessage */
    assert_true(read_msg(fd, &f, buf, &have, &m));
    assert_int_equal(m.type, 0);
    assert_int_equal(m.code, AL_PG_SSL_REQUEST_CODE);
    assert_int_equal(have, 0); /* nothing pipelined after it */
    assert_int_equal(write(fd, "N", 1), 1);
    assert_int_equal(al_pg_framer_resume(&f), AL_OK);
    assert_true(read_msg(fd, &f, buf, &have, &m));
    al_pg_startup_t s;
    assert_int_equal(al_pg_parse_startup(m.body, m.body_len, &s), AL_PG_OK);
    assert_int_equal(s.kind, AL_PG_SK_STARTUP);
    assert_true(str_is(s.user, "agent"));
    assert_true(str_is(s.database, "app"));
    bool appname = false;
    for (size_t i = 0; i < s.nparams; i++)
        appname |= str_is(s.params[i].name, "application_name") && str_is(s.params[i].value, "airlock-test");
    assert_true(appname);

    assert_int_equal(al_pg_build_auth_cleartext(&out), AL_OK);
    assert_true(send_all(fd, &out));
    assert_true(read_msg(fd, &f, buf, &have, &m));
    assert_int_equal(m.type, 'p');
    al_str_t pw;
    assert_int_equal(al_pg_parse_password(m.body, m.body_len, &pw), AL_PG_OK);
    assert_true(str_is(pw, "tok.en.sig"));

    al_buf_reset(&out);
    if (!accept_password) {
        assert_int_equal(al_pg_build_error(&out, "FATAL", "28P01", "airlock: token rejected",
                                           "the token expired", "mint a new one"), AL_OK);
        assert_true(send_all(fd, &out));
        close(fd);
        char text[4096];
        int status;
        finish_psql(&r, text, sizeof text, &status);
        assert_non_null(strstr(text, "airlock: token rejected"));
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 2);
        goto done;
    }
    al_pg_framer_set_authenticated(&f);
    assert_int_equal(al_pg_build_auth_ok(&out), AL_OK);
    assert_int_equal(al_pg_build_parameter_status(&out, "server_version", "15.0"), AL_OK);
    assert_int_equal(al_pg_build_parameter_status(&out, "client_encoding", "UTF8"), AL_OK);
    assert_int_equal(al_pg_build_parameter_status(&out, "standard_conforming_strings", "on"), AL_OK);
    assert_int_equal(al_pg_build_backend_key(&out, 1234, 5678), AL_OK);
    assert_int_equal(al_pg_build_ready(&out, 'I'), AL_OK);
    assert_true(send_all(fd, &out));

    assert_true(read_msg(fd, &f, buf, &have, &m));
    assert_int_equal(m.type, 'Q');
    al_str_t sql;
    assert_int_equal(al_pg_parse_query(m.body, m.body_len, &sql), AL_PG_OK);
    assert_true(str_is(sql, "SELECT secret FROM t"));

    /* the "upstream" row, rewritten the way masking will */
    al_buf_t row;
    al_buf_init(&row);
    put16(&row, 2);
    put32(&row, 11);
    al_buf_append(&row, B("123-45-6789"));
    put32(&row, 2);
    al_buf_append(&row, B("ok"));
    al_pg_data_row_t dr;
    assert_int_equal(al_pg_parse_data_row((const uint8_t *)row.p, row.len, &dr), AL_PG_OK);
    al_buf_reset(&out);
    al_buf_t desc;
    al_buf_init(&desc);
    put16(&desc, 2);
    for (int i = 0; i < 2; i++) {
        al_buf_append(&desc, i ? "note" : "secret", i ? 5 : 7);
        put32(&desc, 0);
        put16(&desc, 0);
        put32(&desc, 25);
        put16(&desc, (uint16_t)-1);
        put32(&desc, UINT32_MAX);
        put16(&desc, 0);
    }
    msg_buf(&out, 'T', &desc);
    al_pg_cell_edit_t mask[] = {{AL_PG_CELL_SET, "***-**-6789", 11}, {AL_PG_CELL_NULL, NULL, 0}};
    assert_int_equal(al_pg_build_data_row_edit(&out, &dr, mask, 2), AL_OK);
    msg(&out, 'C', B("SELECT 1\0"));
    assert_int_equal(al_pg_build_notice(&out, "NOTICE", "00000", "airlock: 1 column masked", NULL, NULL), AL_OK);
    assert_int_equal(al_pg_build_ready(&out, 'I'), AL_OK);
    assert_true(send_all(fd, &out));
    assert_true(read_msg(fd, &f, buf, &have, &m));
    assert_int_equal(m.type, 'X');
    close(fd);
    char text[4096];
    int status;
    finish_psql(&r, text, sizeof text, &status);
    assert_non_null(strstr(text, "***-**-6789|\n"));
    assert_null(strstr(text, "123-45"));
    assert_non_null(strstr(text, "airlock: 1 column masked"));
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    al_buf_free(&row);
    al_buf_free(&desc);
done:
    close(lfd);
    al_pg_framer_free(&f);
    al_buf_free(&out);
    free(buf);
}

static void test_real_psql(void **state)
{
    AL_UNUSED(state);
    char psql[256];
    if (!find_psql(psql, sizeof psql))
        skip();
    signal(SIGPIPE, SIG_IGN);
    run_psql_session(psql, true);
    run_psql_session(psql, false);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_frame_frontend_every_split),
        cmocka_unit_test(test_frame_backend_every_split),
        cmocka_unit_test(test_frame_lengths_and_caps),
        cmocka_unit_test(test_frame_hold_and_end),
        cmocka_unit_test(test_frame_large_reassembly),
        cmocka_unit_test(test_parse_startup),
        cmocka_unit_test(test_parse_strings),
        cmocka_unit_test(test_parse_extended),
        cmocka_unit_test(test_parse_backend),
        cmocka_unit_test(test_parse_prefixes_and_extensions),
        cmocka_unit_test(test_command_rows),
        cmocka_unit_test(test_build_roundtrip),
        cmocka_unit_test(test_data_row_edit),
        cmocka_unit_test(test_real_psql),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
