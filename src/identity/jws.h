/*
 * jws.h - JWS compact serialization (RFC 7515) and JWK / JWK Set (RFC 7517)
 * on OpenSSL 3 EVP. Pure: no I/O, no globals, no network.
 *
 * Supported algorithms (RFC 7518 §3, RFC 8037): RS256/384/512,
 * PS256/384/512, ES256/384/512 (raw r||s signatures, RFC 7518 §3.4),
 * EdDSA with Ed25519. "none" and HS* are never accepted.
 */
#ifndef AL_IDENTITY_JWS_H
#define AL_IDENTITY_JWS_H

#include <jansson.h>
#include <openssl/evp.h>

#include "core/config.h"
#include "core/core.h"
#include "identity/reason.h"

/* ---- base64url (RFC 4648 §5, unpadded as RFC 7515 §2 requires) -------- */

/* Decodes src strictly: only [A-Za-z0-9_-], no '=' padding, no whitespace,
 * a length that is not 1 mod 4, and zero unused trailing bits (canonical
 * form). Writes at most cap bytes to dst. Returns the decoded length, or
 * -1 on any violation (or when cap is too small). */
ssize_t al_b64url_decode(const char *src, size_t len, uint8_t *dst, size_t cap);
/* Decoded size upper bound for an input of len chars. */
static inline size_t al_b64url_decoded_max(size_t len) { return len / 4 * 3 + 3; }
/* Encodes n bytes unpadded, appending to b. */
int al_b64url_encode(al_buf_t *b, const uint8_t *src, size_t n);

/* ---- parsed token ------------------------------------------------------- */

#define AL_JWS_DEFAULT_MAX_LEN (16 * 1024)

typedef struct al_jws {
    json_t *header;          /* owned; JOSE header object */
    json_t *payload;         /* owned; claims object */
    const char *signing_input; /* borrowed from the token: "header.payload" */
    size_t signing_input_len;
    uint8_t *sig;            /* owned; decoded signature */
    size_t sig_len;
    al_alg_t alg;            /* parsed "alg"; never AL_ALG_NONE after OK */
    const char *kid;         /* borrowed from header; NULL if absent */
    const char *typ;         /* borrowed from header; NULL if absent */
} al_jws_t;

/* Parses a compact JWS of len bytes (the caller's buffer must outlive the
 * al_jws_t since signing_input points into it).
 *
 * Refuses, before any crypto:
 *  - len > max_len                        -> AL_TOK_TOO_LARGE
 *  - not exactly three '.'-separated segments (JWE's five included),
 *    empty segments, bad base64url, header/payload not a JSON object,
 *    duplicate member names, invalid UTF-8  -> AL_TOK_MALFORMED
 *  - "alg" missing or not a string        -> AL_TOK_MALFORMED
 *  - "alg" not one of the ten supported   -> AL_TOK_ALG_NOT_ALLOWED
 *  - "crit" present (we implement no extension, RFC 7515 §4.1.11);
 *    a malformed crit (not a non-empty array of strings) is MALFORMED
 *                                         -> AL_TOK_CRIT_UNSUPPORTED
 *  - "kid"/"typ" present but not strings  -> AL_TOK_MALFORMED
 * Header parameters jku, x5u, jwk and x5c are ignored: never used to find
 * a key. On success returns AL_TOK_OK and fills out (release with
 * al_jws_free). On failure out is left empty (safe to al_jws_free) and
 * *detail (if non-NULL) points to a static description. */
al_tok_status_t al_jws_parse(const char *token, size_t len, size_t max_len,
                             al_jws_t *out, const char **detail);
void al_jws_free(al_jws_t *jws);

/* Verifies sig over msg with key for alg. Returns AL_TOK_OK or
 * AL_TOK_BAD_SIGNATURE (also for a key that does not fit alg, a signature
 * of the wrong length, or an EC signature with r or s out of range).
 * ES*: sig must be exactly 2 * field size bytes (r||s). PS*: salt length
 * equals the hash length, MGF1 with the same hash (RFC 7518 §3.5). */
al_tok_status_t al_jws_verify_sig(al_alg_t alg, EVP_PKEY *key,
                                  const uint8_t *msg, size_t msg_len,
                                  const uint8_t *sig, size_t sig_len);

/* Signs header_json.payload_json (both serialized compactly by the caller)
 * with key for alg and appends the compact token to out. ES* signatures
 * are emitted as raw r||s. Returns AL_OK or AL_ERR. Used by the dev issuer,
 * tests and benches. */
int al_jws_sign(al_alg_t alg, EVP_PKEY *key, const char *header_json,
                const char *payload_json, al_buf_t *out);

/* ---- JWK and JWK Set ---------------------------------------------------------- */

/* key_ops bits (RFC 7517 §4.3) that matter to a verifier. */
#define AL_JWK_OP_VERIFY 0x1u

typedef struct al_jwk {
    char *kid;          /* owned; NULL if absent */
    al_alg_t alg;       /* the JWK's "alg" if present, else AL_ALG_NONE */
    unsigned fits;      /* set of algs this key may verify (kty/crv/use/key_ops/alg/size) */
    EVP_PKEY *pkey;     /* owned public key */
} al_jwk_t;

/* An immutable, reference-counted set of verification keys. */
typedef struct al_keyset {
    int refs;           /* atomic; use al_keyset_ref/unref */
    al_jwk_t *keys;
    size_t n_keys;
    size_t n_skipped;   /* keys in the document that could not be used */
} al_keyset_t;

/* Builds a JWK from a JSON object. Rules:
 *  - kty RSA (n, e): modulus >= 2048 bits else refused; fits RS* and PS*.
 *  - kty EC (crv P-256/P-384/P-521, x, y; point validated on the curve):
 *    fits ES256/ES384/ES512 respectively.
 *  - kty OKP crv Ed25519 (x, 32 bytes): fits EdDSA. Other OKP curves refused.
 *  - "use" present and not "sig" -> no fits; "key_ops" present without
 *    "verify" -> no fits; "alg" present -> fits only that alg (and it must
 *    be consistent with kty/crv, else no fits).
 *  - a private key member ("d", "p", ...) is ignored: only public parts used.
 * Returns AL_OK, or AL_ERR with *err pointing to a static reason. */
int al_jwk_from_json(const json_t *obj, al_jwk_t *out, const char **err);
void al_jwk_clear(al_jwk_t *k);

/* Parses a JWK Set document ({"keys":[...]}); keys that cannot be used are
 * skipped and counted. Returns AL_OK with *out (refs = 1), or AL_ERR with
 * *err when the document itself is not a JWK Set (duplicate members, not
 * an object, no "keys" array). A set with zero usable keys is AL_OK with
 * n_keys == 0; the caller decides. */
int al_keyset_parse(const char *json, size_t len, al_keyset_t **out, const char **err);
al_keyset_t *al_keyset_ref(al_keyset_t *ks);
void al_keyset_unref(al_keyset_t **ks);

/* Finds keys that may verify a token with this kid and alg. With a kid,
 * only keys whose kid equals it (exactly) and that fit alg. Without a kid,
 * every key that fits alg. Fills at most max pointers; returns the count. */
size_t al_keyset_find(const al_keyset_t *ks, const char *kid, al_alg_t alg,
                      const al_jwk_t **found, size_t max);

/* Public JWK JSON (kty, crv/n/e/x/y, kid, alg, use "sig") for a key; for
 * the dev issuer's JWKS. Caller owns the returned json_t. */
json_t *al_jwk_public_json(EVP_PKEY *pkey, const char *kid, al_alg_t alg);

/* RFC 7638 JWK thumbprint (SHA-256, base64url) of a public key, appended
 * to out. Returns AL_OK or AL_ERR. */
int al_jwk_thumbprint(EVP_PKEY *pkey, al_buf_t *out);

#endif
