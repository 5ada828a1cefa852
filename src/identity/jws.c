/*
 * jws.c - JWS compact serialization (RFC 7515 §7.1): parse, verify, sign.
 *
 * Parsing refuses anything ambiguous before any crypto runs; verification
 * maps each JWS "alg" (RFC 7518 §3.1, RFC 8037 §3.1) to one EVP operation
 * and refuses a key that does not fit it (RFC 7515 §10.7: the algorithm is
 * bound to the key, never taken from the token alone).
 */
#include <openssl/core_names.h>
#include <pthread.h>
#include <stdlib.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "identity/jws.h"

/* RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used". */
#define RSA_MIN_BITS 2048
/* Upper bound on the modulus: bounds the cost of one verification. */
#define RSA_MAX_BITS 16384
/* Largest ECDSA field (P-521): 66 bytes. */
#define EC_MAX_FIELD 66
/* DER ECDSA-Sig-Value for P-521: 3 (SEQUENCE header, long form) +
 * 2 * (2 + 1 + 66) (INTEGER header, sign pad, value). */
#define EC_MAX_DER (3 + 2 * (2 + 1 + EC_MAX_FIELD))

/* ---- algorithm table ------------------------------------------------------ */

typedef enum alg_family {
    FAM_NONE = 0,
    FAM_RSA_PKCS1, /* RFC 7518 §3.3 */
    FAM_RSA_PSS,   /* RFC 7518 §3.5 */
    FAM_ECDSA,     /* RFC 7518 §3.4 */
    FAM_EDDSA,     /* RFC 8037 §3.1 */
} alg_family_t;

/* Group orders n, big-endian, left-padded to the field size (SEC 2 §2.4.2,
 * §2.5.1, §2.6.1). r and s must lie in [1, n-1] (RFC 7518 §3.4 refers to
 * FIPS 186-4 §6.4 verification, which starts with that range check). */
static const uint8_t p256_order[32] = {
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9,
    0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51};
static const uint8_t p384_order[48] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63,
    0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf, 0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7,
    0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73};
static const uint8_t p521_order[66] = {
    0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfa, 0x51, 0x86, 0x87, 0x83, 0xbf,
    0x2f, 0x96, 0x6b, 0x7f, 0xcc, 0x01, 0x48, 0xf7, 0x09, 0xa5, 0xd0, 0x3b, 0xb5,
    0xc9, 0xb8, 0x89, 0x9c, 0x47, 0xae, 0xbb, 0x6f, 0xb7, 0x1e, 0x91, 0x38, 0x64,
    0x09};

typedef struct alg_spec {
    alg_family_t fam;
    const EVP_MD *(*md)(void); /* NULL for EdDSA (PureEdDSA hashes itself) */
    size_t field;              /* ECDSA: field size in bytes */
    const uint8_t *order;      /* ECDSA: group order, field bytes */
    const char *group;         /* ECDSA: OpenSSL group name */
    const char *group_alt;     /* ECDSA: NIST name, also accepted */
} alg_spec_t;

static bool alg_spec(al_alg_t alg, alg_spec_t *s)
{
    memset(s, 0, sizeof *s);
    switch (alg) {
    case AL_ALG_RS256: *s = (alg_spec_t){FAM_RSA_PKCS1, EVP_sha256}; break;
    case AL_ALG_RS384: *s = (alg_spec_t){FAM_RSA_PKCS1, EVP_sha384}; break;
    case AL_ALG_RS512: *s = (alg_spec_t){FAM_RSA_PKCS1, EVP_sha512}; break;
    case AL_ALG_PS256: *s = (alg_spec_t){FAM_RSA_PSS, EVP_sha256}; break;
    case AL_ALG_PS384: *s = (alg_spec_t){FAM_RSA_PSS, EVP_sha384}; break;
    case AL_ALG_PS512: *s = (alg_spec_t){FAM_RSA_PSS, EVP_sha512}; break;
    case AL_ALG_ES256:
        *s = (alg_spec_t){FAM_ECDSA, EVP_sha256, 32, p256_order, "prime256v1", "P-256"};
        break;
    case AL_ALG_ES384:
        *s = (alg_spec_t){FAM_ECDSA, EVP_sha384, 48, p384_order, "secp384r1", "P-384"};
        break;
    case AL_ALG_ES512:
        *s = (alg_spec_t){FAM_ECDSA, EVP_sha512, 66, p521_order, "secp521r1", "P-521"};
        break;
    case AL_ALG_EDDSA: *s = (alg_spec_t){FAM_EDDSA, NULL}; break;
    default: return false;
    }
    return true;
}

/* Whether key is of the type, curve and size the algorithm needs. Reads
 * parameters into stack buffers only. */
static bool key_fits(const alg_spec_t *s, EVP_PKEY *key)
{
    if (!key)
        return false;
    int id = EVP_PKEY_get_base_id(key);
    switch (s->fam) {
    case FAM_RSA_PKCS1:
    case FAM_RSA_PSS: {
        int bits = EVP_PKEY_get_bits(key);
        return id == EVP_PKEY_RSA && bits >= RSA_MIN_BITS && bits <= RSA_MAX_BITS;
    }
    case FAM_ECDSA: {
        char name[64];
        size_t name_len = 0;
        if (id != EVP_PKEY_EC ||
            !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name,
                                            sizeof name, &name_len))
            return false;
        return strcmp(name, s->group) == 0 || strcmp(name, s->group_alt) == 0;
    }
    case FAM_EDDSA: return id == EVP_PKEY_ED25519; /* RFC 8037 §3.1, Ed448 not offered */
    default: return false;
    }
}

/* ---- ECDSA signature format (RFC 7518 §3.4) -------------------------------- */

/* 1 if a > b, 0 if equal, -1 if less; both big-endian of n bytes. */
static int be_cmp(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return a[i] > b[i] ? 1 : -1;
    return 0;
}

static bool in_range(const uint8_t *v, const uint8_t *order, size_t n)
{
    bool zero = true;
    for (size_t i = 0; i < n && zero; i++)
        zero = v[i] == 0;
    return !zero && be_cmp(v, order, n) < 0;
}

/* Appends v (n big-endian bytes, not zero) as a minimal DER INTEGER. */
static size_t der_int(uint8_t *out, const uint8_t *v, size_t n)
{
    while (n > 1 && v[0] == 0) {
        v++;
        n--;
    }
    bool pad = v[0] & 0x80; /* positive: a set top bit needs a 0x00 */
    size_t k = 0;
    out[k++] = 0x02;
    out[k++] = (uint8_t)(n + pad);
    if (pad)
        out[k++] = 0x00;
    memcpy(out + k, v, n);
    return k + n;
}

/* Converts the raw r||s of RFC 7518 §3.4 into the DER ECDSA-Sig-Value
 * (RFC 3279 §2.2.3) that EVP expects. Returns the DER length, or 0 when
 * r or s is zero or not below the group order. */
static size_t ecdsa_raw_to_der(const alg_spec_t *s, const uint8_t *sig, uint8_t der[EC_MAX_DER])
{
    const uint8_t *r = sig, *sv = sig + s->field;
    if (!in_range(r, s->order, s->field) || !in_range(sv, s->order, s->field))
        return 0;
    uint8_t body[EC_MAX_DER];
    size_t blen = der_int(body, r, s->field);
    blen += der_int(body + blen, sv, s->field);
    size_t k = 0;
    der[k++] = 0x30;
    if (blen >= 0x80) /* X.690 §8.1.3.5: long form, one length byte here */
        der[k++] = 0x81;
    der[k++] = (uint8_t)blen;
    memcpy(der + k, body, blen);
    return k + blen;
}

/* The reverse, for signing: DER from EVP into left-padded raw r||s. */
static int ecdsa_der_to_raw(const alg_spec_t *s, const uint8_t *der, size_t der_len, uint8_t *raw)
{
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (!es)
        return AL_ERR;
    const BIGNUM *r = NULL, *sv = NULL;
    ECDSA_SIG_get0(es, &r, &sv);
    int ok = BN_bn2binpad(r, raw, (int)s->field) == (int)s->field &&
             BN_bn2binpad(sv, raw + s->field, (int)s->field) == (int)s->field;
    ECDSA_SIG_free(es);
    return ok ? AL_OK : AL_ERR;
}

/* ---- EVP glue ----------------------------------------------------------------- */

/* RFC 7518 §3.5: salt as long as the hash, MGF1 with the same hash. */
static bool set_pss(EVP_PKEY_CTX *pctx, const EVP_MD *md)
{
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0;
}

static bool set_pkcs1(EVP_PKEY_CTX *pctx)
{
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
}

/* Checks the signature's length against the algorithm and key before any
 * EVP work; returns the bytes to hand to EVP (DER for ECDSA) in *out. */
static bool sig_for_evp(const alg_spec_t *s, size_t key_size, const uint8_t *sig, size_t sig_len,
                        uint8_t der[EC_MAX_DER], const uint8_t **out, size_t *out_len)
{
    switch (s->fam) {
    case FAM_RSA_PKCS1:
    case FAM_RSA_PSS:
        /* RFC 8017 §8.1.2 / §8.2.2 step 1: exactly k octets. */
        if (sig_len != key_size)
            return false;
        *out = sig;
        *out_len = sig_len;
        return true;
    case FAM_ECDSA:
        if (sig_len != 2 * s->field)
            return false;
        *out_len = ecdsa_raw_to_der(s, sig, der);
        *out = der;
        return *out_len != 0;
    case FAM_EDDSA:
        if (sig_len != 64) /* RFC 8032 §5.1.7: R || S, 64 octets */
            return false;
        *out = sig;
        *out_len = sig_len;
        return true;
    default: return false;
    }
}

/* ---- verification contexts ------------------------------------------------------
 *
 * OpenSSL 3 looks up ("fetches") the digest and signature implementations
 * by name on every EVP_DigestVerifyInit, under global read locks; that cost
 * rivals an ECDSA verify. Digests are therefore fetched once per process,
 * and each thread keeps a small direct-mapped cache of EVP_PKEY_CTX objects
 * already initialised for verification with (key, alg). A cached context
 * holds a reference on its key, so a key's address cannot be reused by
 * another key while the entry lives. EdDSA (RFC 8032, no pre-hash) keeps the
 * one-shot EVP_DigestVerify path. */

static EVP_MD *fetched_md[3]; /* SHA-256, SHA-384, SHA-512 */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;

static void fetch_mds(void)
{
    fetched_md[0] = EVP_MD_fetch(NULL, "SHA256", NULL);
    fetched_md[1] = EVP_MD_fetch(NULL, "SHA384", NULL);
    fetched_md[2] = EVP_MD_fetch(NULL, "SHA512", NULL);
}

static const EVP_MD *md_for(const alg_spec_t *s)
{
    pthread_once(&md_once, fetch_mds);
    const EVP_MD *legacy = s->md();
    int bits = EVP_MD_get_size(legacy) * 8;
    const EVP_MD *m = bits == 256 ? fetched_md[0] : bits == 384 ? fetched_md[1] : fetched_md[2];
    return m ? m : legacy;
}

#define VCACHE_SLOTS 32 /* per thread; power of two */

typedef struct vslot {
    const EVP_PKEY *key;
    al_alg_t alg;
    EVP_PKEY_CTX *ctx;
    size_t key_size; /* EVP_PKEY_get_size: RSA signature length */
} vslot_t;

static pthread_key_t vcache_key;
static pthread_once_t vcache_once = PTHREAD_ONCE_INIT;

static void vcache_destroy(void *p)
{
    vslot_t *v = p;
    for (size_t i = 0; i < VCACHE_SLOTS; i++)
        EVP_PKEY_CTX_free(v[i].ctx);
    free(v);
}

static void vcache_init(void) { pthread_key_create(&vcache_key, vcache_destroy); }

/* The cache slot holding a context ready for EVP_PKEY_verify with key and
 * alg (owned by this thread's cache). NULL when the key does not fit alg
 * (*unfit set) or on failure. key_fits runs only on a miss: its parameter
 * queries take provider locks. */
static const vslot_t *verify_ctx(const alg_spec_t *s, al_alg_t alg, EVP_PKEY *key,
                                 const EVP_MD *md, bool *unfit)
{
    *unfit = false;
    pthread_once(&vcache_once, vcache_init);
    vslot_t *v = pthread_getspecific(vcache_key);
    if (!v) {
        v = calloc(VCACHE_SLOTS, sizeof *v);
        if (!v || pthread_setspecific(vcache_key, v)) {
            free(v);
            return NULL;
        }
    }
    uintptr_t h = ((uintptr_t)key >> 4) * 0x9E3779B97F4A7C15u + (uintptr_t)alg;
    vslot_t *e = &v[(h >> 7) & (VCACHE_SLOTS - 1)];
    if (e->ctx && e->key == key && e->alg == alg)
        return e;
    if (!key_fits(s, key)) {
        *unfit = true;
        return NULL;
    }
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
    if (!ctx || EVP_PKEY_verify_init(ctx) != 1 || EVP_PKEY_CTX_set_signature_md(ctx, md) != 1 ||
        (s->fam == FAM_RSA_PSS && !set_pss(ctx, md)) ||
        (s->fam == FAM_RSA_PKCS1 && !set_pkcs1(ctx))) {
        EVP_PKEY_CTX_free(ctx);
        return NULL;
    }
    EVP_PKEY_CTX_free(e->ctx);
    *e = (vslot_t){key, alg, ctx, (size_t)EVP_PKEY_get_size(key)};
    return e;
}

al_tok_status_t al_jws_verify_sig(al_alg_t alg, EVP_PKEY *key, const uint8_t *msg,
                                  size_t msg_len, const uint8_t *sig, size_t sig_len)
{
    alg_spec_t s;
    uint8_t der[EC_MAX_DER];
    const uint8_t *evp_sig = NULL;
    size_t evp_sig_len = 0;
    if (!key || !alg_spec(alg, &s))
        return AL_TOK_BAD_SIGNATURE;

    al_tok_status_t st = AL_TOK_BAD_SIGNATURE;
    if (s.fam == FAM_EDDSA) {
        if (!key_fits(&s, key) || !sig_for_evp(&s, 0, sig, sig_len, der, &evp_sig, &evp_sig_len))
            return AL_TOK_BAD_SIGNATURE;
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
            return AL_TOK_INTERNAL;
        if (EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
            EVP_DigestVerify(ctx, evp_sig, evp_sig_len, msg, msg_len) == 1)
            st = AL_TOK_OK;
        EVP_MD_CTX_free(ctx);
    } else {
        const EVP_MD *md = md_for(&s);
        uint8_t digest[EVP_MAX_MD_SIZE];
        unsigned dlen = 0;
        bool unfit;
        const vslot_t *vs = verify_ctx(&s, alg, key, md, &unfit);
        if (!vs)
            return unfit ? AL_TOK_BAD_SIGNATURE : AL_TOK_INTERNAL;
        if (sig_for_evp(&s, vs->key_size, sig, sig_len, der, &evp_sig, &evp_sig_len) &&
            EVP_Digest(msg, msg_len, digest, &dlen, md, NULL) == 1 &&
            EVP_PKEY_verify(vs->ctx, evp_sig, evp_sig_len, digest, dlen) == 1)
            st = AL_TOK_OK;
    }
    /* A refused signature leaves reasons on this thread's error queue;
     * they are not ours to report and must not pile up. */
    ERR_clear_error();
    return st;
}

/* ---- signing ------------------------------------------------------------------- */

/* Signs msg into a fresh heap buffer (*sig, owned by the caller). */
static int evp_sign(const alg_spec_t *s, EVP_PKEY *key, const uint8_t *msg, size_t msg_len,
                    uint8_t **sig, size_t *sig_len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return AL_ERR;
    EVP_PKEY_CTX *pctx = NULL;
    const EVP_MD *md = s->md ? s->md() : NULL;
    int rc = AL_ERR;
    size_t len = 0;
    if (EVP_DigestSignInit(ctx, &pctx, md, NULL, key) == 1 &&
        (s->fam != FAM_RSA_PSS || set_pss(pctx, md)) &&
        (s->fam != FAM_RSA_PKCS1 || set_pkcs1(pctx)) &&
        EVP_DigestSign(ctx, NULL, &len, msg, msg_len) == 1) {
        *sig = al_malloc(len);
        if (*sig && EVP_DigestSign(ctx, *sig, &len, msg, msg_len) == 1) {
            *sig_len = len;
            rc = AL_OK;
        } else {
            al_free(sig);
        }
    }
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* Appends the signature over out[start..] as ".<b64url sig>". */
static int append_signature(const alg_spec_t *s, EVP_PKEY *key, al_buf_t *out, size_t start)
{
    uint8_t *sig = NULL;
    size_t sig_len = 0;
    if (evp_sign(s, key, (const uint8_t *)out->p + start, out->len - start, &sig, &sig_len) !=
        AL_OK)
        return AL_ERR;
    uint8_t raw[2 * EC_MAX_FIELD];
    const uint8_t *emit = sig;
    size_t emit_len = sig_len;
    int rc = AL_OK;
    if (s->fam == FAM_ECDSA) { /* RFC 7518 §3.4: raw r||s, not DER */
        rc = ecdsa_der_to_raw(s, sig, sig_len, raw);
        emit = raw;
        emit_len = 2 * s->field;
    }
    if (rc == AL_OK && (al_buf_append(out, ".", 1) != AL_OK ||
                        al_b64url_encode(out, emit, emit_len) != AL_OK))
        rc = AL_ERR;
    al_free(&sig);
    return rc;
}

int al_jws_sign(al_alg_t alg, EVP_PKEY *key, const char *header_json, const char *payload_json,
                al_buf_t *out)
{
    alg_spec_t s;
    if (!header_json || !payload_json || !alg_spec(alg, &s) || !key_fits(&s, key))
        return AL_ERR;
    size_t start = out->len;
    /* RFC 7515 §5.1 steps 2-8: BASE64URL(header) '.' BASE64URL(payload). */
    int rc = AL_ERR;
    if (al_b64url_encode(out, (const uint8_t *)header_json, strlen(header_json)) == AL_OK &&
        al_buf_append(out, ".", 1) == AL_OK &&
        al_b64url_encode(out, (const uint8_t *)payload_json, strlen(payload_json)) == AL_OK)
        rc = append_signature(&s, key, out, start);
    ERR_clear_error();
    if (rc != AL_OK && !out->oom) {
        out->len = start; /* leave out as it was */
        if (out->p)
            out->p[start] = '\0';
    }
    return rc;
}

/* ---- parsing -------------------------------------------------------------------- */

/* Decodes one base64url segment into a fresh buffer. */
static int decode_segment(const char *p, size_t len, uint8_t **out, size_t *out_len)
{
    size_t cap = al_b64url_decoded_max(len);
    *out = al_malloc(cap);
    if (!*out)
        return AL_ERR;
    ssize_t n = al_b64url_decode(p, len, *out, cap);
    if (n < 0) {
        al_free(out);
        return AL_ERR;
    }
    *out_len = (size_t)n;
    return AL_OK;
}

/* Decodes a segment and loads it as a JSON object. RFC 7515 §5.2 step 4
 * lets a recipient refuse duplicate member names; we always do, so a
 * header or claim cannot mean two things to two parsers. */
static al_tok_status_t decode_object(const char *p, size_t len, json_t **out,
                                     const char **detail, bool is_header)
{
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    if (decode_segment(p, len, &raw, &raw_len) != AL_OK) {
        *detail = is_header ? "header is not base64url" : "payload is not base64url";
        return AL_TOK_MALFORMED;
    }
    json_error_t jerr;
    /* jansson validates UTF-8 and refuses \u0000 without JSON_ALLOW_NUL. */
    json_t *j = json_loadb((const char *)raw, raw_len, JSON_REJECT_DUPLICATES, &jerr);
    al_free(&raw);
    if (!j || !json_is_object(j)) {
        json_decref(j);
        *detail = is_header ? "header is not a JSON object" : "payload is not a JSON object";
        return AL_TOK_MALFORMED;
    }
    *out = j;
    return AL_TOK_OK;
}

/* RFC 7515 §4.1.11: crit, when present, is a non-empty array of strings.
 * We understand no extension, so any well-formed crit is refused too. */
static al_tok_status_t check_crit(const json_t *crit, const char **detail)
{
    if (!json_is_array(crit) || json_array_size(crit) == 0) {
        *detail = "crit is not a non-empty array";
        return AL_TOK_MALFORMED;
    }
    size_t i;
    const json_t *v;
    json_array_foreach(crit, i, v) {
        if (!json_is_string(v) || json_string_length(v) == 0) {
            *detail = "crit holds a non-string";
            return AL_TOK_MALFORMED;
        }
    }
    *detail = "crit names an unsupported extension";
    return AL_TOK_CRIT_UNSUPPORTED;
}

/* Optional string member: absent -> NULL, present non-string -> error. */
static int opt_string(const json_t *obj, const char *key, const char **out)
{
    const json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return AL_OK;
    if (!json_is_string(v))
        return AL_ERR;
    *out = json_string_value(v);
    return AL_OK;
}

/* RFC 7515 §4.1: the header members we act on. jku, x5u, jwk and x5c are
 * never consulted (a token must not name its own key, §10.7). */
static al_tok_status_t check_header(al_jws_t *out, const char **detail)
{
    const json_t *alg = json_object_get(out->header, "alg");
    if (!json_is_string(alg)) { /* RFC 7515 §4.1.1: alg MUST be present */
        *detail = "alg is missing or not a string";
        return AL_TOK_MALFORMED;
    }
    /* RFC 7518 §3.1: names are case-sensitive; "none" and HS* are not in
     * our table, so they cannot parse. */
    out->alg = al_alg_parse(json_string_value(alg), json_string_length(alg));
    if (out->alg == AL_ALG_NONE) {
        *detail = "alg is not an allowed asymmetric algorithm";
        return AL_TOK_ALG_NOT_ALLOWED;
    }
    const json_t *crit = json_object_get(out->header, "crit");
    if (crit)
        return check_crit(crit, detail);
    if (opt_string(out->header, "kid", &out->kid) != AL_OK) { /* RFC 7515 §4.1.4 */
        *detail = "kid is not a string";
        return AL_TOK_MALFORMED;
    }
    if (opt_string(out->header, "typ", &out->typ) != AL_OK) { /* RFC 7515 §4.1.9 */
        *detail = "typ is not a string";
        return AL_TOK_MALFORMED;
    }
    return AL_TOK_OK;
}

/* Splits a compact JWS into its three segments (RFC 7515 §7.1). A JWE
 * (RFC 7516 §7.1, five segments) or anything else is refused. */
static bool split3(const char *t, size_t len, al_str_t seg[3])
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && t[i] != '.')
            continue;
        if (n == 3 || i == start) /* a fourth segment, or an empty one */
            return false;
        seg[n++] = (al_str_t){t + start, i - start};
        start = i + 1;
    }
    return n == 3;
}

static al_tok_status_t parse(const char *token, size_t len, al_jws_t *out, const char **detail)
{
    al_str_t seg[3];
    if (!split3(token, len, seg)) {
        *detail = "not three non-empty segments";
        return AL_TOK_MALFORMED;
    }
    al_tok_status_t st = decode_object(seg[0].p, seg[0].len, &out->header, detail, true);
    if (st != AL_TOK_OK)
        return st;
    if ((st = check_header(out, detail)) != AL_TOK_OK)
        return st;
    if ((st = decode_object(seg[1].p, seg[1].len, &out->payload, detail, false)) != AL_TOK_OK)
        return st;
    if (decode_segment(seg[2].p, seg[2].len, &out->sig, &out->sig_len) != AL_OK) {
        *detail = "signature is not base64url";
        return AL_TOK_MALFORMED;
    }
    /* RFC 7515 §5.2 step 8 / §7.2.1: the signing input is the ASCII of
     * the first two segments and the dot between them, as received. */
    out->signing_input = token;
    out->signing_input_len = seg[0].len + 1 + seg[1].len;
    return AL_TOK_OK;
}

al_tok_status_t al_jws_parse(const char *token, size_t len, size_t max_len, al_jws_t *out,
                             const char **detail)
{
    const char *dummy;
    if (!detail)
        detail = &dummy;
    memset(out, 0, sizeof *out);
    *detail = "ok";
    if (len > max_len) {
        *detail = "token exceeds the size cap";
        return AL_TOK_TOO_LARGE;
    }
    if (!token) {
        *detail = "no token";
        return AL_TOK_MALFORMED;
    }
    al_tok_status_t st = parse(token, len, out, detail);
    if (st != AL_TOK_OK)
        al_jws_free(out);
    return st;
}

void al_jws_free(al_jws_t *jws)
{
    if (!jws)
        return;
    json_decref(jws->header);
    json_decref(jws->payload);
    al_free(&jws->sig);
    memset(jws, 0, sizeof *jws);
}
