/* Unit tests of src/proto/pg/pg_auth.c.
 *
 * SCRAM-SHA-256 is replayed against RFC 7677 §3 (client nonce fixed by the
 * test hook), then every server message is tampered with. MD5 answers are
 * checked against values computed independently (Python hashlib). The last
 * tests log in to a real PostgreSQL started in a temporary directory with
 * initdb + pg_ctl; they are skipped when that cannot be done (no server
 * binaries, no "postgres" user to run it as, AL_TEST_NO_PG set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <glob.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto/pg/pg_auth.h"

/* RFC 7677 §3 */
#define RFC_USER "user"
#define RFC_PASSWORD "pencil"
#define RFC_NONCE "rOprNGfwEbeRWgbNEkqO"
#define RFC_CLIENT_FIRST "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
#define RFC_SERVER_NONCE "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
#define RFC_SERVER_FIRST "r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
#define RFC_CLIENT_FINAL \
    "c=biws,r=" RFC_SERVER_NONCE ",p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
#define RFC_SERVER_FINAL "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="

/* ---- helpers ---------------------------------------------------------------------- */

/* A parsed Authentication message and the bytes it points into. */
typedef struct req {
    al_buf_t b;
    al_pg_authreq_t r;
} req_t;

static void req_parse(req_t *q)
{
    assert_false(q->b.oom);
    assert_true(q->b.len >= 5 && q->b.p[0] == 'R');
    assert_int_equal(al_pg_parse_authentication((const uint8_t *)q->b.p + 5, q->b.len - 5, &q->r), AL_PG_OK);
}

static req_t *req_new(void)
{
    req_t *q = calloc(1, sizeof *q);
    assert_non_null(q);
    al_buf_init(&q->b);
    return q;
}

static void req_free(req_t *q)
{
    al_buf_free(&q->b);
    free(q);
}

static req_t *req_sasl(const char *const *mechs, size_t n)
{
    req_t *q = req_new();
    assert_int_equal(al_pg_build_auth_sasl(&q->b, mechs, n), AL_OK);
    req_parse(q);
    return q;
}

static req_t *req_data(int code, const char *data, size_t len)
{
    req_t *q = req_new();
    if (code == AL_PG_AUTHREQ_SASL_CONTINUE)
        assert_int_equal(al_pg_build_auth_sasl_continue(&q->b, data, len), AL_OK);
    else
        assert_int_equal(al_pg_build_auth_sasl_final(&q->b, data, len), AL_OK);
    req_parse(q);
    return q;
}

static req_t *req_code(uint32_t code, const uint8_t *extra, size_t n)
{
    req_t *q = req_new();
    uint8_t h[9] = {'R', 0, 0, 0, (uint8_t)(8 + n), (uint8_t)(code >> 24), (uint8_t)(code >> 16),
                    (uint8_t)(code >> 8), (uint8_t)code};
    al_buf_append(&q->b, h, sizeof h);
    al_buf_append(&q->b, extra, n);
    req_parse(q);
    return q;
}

/* Feeds one request and frees it. */
static al_pg_auth_rc_t step(al_pg_auth_t *a, req_t *q, al_buf_t *out)
{
    al_pg_auth_rc_t rc = al_pg_auth_step(a, &q->r, out);
    req_free(q);
    return rc;
}

static const char *const SCRAM_ONLY[] = {"SCRAM-SHA-256"};

/* The message a SEND appended: its type byte and body. */
static al_str_t sent_body(const al_buf_t *out, char type)
{
    assert_true(out->len >= 5);
    assert_int_equal(out->p[0], type);
    uint32_t n = al_pg_u32((const uint8_t *)out->p + 1);
    assert_int_equal(n + 1, out->len);
    return (al_str_t){out->p + 5, out->len - 5};
}

/* init with the RFC credentials, fixed nonce, through client-first. */
static void rfc_to_first(al_pg_auth_t *a, al_buf_t *out)
{
    assert_int_equal(al_pg_auth_init(a, RFC_USER, RFC_PASSWORD, NULL), AL_OK);
    assert_int_equal(al_pg_auth_test_set_nonce(a, RFC_NONCE), AL_OK);
    al_buf_reset(out);
    assert_int_equal(step(a, req_sasl(SCRAM_ONLY, 1), out), AL_PG_AUTH_SEND);
}

/* ---- RFC 7677 §3 ------------------------------------------------------------------- */

static void test_scram_rfc7677(void **state)
{
    AL_UNUSED(state);
    al_pg_auth_t a;
    al_buf_t out;
    al_buf_init(&out);
    const char *mechs[] = {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"};
    assert_int_equal(al_pg_auth_init(&a, RFC_USER, RFC_PASSWORD, NULL), AL_OK);
    assert_int_equal(al_pg_auth_test_set_nonce(&a, RFC_NONCE), AL_OK);

    /* SASLInitialResponse: the plain mechanism, no channel binding */
    assert_int_equal(step(&a, req_sasl(mechs, 2), &out), AL_PG_AUTH_SEND);
    al_str_t body = sent_body(&out, 'p');
    al_pg_sasl_initial_t si;
    assert_int_equal(al_pg_parse_sasl_initial((const uint8_t *)body.p, body.len, &si), AL_PG_OK);
    assert_true(al_str_eq_c(si.mechanism, "SCRAM-SHA-256"));
    assert_true(si.has_data);
    assert_true(al_str_eq_c(si.data, RFC_CLIENT_FIRST));
    assert_int_equal(a.method, AL_PG_AUTH_METHOD_SCRAM);

    /* SASLResponse: client-final with the RFC's proof */
    al_buf_reset(&out);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), &out),
                     AL_PG_AUTH_SEND);
    body = sent_body(&out, 'p');
    assert_true(al_str_eq_c(body, RFC_CLIENT_FINAL));

    /* server-final verified: nothing to send, success still to come */
    al_buf_reset(&out);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_FINAL, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), &out),
                     AL_PG_AUTH_CONTINUE);
    assert_int_equal(out.len, 0);
    assert_int_equal(a.state, AL_PG_AUTH_S_SCRAM_VERIFIED);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_OK, NULL, 0), &out), AL_PG_AUTH_DONE);
    assert_int_equal(a.state, AL_PG_AUTH_S_DONE);
    /* the password is gone once done */
    assert_int_equal(a.password[0], '\0');
    /* anything after DONE is out of order */
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_OK, NULL, 0), &out), AL_PG_AUTH_E_UNEXPECTED);
    al_pg_auth_free(&a);
    al_buf_free(&out);
}

static void test_scram_user_escaping_and_nonce(void **state)
{
    AL_UNUSED(state);
    al_pg_auth_t a, b;
    al_buf_t out, out2;
    al_buf_init(&out);
    al_buf_init(&out2);
    /* RFC 5802 §5.1: ',' and '=' in the name are escaped */
    assert_int_equal(al_pg_auth_init(&a, "a,b=c", "x", NULL), AL_OK);
    assert_int_equal(al_pg_auth_test_set_nonce(&a, "abc"), AL_OK);
    assert_int_equal(step(&a, req_sasl(SCRAM_ONLY, 1), &out), AL_PG_AUTH_SEND);
    al_pg_sasl_initial_t si;
    al_str_t body = sent_body(&out, 'p');
    assert_int_equal(al_pg_parse_sasl_initial((const uint8_t *)body.p, body.len, &si), AL_PG_OK);
    assert_true(al_str_eq_c(si.data, "n,,n=a=2Cb=3Dc,r=abc"));
    al_pg_auth_free(&a);

    /* drawn nonces: 24 base64 characters, different each time */
    al_buf_reset(&out);
    assert_int_equal(al_pg_auth_init(&a, "u", "x", NULL), AL_OK);
    assert_int_equal(al_pg_auth_init(&b, "u", "x", NULL), AL_OK);
    assert_int_equal(step(&a, req_sasl(SCRAM_ONLY, 1), &out), AL_PG_AUTH_SEND);
    assert_int_equal(step(&b, req_sasl(SCRAM_ONLY, 1), &out2), AL_PG_AUTH_SEND);
    assert_int_equal(strlen(a.nonce), 24);
    assert_int_equal(strspn(a.nonce, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"), 24);
    assert_string_not_equal(a.nonce, b.nonce);
    /* the hook is refused once the exchange began, and for bad nonces */
    assert_int_equal(al_pg_auth_test_set_nonce(&a, "abc"), AL_ERR);
    al_pg_auth_free(&a);
    al_pg_auth_free(&b);
    assert_int_equal(al_pg_auth_init(&a, "u", "x", NULL), AL_OK);
    assert_int_equal(al_pg_auth_test_set_nonce(&a, ""), AL_ERR);
    assert_int_equal(al_pg_auth_test_set_nonce(&a, "a,b"), AL_ERR);
    assert_int_equal(al_pg_auth_test_set_nonce(&a, "a b"), AL_ERR);
    assert_int_equal(al_pg_auth_test_set_nonce(&a, NULL), AL_ERR);
    char longn[AL_PG_SCRAM_NONCE_MAX + 2];
    memset(longn, 'n', sizeof longn - 1);
    longn[sizeof longn - 1] = 0;
    assert_int_equal(al_pg_auth_test_set_nonce(&a, longn), AL_ERR);
    longn[AL_PG_SCRAM_NONCE_MAX] = 0;
    assert_int_equal(al_pg_auth_test_set_nonce(&a, longn), AL_OK);
    al_pg_auth_free(&a);
    assert_int_equal(al_pg_auth_init(&a, NULL, "x", NULL), AL_ERR);
    assert_int_equal(al_pg_auth_init(&a, "u", NULL, NULL), AL_ERR);
    al_buf_free(&out);
    al_buf_free(&out2);
}

/* ---- hostile server-first / server-final ------------------------------------------------ */

static void test_scram_bad_server_first(void **state)
{
    AL_UNUSED(state);
    struct {
        const char *msg;
        size_t len; /* 0 = strlen */
        al_pg_auth_rc_t want;
    } cases[] = {
        {"r=" RFC_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", 0, AL_PG_AUTH_E_NONCE},   /* no server part */
        {"r=XOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", 0, AL_PG_AUTH_E_NONCE},
        {"r=rOprNGfwEbeRWgbNEk,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", 0, AL_PG_AUTH_E_NONCE}, /* shorter */
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095", 0, AL_PG_AUTH_E_ITERATIONS},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001", 0, AL_PG_AUTH_E_ITERATIONS},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4294967296", 0, AL_PG_AUTH_E_ITERATIONS},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=99999999999", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=04096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096x", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-4096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,x=1", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",i=4096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=,i=4096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gR==,i=4096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_SERVER_NONCE ",s=W22Z aJ0SNY7soEsUEjb6gQ==,i=4096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=" RFC_SERVER_NONCE ",i=4096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"m=ext,r=" RFC_SERVER_NONCE ",s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_NONCE "\x01x,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=" RFC_NONCE "x\0y,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", 59, AL_PG_AUTH_E_BAD_MESSAGE},
        {"", 0, AL_PG_AUTH_E_BAD_MESSAGE},
        {"r=", 0, AL_PG_AUTH_E_BAD_MESSAGE},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        al_pg_auth_t a;
        al_buf_t out;
        al_buf_init(&out);
        rfc_to_first(&a, &out);
        size_t len = cases[i].len ? cases[i].len : strlen(cases[i].msg);
        al_buf_reset(&out);
        al_pg_auth_rc_t rc = step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, cases[i].msg, len), &out);
        if (rc != cases[i].want)
            fail_msg("case %zu (%s): got %s", i, cases[i].msg, al_pg_auth_rc_str(rc));
        assert_int_equal(out.len, 0);
        assert_int_equal(a.state, AL_PG_AUTH_S_FAILED);
        /* sticky: the real server-first does not revive it */
        assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), &out),
                         cases[i].want);
        assert_int_equal(out.len, 0);
        al_pg_auth_free(&a);
        al_buf_free(&out);
    }
    /* a raised minimum */
    al_pg_auth_t a;
    al_buf_t out;
    al_buf_init(&out);
    al_pg_auth_opts_t o = {AL_PG_AUTH_ALLOW_SCRAM, 10000, 0};
    assert_int_equal(al_pg_auth_init(&a, RFC_USER, RFC_PASSWORD, &o), AL_OK);
    assert_int_equal(al_pg_auth_test_set_nonce(&a, RFC_NONCE), AL_OK);
    assert_int_equal(step(&a, req_sasl(SCRAM_ONLY, 1), &out), AL_PG_AUTH_SEND);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), &out),
                     AL_PG_AUTH_E_ITERATIONS);
    al_pg_auth_free(&a);
    al_buf_free(&out);
}

static void test_scram_bad_server_final(void **state)
{
    AL_UNUSED(state);
    struct {
        const char *msg;
        al_pg_auth_rc_t want;
    } cases[] = {
        {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G5=", AL_PG_AUTH_E_BAD_MESSAGE}, /* non-zero pad bits */
        {"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", AL_PG_AUTH_E_SERVER_PROOF},
        {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,x=1", AL_PG_AUTH_E_BAD_MESSAGE},
        {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl9", AL_PG_AUTH_E_BAD_MESSAGE},
        {"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4", AL_PG_AUTH_E_BAD_MESSAGE},
        {"v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", AL_PG_AUTH_E_SERVER_PROOF},
        {"v=", AL_PG_AUTH_E_BAD_MESSAGE},
        {"e=invalid-proof", AL_PG_AUTH_E_SERVER_ERROR},
        {"", AL_PG_AUTH_E_BAD_MESSAGE},
        {"x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", AL_PG_AUTH_E_BAD_MESSAGE},
    };
    for (size_t i = 0; i < AL_ARRAY_LEN(cases); i++) {
        al_pg_auth_t a;
        al_buf_t out;
        al_buf_init(&out);
        rfc_to_first(&a, &out);
        assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), &out),
                         AL_PG_AUTH_SEND);
        al_pg_auth_rc_t rc = step(&a, req_data(AL_PG_AUTHREQ_SASL_FINAL, cases[i].msg, strlen(cases[i].msg)), &out);
        if (rc != cases[i].want)
            fail_msg("case %zu (%s): got %s", i, cases[i].msg, al_pg_auth_rc_str(rc));
        /* fail closed: a following AuthenticationOk does not help */
        assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_OK, NULL, 0), &out), cases[i].want);
        assert_int_equal(a.state, AL_PG_AUTH_S_FAILED);
        al_pg_auth_free(&a);
        al_buf_free(&out);
    }
}

/* Messages out of order: a server that never proves itself. */
static void test_scram_out_of_order(void **state)
{
    AL_UNUSED(state);
    al_pg_auth_t a;
    al_buf_t out;
    al_buf_init(&out);
    /* AuthenticationOk right after client-first */
    rfc_to_first(&a, &out);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_OK, NULL, 0), &out), AL_PG_AUTH_E_UNEXPECTED);
    al_pg_auth_free(&a);
    /* AuthenticationOk instead of SASLFinal */
    rfc_to_first(&a, &out);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), &out),
                     AL_PG_AUTH_SEND);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_OK, NULL, 0), &out), AL_PG_AUTH_E_UNEXPECTED);
    al_pg_auth_free(&a);
    /* SASLFinal before SASLContinue; SASLContinue twice; a second SASL start */
    rfc_to_first(&a, &out);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_FINAL, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), &out),
                     AL_PG_AUTH_E_UNEXPECTED);
    al_pg_auth_free(&a);
    rfc_to_first(&a, &out);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), &out),
                     AL_PG_AUTH_SEND);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), &out),
                     AL_PG_AUTH_E_UNEXPECTED);
    al_pg_auth_free(&a);
    rfc_to_first(&a, &out);
    assert_int_equal(step(&a, req_sasl(SCRAM_ONLY, 1), &out), AL_PG_AUTH_E_UNEXPECTED);
    al_pg_auth_free(&a);
    /* SASLContinue with nothing started */
    assert_int_equal(al_pg_auth_init(&a, "u", "p", NULL), AL_OK);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), &out),
                     AL_PG_AUTH_E_UNEXPECTED);
    al_pg_auth_free(&a);
    /* a verified server-final, then SASLFinal again */
    rfc_to_first(&a, &out);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_CONTINUE, RFC_SERVER_FIRST, strlen(RFC_SERVER_FIRST)), &out),
                     AL_PG_AUTH_SEND);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_FINAL, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), &out),
                     AL_PG_AUTH_CONTINUE);
    assert_int_equal(step(&a, req_data(AL_PG_AUTHREQ_SASL_FINAL, RFC_SERVER_FINAL, strlen(RFC_SERVER_FINAL)), &out),
                     AL_PG_AUTH_E_UNEXPECTED);
    al_pg_auth_free(&a);
    /* NULL arguments */
    assert_int_equal(al_pg_auth_init(&a, "u", "p", NULL), AL_OK);
    req_t *q = req_sasl(SCRAM_ONLY, 1);
    assert_int_equal(al_pg_auth_step(&a, &q->r, NULL), AL_PG_AUTH_E_BAD_CALL);
    assert_int_equal(al_pg_auth_step(&a, NULL, &out), AL_PG_AUTH_E_BAD_CALL);
    assert_int_equal(al_pg_auth_step(NULL, &q->r, &out), AL_PG_AUTH_E_BAD_CALL);
    req_free(q);
    al_pg_auth_free(&a);
    al_buf_free(&out);
}

/* ---- methods and policy --------------------------------------------------------------- */

static void test_md5(void **state)
{
    AL_UNUSED(state);
    char out[36];
    static const uint8_t s1[4] = {1, 2, 3, 4}, s2[4] = {0xde, 0xad, 0xbe, 0xef};
    assert_int_equal(al_pg_md5_password("user", "pencil", s1, out), AL_OK);
    assert_string_equal(out, "md54376eb6913b38f9aaff38dc7cf19ca76");
    assert_int_equal(al_pg_md5_password("postgres", "secret", s2, out), AL_OK);
    assert_string_equal(out, "md5c546d0bbed2af888b328536b45c76348");

    al_pg_auth_t a;
    al_buf_t b;
    al_buf_init(&b);
    al_pg_auth_opts_t o = {AL_PG_AUTH_ALLOW_MD5, 0, 0};
    assert_int_equal(al_pg_auth_init(&a, "postgres", "secret", &o), AL_OK);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_MD5, s2, 4), &b), AL_PG_AUTH_SEND);
    al_str_t body = sent_body(&b, 'p');
    assert_true(al_str_eq(body, (al_str_t){"md5c546d0bbed2af888b328536b45c76348", 36})); /* NUL included */
    assert_int_equal(a.method, AL_PG_AUTH_METHOD_MD5);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_OK, NULL, 0), &b), AL_PG_AUTH_DONE);
    al_pg_auth_free(&a);
    al_buf_free(&b);
}

static void test_methods_and_policy(void **state)
{
    AL_UNUSED(state);
    al_pg_auth_t a;
    al_buf_t b;
    al_buf_init(&b);
    static const uint8_t salt[4] = {9, 9, 9, 9};
    al_pg_auth_opts_t any = {AL_PG_AUTH_ALLOW_ANY, 0, 0};

    /* cleartext allowed */
    assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", &any), AL_OK);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_CLEARTEXT, NULL, 0), &b), AL_PG_AUTH_SEND);
    assert_true(al_str_eq(sent_body(&b, 'p'), (al_str_t){"s3cret", 7}));
    assert_int_equal(a.method, AL_PG_AUTH_METHOD_CLEARTEXT);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_OK, NULL, 0), &b), AL_PG_AUTH_DONE);
    al_pg_auth_free(&a);
    /* trust allowed */
    assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", &any), AL_OK);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_OK, NULL, 0), &b), AL_PG_AUTH_DONE);
    assert_int_equal(a.method, AL_PG_AUTH_METHOD_TRUST);
    al_pg_auth_free(&a);

    /* default policy: SCRAM only; everything else refused, nothing sent */
    al_buf_reset(&b);
    assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", NULL), AL_OK);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_CLEARTEXT, NULL, 0), &b), AL_PG_AUTH_E_NOT_ALLOWED);
    al_pg_auth_free(&a);
    assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", NULL), AL_OK);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_MD5, salt, 4), &b), AL_PG_AUTH_E_NOT_ALLOWED);
    al_pg_auth_free(&a);
    assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", NULL), AL_OK);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_OK, NULL, 0), &b), AL_PG_AUTH_E_NOT_ALLOWED);
    al_pg_auth_free(&a);
    /* SCRAM not allowed */
    al_pg_auth_opts_t md5only = {AL_PG_AUTH_ALLOW_MD5, 0, 0};
    assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", &md5only), AL_OK);
    assert_int_equal(step(&a, req_sasl(SCRAM_ONLY, 1), &b), AL_PG_AUTH_E_NOT_ALLOWED);
    al_pg_auth_free(&a);
    /* SASL without the plain SCRAM-SHA-256 */
    const char *plus[] = {"SCRAM-SHA-256-PLUS", "OAUTHBEARER"};
    assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", &any), AL_OK);
    assert_int_equal(step(&a, req_sasl(plus, 2), &b), AL_PG_AUTH_E_NO_MECHANISM);
    al_pg_auth_free(&a);
    /* Kerberos, GSSAPI, SSPI */
    uint32_t unsupported[] = {AL_PG_AUTHREQ_KERBEROS_V5, AL_PG_AUTHREQ_GSS, AL_PG_AUTHREQ_SSPI};
    for (size_t i = 0; i < AL_ARRAY_LEN(unsupported); i++) {
        assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", &any), AL_OK);
        assert_int_equal(step(&a, req_code(unsupported[i], NULL, 0), &b), AL_PG_AUTH_E_UNSUPPORTED);
        assert_int_equal(a.rc, AL_PG_AUTH_E_UNSUPPORTED);
        al_pg_auth_free(&a);
    }
    assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", &any), AL_OK);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_GSS_CONTINUE, (const uint8_t *)"tok", 3), &b),
                     AL_PG_AUTH_E_UNSUPPORTED);
    al_pg_auth_free(&a);
    assert_int_equal(b.len, 0);
    /* cleartext answered, then a second request instead of success */
    assert_int_equal(al_pg_auth_init(&a, "u", "s3cret", &any), AL_OK);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_CLEARTEXT, NULL, 0), &b), AL_PG_AUTH_SEND);
    assert_int_equal(step(&a, req_code(AL_PG_AUTHREQ_MD5, salt, 4), &b), AL_PG_AUTH_E_UNEXPECTED);
    al_pg_auth_free(&a);

    /* every code has a name */
    for (int rc = AL_PG_AUTH_E_NOMEM; rc <= AL_PG_AUTH_DONE; rc++)
        assert_string_not_equal(al_pg_auth_rc_str((al_pg_auth_rc_t)rc), "unknown");
    al_buf_free(&b);
}

/* ---- a real PostgreSQL --------------------------------------------------------------------- */

static struct {
    bool tried, up;
    char dir[64];
    char bin[200];
    char as[64]; /* "runuser -u postgres -- " when root */
    int port;
} pg;

static int sh(const char *fmt, ...) AL_PRINTF(1, 2);
static int sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == 0 ? 0 : -1;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return false;
    bool ok = fputs(text, f) >= 0;
    return fclose(f) == 0 && ok;
}

/* initdb + pg_ctl start in a fresh temp dir, roles for each method. */
static bool pg_start(void)
{
    if (pg.tried)
        return pg.up;
    pg.tried = true;
    if (getenv("AL_TEST_NO_PG"))
        return false;
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/initdb", 0, NULL, &g) != 0 || g.gl_pathc == 0)
        return false;
    snprintf(pg.bin, sizeof pg.bin, "%.*s", (int)(strlen(g.gl_pathv[g.gl_pathc - 1]) - 7),
             g.gl_pathv[g.gl_pathc - 1]);
    globfree(&g);
    snprintf(pg.dir, sizeof pg.dir, "/tmp/al_pg_auth_XXXXXX");
    if (!mkdtemp(pg.dir))
        return false;
    if (geteuid() == 0) {
        /* initdb refuses to run as root */
        struct passwd *pw = getpwnam("postgres");
        if (!pw || chown(pg.dir, pw->pw_uid, pw->pw_gid) != 0 || access("/usr/sbin/runuser", X_OK) != 0) {
            rmdir(pg.dir);
            return false;
        }
        snprintf(pg.as, sizeof pg.as, "/usr/sbin/runuser -u postgres -- ");
    }
    pg.port = free_port();
    char path[256], sql[1024];
    bool ok = pg.port > 0 &&
              sh("%s%s/initdb -D %s/data -U al_super --auth-local=trust --auth-host=reject -E UTF8 "
                 "--no-sync >%s/initdb.log 2>&1",
                 pg.as, pg.bin, pg.dir, pg.dir) == 0;
    if (ok) {
        snprintf(path, sizeof path, "%s/data/pg_hba.conf", pg.dir);
        ok = write_file(path, "local all all trust\n"
                              "host all al_md5 127.0.0.1/32 md5\n"
                              "host all al_clear 127.0.0.1/32 password\n"
                              "host all al_trust 127.0.0.1/32 trust\n"
                              "host all all 127.0.0.1/32 scram-sha-256\n");
    }
    ok = ok && sh("%s%s/pg_ctl -D %s/data -l %s/server.log -w -t 60 -o \"-p %d -k %s "
                  "-c listen_addresses=127.0.0.1 -c password_encryption=scram-sha-256 -c fsync=off\" "
                  "start >/dev/null 2>&1",
                  pg.as, pg.bin, pg.dir, pg.dir, pg.port, pg.dir) == 0;
    if (ok) {
        snprintf(path, sizeof path, "%s/roles.sql", pg.dir);
        snprintf(sql, sizeof sql,
                 "CREATE ROLE al_scram LOGIN PASSWORD 'pencil';\n"
                 "CREATE ROLE \"al,sc=ram\" LOGIN PASSWORD 'p@ss,w=rd \xc3\xbc';\n"
                 "CREATE ROLE al_trust LOGIN;\n"
                 "SET password_encryption = 'md5';\n"
                 "CREATE ROLE al_md5 LOGIN PASSWORD 'pencil';\n"
                 "CREATE ROLE al_clear LOGIN PASSWORD 'pencil';\n");
        ok = write_file(path, sql) &&
             sh("PGCLIENTENCODING=UTF8 %s%s/psql -X -q -v ON_ERROR_STOP=1 -h %s -p %d -U al_super "
                "-d postgres -f %s >%s/psql.log 2>&1",
                pg.as, pg.bin, pg.dir, pg.port, path, pg.dir) == 0;
    }
    pg.up = ok;
    if (!ok) {
        fprintf(stderr, "real PostgreSQL unavailable, skipping; logs:\n");
        sh("tail -n 20 %s/*.log >&2 2>/dev/null", pg.dir);
    }
    return ok;
}

static int pg_teardown(void **state)
{
    AL_UNUSED(state);
    if (!pg.tried || strncmp(pg.dir, "/tmp/al_pg_auth_", 16) != 0)
        return 0;
    /* stop even when start reported failure: it may have timed out */
    sh("%s%s/pg_ctl -D %s/data -m immediate -w stop >/dev/null 2>&1", pg.as, pg.bin, pg.dir);
    sh("rm -rf '%s'", pg.dir);
    return 0;
}

typedef struct login {
    al_pg_auth_rc_t rc;       /* last al_pg_auth_step result */
    al_pg_auth_method_t method;
    char sqlstate[6];         /* ErrorResponse code, "" if none */
    bool ready;               /* ReadyForQuery seen */
    char current_user[64];    /* from SELECT current_user */
    uint64_t rows;
} login_t;

static bool read_msg(int fd, al_pg_framer_t *f, uint8_t *buf, size_t *have, size_t *off, al_pg_msg_t *m)
{
    for (;;) {
        if (*off < *have) {
            ssize_t n = al_pg_frame(f, buf + *off, *have - *off, m);
            if (n < 0)
                return false;
            if (n > 0) {
                *off += (size_t)n; /* m stays valid: buf is only refilled once drained */
                return true;
            }
            *off = *have;
        }
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) <= 0)
            return false;
        ssize_t r = read(fd, buf, 65536);
        if (r <= 0)
            return false;
        *have = (size_t)r;
        *off = 0;
    }
}

static bool send_buf(int fd, al_buf_t *b)
{
    size_t off = 0;
    while (off < b->len) {
        ssize_t w = write(fd, b->p + off, b->len - off);
        if (w <= 0)
            return false;
        off += (size_t)w;
    }
    al_buf_reset(b);
    return true;
}

/* Logs in over TCP with our framer, parsers and auth client; then runs
 * SELECT current_user and reads its result with our parsers. */
static login_t pg_login(const char *user, const char *password, unsigned allow)
{
    login_t res;
    memset(&res, 0, sizeof res);
    res.rc = AL_PG_AUTH_E_BAD_CALL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)pg.port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    uint8_t *buf = malloc(65536);
    assert_non_null(buf);
    size_t have = 0, off = 0;
    al_buf_t out;
    al_buf_init(&out);
    al_pg_param_t params[] = {{al_str_c("user"), al_str_c(user)},
                              {AL_STR("database"), AL_STR("postgres")},
                              {AL_STR("application_name"), AL_STR("airlock-unit")}};
    assert_int_equal(al_pg_build_startup(&out, params, 3), AL_OK);
    assert_true(send_buf(fd, &out));
    al_pg_framer_t f;
    al_pg_framer_init(&f, AL_PG_BACKEND, NULL);
    al_pg_auth_t a;
    al_pg_auth_opts_t o = {allow, 0, 0};
    assert_int_equal(al_pg_auth_init(&a, user, password, &o), AL_OK);
    bool queried = false;
    al_pg_msg_t m;
    while (read_msg(fd, &f, buf, &have, &off, &m)) {
        if (m.type == 'R') {
            al_pg_authreq_t req;
            assert_int_equal(al_pg_parse_authentication(m.body, m.body_len, &req), AL_PG_OK);
            res.rc = al_pg_auth_step(&a, &req, &out);
            if (res.rc < 0)
                break;
            if (res.rc == AL_PG_AUTH_SEND)
                assert_true(send_buf(fd, &out));
            if (res.rc == AL_PG_AUTH_DONE)
                al_pg_framer_set_authenticated(&f);
        } else if (m.type == 'E') {
            al_pg_notice_t n;
            assert_int_equal(al_pg_parse_notice(m.body, m.body_len, &n), AL_PG_OK);
            al_str_t c = al_pg_notice_get(&n, 'C');
            snprintf(res.sqlstate, sizeof res.sqlstate, "%.*s", (int)c.len, c.p);
            break;
        } else if (m.type == 'S') {
            al_pg_param_t ps;
            assert_int_equal(al_pg_parse_parameter_status(m.body, m.body_len, &ps), AL_PG_OK);
        } else if (m.type == 'K') {
            al_pg_backend_key_t k;
            assert_int_equal(al_pg_parse_backend_key(m.body, m.body_len, &k), AL_PG_OK);
            assert_true(k.pid > 0);
        } else if (m.type == 'T') {
            al_pg_row_desc_t d;
            assert_int_equal(al_pg_parse_row_desc(m.body, m.body_len, &d), AL_PG_OK);
            al_pg_fields_t it = al_pg_row_desc_fields(&d);
            al_pg_field_t fd0;
            assert_true(al_pg_fields_next(&it, &fd0));
            assert_true(al_str_eq_c(fd0.name, "current_user"));
            assert_int_equal(fd0.type_oid, 19); /* name */
        } else if (m.type == 'D') {
            al_pg_data_row_t row;
            assert_int_equal(al_pg_parse_data_row(m.body, m.body_len, &row), AL_PG_OK);
            al_pg_values_t it = al_pg_data_row_values(&row);
            al_pg_value_t v;
            assert_true(al_pg_values_next(&it, &v) && !v.null);
            snprintf(res.current_user, sizeof res.current_user, "%.*s", (int)v.len, (const char *)v.p);
        } else if (m.type == 'C') {
            al_str_t tag;
            assert_int_equal(al_pg_parse_command_complete(m.body, m.body_len, &tag), AL_PG_OK);
            assert_true(al_pg_command_rows(tag, &res.rows));
        } else if (m.type == 'Z') {
            char st;
            assert_int_equal(al_pg_parse_ready(m.body, m.body_len, &st), AL_PG_OK);
            res.ready = true;
            if (queried)
                break;
            queried = true;
            assert_int_equal(al_pg_build_query(&out, "SELECT current_user"), AL_OK);
            assert_true(send_buf(fd, &out));
        }
    }
    res.method = a.method;
    assert_int_equal(al_pg_build_terminate(&out), AL_OK);
    send_buf(fd, &out);
    close(fd);
    al_pg_auth_free(&a);
    al_pg_framer_free(&f);
    al_buf_free(&out);
    free(buf);
    return res;
}

static void test_real_pg_scram(void **state)
{
    AL_UNUSED(state);
    if (!pg_start())
        skip();
    login_t r = pg_login("al_scram", "pencil", AL_PG_AUTH_ALLOW_SCRAM);
    assert_int_equal(r.rc, AL_PG_AUTH_DONE);
    assert_int_equal(r.method, AL_PG_AUTH_METHOD_SCRAM);
    assert_true(r.ready);
    assert_string_equal(r.current_user, "al_scram");
    assert_int_equal(r.rows, 1);
    /* escaped SCRAM user name, non-ASCII password already in NFKC form */
    r = pg_login("al,sc=ram", "p@ss,w=rd \xc3\xbc", AL_PG_AUTH_ALLOW_SCRAM);
    assert_int_equal(r.rc, AL_PG_AUTH_DONE);
    assert_string_equal(r.current_user, "al,sc=ram");
    /* wrong password: the server refuses the proof with 28P01 */
    r = pg_login("al_scram", "pencil2", AL_PG_AUTH_ALLOW_SCRAM);
    assert_int_equal(r.rc, AL_PG_AUTH_SEND);
    assert_string_equal(r.sqlstate, "28P01");
    assert_false(r.ready);
}

static void test_real_pg_md5_cleartext_trust(void **state)
{
    AL_UNUSED(state);
    if (!pg_start())
        skip();
    login_t r = pg_login("al_md5", "pencil", AL_PG_AUTH_ALLOW_MD5);
    assert_int_equal(r.rc, AL_PG_AUTH_DONE);
    assert_int_equal(r.method, AL_PG_AUTH_METHOD_MD5);
    assert_string_equal(r.current_user, "al_md5");
    r = pg_login("al_md5", "wrong", AL_PG_AUTH_ALLOW_MD5);
    assert_string_equal(r.sqlstate, "28P01");
    /* the server asks for MD5, our policy says SCRAM only */
    r = pg_login("al_md5", "pencil", AL_PG_AUTH_ALLOW_SCRAM);
    assert_int_equal(r.rc, AL_PG_AUTH_E_NOT_ALLOWED);
    r = pg_login("al_clear", "pencil", AL_PG_AUTH_ALLOW_CLEARTEXT);
    assert_int_equal(r.rc, AL_PG_AUTH_DONE);
    assert_int_equal(r.method, AL_PG_AUTH_METHOD_CLEARTEXT);
    assert_string_equal(r.current_user, "al_clear");
    r = pg_login("al_trust", "", AL_PG_AUTH_ALLOW_SCRAM);
    assert_int_equal(r.rc, AL_PG_AUTH_E_NOT_ALLOWED);
    r = pg_login("al_trust", "", AL_PG_AUTH_ALLOW_TRUST);
    assert_int_equal(r.rc, AL_PG_AUTH_DONE);
    assert_string_equal(r.current_user, "al_trust");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scram_rfc7677),
        cmocka_unit_test(test_scram_user_escaping_and_nonce),
        cmocka_unit_test(test_scram_bad_server_first),
        cmocka_unit_test(test_scram_bad_server_final),
        cmocka_unit_test(test_scram_out_of_order),
        cmocka_unit_test(test_md5),
        cmocka_unit_test(test_methods_and_policy),
        cmocka_unit_test(test_real_pg_scram),
        cmocka_unit_test(test_real_pg_md5_cleartext_trust),
    };
    return cmocka_run_group_tests(tests, NULL, pg_teardown);
}
