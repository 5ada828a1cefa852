/*
 * pg_auth.h - the client side of PostgreSQL authentication, for airlock's
 * connection to the upstream server: cleartext password, MD5 and
 * SCRAM-SHA-256 (RFC 5802, RFC 7677; PostgreSQL manual, "SASL
 * Authentication").
 *
 * Pure: no I/O. The caller frames the upstream's messages with pg_codec,
 * parses each Authentication ('R') message with al_pg_parse_authentication
 * and hands it to al_pg_auth_step, which appends the answer (if any) to an
 * al_buf_t for the caller to send. Crypto is OpenSSL's (PKCS5_PBKDF2_HMAC,
 * HMAC, SHA-256, MD5, RAND_bytes).
 *
 * SCRAM-SHA-256 as implemented:
 *  - No channel binding: the GS2 header is "n,," (RFC 5802 §7), also when
 *    the server offers SCRAM-SHA-256-PLUS; the plain mechanism is chosen.
 *  - The SCRAM user name is the given user, escaped per RFC 5802 §5.1
 *    ('=' -> "=3D", ',' -> "=2C"); PostgreSQL ignores it and uses the
 *    startup packet's user.
 *  - SASLprep (RFC 4013, required by RFC 5802 §2.2) is not implemented:
 *    the password is used as its raw bytes. For ASCII passwords this is
 *    what libpq sends (SASLprep maps printable ASCII to itself, and libpq
 *    falls back to the raw bytes for passwords it refuses, e.g. with
 *    control characters). A non-ASCII password only works when it is
 *    already in SASLprep normal form (NFKC, no mapped characters);
 *    otherwise the server refuses the proof.
 *  - The client nonce is 18 random bytes (RAND_bytes), base64: 24 chars.
 *  - server-first-message (RFC 5802 §5.1, §7): a leading "m=" extension is
 *    refused; the nonce must start with ours and be strictly longer (the
 *    server must contribute); the salt must be non-empty base64; the
 *    iteration count must be within [min_iterations, max_iterations]
 *    (RFC 7677 §4: at least 4096); nothing may follow the count (as
 *    libpq).
 *  - server-final-message: "e=" is a server-reported failure; "v=" must be
 *    exactly the expected ServerSignature (constant-time compare), else the
 *    exchange fails closed. AuthenticationOk is accepted only after a
 *    verified server-final: a server that skips the SCRAM exchange's end
 *    does not get to authenticate itself with a bare AuthenticationOk.
 *
 * Secrets (password, derived keys) are wiped on free and as soon as they
 * are no longer needed.
 */
#ifndef AL_PROTO_PG_AUTH_H
#define AL_PROTO_PG_AUTH_H

#include "core/core.h"
#include "proto/pg/pg_codec.h"

/* Which authentication exchanges the upstream may ask for. */
#define AL_PG_AUTH_ALLOW_TRUST 0x1u     /* AuthenticationOk without any exchange */
#define AL_PG_AUTH_ALLOW_CLEARTEXT 0x2u
#define AL_PG_AUTH_ALLOW_MD5 0x4u
#define AL_PG_AUTH_ALLOW_SCRAM 0x8u
#define AL_PG_AUTH_ALLOW_ANY 0xfu

#define AL_PG_SCRAM_MIN_ITERATIONS 4096u      /* RFC 7677 §4 */
#define AL_PG_SCRAM_DEFAULT_MAX_ITERATIONS 1000000u
#define AL_PG_SCRAM_NONCE_MAX 64u

typedef struct al_pg_auth_opts {
    unsigned allow;          /* AL_PG_AUTH_ALLOW_* bits; 0 means SCRAM only */
    uint32_t min_iterations; /* 0 = 4096; raised to 4096 if lower */
    /* A malicious or misconfigured upstream can name any count; PBKDF2 runs
     * on the caller's thread, so cap it. 0 = 1,000,000 (0.2 s of one core,
     * measured; 4096 takes 2 ms). */
    uint32_t max_iterations;
} al_pg_auth_opts_t;

/* Results of al_pg_auth_step: >= 0 is progress, < 0 a failure (sticky). */
typedef enum al_pg_auth_rc {
    AL_PG_AUTH_CONTINUE = 0,          /* nothing to send; wait for the next 'R' */
    AL_PG_AUTH_SEND = 1,              /* out got one message to send upstream */
    AL_PG_AUTH_DONE = 2,              /* AuthenticationOk accepted */
    AL_PG_AUTH_E_BAD_CALL = -1,       /* NULL argument, or called after DONE / a failure */
    AL_PG_AUTH_E_NOT_ALLOWED = -2,    /* the method is not in opts.allow */
    AL_PG_AUTH_E_UNSUPPORTED = -3,    /* Kerberos, GSSAPI, SSPI, unknown */
    AL_PG_AUTH_E_NO_MECHANISM = -4,   /* SASL without SCRAM-SHA-256 */
    AL_PG_AUTH_E_UNEXPECTED = -5,     /* message out of order (e.g. early AuthenticationOk) */
    AL_PG_AUTH_E_BAD_MESSAGE = -6,    /* malformed server-first/server-final */
    AL_PG_AUTH_E_NONCE = -7,          /* server nonce does not extend ours */
    AL_PG_AUTH_E_ITERATIONS = -8,     /* iteration count outside the bounds */
    AL_PG_AUTH_E_SERVER_PROOF = -9,   /* ServerSignature mismatch */
    AL_PG_AUTH_E_SERVER_ERROR = -10,  /* server-final "e=..." */
    AL_PG_AUTH_E_CRYPTO = -11,        /* OpenSSL or RNG failure */
    AL_PG_AUTH_E_NOMEM = -12,
} al_pg_auth_rc_t;

/* Stable lowercase code ("server_proof_mismatch"). */
const char *al_pg_auth_rc_str(al_pg_auth_rc_t rc);

typedef enum al_pg_auth_method {
    AL_PG_AUTH_METHOD_NONE = 0, /* no request yet */
    AL_PG_AUTH_METHOD_TRUST,
    AL_PG_AUTH_METHOD_CLEARTEXT,
    AL_PG_AUTH_METHOD_MD5,
    AL_PG_AUTH_METHOD_SCRAM,
} al_pg_auth_method_t;

typedef enum al_pg_auth_state {
    AL_PG_AUTH_S_START = 0,
    AL_PG_AUTH_S_PASSWORD_SENT, /* cleartext or MD5 answer sent */
    AL_PG_AUTH_S_SCRAM_FIRST,   /* client-first sent */
    AL_PG_AUTH_S_SCRAM_FINAL,   /* client-final sent */
    AL_PG_AUTH_S_SCRAM_VERIFIED,/* server-final verified */
    AL_PG_AUTH_S_DONE,
    AL_PG_AUTH_S_FAILED,
} al_pg_auth_state_t;

/* Exchange state. Callers may read method, state and rc; the rest is
 * private. Owns copies of user and password: release with al_pg_auth_free. */
typedef struct al_pg_auth {
    char *user;
    char *password;
    size_t password_len;
    al_pg_auth_opts_t opts;
    al_pg_auth_state_t state;
    al_pg_auth_method_t method;
    al_pg_auth_rc_t rc;           /* the failure, once state is FAILED */
    char nonce[AL_PG_SCRAM_NONCE_MAX + 1]; /* client nonce; "" until chosen */
    al_buf_t auth_message;        /* RFC 5802 §3 AuthMessage, built as we go */
    size_t client_first_bare_len; /* prefix of auth_message */
    uint8_t server_signature[32]; /* expected, once client-final was sent */
} al_pg_auth_t;

/* Copies user and password (C strings; user may be empty for SCRAM but not
 * for MD5, whose salt uses it). opts NULL = SCRAM only, default bounds.
 * AL_OK, or AL_ERR on NULL argument or out of memory. */
int al_pg_auth_init(al_pg_auth_t *a, const char *user, const char *password,
                    const al_pg_auth_opts_t *opts);

/* Wipes and frees everything a owns. */
void al_pg_auth_free(al_pg_auth_t *a);

/* Feeds one parsed Authentication message. On AL_PG_AUTH_SEND one message
 * (PasswordMessage, SASLInitialResponse or SASLResponse) was appended to
 * out; nothing is appended otherwise. A failure is sticky and also kept in
 * a->rc; the caller then closes the upstream connection. The caller keeps
 * handling ErrorResponse itself (it is not an 'R' message). */
al_pg_auth_rc_t al_pg_auth_step(al_pg_auth_t *a, const al_pg_authreq_t *req, al_buf_t *out);

/* The MD5 answer (PostgreSQL manual, AuthenticationMD5Password):
 * "md5" + hex(md5(hex(md5(password + user)) + salt)), NUL-terminated into
 * out[36]. AL_OK, or AL_ERR when the digest is unavailable. */
int al_pg_md5_password(const char *user, const char *password, const uint8_t salt[4],
                       char out[36]);

/* Testing only: fixes the client nonce (printable ASCII except ',', 1 to
 * AL_PG_SCRAM_NONCE_MAX chars) instead of drawing one, so RFC 7677 §3 can
 * be replayed. AL_OK, or AL_ERR when invalid or the exchange has begun. */
int al_pg_auth_test_set_nonce(al_pg_auth_t *a, const char *nonce);

#endif
