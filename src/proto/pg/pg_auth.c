/* pg_auth.c - client side of PostgreSQL authentication towards the
 * upstream: cleartext, MD5, SCRAM-SHA-256 (RFC 5802, RFC 7677). See
 * pg_auth.h for what is and is not implemented. */
#include <limits.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "proto/pg/pg_auth.h"

#define SCRAM_MECH "SCRAM-SHA-256"
#define SCRAM_RAW_NONCE 18
#define SHA256_LEN 32

const char *al_pg_auth_rc_str(al_pg_auth_rc_t rc)
{
    switch (rc) {
    case AL_PG_AUTH_CONTINUE: return "continue";
    case AL_PG_AUTH_SEND: return "send";
    case AL_PG_AUTH_DONE: return "done";
    case AL_PG_AUTH_E_BAD_CALL: return "bad_call";
    case AL_PG_AUTH_E_NOT_ALLOWED: return "method_not_allowed";
    case AL_PG_AUTH_E_UNSUPPORTED: return "method_unsupported";
    case AL_PG_AUTH_E_NO_MECHANISM: return "no_common_sasl_mechanism";
    case AL_PG_AUTH_E_UNEXPECTED: return "unexpected_message";
    case AL_PG_AUTH_E_BAD_MESSAGE: return "malformed_scram_message";
    case AL_PG_AUTH_E_NONCE: return "nonce_mismatch";
    case AL_PG_AUTH_E_ITERATIONS: return "iteration_count_out_of_bounds";
    case AL_PG_AUTH_E_SERVER_PROOF: return "server_proof_mismatch";
    case AL_PG_AUTH_E_SERVER_ERROR: return "server_reported_error";
    case AL_PG_AUTH_E_CRYPTO: return "crypto_failure";
    case AL_PG_AUTH_E_NOMEM: return "out_of_memory";
    }
    return "unknown";
}

/* ---- base64 (RFC 4648 §4, padded, no whitespace) ---------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_encode(al_buf_t *b, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char q[4] = {B64[v >> 18], B64[(v >> 12) & 63], i + 1 < n ? B64[(v >> 6) & 63] : '=',
                     i + 2 < n ? B64[v & 63] : '='};
        al_buf_append(b, q, 4);
    }
}

static int b64_val(char c)
{
    const char *q = c ? strchr(B64, c) : NULL;
    return q ? (int)(q - B64) : -1;
}

/* Decodes s into out (capacity cap); false on any deviation from canonical
 * padded base64, including non-zero padding bits. */
static bool b64_decode(al_str_t s, uint8_t *out, size_t cap, size_t *n)
{
    *n = 0;
    if (s.len == 0 || s.len % 4)
        return false;
    for (size_t i = 0; i < s.len; i += 4) {
        int v[4];
        size_t pad = 0;
        for (size_t j = 0; j < 4; j++) {
            char c = s.p[i + j];
            if (c == '=' && i + 4 == s.len && j >= 2) {
                v[j] = 0;
                pad++;
                continue;
            }
            if (pad || (v[j] = b64_val(c)) < 0)
                return false;
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        if ((pad == 1 && (x & 0xff)) || (pad == 2 && (x & 0xffff)))
            return false;
        size_t k = 3 - pad;
        if (*n + k > cap)
            return false;
        uint8_t bytes[3] = {(uint8_t)(x >> 16), (uint8_t)(x >> 8), (uint8_t)x};
        memcpy(out + *n, bytes, k);
        *n += k;
    }
    return true;
}

/* ---- state ------------------------------------------------------------------------ */

int al_pg_auth_init(al_pg_auth_t *a, const char *user, const char *password,
                    const al_pg_auth_opts_t *opts)
{
    if (!a)
        return AL_ERR;
    memset(a, 0, sizeof *a);
    if (!user || !password)
        return AL_ERR;
    a->password_len = strlen(password);
    if (a->password_len > INT_MAX)
        return AL_ERR;
    a->user = al_strndup(user, strlen(user));
    a->password = al_strndup(password, a->password_len);
    if (!a->user || !a->password) {
        al_pg_auth_free(a);
        return AL_ERR;
    }
    if (opts)
        a->opts = *opts;
    if (a->opts.allow == 0)
        a->opts.allow = AL_PG_AUTH_ALLOW_SCRAM;
    if (a->opts.min_iterations < AL_PG_SCRAM_MIN_ITERATIONS)
        a->opts.min_iterations = AL_PG_SCRAM_MIN_ITERATIONS;
    if (a->opts.max_iterations == 0)
        a->opts.max_iterations = AL_PG_SCRAM_DEFAULT_MAX_ITERATIONS;
    if (a->opts.max_iterations > INT_MAX)
        a->opts.max_iterations = INT_MAX;
    al_buf_init(&a->auth_message);
    return AL_OK;
}

void al_pg_auth_free(al_pg_auth_t *a)
{
    if (!a)
        return;
    if (a->password)
        al_wipe(a->password, a->password_len);
    al_free(&a->password);
    al_free(&a->user);
    if (a->auth_message.p)
        al_wipe(a->auth_message.p, a->auth_message.cap);
    al_buf_free(&a->auth_message);
    al_wipe(a->server_signature, sizeof a->server_signature);
    a->password_len = 0;
}

static bool nonce_char_ok(char c) { return c >= 0x21 && c <= 0x7e && c != ','; }

int al_pg_auth_test_set_nonce(al_pg_auth_t *a, const char *nonce)
{
    size_t n = nonce ? strlen(nonce) : 0;
    if (!a || a->state != AL_PG_AUTH_S_START || n == 0 || n > AL_PG_SCRAM_NONCE_MAX)
        return AL_ERR;
    for (size_t i = 0; i < n; i++)
        if (!nonce_char_ok(nonce[i]))
            return AL_ERR;
    memcpy(a->nonce, nonce, n + 1);
    return AL_OK;
}

static al_pg_auth_rc_t fail(al_pg_auth_t *a, al_pg_auth_rc_t rc)
{
    a->state = AL_PG_AUTH_S_FAILED;
    a->rc = rc;
    if (a->password)
        al_wipe(a->password, a->password_len);
    al_wipe(a->server_signature, sizeof a->server_signature);
    return rc;
}

/* ---- MD5 ----------------------------------------------------------------------------- */

int al_pg_md5_password(const char *user, const char *password, const uint8_t salt[4], char out[36])
{
    size_t ul = strlen(user), pl = strlen(password);
    uint8_t d[16];
    char hex[33];
    unsigned dl = 0;
    int rc = AL_ERR;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c)
        return AL_ERR;
    /* inner: md5(password || user), as PostgreSQL stores it */
    if (EVP_DigestInit_ex(c, EVP_md5(), NULL) != 1 || EVP_DigestUpdate(c, password, pl) != 1 ||
        EVP_DigestUpdate(c, user, ul) != 1 || EVP_DigestFinal_ex(c, d, &dl) != 1 || dl != 16)
        goto out;
    al_hex(d, 16, hex);
    /* outer: md5(hex(inner) || salt) */
    if (EVP_DigestInit_ex(c, EVP_md5(), NULL) != 1 || EVP_DigestUpdate(c, hex, 32) != 1 ||
        EVP_DigestUpdate(c, salt, 4) != 1 || EVP_DigestFinal_ex(c, d, &dl) != 1 || dl != 16)
        goto out;
    memcpy(out, "md5", 3);
    al_hex(d, 16, out + 3);
    rc = AL_OK;
out:
    al_wipe(d, sizeof d);
    al_wipe(hex, sizeof hex);
    EVP_MD_CTX_free(c);
    return rc;
}

/* ---- SCRAM-SHA-256 ---------------------------------------------------------------------- */

/* RFC 5802 §5.1: saslname escapes '=' and ','. */
static void put_saslname(al_buf_t *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '=')
            al_buf_puts(b, "=3D");
        else if (*s == ',')
            al_buf_puts(b, "=2C");
        else
            al_buf_append(b, s, 1);
    }
}

/* RFC 5802 §3 (client-first-message) with the GS2 header "n,," of §7. */
static al_pg_auth_rc_t scram_client_first(al_pg_auth_t *a, al_buf_t *out)
{
    if (!a->nonce[0]) {
        uint8_t raw[SCRAM_RAW_NONCE];
        al_buf_t nb;
        if (RAND_bytes(raw, sizeof raw) != 1)
            return AL_PG_AUTH_E_CRYPTO;
        al_buf_init(&nb);
        b64_encode(&nb, raw, sizeof raw);
        if (nb.oom) {
            al_buf_free(&nb);
            return AL_PG_AUTH_E_NOMEM;
        }
        memcpy(a->nonce, nb.p, nb.len + 1);
        al_buf_free(&nb);
    }
    al_buf_t *m = &a->auth_message;
    al_buf_reset(m);
    al_buf_puts(m, "n=");
    put_saslname(m, a->user);
    al_buf_puts(m, ",r=");
    al_buf_puts(m, a->nonce);
    a->client_first_bare_len = m->len;

    al_buf_t msg;
    al_buf_init(&msg);
    al_buf_puts(&msg, "n,,");
    al_buf_append(&msg, m->p, m->len);
    int rc = m->oom || msg.oom ? AL_ERR : al_pg_build_sasl_initial(out, SCRAM_MECH, msg.p, msg.len);
    al_buf_free(&msg);
    return rc == AL_OK ? AL_PG_AUTH_SEND : AL_PG_AUTH_E_NOMEM;
}

/* Takes "<k>=" and the value up to the next ',' (or the end). */
static bool take_attr(al_str_t *s, char k, al_str_t *v)
{
    if (s->len < 2 || s->p[0] != k || s->p[1] != '=')
        return false;
    const char *p = s->p + 2, *end = s->p + s->len;
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *stop = comma ? comma : end;
    *v = (al_str_t){p, (size_t)(stop - p)};
    s->p = comma ? comma + 1 : end;
    s->len = (size_t)(end - s->p);
    if (comma && s->len == 0)
        return false; /* a trailing ',' with nothing after it */
    return true;
}

typedef struct server_first {
    al_str_t nonce;
    uint8_t salt[256];
    size_t salt_len;
    uint32_t iterations;
} server_first_t;

/* RFC 5802 §5.1, §7: server-first-message. */
static al_pg_auth_rc_t parse_server_first(const al_pg_auth_t *a, al_str_t msg, server_first_t *sf)
{
    al_str_t s = msg, salt, iter;
    if (msg.len >= 2 && msg.p[0] == 'm' && msg.p[1] == '=')
        return AL_PG_AUTH_E_BAD_MESSAGE; /* mandatory extension we do not know */
    if (!take_attr(&s, 'r', &sf->nonce) || !take_attr(&s, 's', &salt) || !take_attr(&s, 'i', &iter) ||
        s.len != 0)
        return AL_PG_AUTH_E_BAD_MESSAGE;
    for (size_t i = 0; i < sf->nonce.len; i++)
        if (!nonce_char_ok(sf->nonce.p[i]))
            return AL_PG_AUTH_E_BAD_MESSAGE;
    size_t cn = strlen(a->nonce);
    if (sf->nonce.len <= cn || memcmp(sf->nonce.p, a->nonce, cn) != 0)
        return AL_PG_AUTH_E_NONCE;
    if (!b64_decode(salt, sf->salt, sizeof sf->salt, &sf->salt_len) || sf->salt_len == 0)
        return AL_PG_AUTH_E_BAD_MESSAGE;
    /* posit-number = %x31-39 *DIGIT */
    if (iter.len == 0 || iter.len > 10 || iter.p[0] < '1' || iter.p[0] > '9')
        return AL_PG_AUTH_E_BAD_MESSAGE;
    uint64_t n = 0;
    for (size_t i = 0; i < iter.len; i++) {
        if (iter.p[i] < '0' || iter.p[i] > '9')
            return AL_PG_AUTH_E_BAD_MESSAGE;
        n = n * 10 + (uint64_t)(iter.p[i] - '0');
    }
    if (n < a->opts.min_iterations || n > a->opts.max_iterations)
        return AL_PG_AUTH_E_ITERATIONS;
    sf->iterations = (uint32_t)n;
    return AL_PG_AUTH_SEND;
}

static bool hmac256(const uint8_t *key, size_t klen, const void *d, size_t n, uint8_t out[SHA256_LEN])
{
    unsigned ol = 0;
    return HMAC(EVP_sha256(), key, (int)klen, d, n, out, &ol) != NULL && ol == SHA256_LEN;
}

/* RFC 5802 §3: from server-first to client-final-message, remembering the
 * ServerSignature to check server-final against. */
static al_pg_auth_rc_t scram_client_final(al_pg_auth_t *a, al_str_t server_first, al_buf_t *out)
{
    server_first_t sf;
    memset(&sf, 0, sizeof sf);
    al_pg_auth_rc_t rc = parse_server_first(a, server_first, &sf);
    if (rc != AL_PG_AUTH_SEND)
        return rc;

    al_buf_t *m = &a->auth_message;
    al_buf_t fin;
    al_buf_init(&fin);
    /* client-final-message-without-proof; "biws" is base64("n,,") */
    al_buf_puts(&fin, "c=biws,r=");
    al_buf_append(&fin, sf.nonce.p, sf.nonce.len);
    al_buf_puts(m, ",");
    al_buf_append(m, server_first.p, server_first.len);
    al_buf_puts(m, ",");
    al_buf_append(m, fin.p, fin.len);
    if (m->oom || fin.oom) {
        al_buf_free(&fin);
        return AL_PG_AUTH_E_NOMEM;
    }

    uint8_t salted[SHA256_LEN], ckey[SHA256_LEN], stored[SHA256_LEN], csig[SHA256_LEN],
        proof[SHA256_LEN], skey[SHA256_LEN];
    rc = AL_PG_AUTH_E_CRYPTO;
    if (PKCS5_PBKDF2_HMAC(a->password, (int)a->password_len, sf.salt, (int)sf.salt_len,
                          (int)sf.iterations, EVP_sha256(), SHA256_LEN, salted) != 1)
        goto out;
    if (!hmac256(salted, SHA256_LEN, "Client Key", 10, ckey) ||
        SHA256(ckey, SHA256_LEN, stored) == NULL ||
        !hmac256(stored, SHA256_LEN, m->p, m->len, csig) ||
        !hmac256(salted, SHA256_LEN, "Server Key", 10, skey) ||
        !hmac256(skey, SHA256_LEN, m->p, m->len, a->server_signature))
        goto out;
    for (size_t i = 0; i < SHA256_LEN; i++)
        proof[i] = ckey[i] ^ csig[i];
    al_buf_puts(&fin, ",p=");
    b64_encode(&fin, proof, SHA256_LEN);
    rc = !fin.oom && al_pg_build_sasl_response(out, fin.p, fin.len) == AL_OK ? AL_PG_AUTH_SEND
                                                                             : AL_PG_AUTH_E_NOMEM;
out:
    al_wipe(salted, sizeof salted);
    al_wipe(ckey, sizeof ckey);
    al_wipe(stored, sizeof stored);
    al_wipe(csig, sizeof csig);
    al_wipe(proof, sizeof proof);
    al_wipe(skey, sizeof skey);
    if (fin.p)
        al_wipe(fin.p, fin.cap);
    al_buf_free(&fin);
    return rc;
}

/* RFC 5802 §3, §7: server-final-message = server-error / verifier. */
static al_pg_auth_rc_t scram_verify_final(al_pg_auth_t *a, al_str_t msg)
{
    al_str_t s = msg, v;
    uint8_t sig[SHA256_LEN + 3];
    size_t n;
    if (msg.len >= 2 && msg.p[0] == 'e' && msg.p[1] == '=')
        return AL_PG_AUTH_E_SERVER_ERROR;
    if (!take_attr(&s, 'v', &v) || s.len != 0 || !b64_decode(v, sig, sizeof sig, &n) || n != SHA256_LEN)
        return AL_PG_AUTH_E_BAD_MESSAGE;
    bool ok = al_ct_eq(sig, a->server_signature, SHA256_LEN);
    al_wipe(a->server_signature, sizeof a->server_signature);
    return ok ? AL_PG_AUTH_CONTINUE : AL_PG_AUTH_E_SERVER_PROOF;
}

static bool has_mech(const al_pg_authreq_t *req, const char *name)
{
    for (size_t i = 0; i < req->nmechs; i++)
        if (al_str_eq_c(req->mechs[i], name))
            return true;
    return false;
}

static al_pg_auth_rc_t step_start(al_pg_auth_t *a, const al_pg_authreq_t *req, al_buf_t *out)
{
    unsigned allow = a->opts.allow;
    switch (req->code) {
    case AL_PG_AUTHREQ_OK:
        if (!(allow & AL_PG_AUTH_ALLOW_TRUST))
            return AL_PG_AUTH_E_NOT_ALLOWED;
        a->method = AL_PG_AUTH_METHOD_TRUST;
        a->state = AL_PG_AUTH_S_DONE;
        return AL_PG_AUTH_DONE;
    case AL_PG_AUTHREQ_CLEARTEXT:
        if (!(allow & AL_PG_AUTH_ALLOW_CLEARTEXT))
            return AL_PG_AUTH_E_NOT_ALLOWED;
        a->method = AL_PG_AUTH_METHOD_CLEARTEXT;
        if (al_pg_build_password(out, a->password) != AL_OK)
            return AL_PG_AUTH_E_NOMEM;
        a->state = AL_PG_AUTH_S_PASSWORD_SENT;
        return AL_PG_AUTH_SEND;
    case AL_PG_AUTHREQ_MD5: {
        char md5[36];
        if (!(allow & AL_PG_AUTH_ALLOW_MD5))
            return AL_PG_AUTH_E_NOT_ALLOWED;
        a->method = AL_PG_AUTH_METHOD_MD5;
        if (al_pg_md5_password(a->user, a->password, req->md5_salt, md5) != AL_OK)
            return AL_PG_AUTH_E_CRYPTO;
        int rc = al_pg_build_password(out, md5);
        al_wipe(md5, sizeof md5);
        if (rc != AL_OK)
            return AL_PG_AUTH_E_NOMEM;
        a->state = AL_PG_AUTH_S_PASSWORD_SENT;
        return AL_PG_AUTH_SEND;
    }
    case AL_PG_AUTHREQ_SASL: {
        if (!(allow & AL_PG_AUTH_ALLOW_SCRAM))
            return AL_PG_AUTH_E_NOT_ALLOWED;
        if (!has_mech(req, SCRAM_MECH))
            return AL_PG_AUTH_E_NO_MECHANISM;
        a->method = AL_PG_AUTH_METHOD_SCRAM;
        al_pg_auth_rc_t rc = scram_client_first(a, out);
        if (rc == AL_PG_AUTH_SEND)
            a->state = AL_PG_AUTH_S_SCRAM_FIRST;
        return rc;
    }
    case AL_PG_AUTHREQ_KERBEROS_V5:
    case AL_PG_AUTHREQ_GSS:
    case AL_PG_AUTHREQ_GSS_CONTINUE:
    case AL_PG_AUTHREQ_SSPI:
        return AL_PG_AUTH_E_UNSUPPORTED;
    case AL_PG_AUTHREQ_SASL_CONTINUE:
    case AL_PG_AUTHREQ_SASL_FINAL:
        return AL_PG_AUTH_E_UNEXPECTED;
    }
    return AL_PG_AUTH_E_UNSUPPORTED;
}

al_pg_auth_rc_t al_pg_auth_step(al_pg_auth_t *a, const al_pg_authreq_t *req, al_buf_t *out)
{
    if (!a || !req || !out)
        return AL_PG_AUTH_E_BAD_CALL;
    if (a->state == AL_PG_AUTH_S_FAILED)
        return a->rc;
    if (!a->password)
        return fail(a, AL_PG_AUTH_E_BAD_CALL);
    al_pg_auth_rc_t rc = AL_PG_AUTH_E_UNEXPECTED;
    switch (a->state) {
    case AL_PG_AUTH_S_START:
        rc = step_start(a, req, out);
        break;
    case AL_PG_AUTH_S_SCRAM_FIRST:
        if (req->code == AL_PG_AUTHREQ_SASL_CONTINUE) {
            rc = scram_client_final(a, req->data, out);
            if (rc == AL_PG_AUTH_SEND)
                a->state = AL_PG_AUTH_S_SCRAM_FINAL;
        }
        break;
    case AL_PG_AUTH_S_SCRAM_FINAL:
        if (req->code == AL_PG_AUTHREQ_SASL_FINAL) {
            rc = scram_verify_final(a, req->data);
            if (rc == AL_PG_AUTH_CONTINUE)
                a->state = AL_PG_AUTH_S_SCRAM_VERIFIED;
        }
        break;
    case AL_PG_AUTH_S_PASSWORD_SENT:
    case AL_PG_AUTH_S_SCRAM_VERIFIED:
        /* RFC 5802 §3: the client authenticates the server before
         * accepting success; an early AuthenticationOk stays UNEXPECTED. */
        if (req->code == AL_PG_AUTHREQ_OK) {
            a->state = AL_PG_AUTH_S_DONE;
            rc = AL_PG_AUTH_DONE;
        }
        break;
    case AL_PG_AUTH_S_DONE:
    case AL_PG_AUTH_S_FAILED:
        break;
    }
    if (rc < 0)
        return fail(a, rc);
    if (rc == AL_PG_AUTH_DONE) {
        al_wipe(a->password, a->password_len);
        if (a->auth_message.p)
            al_wipe(a->auth_message.p, a->auth_message.cap);
    }
    return rc;
}
