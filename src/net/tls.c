/* tls.c - TLS engine over OpenSSL memory BIOs (see tls.h for the contract). */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "net/tls.h"

/* TLS 1.2 (RFC 5246): ECDHE key exchange for forward secrecy and AEAD
 * ciphers only (RFC 7525 §4.2 lists the same four GCM suites; RFC 7905
 * adds ChaCha20-Poly1305). No CBC, no RSA key transport, no SHA-1 MACs. */
static const char tls12_ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* TLS 1.3 (RFC 8446 §9.1): the mandatory AES-128-GCM first, then the two
 * other AEAD suites every common stack offers. */
static const char tls13_suites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

/* Room kept free in plain_out before each SSL_read_ex: one full record
 * (RFC 8446 §5.1: TLSPlaintext.length <= 2^14). */
#define READ_CHUNK ((size_t)16384)

struct al_tls_ctx {
    SSL_CTX *ssl_ctx; /* one reference; every SSL made from it holds another */
    bool server;
    bool verify;
};

typedef enum al_tls_state {
    AL_TLS_ST_HANDSHAKE = 0,
    AL_TLS_ST_OPEN,
    AL_TLS_ST_PEER_CLOSED, /* close_notify read; input ignored from now on */
    AL_TLS_ST_FAILED,
} al_tls_state_t;

struct al_tls {
    SSL *ssl;
    BIO *rbio; /* ciphertext from the peer; owned by ssl */
    BIO *wbio; /* ciphertext for the peer; owned by ssl */
    al_buf_t queued; /* plaintext written before the handshake completed */
    al_tls_state_t state;
    bool server;
    bool verify; /* client verifying the peer (verify-full) */
    bool sent_close; /* our close_notify is queued; writes refused */
    bool handshake_done;
    char err[160];
};

/* ---- errors ------------------------------------------------------------- */

/* Describes the first error in the thread's queue that says anything (the
 * oldest is the cause; later ones are context) into buf and empties the
 * queue. Returns false when there was nothing to describe. */
static bool reason_text(char *buf, size_t cap)
{
    unsigned long e;
    bool found = false;
    while (!found && (e = ERR_get_error()) != 0) {
        int r = ERR_GET_REASON(e);
        if (ERR_SYSTEM_ERROR(e)) {
            char tmp[128];
            snprintf(buf, cap, "%s", strerror_r(r, tmp, sizeof tmp));
            found = true;
        } else if (ERR_GET_LIB(e) == ERR_LIB_SSL && r >= SSL_AD_REASON_OFFSET &&
                   r < SSL_AD_REASON_OFFSET + 256) {
            /* RFC 8446 §6.2 / RFC 5246 §7.2.2: the peer's alert, by its
             * registered name rather than OpenSSL's "sslv3 alert ..." */
            snprintf(buf, cap, "peer sent alert: %s",
                     SSL_alert_desc_string_long(r - SSL_AD_REASON_OFFSET));
            found = true;
        } else {
            const char *s = ERR_reason_error_string(e);
            if (s) {
                snprintf(buf, cap, "%s", s);
                found = true;
            }
        }
    }
    ERR_clear_error();
    return found;
}

static void ctx_err(char *err, size_t cap, const char *fmt, ...) AL_PRINTF(3, 4);
static void ctx_err(char *err, size_t cap, const char *fmt, ...)
{
    if (!err || cap == 0) {
        ERR_clear_error();
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    char r[128];
    if (reason_text(r, sizeof r) && n >= 0 && (size_t)n < cap)
        snprintf(err + n, cap - (size_t)n, ": %s", r);
}

/* Verification failures in words that stay the same across OpenSSL
 * versions; the rest fall back to OpenSSL's own text. */
static const char *verify_reason(long v)
{
    switch (v) {
    case X509_V_ERR_HOSTNAME_MISMATCH: return "hostname mismatch";
    case X509_V_ERR_IP_ADDRESS_MISMATCH: return "IP address mismatch";
    case X509_V_ERR_CERT_HAS_EXPIRED: return "certificate expired";
    case X509_V_ERR_CERT_NOT_YET_VALID: return "certificate not yet valid";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: return "unknown CA";
    case X509_V_ERR_CERT_REVOKED: return "certificate revoked";
    case X509_V_ERR_INVALID_PURPOSE: return "certificate not valid for TLS server use";
    case X509_V_ERR_CERT_SIGNATURE_FAILURE: return "bad certificate signature";
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
    case X509_V_ERR_CA_MD_TOO_WEAK: return "key or signature too weak";
    default: return X509_verify_cert_error_string(v);
    }
}

/* Records why the connection failed (first failure wins), drains the error
 * queue and makes the failure sticky. Always returns AL_ERR. */
static int fail(al_tls_t *t, const char *why)
{
    if (t->state != AL_TLS_ST_FAILED) {
        const char *phase = t->handshake_done ? "TLS error" : "TLS handshake failed";
        long v = t->verify ? SSL_get_verify_result(t->ssl) : X509_V_OK;
        char r[128];
        if (why)
            snprintf(t->err, sizeof t->err, "%s: %s", phase, why);
        else if (v != X509_V_OK && !t->handshake_done)
            snprintf(t->err, sizeof t->err, "certificate verify failed: %s", verify_reason(v));
        else if (reason_text(r, sizeof r))
            snprintf(t->err, sizeof t->err, "%s: %s", phase, r);
        else
            snprintf(t->err, sizeof t->err, "%s: internal error", phase);
        t->state = AL_TLS_ST_FAILED;
    }
    ERR_clear_error();
    return AL_ERR;
}

/* ---- al_buf spare room (the buffer is public; its invariants are: cap
 * counts the terminating NUL, oom is sticky) -------------------------------- */

static int buf_room(al_buf_t *b, size_t want)
{
    if (b->oom)
        return AL_ERR;
    if (b->cap > b->len && b->cap - b->len - 1 >= want)
        return AL_OK;
    if (want > SIZE_MAX / 4 || b->len > SIZE_MAX / 4) { /* doubling below cannot wrap */
        b->oom = true;
        return AL_ERR;
    }
    size_t need = b->len + want + 1, cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    char *p = al_realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return AL_ERR;
    }
    b->p = p;
    b->cap = cap;
    return AL_OK;
}

static void buf_grew(al_buf_t *b, size_t n)
{
    b->len += n;
    b->p[b->len] = '\0';
}

/* ---- contexts ------------------------------------------------------------ */

/* An encrypted key must fail to load, never prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    AL_UNUSED(buf);
    AL_UNUSED(size);
    AL_UNUSED(rwflag);
    AL_UNUSED(u);
    return -1;
}

static al_tls_ctx_t *ctx_new(bool server, char *err, size_t cap)
{
    ERR_clear_error();
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c) {
        ctx_err(err, cap, "cannot create TLS context");
        return NULL;
    }
    /* RFC 8996 deprecates TLS 1.0 and 1.1; RFC 8446 §4.2.1 lets 1.3 win. */
    if (!SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION) ||
        !SSL_CTX_set_cipher_list(c, tls12_ciphers) || !SSL_CTX_set_ciphersuites(c, tls13_suites)) {
        ctx_err(err, cap, "cannot configure TLS context");
        SSL_CTX_free(c);
        return NULL;
    }
    /* No compression (CRIME), no renegotiation in either direction (RFC
     * 5246 §7.4.1.1: answered with a no_renegotiation alert), no session
     * tickets or cache: resumption would add shared mutable state for no
     * gain on long-lived database sessions. */
    SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);
    if (server)
        SSL_CTX_set_num_tickets(c, 0); /* RFC 8446 §4.6.1 NewSessionTicket */
    SSL_CTX_set_default_passwd_cb(c, no_passphrase);
    al_tls_ctx_t *ctx = al_calloc(1, sizeof *ctx);
    if (!ctx) {
        ctx_err(err, cap, "out of memory");
        SSL_CTX_free(c);
        return NULL;
    }
    ctx->ssl_ctx = c;
    ctx->server = server;
    return ctx;
}

al_tls_ctx_t *al_tls_server_ctx(const char *cert_file, const char *key_file, char *err, size_t cap)
{
    if (!cert_file || !*cert_file || !key_file || !*key_file) {
        ctx_err(err, cap, "TLS server needs both a certificate file and a key file");
        return NULL;
    }
    al_tls_ctx_t *ctx = ctx_new(true, err, cap);
    if (!ctx)
        return NULL;
    SSL_CTX *c = ctx->ssl_ctx;
    if (SSL_CTX_use_certificate_chain_file(c, cert_file) != 1) {
        ctx_err(err, cap, "cannot load certificate chain from '%s'", cert_file);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(c, key_file, SSL_FILETYPE_PEM) != 1) {
        unsigned long e = ERR_peek_last_error();
        if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
            ctx_err(err, cap, "private key '%s' does not match certificate '%s'", key_file,
                    cert_file);
        else
            ctx_err(err, cap, "cannot load private key from '%s' (PEM, unencrypted)", key_file);
        goto fail;
    }
    if (SSL_CTX_check_private_key(c) != 1) {
        ctx_err(err, cap, "private key '%s' does not match certificate '%s'", key_file, cert_file);
        goto fail;
    }
    ERR_clear_error();
    return ctx;
fail:
    al_tls_ctx_free(&ctx);
    return NULL;
}

al_tls_ctx_t *al_tls_client_ctx(const char *ca_file, bool verify, char *err, size_t cap)
{
    if (!verify && ca_file) {
        ctx_err(err, cap, "CA file '%s' given but verification is off", ca_file);
        return NULL;
    }
    al_tls_ctx_t *ctx = ctx_new(false, err, cap);
    if (!ctx)
        return NULL;
    ctx->verify = verify;
    if (!verify) {
        SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_NONE, NULL);
        return ctx;
    }
    /* RFC 8446 §4.4.2.4: a client that cannot validate the chain aborts. */
    SSL_CTX_set_verify(ctx->ssl_ctx, SSL_VERIFY_PEER, NULL);
    if (ca_file) {
        if (SSL_CTX_load_verify_locations(ctx->ssl_ctx, ca_file, NULL) != 1) {
            ctx_err(err, cap, "cannot load CA certificates from '%s'", ca_file);
            al_tls_ctx_free(&ctx);
            return NULL;
        }
    } else if (SSL_CTX_set_default_verify_paths(ctx->ssl_ctx) != 1) {
        ctx_err(err, cap, "cannot load the system CA store");
        al_tls_ctx_free(&ctx);
        return NULL;
    }
    ERR_clear_error();
    return ctx;
}

void al_tls_ctx_free(al_tls_ctx_t **ctx)
{
    if (!ctx || !*ctx)
        return;
    SSL_CTX_free((*ctx)->ssl_ctx);
    al_free(ctx);
}

/* ---- connections --------------------------------------------------------- */

static bool is_ip_literal(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* Client side: SNI and the identity to verify. */
static int set_peer(al_tls_t *t, const al_tls_ctx_t *ctx, const char *host)
{
    if (!host)
        return ctx->verify ? AL_ERR : AL_OK;
    size_t len = strlen(host);
    if (len == 0 || len > 253)
        return AL_ERR;
    bool ip = is_ip_literal(host);
    /* RFC 6066 §3: "Literal IPv4 and IPv6 addresses are not permitted in
     * HostName." */
    if (!ip && SSL_set_tlsext_host_name(t->ssl, host) != 1)
        return AL_ERR;
    if (!ctx->verify)
        return AL_OK;
    if (ip)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), host) == 1 ? AL_OK : AL_ERR;
    /* RFC 6125 §6.4.3: a wildcard only as the whole left-most label. The
     * subject CN is consulted only when the certificate has no DNS SAN,
     * as libpq does. */
    SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return SSL_set1_host(t->ssl, host) == 1 ? AL_OK : AL_ERR;
}

al_tls_t *al_tls_new(al_tls_ctx_t *ctx, const char *peer_host)
{
    if (!ctx || (ctx->server && peer_host))
        return NULL;
    al_tls_t *t = al_calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->server = ctx->server;
    t->verify = ctx->verify;
    t->ssl = SSL_new(ctx->ssl_ctx);
    BIO *rb = BIO_new(BIO_s_mem()), *wb = BIO_new(BIO_s_mem());
    if (!t->ssl || !rb || !wb) {
        BIO_free(rb);
        BIO_free(wb);
        goto fail;
    }
    /* An empty BIO means "no bytes yet", not end of stream. */
    BIO_set_mem_eof_return(rb, -1);
    BIO_set_mem_eof_return(wb, -1);
    SSL_set_bio(t->ssl, rb, wb);
    t->rbio = rb;
    t->wbio = wb;
    if (t->server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        if (set_peer(t, ctx, peer_host) != AL_OK)
            goto fail;
    }
    ERR_clear_error();
    return t;
fail:
    ERR_clear_error();
    al_tls_free(&t);
    return NULL;
}

void al_tls_free(al_tls_t **t)
{
    if (!t || !*t)
        return;
    SSL_free((*t)->ssl); /* frees both BIOs */
    al_buf_free(&(*t)->queued);
    al_free(t);
}

int al_tls_feed(al_tls_t *t, const uint8_t *cipher, size_t n)
{
    if (t->state == AL_TLS_ST_FAILED)
        return AL_ERR;
    if (t->state == AL_TLS_ST_PEER_CLOSED || n == 0)
        return AL_OK; /* RFC 8446 §6.1: ignored after close_notify */
    size_t unread = BIO_ctrl_pending(t->rbio);
    if (n > AL_TLS_MAX_UNREAD || unread > AL_TLS_MAX_UNREAD - n)
        return fail(t, "input not consumed (al_tls_read not called)");
    size_t w = 0;
    ERR_clear_error();
    if (BIO_write_ex(t->rbio, cipher, n, &w) != 1 || w != n)
        return fail(t, "out of memory");
    return AL_OK;
}

static int seal(al_tls_t *t, const void *plain, size_t n)
{
    size_t w = 0;
    ERR_clear_error();
    /* A memory BIO never blocks, so without SSL_MODE_ENABLE_PARTIAL_WRITE
     * the whole buffer becomes records in one call. */
    if (SSL_write_ex(t->ssl, plain, n, &w) != 1 || w != n)
        return fail(t, NULL);
    return AL_OK;
}

/* Runs the handshake as far as the input allows. */
static int handshake(al_tls_t *t)
{
    int r = SSL_do_handshake(t->ssl);
    if (r != 1) {
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_WANT_READ)
            return AL_AGAIN;
        if (e == SSL_ERROR_ZERO_RETURN)
            return fail(t, "peer closed during handshake");
        return fail(t, NULL);
    }
    t->handshake_done = true;
    t->state = AL_TLS_ST_OPEN;
    if (t->queued.len) {
        int rc = seal(t, t->queued.p, t->queued.len);
        al_wipe(t->queued.p, t->queued.len);
        al_buf_free(&t->queued);
        if (rc != AL_OK)
            return rc;
    }
    return AL_OK;
}

int al_tls_read(al_tls_t *t, al_buf_t *plain_out)
{
    if (t->state == AL_TLS_ST_FAILED)
        return AL_ERR;
    if (t->state == AL_TLS_ST_PEER_CLOSED)
        return AL_TLS_EOF;
    ERR_clear_error();
    if (t->state == AL_TLS_ST_HANDSHAKE) {
        int rc = handshake(t);
        if (rc != AL_OK)
            return rc;
    }
    for (;;) {
        size_t want = (size_t)SSL_pending(t->ssl);
        if (buf_room(plain_out, want > READ_CHUNK ? want : READ_CHUNK) != AL_OK)
            return fail(t, "out of memory");
        size_t got = 0;
        int r = SSL_read_ex(t->ssl, plain_out->p + plain_out->len,
                            plain_out->cap - plain_out->len - 1, &got);
        if (r == 1) {
            buf_grew(plain_out, got);
            continue;
        }
        switch (SSL_get_error(t->ssl, r)) {
        case SSL_ERROR_WANT_READ:
            return AL_OK;
        case SSL_ERROR_ZERO_RETURN:
            t->state = AL_TLS_ST_PEER_CLOSED;
            /* RFC 5246 §7.2.1: the other party MUST respond with a
             * close_notify of its own. TLS 1.3 allows a half-close
             * (RFC 8446 §6.1), so there the caller decides. */
            if (SSL_version(t->ssl) <= TLS1_2_VERSION && !t->sent_close) {
                SSL_shutdown(t->ssl);
                t->sent_close = true;
            }
            ERR_clear_error();
            return AL_TLS_EOF;
        default:
            return fail(t, NULL);
        }
    }
}

int al_tls_write(al_tls_t *t, const void *plain, size_t n)
{
    if (t->state == AL_TLS_ST_FAILED || t->sent_close)
        return AL_ERR;
    if (n == 0)
        return AL_OK;
    if (t->state == AL_TLS_ST_HANDSHAKE) {
        if (n > AL_TLS_MAX_QUEUED - t->queued.len)
            return fail(t, "too much data queued before the handshake");
        if (al_buf_append(&t->queued, plain, n) != AL_OK)
            return fail(t, "out of memory");
        return AL_OK;
    }
    return seal(t, plain, n);
}

int al_tls_pending_out(al_tls_t *t, al_buf_t *cipher_out)
{
    size_t n = BIO_ctrl_pending(t->wbio);
    if (n == 0)
        return AL_OK;
    if (buf_room(cipher_out, n) != AL_OK)
        return AL_ERR;
    size_t got = 0;
    if (BIO_read_ex(t->wbio, cipher_out->p + cipher_out->len, n, &got) != 1 || got != n) {
        ERR_clear_error();
        return AL_ERR; /* cannot happen with a memory BIO */
    }
    buf_grew(cipher_out, got);
    return AL_OK;
}

int al_tls_shutdown(al_tls_t *t)
{
    if (t->state == AL_TLS_ST_FAILED)
        return AL_ERR;
    if (!t->handshake_done || t->sent_close)
        return AL_OK;
    ERR_clear_error();
    /* 0: our close_notify is queued, the peer's not seen yet; 1: both. */
    if (SSL_shutdown(t->ssl) < 0)
        return fail(t, NULL);
    t->sent_close = true;
    ERR_clear_error();
    return AL_OK;
}

bool al_tls_handshake_done(const al_tls_t *t) { return t->handshake_done; }

const char *al_tls_version(const al_tls_t *t)
{
    return t->handshake_done ? SSL_get_version(t->ssl) : NULL;
}

const char *al_tls_error(const al_tls_t *t) { return t->err; }
