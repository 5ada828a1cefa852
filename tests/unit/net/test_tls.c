/*
 * test_tls.c - the TLS engine (src/net/tls.h).
 *
 * Two endpoints are wired back to back in memory: whatever one side's
 * al_tls_pending_out produces is fed to the other, optionally cut at random
 * points. An endpoint is either the engine or a raw OpenSSL SSL object the
 * test configures itself (to play an old or hostile peer). The last tests
 * talk to the real `openssl s_client` and `openssl s_server` over loopback.
 * Certificates: tests/data/tls (see its README.md).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "net/tls.h"

#define D "tests/data/tls/"

/* ---- helpers -------------------------------------------------------------- */

static uint64_t rng_state;
static void rng_seed(uint64_t s) { rng_state = s ? s : 0x9e3779b97f4a7c15u; }
static uint64_t rng(void) /* xorshift64 */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static void rng_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng();
}

static al_tls_ctx_t *server_ctx(const char *cert, const char *key)
{
    char err[256] = "";
    al_tls_ctx_t *c = al_tls_server_ctx(cert, key, err, sizeof err);
    if (!c)
        fail_msg("server ctx: %s", err);
    return c;
}

static al_tls_ctx_t *client_ctx(const char *ca, bool verify)
{
    char err[256] = "";
    al_tls_ctx_t *c = al_tls_client_ctx(ca, verify, err, sizeof err);
    if (!c)
        fail_msg("client ctx: %s", err);
    return c;
}

/* One end of a connection: the engine (t) or raw OpenSSL (ssl). */
typedef struct peer {
    al_tls_t *t;
    SSL *ssl;
    BIO *rb, *wb;
    al_buf_t plain; /* everything decrypted so far */
    int rc;         /* last result, in engine terms */
    unsigned long raw_err; /* raw peer: first OpenSSL error */
} peer_t;

static void peer_engine(peer_t *p, al_tls_ctx_t *ctx, const char *host)
{
    memset(p, 0, sizeof *p);
    p->t = al_tls_new(ctx, host);
    assert_non_null(p->t);
    p->rc = AL_AGAIN;
}

static void peer_raw(peer_t *p, SSL_CTX *ctx, bool server)
{
    memset(p, 0, sizeof *p);
    p->ssl = SSL_new(ctx);
    assert_non_null(p->ssl);
    p->rb = BIO_new(BIO_s_mem());
    p->wb = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(p->rb, -1);
    BIO_set_mem_eof_return(p->wb, -1);
    SSL_set_bio(p->ssl, p->rb, p->wb);
    if (server)
        SSL_set_accept_state(p->ssl);
    else
        SSL_set_connect_state(p->ssl);
    p->rc = AL_AGAIN;
}

static void peer_free(peer_t *p)
{
    al_tls_free(&p->t);
    SSL_free(p->ssl);
    al_buf_free(&p->plain);
    memset(p, 0, sizeof *p);
}

static int raw_fail(peer_t *p)
{
    if (!p->raw_err)
        p->raw_err = ERR_peek_error();
    ERR_clear_error();
    return AL_ERR;
}

/* Drives a raw peer like al_tls_read drives the engine. */
static int raw_read(peer_t *p)
{
    if (!SSL_is_init_finished(p->ssl)) {
        int r = SSL_do_handshake(p->ssl);
        if (r != 1)
            return SSL_get_error(p->ssl, r) == SSL_ERROR_WANT_READ ? AL_AGAIN : raw_fail(p);
    }
    for (;;) {
        uint8_t buf[4096];
        size_t got = 0;
        int r = SSL_read_ex(p->ssl, buf, sizeof buf, &got);
        if (r == 1) {
            assert_int_equal(al_buf_append(&p->plain, buf, got), AL_OK);
            continue;
        }
        int e = SSL_get_error(p->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            return SSL_is_init_finished(p->ssl) ? AL_OK : AL_AGAIN;
        if (e == SSL_ERROR_ZERO_RETURN)
            return AL_TLS_EOF;
        return raw_fail(p);
    }
}

/* Feeds ciphertext (may be empty) and reads; remembers the result. */
static void peer_in(peer_t *p, const uint8_t *c, size_t n)
{
    if (p->rc == AL_ERR)
        return;
    if (p->t) {
        int rc = al_tls_feed(p->t, c, n);
        p->rc = rc == AL_OK ? al_tls_read(p->t, &p->plain) : rc;
    } else {
        if (n)
            assert_int_equal(BIO_write(p->rb, c, (int)n), (int)n);
        p->rc = raw_read(p);
    }
}

static void peer_out(peer_t *p, al_buf_t *out)
{
    if (p->t) {
        assert_int_equal(al_tls_pending_out(p->t, out), AL_OK);
        return;
    }
    size_t n = BIO_ctrl_pending(p->wb);
    if (n) {
        char *tmp = malloc(n);
        assert_non_null(tmp);
        assert_int_equal(BIO_read(p->wb, tmp, (int)n), (int)n);
        assert_int_equal(al_buf_append(out, tmp, n), AL_OK);
        free(tmp);
    }
}

static void peer_write(peer_t *p, const void *d, size_t n)
{
    if (p->t) {
        assert_int_equal(al_tls_write(p->t, d, n), AL_OK);
    } else {
        size_t w = 0;
        assert_int_equal(SSL_write_ex(p->ssl, d, n, &w), 1);
        assert_int_equal(w, n);
    }
}

/* Split policy for the ciphertext moved between peers. */
typedef enum split {
    SPLIT_NONE = 0, /* everything at once */
    SPLIT_RANDOM,   /* random cut points, 1 byte to ~20 KiB */
    SPLIT_BYTES,    /* one byte at a time */
} split_t;

/* Moves one batch src -> dst; false when src had nothing to send. */
static bool move(peer_t *src, peer_t *dst, split_t split)
{
    al_buf_t out;
    al_buf_init(&out);
    peer_out(src, &out);
    if (out.len == 0) {
        al_buf_free(&out);
        return false;
    }
    size_t off = 0;
    while (off < out.len) {
        size_t n = out.len - off;
        if (split == SPLIT_BYTES) {
            n = 1;
        } else if (split == SPLIT_RANDOM) {
            uint64_t r = rng();
            size_t cap = (r & 3) == 0 ? 8 : (r & 3) == 1 ? 300 : 20000;
            n = AL_MIN(n, 1 + (size_t)((r >> 8) % cap));
        }
        peer_in(dst, (const uint8_t *)out.p + off, n);
        off += n;
    }
    al_buf_free(&out);
    return true;
}

/* Shuttles until neither side has anything left to send. */
static void shuttle(peer_t *a, peer_t *b, split_t split)
{
    for (int round = 0; round < 10000; round++) {
        bool moved = move(a, b, split);
        moved |= move(b, a, split);
        if (!moved)
            return;
    }
    fail_msg("shuttle did not settle");
}

/* Client first flight, then shuttle to completion. */
static void connect_pair(peer_t *c, peer_t *s, split_t split)
{
    peer_in(c, NULL, 0);
    assert_int_equal(c->rc, AL_AGAIN);
    shuttle(c, s, split);
}

static void engine_pair(peer_t *c, peer_t *s, al_tls_ctx_t *cctx, const char *host,
                        al_tls_ctx_t *sctx)
{
    peer_engine(c, cctx, host);
    peer_engine(s, sctx, NULL);
    connect_pair(c, s, SPLIT_NONE);
}

/* Sends n random bytes a -> b and checks they arrive intact. */
static void transfer(peer_t *a, peer_t *b, size_t n, split_t split)
{
    uint8_t *d = malloc(n);
    assert_non_null(d);
    rng_fill(d, n);
    al_buf_reset(&b->plain);
    peer_write(a, d, n);
    shuttle(a, b, split);
    assert_int_equal(b->rc, AL_OK);
    assert_int_equal(b->plain.len, n);
    assert_memory_equal(b->plain.p, d, n);
    al_buf_reset(&b->plain);
    free(d);
}

static bool has_substr(const char *s, const char *sub) { return s && strstr(s, sub) != NULL; }

#define assert_err_has(t, sub)                                                            \
    do {                                                                                  \
        const char *e_ = al_tls_error(t);                                                 \
        if (!has_substr(e_, sub))                                                         \
            fail_msg("error \"%s\" lacks \"%s\"", e_, sub);                               \
    } while (0)

static al_tls_ctx_t *g_srv, *g_cli;

static int setup(void **state)
{
    AL_UNUSED(state);
    g_srv = server_ctx(D "server.pem", D "server.key");
    g_cli = client_ctx(D "ca.pem", true);
    rng_seed(20240601);
    return 0;
}

static int teardown(void **state)
{
    AL_UNUSED(state);
    al_tls_ctx_free(&g_srv);
    al_tls_ctx_free(&g_cli);
    return 0;
}

/* ---- handshake and data ----------------------------------------------------- */

static void test_handshake_tls13(void **state)
{
    peer_t c, s;
    peer_engine(&c, g_cli, "localhost");
    peer_engine(&s, g_srv, NULL);
    assert_false(al_tls_handshake_done(c.t));
    assert_null(al_tls_version(c.t));
    assert_string_equal(al_tls_error(c.t), "");
    connect_pair(&c, &s, SPLIT_NONE);
    assert_int_equal(c.rc, AL_OK);
    assert_int_equal(s.rc, AL_OK);
    assert_true(al_tls_handshake_done(c.t));
    assert_true(al_tls_handshake_done(s.t));
    assert_string_equal(al_tls_version(c.t), "TLSv1.3");
    assert_string_equal(al_tls_version(s.t), "TLSv1.3");
    assert_string_equal(al_tls_error(s.t), "");
    /* no session tickets: the server is silent after its Finished */
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_tls_pending_out(s.t, &out), AL_OK);
    assert_int_equal(out.len, 0);
    al_buf_free(&out);
    /* reads with nothing new fed are harmless */
    assert_int_equal(al_tls_read(s.t, &s.plain), AL_OK);
    assert_int_equal(s.plain.len, 0);
    peer_free(&c);
    peer_free(&s);
}

static void test_data_sizes(void **state)
{
    static const size_t sizes[] = {1,     2,     7,     100,    1000,   16383, 16384,
                                   16385, 32768, 65536, 100003, 262144, 1 << 20};
    peer_t c, s;
    engine_pair(&c, &s, g_cli, "localhost", g_srv);
    for (size_t i = 0; i < AL_ARRAY_LEN(sizes); i++) {
        transfer(&c, &s, sizes[i], SPLIT_NONE);
        transfer(&s, &c, sizes[i], SPLIT_NONE);
        transfer(&c, &s, sizes[i], SPLIT_RANDOM);
        transfer(&s, &c, sizes[i], SPLIT_RANDOM);
    }
    peer_free(&c);
    peer_free(&s);
}

/* Handshake and data with the ciphertext cut at every byte offset. */
static void test_bytewise_and_random_splits(void **state)
{
    for (int seed = 1; seed <= 8; seed++) {
        rng_seed((uint64_t)seed * 7919);
        peer_t c, s;
        peer_engine(&c, g_cli, "127.0.0.1");
        peer_engine(&s, g_srv, NULL);
        connect_pair(&c, &s, seed == 1 ? SPLIT_BYTES : SPLIT_RANDOM);
        assert_int_equal(c.rc, AL_OK);
        assert_int_equal(s.rc, AL_OK);
        transfer(&c, &s, 3000, seed == 1 ? SPLIT_BYTES : SPLIT_RANDOM);
        transfer(&s, &c, 70000 + (size_t)seed, SPLIT_RANDOM);
        peer_free(&c);
        peer_free(&s);
    }
}

/* Both directions at once, many small writes interleaved with big ones. */
static void test_full_duplex(void **state)
{
    peer_t c, s;
    engine_pair(&c, &s, g_cli, "::1", g_srv);
    al_buf_t want_c, want_s;
    al_buf_init(&want_c);
    al_buf_init(&want_s);
    for (int i = 0; i < 300; i++) {
        uint8_t d[40000];
        size_t n = (size_t)(rng() % (i % 10 == 0 ? sizeof d : 64)) + 1;
        rng_fill(d, n);
        peer_t *from = (i & 1) ? &s : &c;
        al_buf_append(from == &c ? &want_s : &want_c, d, n);
        peer_write(from, d, n);
        if (i % 7 == 0)
            shuttle(&c, &s, SPLIT_RANDOM);
    }
    shuttle(&c, &s, SPLIT_RANDOM);
    assert_int_equal(s.plain.len, want_s.len);
    assert_memory_equal(s.plain.p, want_s.p, want_s.len);
    assert_int_equal(c.plain.len, want_c.len);
    assert_memory_equal(c.plain.p, want_c.p, want_c.len);
    al_buf_free(&want_c);
    al_buf_free(&want_s);
    peer_free(&c);
    peer_free(&s);
}

/* al_tls_write before the handshake completes queues, then sends in order;
 * nothing is delivered before the handshake. */
static void test_write_before_handshake(void **state)
{
    peer_t c, s;
    peer_engine(&c, g_cli, "localhost");
    peer_engine(&s, g_srv, NULL);
    assert_int_equal(al_tls_write(c.t, "hello ", 6), AL_OK);
    assert_int_equal(al_tls_write(c.t, "server", 6), AL_OK);
    assert_int_equal(al_tls_write(s.t, "hi client", 9), AL_OK);
    assert_int_equal(al_tls_write(c.t, "x", 0), AL_OK);
    peer_in(&c, NULL, 0);
    /* the first flight is a bare ClientHello: handshake record 0x16 */
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_tls_pending_out(c.t, &out), AL_OK);
    assert_true(out.len > 5);
    assert_int_equal((uint8_t)out.p[0], 0x16);
    peer_in(&s, (const uint8_t *)out.p, out.len);
    assert_int_equal(s.rc, AL_AGAIN);
    assert_int_equal(s.plain.len, 0);
    al_buf_free(&out);
    shuttle(&c, &s, SPLIT_RANDOM);
    assert_int_equal(s.plain.len, 12);
    assert_memory_equal(s.plain.p, "hello server", 12);
    assert_int_equal(c.plain.len, 9);
    assert_memory_equal(c.plain.p, "hi client", 9);
    peer_free(&c);
    peer_free(&s);
}

/* ---- verification ----------------------------------------------------------- */

static void test_verify_full_ok(void **state)
{
    static const char *hosts[] = {"localhost", "LOCALHOST", "127.0.0.1", "::1",
                                  "0:0:0:0:0:0:0:1"};
    for (size_t i = 0; i < AL_ARRAY_LEN(hosts); i++) {
        peer_t c, s;
        engine_pair(&c, &s, g_cli, hosts[i], g_srv);
        if (c.rc != AL_OK)
            fail_msg("%s: %s", hosts[i], al_tls_error(c.t));
        assert_int_equal(s.rc, AL_OK);
        transfer(&c, &s, 10, SPLIT_NONE);
        peer_free(&c);
        peer_free(&s);
    }
}

/* A client that refuses the certificate fails with a clear reason and
 * tells the server with an alert; no application data crosses. */
static void expect_refused(al_tls_ctx_t *cctx, const char *host, al_tls_ctx_t *sctx,
                           const char *client_err, const char *server_err)
{
    peer_t c, s;
    peer_engine(&c, cctx, host);
    peer_engine(&s, sctx, NULL);
    assert_int_equal(al_tls_write(c.t, "secret", 6), AL_OK);
    connect_pair(&c, &s, SPLIT_RANDOM);
    assert_int_equal(c.rc, AL_ERR);
    assert_false(al_tls_handshake_done(c.t));
    assert_string_equal(al_tls_error(c.t), client_err);
    assert_int_equal(s.rc, AL_ERR);
    assert_err_has(s.t, server_err);
    assert_int_equal(s.plain.len, 0);
    /* sticky */
    assert_int_equal(al_tls_read(c.t, &c.plain), AL_ERR);
    assert_int_equal(al_tls_write(c.t, "x", 1), AL_ERR);
    assert_int_equal(al_tls_feed(c.t, (const uint8_t *)"x", 1), AL_ERR);
    assert_int_equal(al_tls_shutdown(c.t), AL_ERR);
    assert_string_equal(al_tls_error(c.t), client_err);
    peer_free(&c);
    peer_free(&s);
}

static void test_verify_wrong_host(void **state)
{
    expect_refused(g_cli, "db.example.com", g_srv, "certificate verify failed: hostname mismatch",
                   "TLS handshake failed: peer sent alert: bad certificate");
    expect_refused(g_cli, "localhost.", g_srv, "certificate verify failed: hostname mismatch",
                   "TLS handshake failed: peer sent alert: bad certificate");
    expect_refused(g_cli, "127.0.0.2", g_srv, "certificate verify failed: IP address mismatch",
                   "TLS handshake failed: peer sent alert: bad certificate");
    al_tls_ctx_t *wrong = server_ctx(D "wronghost.pem", D "wronghost.key");
    expect_refused(g_cli, "localhost", wrong, "certificate verify failed: hostname mismatch",
                   "TLS handshake failed: peer sent alert: bad certificate");
    /* no suffix match */
    expect_refused(g_cli, "example.com", wrong, "certificate verify failed: hostname mismatch",
                   "TLS handshake failed: peer sent alert: bad certificate");
    al_tls_ctx_free(&wrong);
}

/* RFC 6125 §6.4.3: a wildcard counts only as a whole left-most label and
 * matches exactly one label. */
static void test_verify_wildcards(void **state)
{
    al_tls_ctx_t *wild = server_ctx(D "wildcard.pem", D "wildcard.key");
    static const char *refused[] = {"db1.example.com", "db.example.com", "svc.example.com",
                                    "a.b.svc.example.com"};
    for (size_t i = 0; i < AL_ARRAY_LEN(refused); i++)
        expect_refused(g_cli, refused[i], wild, "certificate verify failed: hostname mismatch",
                       "TLS handshake failed: peer sent alert: bad certificate");
    peer_t c, s;
    engine_pair(&c, &s, g_cli, "pg.svc.example.com", wild);
    assert_int_equal(c.rc, AL_OK);
    assert_int_equal(s.rc, AL_OK);
    peer_free(&c);
    peer_free(&s);
    al_tls_ctx_free(&wild);
}

static void test_verify_wrong_ca(void **state)
{
    al_tls_ctx_t *other = client_ctx(D "other-ca.pem", true);
    expect_refused(other, "localhost", g_srv, "certificate verify failed: unknown CA",
                   "TLS handshake failed: peer sent alert: unknown CA");
    al_tls_ctx_free(&other);
    /* the system store does not know the test CA either */
    al_tls_ctx_t *sys = client_ctx(NULL, true);
    expect_refused(sys, "localhost", g_srv, "certificate verify failed: unknown CA",
                   "TLS handshake failed: peer sent alert: unknown CA");
    al_tls_ctx_free(&sys);
}

static void test_verify_expired(void **state)
{
    al_tls_ctx_t *exp = server_ctx(D "expired.pem", D "expired.key");
    expect_refused(g_cli, "localhost", exp, "certificate verify failed: certificate expired",
                   "TLS handshake failed: peer sent alert: certificate expired");
    al_tls_ctx_free(&exp);
}

/* verify = false is sslmode=require: anything goes (and SNI still flows). */
static void test_no_verify(void **state)
{
    al_tls_ctx_t *nov = client_ctx(NULL, false);
    al_tls_ctx_t *wrong = server_ctx(D "wronghost.pem", D "wronghost.key");
    al_tls_ctx_t *exp = server_ctx(D "expired.pem", D "expired.key");
    al_tls_ctx_t *srvs[] = {g_srv, wrong, exp};
    for (size_t i = 0; i < AL_ARRAY_LEN(srvs); i++) {
        peer_t c, s;
        engine_pair(&c, &s, nov, i == 0 ? NULL : "db.example.com", srvs[i]);
        assert_int_equal(c.rc, AL_OK);
        assert_int_equal(s.rc, AL_OK);
        transfer(&s, &c, 100, SPLIT_NONE);
        peer_free(&c);
        peer_free(&s);
    }
    al_tls_ctx_free(&nov);
    al_tls_ctx_free(&wrong);
    al_tls_ctx_free(&exp);
}

static void test_new_rules(void **state)
{
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_null(al_tls_new(g_cli, NULL)); /* verify-full needs a host */
    assert_null(al_tls_new(g_cli, ""));
    assert_null(al_tls_new(g_cli, longname));
    assert_null(al_tls_new(g_srv, "localhost")); /* servers take no host */
    assert_null(al_tls_new(NULL, NULL));
    al_tls_t *t = NULL;
    al_tls_free(&t);
    al_tls_free(NULL);
    al_tls_ctx_t *c = NULL;
    al_tls_ctx_free(&c);
    al_tls_ctx_free(NULL);
}

/* SNI carries a host name, never an IP literal (RFC 6066 §3). */
static int sni_seen;
static char sni_name[256];
static int sni_cb(SSL *ssl, int *al, void *arg)
{
    AL_UNUSED(al);
    AL_UNUSED(arg);
    const char *n = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    sni_seen++;
    snprintf(sni_name, sizeof sni_name, "%s", n ? n : "");
    return SSL_TLSEXT_ERR_OK;
}

static SSL_CTX *raw_server_ctx(void)
{
    SSL_CTX *x = SSL_CTX_new(TLS_server_method());
    assert_non_null(x);
    assert_int_equal(SSL_CTX_use_certificate_chain_file(x, D "server.pem"), 1);
    assert_int_equal(SSL_CTX_use_PrivateKey_file(x, D "server.key", SSL_FILETYPE_PEM), 1);
    return x;
}

static void test_sni(void **state)
{
    SSL_CTX *x = raw_server_ctx();
    SSL_CTX_set_tlsext_servername_callback(x, sni_cb);
    static const struct {
        const char *host, *sni;
    } cases[] = {{"localhost", "localhost"}, {"127.0.0.1", ""}, {"::1", ""}};
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        peer_t c, s;
        peer_engine(&c, g_cli, cases[i].host);
        peer_raw(&s, x, true);
        sni_seen = 0;
        sni_name[0] = '\0';
        connect_pair(&c, &s, SPLIT_NONE);
        assert_int_equal(c.rc, AL_OK);
        assert_int_equal(sni_seen, 1);
        assert_string_equal(sni_name, cases[i].sni);
        transfer(&s, &c, 5000, SPLIT_RANDOM);
        transfer(&c, &s, 5000, SPLIT_RANDOM);
        peer_free(&c);
        peer_free(&s);
    }
    SSL_CTX_free(x);
}

/* ---- versions, ciphers, renegotiation --------------------------------------- */

static SSL_CTX *raw_client_ctx(int minv, int maxv, const char *ciphers)
{
    SSL_CTX *x = SSL_CTX_new(TLS_client_method());
    assert_non_null(x);
    SSL_CTX_set_security_level(x, 0);
    assert_int_equal(SSL_CTX_set_min_proto_version(x, minv), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(x, maxv), 1);
    if (ciphers)
        assert_int_equal(SSL_CTX_set_cipher_list(x, ciphers), 1);
    SSL_CTX_set_verify(x, SSL_VERIFY_NONE, NULL);
    return x;
}

/* RFC 8996: TLS 1.0 and 1.1 are refused with a protocol_version alert. */
static void test_old_versions_refused(void **state)
{
    static const int versions[] = {TLS1_VERSION, TLS1_1_VERSION};
    for (size_t i = 0; i < AL_ARRAY_LEN(versions); i++) {
        SSL_CTX *x = raw_client_ctx(versions[i], versions[i], "DEFAULT:@SECLEVEL=0");
        peer_t c, s;
        peer_raw(&c, x, false);
        peer_engine(&s, g_srv, NULL);
        peer_in(&c, NULL, 0);
        assert_int_equal(c.rc, AL_AGAIN);
        al_buf_t hello, alert;
        al_buf_init(&hello);
        al_buf_init(&alert);
        peer_out(&c, &hello);
        assert_true(hello.len > 0);
        peer_in(&s, (const uint8_t *)hello.p, hello.len);
        assert_int_equal(s.rc, AL_ERR);
        assert_err_has(s.t, "TLS handshake failed: unsupported protocol");
        assert_null(al_tls_version(s.t));
        /* RFC 5246 §7.2: alert record, fatal (2), protocol_version (70) */
        assert_int_equal(al_tls_pending_out(s.t, &alert), AL_OK);
        assert_int_equal(alert.len, 7);
        assert_int_equal((uint8_t)alert.p[0], 21);
        assert_int_equal((uint8_t)alert.p[5], 2);
        assert_int_equal((uint8_t)alert.p[6], 70);
        peer_in(&c, (const uint8_t *)alert.p, alert.len);
        assert_int_equal(c.rc, AL_ERR);
        assert_int_equal(ERR_GET_REASON(c.raw_err), SSL_R_TLSV1_ALERT_PROTOCOL_VERSION);
        al_buf_free(&hello);
        al_buf_free(&alert);
        peer_free(&c);
        peer_free(&s);
        SSL_CTX_free(x);
    }
}

/* A TLS 1.2 client gets ECDHE + AEAD, data flows, and close_notify is
 * answered (RFC 5246 §7.2.1). */
static void test_tls12(void **state)
{
    SSL_CTX *x = raw_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION, NULL);
    peer_t c, s;
    peer_raw(&c, x, false);
    peer_engine(&s, g_srv, NULL);
    connect_pair(&c, &s, SPLIT_RANDOM);
    assert_int_equal(c.rc, AL_OK);
    assert_int_equal(s.rc, AL_OK);
    assert_string_equal(al_tls_version(s.t), "TLSv1.2");
    const char *cipher = SSL_get_cipher_name(c.ssl);
    if (!has_substr(cipher, "ECDHE") ||
        !(has_substr(cipher, "GCM") || has_substr(cipher, "CHACHA20")))
        fail_msg("negotiated %s", cipher);
    assert_null(SSL_get_current_compression(c.ssl));
    transfer(&c, &s, 100000, SPLIT_RANDOM);
    transfer(&s, &c, 100000, SPLIT_RANDOM);
    /* the client closes; the engine answers with its own close_notify */
    assert_true(SSL_shutdown(c.ssl) >= 0);
    move(&c, &s, SPLIT_NONE);
    assert_int_equal(s.rc, AL_TLS_EOF);
    assert_int_equal(al_tls_write(s.t, "late", 4), AL_ERR);
    move(&s, &c, SPLIT_NONE);
    assert_int_equal(c.rc, AL_TLS_EOF);
    assert_true(SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN);
    peer_free(&c);
    peer_free(&s);
    SSL_CTX_free(x);
}

/* Only forward-secret AEAD suites: a CBC / RSA key transport client is
 * refused. */
static void test_weak_ciphers_refused(void **state)
{
    static const char *lists[] = {"AES128-SHA", "AES256-GCM-SHA384", "ECDHE-ECDSA-AES128-SHA",
                                  "ECDHE-ECDSA-AES256-SHA384"};
    for (size_t i = 0; i < AL_ARRAY_LEN(lists); i++) {
        SSL_CTX *x = raw_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION, lists[i]);
        peer_t c, s;
        peer_raw(&c, x, false);
        peer_engine(&s, g_srv, NULL);
        connect_pair(&c, &s, SPLIT_NONE);
        assert_int_equal(s.rc, AL_ERR);
        assert_err_has(s.t, "no shared cipher");
        assert_int_equal(c.rc, AL_ERR);
        peer_free(&c);
        peer_free(&s);
        SSL_CTX_free(x);
    }
}

/* RFC 5246 §7.4.1.1: a renegotiation attempt gets no_renegotiation and
 * no second handshake happens. */
static void test_renegotiation_refused(void **state)
{
    SSL_CTX *x = raw_client_ctx(TLS1_2_VERSION, TLS1_2_VERSION, NULL);
    peer_t c, s;
    peer_raw(&c, x, false);
    peer_engine(&s, g_srv, NULL);
    connect_pair(&c, &s, SPLIT_NONE);
    assert_int_equal(s.rc, AL_OK);
    assert_int_equal(SSL_renegotiate(c.ssl), 1);
    assert_true(SSL_do_handshake(c.ssl) <= 0); /* queues a new ClientHello */
    ERR_clear_error();
    shuttle(&c, &s, SPLIT_NONE);
    assert_int_equal(c.rc, AL_ERR);
    assert_int_equal(ERR_GET_REASON(c.raw_err), SSL_R_NO_RENEGOTIATION);
    /* the client's fatal alert ends it on the server too */
    assert_int_equal(s.rc, AL_ERR);
    assert_err_has(s.t, "TLS error: ");
    peer_free(&c);
    peer_free(&s);
    SSL_CTX_free(x);
}

/* Our client refuses a server stuck at TLS 1.1, too. */
static void test_client_refuses_old_server(void **state)
{
    SSL_CTX *x = raw_server_ctx();
    SSL_CTX_set_security_level(x, 0);
    assert_int_equal(SSL_CTX_set_min_proto_version(x, TLS1_1_VERSION), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(x, TLS1_1_VERSION), 1);
    assert_int_equal(SSL_CTX_set_cipher_list(x, "DEFAULT:@SECLEVEL=0"), 1);
    peer_t c, s;
    peer_engine(&c, g_cli, "localhost");
    peer_raw(&s, x, true);
    connect_pair(&c, &s, SPLIT_NONE);
    assert_int_equal(c.rc, AL_ERR);
    assert_int_equal(s.rc, AL_ERR);
    assert_err_has(c.t, "TLS handshake failed: ");
    peer_free(&c);
    peer_free(&s);
    SSL_CTX_free(x);
}

/* RFC 8446 §4.6.3: the peer rekeys (and asks us to) mid-stream; data keeps
 * flowing both ways under the new keys. */
static void test_key_update(void **state)
{
    SSL_CTX *x = raw_client_ctx(TLS1_3_VERSION, TLS1_3_VERSION, NULL);
    peer_t c, s;
    peer_raw(&c, x, false);
    peer_engine(&s, g_srv, NULL);
    connect_pair(&c, &s, SPLIT_NONE);
    assert_int_equal(s.rc, AL_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(SSL_key_update(c.ssl, SSL_KEY_UPDATE_REQUESTED), 1);
        transfer(&c, &s, 20000, SPLIT_RANDOM);
        transfer(&s, &c, 20000, SPLIT_RANDOM);
        assert_int_equal(SSL_get_key_update_type(c.ssl), SSL_KEY_UPDATE_NONE);
    }
    assert_string_equal(al_tls_error(s.t), "");
    peer_free(&c);
    peer_free(&s);
    SSL_CTX_free(x);
}

/* ---- closing ------------------------------------------------------------------ */

static void test_close_notify(void **state)
{
    peer_t c, s;
    engine_pair(&c, &s, g_cli, "localhost", g_srv);
    assert_int_equal(al_tls_write(c.t, "bye", 3), AL_OK);
    assert_int_equal(al_tls_shutdown(c.t), AL_OK);
    assert_int_equal(al_tls_shutdown(c.t), AL_OK); /* idempotent */
    assert_int_equal(al_tls_write(c.t, "more", 4), AL_ERR);
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_tls_pending_out(c.t, &out), AL_OK);
    /* data before the alert arrives; then EOF, in the same call */
    assert_int_equal(al_tls_feed(s.t, (const uint8_t *)out.p, out.len), AL_OK);
    assert_int_equal(al_tls_read(s.t, &s.plain), AL_TLS_EOF);
    assert_int_equal(s.plain.len, 3);
    assert_memory_equal(s.plain.p, "bye", 3);
    /* RFC 8446 §6.1: data after close_notify is ignored, garbage included */
    assert_int_equal(al_tls_feed(s.t, (const uint8_t *)"\x17\x03\x03\x00\x05zzzzz", 10), AL_OK);
    assert_int_equal(al_tls_read(s.t, &s.plain), AL_TLS_EOF);
    assert_int_equal(s.plain.len, 3);
    /* TLS 1.3 half-close: the server may still talk, then closes too */
    al_buf_reset(&out);
    assert_int_equal(al_tls_pending_out(s.t, &out), AL_OK);
    assert_int_equal(out.len, 0); /* no automatic reply under 1.3 */
    assert_int_equal(al_tls_write(s.t, "last words", 10), AL_OK);
    assert_int_equal(al_tls_shutdown(s.t), AL_OK);
    move(&s, &c, SPLIT_BYTES);
    assert_int_equal(c.rc, AL_TLS_EOF);
    assert_int_equal(c.plain.len, 10);
    assert_memory_equal(c.plain.p, "last words", 10);
    assert_string_equal(al_tls_error(s.t), "");
    assert_string_equal(al_tls_error(c.t), "");
    al_buf_free(&out);
    peer_free(&c);
    peer_free(&s);
}

/* close_notify and trailing junk in one feed: the junk is never parsed. */
static void test_junk_after_close_notify_same_feed(void **state)
{
    peer_t c, s;
    engine_pair(&c, &s, g_cli, "localhost", g_srv);
    assert_int_equal(al_tls_shutdown(s.t), AL_OK);
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_tls_pending_out(s.t, &out), AL_OK);
    assert_true(out.len > 0);
    al_buf_append(&out, "\x15\x03\x03\x00\x02\x02\x28 GET / HTTP/1.1\r\n", 25);
    assert_int_equal(al_tls_feed(c.t, (const uint8_t *)out.p, out.len), AL_OK);
    assert_int_equal(al_tls_read(c.t, &c.plain), AL_TLS_EOF);
    assert_int_equal(c.plain.len, 0);
    assert_string_equal(al_tls_error(c.t), "");
    al_buf_free(&out);
    peer_free(&c);
    peer_free(&s);
}

/* Shutdown before the handshake queues nothing. */
static void test_shutdown_before_handshake(void **state)
{
    al_tls_t *t = al_tls_new(g_srv, NULL);
    assert_non_null(t);
    assert_int_equal(al_tls_shutdown(t), AL_OK);
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_tls_pending_out(t, &out), AL_OK);
    assert_int_equal(out.len, 0);
    al_tls_free(&t);
    assert_null(t);
}

/* ---- hostile input ------------------------------------------------------------- */

static void test_garbage_handshake(void **state)
{
    static const struct {
        const char *p;
        size_t n;
    } inputs[] = {
#define IN(lit) {lit, sizeof(lit) - 1}
        IN("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        IN("\x00\x00\x00\x08\x04\xd2\x16\x2f"), /* a second SSLRequest */
        IN("\x16\x03\x01\xff\xff"),             /* record longer than allowed */
        IN("\x16\x03\x01\x00\x04\x01\x00\x00\x00"), /* empty ClientHello */
        IN("\x17\x03\x03\x00\x01\x00"),         /* application data first */
        IN("\x15\x03\x03\x00\x02\x02\x28"),     /* a fatal alert */
#undef IN
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(inputs); i++) {
        al_tls_t *t = al_tls_new(g_srv, NULL);
        al_buf_t plain;
        al_buf_init(&plain);
        assert_int_equal(al_tls_feed(t, (const uint8_t *)inputs[i].p, inputs[i].n), AL_OK);
        if (al_tls_read(t, &plain) != AL_ERR)
            fail_msg("input %zu accepted", i);
        assert_err_has(t, "TLS handshake failed: ");
        assert_int_equal(plain.len, 0);
        al_buf_free(&plain);
        al_tls_free(&t);
    }
    /* random bytes, both roles: AL_AGAIN (too short to judge) or AL_ERR */
    for (int i = 0; i < 2000; i++) {
        al_tls_t *t = al_tls_new(i & 1 ? g_srv : g_cli, i & 1 ? NULL : "localhost");
        al_buf_t plain, out;
        al_buf_init(&plain);
        al_buf_init(&out);
        uint8_t junk[3000];
        size_t n = 1 + (size_t)(rng() % sizeof junk);
        rng_fill(junk, n);
        if (i % 3 == 0) { /* plausible handshake record header */
            junk[0] = 0x16;
            if (n > 2) {
                junk[1] = 3;
                junk[2] = (uint8_t)(rng() % 5);
            }
        }
        if (!(i & 1))
            assert_int_equal(al_tls_read(t, &plain), AL_AGAIN); /* ClientHello */
        assert_int_equal(al_tls_feed(t, junk, n), AL_OK);
        int rc = al_tls_read(t, &plain);
        assert_true(rc == AL_AGAIN || rc == AL_ERR);
        assert_int_equal(plain.len, 0);
        assert_int_equal(al_tls_pending_out(t, &out), AL_OK);
        al_buf_free(&plain);
        al_buf_free(&out);
        al_tls_free(&t);
    }
}

/* A flipped bit in an application record: bad MAC, fatal, sticky. */
static void test_tampered_record(void **state)
{
    peer_t c, s;
    engine_pair(&c, &s, g_cli, "localhost", g_srv);
    assert_int_equal(al_tls_write(c.t, "transfer 100 to alice", 21), AL_OK);
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_tls_pending_out(c.t, &out), AL_OK);
    out.p[10] ^= 0x01;
    assert_int_equal(al_tls_feed(s.t, (const uint8_t *)out.p, out.len), AL_OK);
    assert_int_equal(al_tls_read(s.t, &s.plain), AL_ERR);
    assert_int_equal(s.plain.len, 0);
    assert_err_has(s.t, "TLS error: ");
    assert_err_has(s.t, "bad record mac");
    assert_true(al_tls_handshake_done(s.t));
    assert_int_equal(al_tls_write(s.t, "x", 1), AL_ERR);
    /* the server's bad_record_mac alert ends the client too */
    move(&s, &c, SPLIT_NONE);
    assert_int_equal(c.rc, AL_ERR);
    assert_err_has(c.t, "TLS error: peer sent alert: bad record mac");
    al_buf_free(&out);
    peer_free(&c);
    peer_free(&s);
}

/* RFC 8446 §5.2: a record longer than 2^14 + 256 is a record_overflow. */
static void test_oversized_record(void **state)
{
    peer_t c, s;
    engine_pair(&c, &s, g_cli, "localhost", g_srv);
    uint8_t rec[5 + 16641];
    rec[0] = 0x17;
    rec[1] = 0x03;
    rec[2] = 0x03;
    rec[3] = (uint8_t)(16641 >> 8);
    rec[4] = (uint8_t)(16641 & 0xff);
    rng_fill(rec + 5, sizeof rec - 5);
    assert_int_equal(al_tls_feed(s.t, rec, sizeof rec), AL_OK);
    assert_int_equal(al_tls_read(s.t, &s.plain), AL_ERR);
    assert_err_has(s.t, "TLS error: ");
    move(&s, &c, SPLIT_NONE);
    assert_int_equal(c.rc, AL_ERR);
    assert_err_has(c.t, "TLS error: peer sent alert: record overflow");
    peer_free(&c);
    peer_free(&s);
    /* the largest legal record, 2^14 bytes of plaintext, passes whole and
     * byte by byte */
    engine_pair(&c, &s, g_cli, "localhost", g_srv);
    transfer(&c, &s, 16384, SPLIT_NONE);
    transfer(&c, &s, 16384, SPLIT_BYTES);
    peer_free(&c);
    peer_free(&s);
}

/* Feeding without reading is bounded. */
static void test_unread_cap(void **state)
{
    al_tls_t *t = al_tls_new(g_srv, NULL);
    size_t chunk = 1 << 20;
    uint8_t *z = calloc(1, chunk);
    assert_non_null(z);
    size_t fed = 0;
    int rc;
    while ((rc = al_tls_feed(t, z, chunk)) == AL_OK)
        fed += chunk;
    assert_int_equal(rc, AL_ERR);
    assert_true(fed <= AL_TLS_MAX_UNREAD);
    assert_true(fed + chunk > AL_TLS_MAX_UNREAD);
    assert_err_has(t, "input not consumed");
    al_tls_free(&t);
    /* the pre-handshake write queue too */
    t = al_tls_new(g_srv, NULL);
    fed = 0;
    while ((rc = al_tls_write(t, z, chunk)) == AL_OK)
        fed += chunk;
    assert_int_equal(rc, AL_ERR);
    assert_true(fed <= AL_TLS_MAX_QUEUED);
    assert_err_has(t, "too much data queued");
    al_tls_free(&t);
    free(z);
}

/* ---- contexts ----------------------------------------------------------------- */

static void expect_ctx_err(al_tls_ctx_t *c, const char *err, const char *a, const char *b)
{
    assert_null(c);
    if (!has_substr(err, a) || (b && !has_substr(err, b)))
        fail_msg("error \"%s\" lacks \"%s\" / \"%s\"", err, a, b ? b : "");
}

static void test_ctx_errors(void **state)
{
    char err[512];
    err[0] = '\0';
    expect_ctx_err(al_tls_server_ctx(D "nope.pem", D "server.key", err, sizeof err), err,
                   "cannot load certificate chain from '" D "nope.pem'", "No such file");
    expect_ctx_err(al_tls_server_ctx(D "server.pem", D "nope.key", err, sizeof err), err,
                   "cannot load private key from '" D "nope.key'", NULL);
    expect_ctx_err(al_tls_server_ctx(D "README.md", D "server.key", err, sizeof err), err,
                   "cannot load certificate chain from '" D "README.md'", NULL);
    expect_ctx_err(al_tls_server_ctx(D "server.pem", D "wronghost.key", err, sizeof err), err,
                   "private key '" D "wronghost.key' does not match certificate '" D
                   "server.pem'",
                   NULL);
    /* an encrypted key is refused, not prompted for */
    expect_ctx_err(al_tls_server_ctx(D "server.pem", D "server-enc.key", err, sizeof err), err,
                   "cannot load private key from '" D "server-enc.key'", NULL);
    /* a certificate given as the key */
    expect_ctx_err(al_tls_server_ctx(D "server.pem", D "server.pem", err, sizeof err), err,
                   "cannot load private key from '" D "server.pem'", NULL);
    expect_ctx_err(al_tls_server_ctx(NULL, D "server.key", err, sizeof err), err,
                   "certificate file and a key file", NULL);
    expect_ctx_err(al_tls_client_ctx(D "nope.pem", true, err, sizeof err), err,
                   "cannot load CA certificates from '" D "nope.pem'", "No such file");
    expect_ctx_err(al_tls_client_ctx(D "README.md", true, err, sizeof err), err,
                   "cannot load CA certificates from '" D "README.md'", NULL);
    expect_ctx_err(al_tls_client_ctx(D "ca.pem", false, err, sizeof err), err,
                   "verification is off", NULL);
    /* a tiny or absent err buffer is fine */
    char tiny[8];
    assert_null(al_tls_client_ctx(D "nope.pem", true, tiny, sizeof tiny));
    assert_int_equal(strlen(tiny), 7);
    assert_null(al_tls_client_ctx(D "nope.pem", true, NULL, 0));
    /* an error on one context does not leak into the next connection */
    peer_t c, s;
    engine_pair(&c, &s, g_cli, "localhost", g_srv);
    assert_int_equal(c.rc, AL_OK);
    peer_free(&c);
    peer_free(&s);
}

/* Connections outlive the context they came from. */
static void test_ctx_freed_first(void **state)
{
    al_tls_ctx_t *sc = server_ctx(D "server.pem", D "server.key");
    al_tls_ctx_t *cc = client_ctx(D "ca.pem", true);
    peer_t c, s;
    peer_engine(&c, cc, "localhost");
    peer_engine(&s, sc, NULL);
    al_tls_ctx_free(&sc);
    al_tls_ctx_free(&cc);
    assert_null(sc);
    connect_pair(&c, &s, SPLIT_RANDOM);
    assert_int_equal(c.rc, AL_OK);
    transfer(&c, &s, 50000, SPLIT_RANDOM);
    peer_free(&c);
    peer_free(&s);
}

/* Shared contexts across threads; every thread alternates good and failed
 * handshakes, so a leaked error queue would show up as a wrong reason. */
static void *thread_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    int bad = 0;
    for (int i = 0; i < 40; i++) {
        bool fail = ((i + id) % 3) == 0;
        al_tls_t *c = al_tls_new(g_cli, fail ? "wrong.example" : "localhost");
        al_tls_t *s = al_tls_new(g_srv, NULL);
        al_buf_t pc, ps, wire;
        al_buf_init(&pc);
        al_buf_init(&ps);
        al_buf_init(&wire);
        int rc_c = al_tls_read(c, &pc), rc_s = AL_AGAIN;
        al_tls_write(c, "ping", 4);
        for (int r = 0; r < 20; r++) {
            al_buf_reset(&wire);
            al_tls_pending_out(c, &wire);
            if (wire.len && rc_s != AL_ERR && al_tls_feed(s, (uint8_t *)wire.p, wire.len) == AL_OK)
                rc_s = al_tls_read(s, &ps);
            al_buf_reset(&wire);
            al_tls_pending_out(s, &wire);
            if (wire.len && rc_c != AL_ERR && al_tls_feed(c, (uint8_t *)wire.p, wire.len) == AL_OK)
                rc_c = al_tls_read(c, &pc);
        }
        if (fail) {
            bad += rc_c != AL_ERR ||
                   strcmp(al_tls_error(c), "certificate verify failed: hostname mismatch") != 0;
        } else {
            bad += rc_c != AL_OK || rc_s != AL_OK || ps.len != 4 || al_tls_error(c)[0] != '\0';
        }
        al_buf_free(&pc);
        al_buf_free(&ps);
        al_buf_free(&wire);
        al_tls_free(&c);
        al_tls_free(&s);
    }
    return (void *)(intptr_t)bad;
}

static void test_threads(void **state)
{
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, thread_main, (void *)(intptr_t)i), 0);
    for (int i = 0; i < 4; i++) {
        void *r;
        assert_int_equal(pthread_join(th[i], &r), 0);
        assert_int_equal((intptr_t)r, 0);
    }
}

/* ---- the real openssl CLI over loopback --------------------------------------- */

static bool have_openssl_cli(void) { return system("openssl version >/dev/null 2>&1") == 0; }

/* Reads what is available on fd into b within ms; false on timeout/EOF. */
static bool read_some(int fd, al_buf_t *b, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1)
        return false;
    char buf[65536];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0)
        return false;
    assert_int_equal(al_buf_append(b, buf, (size_t)n), AL_OK);
    return true;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static void flush_tls(al_tls_t *t, int fd)
{
    al_buf_t out;
    al_buf_init(&out);
    assert_int_equal(al_tls_pending_out(t, &out), AL_OK);
    write_all(fd, out.p, out.len);
    al_buf_free(&out);
}

/* Runs argv with stdin/stdout(+stderr) pipes; returns the pid. */
static pid_t spawn(char *const argv[], int *to_child, int *from_child)
{
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(in[0], 0);
        dup2(out[1], 1);
        dup2(out[1], 2);
        close(in[0]);
        close(in[1]);
        close(out[0]);
        close(out[1]);
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *to_child = in[1];
    *from_child = out[0];
    return pid;
}

static int reap(pid_t pid)
{
    int st = 0;
    for (int i = 0; i < 100; i++) {
        if (waitpid(pid, &st, WNOHANG) == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        usleep(50000);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return -1;
}

/* openssl s_client (verify-full against our CA) -> engine server. */
static void test_openssl_s_client(void **state)
{
    if (!have_openssl_cli())
        skip();
    signal(SIGPIPE, SIG_IGN);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ls >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(ls, 1), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &al), 0);
    char addr[32];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", ntohs(a.sin_port));
    char *argv[] = {"openssl", "s_client", "-connect", addr, "-CAfile", D "ca.pem",
                    "-verify_return_error", "-verify_hostname", "localhost", "-servername",
                    "localhost", NULL};
    int to, from;
    pid_t pid = spawn(argv, &to, &from);
    write_all(to, "ping\n", 5);

    struct pollfd p = {.fd = ls, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 10000), 1);
    int fd = accept(ls, NULL, NULL);
    assert_true(fd >= 0);
    al_tls_t *t = al_tls_new(g_srv, NULL);
    al_buf_t wire, plain, child_out;
    al_buf_init(&wire);
    al_buf_init(&plain);
    al_buf_init(&child_out);
    int rc = AL_AGAIN;
    while (!has_substr(plain.p, "ping\n")) {
        al_buf_reset(&wire);
        if (!read_some(fd, &wire, 10000))
            fail_msg("s_client went quiet; plain so far %zu bytes", plain.len);
        assert_int_equal(al_tls_feed(t, (uint8_t *)wire.p, wire.len), AL_OK);
        rc = al_tls_read(t, &plain);
        flush_tls(t, fd);
        if (rc == AL_ERR)
            fail_msg("engine: %s", al_tls_error(t));
    }
    assert_string_equal(al_tls_version(t), "TLSv1.3");
    assert_int_equal(al_tls_write(t, "pong\n", 5), AL_OK);
    assert_int_equal(al_tls_shutdown(t), AL_OK);
    flush_tls(t, fd);
    close(to);
    while (read_some(from, &child_out, 10000))
        ;
    int status = reap(pid);
    close(fd);
    close(ls);
    close(from);
    if (!has_substr(child_out.p, "pong") || !has_substr(child_out.p, "Verify return code: 0 (ok)"))
        fail_msg("s_client said:\n%s", child_out.p ? child_out.p : "");
    assert_int_equal(status, 0);
    al_tls_free(&t);
    al_buf_free(&wire);
    al_buf_free(&plain);
    al_buf_free(&child_out);
}

/* engine client (verify-full) -> openssl s_server -rev (replies reversed). */
static void test_openssl_s_server(void **state)
{
    if (!have_openssl_cli())
        skip();
    signal(SIGPIPE, SIG_IGN);
    char *argv[] = {"openssl", "s_server", "-accept", "127.0.0.1:0", "-naccept", "1", "-rev",
                    "-cert", D "server.pem", "-key", D "server.key", NULL};
    int to, from;
    pid_t pid = spawn(argv, &to, &from);
    al_buf_t banner;
    al_buf_init(&banner);
    const char *acc;
    while (!(acc = strstr(banner.p ? banner.p : "", "ACCEPT 127.0.0.1:")) || !strchr(acc, '\n'))
        if (!read_some(from, &banner, 10000))
            fail_msg("s_server said:\n%s", banner.p ? banner.p : "");
    int port = atoi(acc + strlen("ACCEPT 127.0.0.1:"));
    assert_true(port > 0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);

    al_tls_t *t = al_tls_new(g_cli, "127.0.0.1");
    al_buf_t wire, plain;
    al_buf_init(&wire);
    al_buf_init(&plain);
    assert_int_equal(al_tls_write(t, "airlock\n", 8), AL_OK);
    int rc = al_tls_read(t, &plain);
    flush_tls(t, fd);
    while (!has_substr(plain.p, "kcolria")) {
        al_buf_reset(&wire);
        if (!read_some(fd, &wire, 10000))
            fail_msg("s_server went quiet (rc %d, %s)", rc, al_tls_error(t));
        assert_int_equal(al_tls_feed(t, (uint8_t *)wire.p, wire.len), AL_OK);
        rc = al_tls_read(t, &plain);
        flush_tls(t, fd);
        if (rc == AL_ERR)
            fail_msg("engine: %s", al_tls_error(t));
    }
    assert_string_equal(al_tls_version(t), "TLSv1.3");
    assert_int_equal(al_tls_shutdown(t), AL_OK);
    flush_tls(t, fd);
    close(fd);
    close(to);
    while (read_some(from, &banner, 5000))
        ;
    reap(pid);
    close(from);
    al_tls_free(&t);
    al_buf_free(&wire);
    al_buf_free(&plain);
    al_buf_free(&banner);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_tls13),
        cmocka_unit_test(test_data_sizes),
        cmocka_unit_test(test_bytewise_and_random_splits),
        cmocka_unit_test(test_full_duplex),
        cmocka_unit_test(test_write_before_handshake),
        cmocka_unit_test(test_verify_full_ok),
        cmocka_unit_test(test_verify_wrong_host),
        cmocka_unit_test(test_verify_wildcards),
        cmocka_unit_test(test_verify_wrong_ca),
        cmocka_unit_test(test_verify_expired),
        cmocka_unit_test(test_no_verify),
        cmocka_unit_test(test_new_rules),
        cmocka_unit_test(test_sni),
        cmocka_unit_test(test_old_versions_refused),
        cmocka_unit_test(test_tls12),
        cmocka_unit_test(test_weak_ciphers_refused),
        cmocka_unit_test(test_renegotiation_refused),
        cmocka_unit_test(test_client_refuses_old_server),
        cmocka_unit_test(test_key_update),
        cmocka_unit_test(test_close_notify),
        cmocka_unit_test(test_junk_after_close_notify_same_feed),
        cmocka_unit_test(test_shutdown_before_handshake),
        cmocka_unit_test(test_garbage_handshake),
        cmocka_unit_test(test_tampered_record),
        cmocka_unit_test(test_oversized_record),
        cmocka_unit_test(test_unread_cap),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_ctx_freed_first),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_openssl_s_client),
        cmocka_unit_test(test_openssl_s_server),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
